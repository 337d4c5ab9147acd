"""Compiled im2col and col2im for 2-D convolutions (numba, the extra ``fast``; jit.py
has the machinery).

numpy copies (adds) each kernel offset's columns as one strided call per offset, plus
one per padding border, its inner loop one output row long: on small maps the loop
overhead dominates, on strided kernels the gather. Compiled, each row of columns is
one pass, unit-stride runs vectorised. im2col is a copy, so the same bits; col2im
sums each cell's kernel offsets in the numpy loop's row-major order, so the same
sums.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .jit import _compiled

__all__ = ["im2col_2d", "col2im_2d"]


def _valid(size: int, start: int, stride: int, limit: int) -> tuple[int, int]:
    """The outputs [lo, hi) of 0..size-1 whose input start + o*stride is in [0, limit)."""
    lo = 0 if start >= 0 else min(size, (-start + stride - 1) // stride)
    hi = 0 if start >= limit else min(size, (limit - start + stride - 1) // stride)
    return lo, max(lo, hi)


@lru_cache(maxsize=1)
def _valid_compiled() -> Any:
    """_valid compiled. im2col and col2im each walk the kernel offsets with it in their
    own loops: one shared helper returning an offset's whole window cost LeNet's
    conv2 (batch 64) 35% on col2im and 12% on im2col (in-process A/B)."""
    return _compiled(_valid)


@lru_cache(maxsize=2)
def _im2col_kernel(channel_major: bool) -> Any:
    """im2col into C-contiguous columns (N, C*K, L), or (C*K, N, L) when
    ``channel_major``. Indices are cast to unsigned where they are known to be inside:
    numba's negative-index wrap would stop the copies vectorising."""
    valid = _valid_compiled()

    @_compiled
    def kernel(x, cols, geometry):                      # pragma: no cover (compiled)
        N, C, H, W = x.shape
        kh, kw, sh, sw, ph, pw, dh, dw, OH, OW = geometry
        for n in range(N):
            for c in range(C):
                src = x[n, c]
                for i in range(kh):
                    r0 = i * dh - ph
                    oh0, oh1 = valid(OH, r0, sh, H)
                    for j in range(kw):
                        c0 = j * dw - pw
                        ow0, ow1 = valid(OW, c0, sw, W)
                        k = (c * kh + i) * kw + j
                        row = cols[k, n] if channel_major else cols[n, k]
                        for oh in range(OH):
                            base = oh * OW
                            if oh < oh0 or oh >= oh1:
                                for ow in range(OW):
                                    row[np.uintp(base + ow)] = 0
                                continue
                            line = src[np.uintp(r0 + oh * sh)]
                            for ow in range(ow0):
                                row[np.uintp(base + ow)] = 0
                            if sw == 1:
                                for ow in range(ow0, ow1):
                                    row[np.uintp(base + ow)] = line[np.uintp(c0 + ow)]
                            else:
                                for ow in range(ow0, ow1):
                                    row[np.uintp(base + ow)] = line[np.uintp(c0 + ow * sw)]
                            for ow in range(ow1, OW):
                                row[np.uintp(base + ow)] = 0
    return kernel


def _geometry(*pairs: tuple) -> tuple:
    """(kh, kw, sh, sw, ph, pw, dh, dw, OH, OW) as plain ints: one tuple type, so one
    compiled kernel serves every geometry."""
    return tuple(int(v) for pair in pairs for v in pair)


def im2col_2d(x: np.ndarray, cols: np.ndarray, kernel: tuple, stride: tuple, pad: tuple,
              dilation: tuple, out_shape: tuple, channel_major: bool) -> np.ndarray:
    """The columns of the C-contiguous x (N, C, H, W) into the C-contiguous ``cols``,
    (N, C*K, L) or (C*K, N, L) when ``channel_major``: as im2col.im2col fills them."""
    _im2col_kernel(channel_major)(x, cols, _geometry(kernel, stride, pad, dilation, out_shape))
    return cols


@lru_cache(maxsize=2)
def _col2im_kernel(layout: str) -> Any:
    """col2im from C-contiguous columns (N, C*K, L) ("image"), (C*K, N, L) ("channel")
    into out (N, C, H, W), or from (C*K, L, N) ("batch_last") into acc (C, H, W, N).
    Each cell sums its kernel offsets in row-major order, as the numpy loop does."""
    valid = _valid_compiled()
    batch_last = layout == "batch_last"
    channel_major = layout == "channel"

    @_compiled
    def kernel(cols, acc, geometry):                    # pragma: no cover (compiled)
        if batch_last:
            C, H, W, N = acc.shape
        else:
            N, C, H, W = acc.shape
        kh, kw, sh, sw, ph, pw, dh, dw, OH, OW = geometry
        for n in range(1 if batch_last else N):
            for c in range(C):
                plane = acc[c] if batch_last else acc[n, c]
                plane[...] = 0
                for i in range(kh):
                    r0 = i * dh - ph
                    oh0, oh1 = valid(OH, r0, sh, H)
                    for j in range(kw):
                        c0 = j * dw - pw
                        ow0, ow1 = valid(OW, c0, sw, W)
                        k = (c * kh + i) * kw + j
                        if batch_last:
                            src = cols[k]                # (L, N)
                            for oh in range(oh0, oh1):
                                for ow in range(ow0, ow1):
                                    cell = plane[np.uintp(r0 + oh * sh), np.uintp(c0 + ow * sw)]
                                    values = src[np.uintp(oh * OW + ow)]
                                    for b in range(N):
                                        cell[b] += values[b]
                            continue
                        row = cols[k, n] if channel_major else cols[n, k]
                        for oh in range(oh0, oh1):
                            line = plane[np.uintp(r0 + oh * sh)]
                            base = oh * OW
                            for ow in range(ow0, ow1):
                                line[np.uintp(c0 + ow * sw)] += row[np.uintp(base + ow)]
    return kernel


def col2im_2d(cols: np.ndarray, acc: np.ndarray, kernel: tuple, stride: tuple, pad: tuple,
              dilation: tuple, out_shape: tuple, layout: str) -> np.ndarray:
    """col2im of the C-contiguous columns of ``layout`` into the C-contiguous ``acc``,
    (N, C, H, W), or (C, H, W, N) for "batch_last": as im2col.col2im sums them."""
    _col2im_kernel(layout)(cols, acc, _geometry(kernel, stride, pad, dilation, out_shape))
    return acc
