"""Compiled MAX pooling (numba, the extra ``fast``; jit.py has the machinery).

Caffe's window max starts at -FLT_MAX and takes a value only when it is strictly
greater, over the window clipped to the input, row by row; its mask is the flat
index (h*W + w) of that value, -1 when none wins. The kernels keep that order, so
values, masks and the zero's sign in a -0/+0 tie are Caffe's. The backward adds each
output's gradient at its mask's cell in output order, as Caffe does.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .jit import _compiled, _padded

__all__ = ["max_pool_2d", "max_pool_backward_flat", "PAD_MAX_PLANE"]


# The windows wholly inside the input (nearly all) take the unrolled taps; the ones
# a border clips take the clipped loops, in the same order. Large planes get no
# padded copy (FCN-8s's pool2, ceil-rounded over a 349-wide map: 16.8 ms with one,
# 5.5 without); with the mask (TRAIN, a mask top), where numpy needs several passes
# per kernel offset, no plane does (the mask indexes the input itself).


@lru_cache(maxsize=64)
def _max_pool_kernel(kh: int, kw: int, sh: int, sw: int, clipped: bool, with_mask: bool) -> Any:
    """The MAX pooling kernel for one window geometry (compile-time constants), for
    windows all inside x, or (``clipped``) some clipped by its borders, writing the
    mask too when ``with_mask`` (a flag fixed at compile time: no cost without)."""
    taps = kh * kw

    @_compiled
    def kernel(x, start, pad, y, mask):                 # pragma: no cover (compiled)
        P, OH, OW = y.shape
        H, W = x.shape[1], x.shape[2]
        init = start[0]
        if not clipped:
            for p in range(P):
                xp = x[p]
                yp = y[p]
                for oh in range(OH):
                    for ow in range(OW):
                        best = init
                        for k in range(taps):
                            v = xp[oh * sh + k // kw, ow * sw + k % kw]
                            best = v if v > best else best
                        yp[oh, ow] = best
            return
        ph, pw = pad[0], pad[1]
        lo = min(OW, (pw + sw - 1) // sw)               # windows inside: columns lo..hi-1
        hi = lo if W + pw < kw else max(lo, min(OW, (W + pw - kw) // sw + 1))
        for p in range(P):
            xp = x[p]
            for oh in range(OH):
                r0 = oh * sh - ph
                whole = r0 >= 0 and r0 + kh <= H
                if whole:                               # the windows inside x
                    row, marks = y[p, oh], mask[p, oh]
                    for ow in range(lo, hi):
                        c0 = ow * sw - pw
                        best = init
                        where = -1
                        for k in range(taps):           # unsigned: no negative-index wrap
                            v = xp[np.uintp(r0 + k // kw), np.uintp(c0 + k % kw)]
                            take = v > best
                            best = v if take else best
                            if with_mask:
                                where = (r0 + k // kw) * W + c0 + k % kw if take else where
                        row[np.uintp(ow)] = best        # (which would stop vectorising)
                        if with_mask:
                            marks[np.uintp(ow)] = where
                for part in range(2 if whole else 1):   # the windows a border clips
                    first, last = (0, lo) if part == 0 else (hi, OW)
                    if not whole:
                        last = OW
                    for ow in range(first, last):
                        c0 = ow * sw - pw
                        best = init
                        where = -1
                        for i in range(max(r0, 0), min(r0 + kh, H)):
                            for j in range(max(c0, 0), min(c0 + kw, W)):
                                v = xp[i, j]
                                if v > best:
                                    best = v
                                    where = i * W + j
                        y[p, oh, ow] = best
                        if with_mask:
                            mask[p, oh, ow] = where
    return kernel


#: planes up to this many cells are copied into a -inf padded buffer when windows
#: leave them (without the mask): their clipped border windows, a large share on
#: small maps (GoogLeNet's 3x3 pad-1 pools at 28x28 and less), run slower than the
#: copy costs
PAD_MAX_PLANE = 1 << 14


def max_pool_2d(x: np.ndarray, kernel: tuple, stride: tuple, pad: tuple, out_shape: tuple,
                y: np.ndarray, init: float, mask: np.ndarray | None = None) -> np.ndarray:
    """Caffe's MAX pooling of x (N, C, H, W) into the C-contiguous y (N, C, OH, OW),
    every window's first strict maximum from ``init`` (-FLT_MAX), and into ``mask``
    (same shape) its flat index (-1 when none wins) when given: as
    max_pool.max_pool_forward."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (OH, OW) = kernel, stride, pad, out_shape
    rows, cols = (OH - 1) * sh + kh, (OW - 1) * sw + kw     # the windows' extent
    inside = ph == pw == 0 and rows <= H and cols <= W
    if mask is None and not inside and H * W <= PAD_MAX_PLANE:  # -inf never wins '>'
        x = _padded(x, pad, (max(rows, ph + H), max(cols, pw + W)), -np.inf, None, "")
        pad, inside = (0, 0), True
    clipped = not inside or mask is not None
    planes = np.ascontiguousarray(x).reshape(N * C, *x.shape[2:])
    marks = np.empty((1, 1, 1), y.dtype) if mask is None else mask.reshape(N * C, OH, OW)
    _max_pool_kernel(kh, kw, sh, sw, clipped, mask is not None)(
        planes, np.full(1, init, x.dtype), np.array(pad, np.int64), y.reshape(N * C, OH, OW),
        marks)
    return y


@lru_cache(maxsize=1)
def _max_backward_kernel() -> Any:
    @_compiled
    def kernel(dy, mask, dx):                           # pragma: no cover (compiled)
        P, L = dy.shape
        for p in range(P):
            dxp = dx[p]
            dxp[:] = 0
            for i in range(L):
                where = np.int64(mask[p, i])
                if where >= 0:
                    dxp[where] += dy[p, i]
    return kernel


def max_pool_backward_flat(dy: np.ndarray, mask: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """dx (C-contiguous) = each output's gradient added at its mask's flat index, in
    output order per plane (negative indices dropped): as max_pool.max_pool_backward."""
    N, C = dx.shape[:2]
    _max_backward_kernel()(np.ascontiguousarray(dy).reshape(N * C, -1),
                           np.ascontiguousarray(mask).reshape(N * C, -1),
                           dx.reshape(N * C, -1))
    return dx
