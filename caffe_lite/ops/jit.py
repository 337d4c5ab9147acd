"""Compiled kernels, with numba from the optional extra ``fast``: work that numpy
can only do in many passes over memory.

A 2-D depthwise convolution (MobileNet's 3x3 layers) is nine multiply-adds per
output. numpy does them as nine copies and a matrix-vector product per plane
(depthwise.py); compiled, each output sums its taps in registers, one pass over
a zero-padded copy of the input: MobileNet's conv4_dw at batch 1 took 0.24 ms
instead of 0.92. Every output sums its taps in Caffe's order (kernel row, then
column, the padding's zeros included), then adds the bias, in the blob's dtype.

The per-channel steps after a convolution (bias, BatchNorm, Scale, ReLU), a
shortcut join's sum and ReLU and LRN's channel window sums run compiled too, each
in one pass, with the numpy steps' float operations in their order: the same bits.
im2col and col2im's kernels are in
jit_columns.py, MAX pooling's in jit_pooling.py, Winograd's transforms (the fast
mode, not bit for bit) in jit_winograd.py.

Without numba, with ``enabled`` False, or with CAFFE_LITE_NO_JIT set, the numpy
kernels run (the numpy-only path). Kernels compile on first use, once per
kernel geometry (about 0.3 s each), and numba caches them on disk (beside this
module, or in its user cache directory), so later processes load them. They
release the GIL, so the batch-parallel forward's threads run them side by side.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

from .geometry import scratch

__all__ = ["enabled", "available", "handles", "depthwise_2d", "channel_epilogue", "sum_relu",
           "lrn_scale"]

#: False runs the numpy kernels instead (the numpy-only path)
enabled = True


@lru_cache(maxsize=1)
def _numba() -> Any:
    if os.environ.get("CAFFE_LITE_NO_JIT"):
        return None
    try:
        import numba
    except ImportError:
        return None
    return numba


def _compiled(fn: Any, **options: Any) -> Any:
    """numba's njit of ``fn`` (with ``options``), cached on disk where numba finds a
    writable place (else compiled in memory in each process)."""
    njit = _numba().njit
    try:
        return njit(nogil=True, boundscheck=False, cache=True, **options)(fn)
    except RuntimeError:                  # "no locator available": nowhere to write
        return njit(nogil=True, boundscheck=False, **options)(fn)


def _padded(x: np.ndarray, pad: tuple, size: tuple, value: float, workspace: Any,
            name: str) -> np.ndarray:
    """x (N, C, H, W) copied into a (N, C, *size) scratch array at offset ``pad``, the
    cells around it set to ``value``: windows then read whole rows and columns."""
    H, W = x.shape[2:]
    (ph, pw), (rows, cols) = pad, size
    xpad = scratch(workspace, name, x.shape[:2] + (rows, cols), x.dtype)
    xpad[:, :, :ph] = value
    xpad[:, :, ph + H:] = value
    xpad[:, :, ph:ph + H, :pw] = value
    xpad[:, :, ph:ph + H, pw + W:] = value
    xpad[:, :, ph:ph + H, pw:pw + W] = x
    return xpad


def available() -> bool:
    """True when compiled kernels run: numba is installed and not switched off."""
    return enabled and _numba() is not None


def handles(dtype: Any) -> bool:
    """Compiled kernels run for arrays of ``dtype``: float32 and float64 (other
    dtypes take the numpy kernels)."""
    return available() and np.dtype(dtype) in (np.float32, np.float64)


@lru_cache(maxsize=64)
def _depthwise_kernel(kh: int, kw: int, sh: int, sw: int, dh: int, dw: int) -> Any:
    """The depthwise kernel for one geometry: the geometry is a compile-time
    constant, so the taps unroll and the output row vectorises."""
    taps = kh * kw

    @_compiled
    def kernel(xpad, w, b, has_bias, y):              # pragma: no cover (compiled)
        N, C, OH, OW = y.shape
        for n in range(N):
            for c in range(C):
                wc = w[c, 0]
                xc = xpad[n, c]
                yc = y[n, c]
                for oh in range(OH):
                    for ow in range(OW):
                        acc = wc[0, 0] * xc[oh * sh, ow * sw]
                        for k in range(1, taps):
                            i = k // kw
                            j = k % kw
                            acc += wc[i, j] * xc[oh * sh + i * dh, ow * sw + j * dw]
                        if has_bias:
                            acc += b[c]
                        yc[oh, ow] = acc
    return kernel


def depthwise_2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: tuple,
                 pad: tuple, dilation: tuple, y: np.ndarray, workspace: Any = None) -> np.ndarray:
    """y = depthwise conv of x (N, C, H, W) with w (C, 1, KH, KW) and b (C,) or None,
    into the C-contiguous y (N, C, OH, OW): as depthwise.depthwise_forward."""
    H, W = x.shape[2:]
    (ph, pw) = pad
    xpad = _padded(x, pad, (H + 2 * ph, W + 2 * pw), 0, workspace, "depthwise_padded_input")
    kernel = _depthwise_kernel(*w.shape[2:], *stride, *dilation)
    bias = b if b is not None else np.zeros(1, x.dtype)
    kernel(xpad, np.ascontiguousarray(w, x.dtype), np.ascontiguousarray(bias, x.dtype),
           b is not None, y)
    return y


# ==== per-channel epilogue ===================================================
# A convolution's output usually goes through a chain of per-channel steps in place:
# its bias, a BatchNorm on global statistics, a Scale, a ReLU (ResNet, MobileNet),
# one numpy pass over the blob each. Compiled, each value takes every step in
# registers, in the layers' order and the blob's dtype: the same float operations,
# so the same bits, in one pass (net/fusion.py finds the chains).
EPILOGUE_STEPS = ("bias", "mean", "std", "gamma", "beta", "relu")


@lru_cache(maxsize=64)
def _epilogue_kernel(steps: tuple[bool, ...]) -> Any:
    """The kernel for one set of steps (flags in EPILOGUE_STEPS order): the flags are
    compile-time constants, so absent steps cost nothing."""
    bias, mean, std, gamma, beta, relu = steps

    @_compiled
    def kernel(y, vectors, zero):                       # pragma: no cover (compiled)
        N, C, L = y.shape
        z = zero[0]
        for n in range(N):
            for c in range(C):
                b, m, s, g, h = vectors[0, c], vectors[1, c], vectors[2, c], vectors[3, c], vectors[4, c]
                row = y[n, c]
                for i in range(L):
                    v = row[i]
                    if bias:
                        v = v + b
                    if mean:
                        v = v - m
                    if std:
                        v = v / s
                    if gamma:
                        v = v * g
                    if beta:
                        v = v + h
                    if relu:                            # np.maximum(v, 0): NaN stays
                        v = v if (v > z or v != v) else z
                    row[i] = v
    return kernel


def channel_epilogue(y: np.ndarray, bias: Any = None, mean: Any = None, std: Any = None,
                     gamma: Any = None, beta: Any = None, relu: bool = False) -> np.ndarray:
    """In place on y (N, C, ...), per channel c, in this order: + bias[c], - mean[c],
    / std[c], * gamma[c], + beta[c], max(., 0); each vector (C,) or None (skipped)."""
    N, C = y.shape[:2]
    given = (bias, mean, std, gamma, beta)
    vectors = np.zeros((5, C), y.dtype)
    for row, v in zip(vectors, given):
        if v is not None:
            row[...] = np.asarray(v).reshape(C)
    steps = tuple(v is not None for v in given) + (bool(relu),)
    _epilogue_kernel(steps)(y.reshape(N, C, -1), vectors, np.zeros(1, y.dtype))
    return y


@lru_cache(maxsize=1)
def _sum_relu_kernel() -> Any:
    @_compiled
    def kernel(a, b, out, zero):                        # pragma: no cover (compiled)
        z = zero[0]
        for i in range(out.size):
            v = a[i] + b[i]
            out[i] = v if (v > z or v != v) else z      # np.maximum(v, 0): NaN stays
    return kernel


def sum_relu(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = max(a + b, 0), elementwise in one pass (a residual block's Eltwise SUM
    and the ReLU after it: the same float steps as np.add, then np.maximum)."""
    flat = [np.ascontiguousarray(v).reshape(-1) for v in (a, b)]
    _sum_relu_kernel()(flat[0], flat[1], out.reshape(-1), np.zeros(1, out.dtype))
    return out


# ==== LRN's channel window sums ===============================================
# Caffe's LRN scale is k plus a running sum of alpha/n x^2 over the channels: the
# first channel's window added up, then for each next channel the entering square
# added and the leaving one subtracted. numpy does that as a few calls per channel
# (GoogLeNet's norm2 at batch 8: about 7 ns per value); compiled, each channel is one
# pass, the squares recomputed in the same float steps: the same bits.


@lru_cache(maxsize=1)
def _lrn_scale_kernel() -> Any:
    @_compiled
    def kernel(x, size, constants, scale):              # pragma: no cover (compiled)
        N, C, L = x.shape
        pre = (size - 1) // 2
        a, k = constants[0], constants[1]
        for n in range(N):
            first = scale[n, 0]
            for i in range(L):
                first[i] = k
            for j in range(min(pre + 1, C)):
                xj = x[n, j]
                for i in range(L):
                    first[i] = first[i] + (xj[i] * xj[i]) * a
            for c in range(1, C):
                current, previous = scale[n, c], scale[n, c - 1]
                entering, leaving = c + pre < C, c - pre - 1 >= 0
                xe = x[n, c + pre] if entering else x[n, c]
                xl = x[n, c - pre - 1] if leaving else x[n, c]
                for i in range(L):
                    v = previous[i]
                    if entering:
                        v = v + (xe[i] * xe[i]) * a
                    if leaving:
                        v = v - (xl[i] * xl[i]) * a
                    current[i] = v
    return kernel


def lrn_scale(x: np.ndarray, size: int, a: Any, k: float, scale: np.ndarray) -> np.ndarray:
    """scale (N, C, L) = k + the window sums of a x^2 over ``size`` channels, for the
    C-contiguous x (N, C, L), as lrn.lrn_across_forward's numpy steps give them."""
    constants = np.array([a, k], x.dtype)
    _lrn_scale_kernel()(x, size, constants, scale)
    return scale
