"""Compiled Winograd tile transforms (numba, the extra ``fast``; winograd.py has the
method and jit.py the machinery).

numpy transforms a block of tiles as small GEMMs over copies: a strided gather of
the overlapping input tiles, two GEMMs with eight-long rows, the same twice on the
way out, and m*m strided copies into the output. Here a block is copied once into
channels-last order (rows, columns, channels), so that every tile's values for
all channels sit side by side: each transform then runs tile by tile, channels
innermost, as unit-stride multiply-adds that vectorise, and the GEMM reads the
transformed tiles as (tiles, channels). The products come back as (tiles, output
channels), are transformed into channels-last output rows, and copied back once.

In-process A/B against numpy's transforms (2-vCPU EPYC, numba 0.68), whole nets in
the fast mode: VGG16 b1 229 -> 189-195 ms, b8 1035 -> 865 ms, FCN-8s 1598 -> 1439 ms,
GoogLeNet b8 231 -> 212 ms, ResNet-50 b8 446 -> 426 ms. Alone, VGG16's conv1_2
(64 channels, 224x224) took 17-21 ms instead of 24-27.

Each transform sums its terms in the matrices' order, with fused multiply-adds,
where numpy's GEMMs use their own order: the two paths round differently (by about
1e-7 of the largest output in float32), each within the fast mode's tolerance.
"""
from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import numpy as np

from .geometry import scratch
from .jit import _compiled

__all__ = ["block_forward"]

#: channels copied together into channels-last order: 8 floats fill one 32-byte store
#: while the 8 source rows are read as sequential streams
CHANNEL_GROUP = 8

#: the transforms' multiply-adds may run fused (one rounding for each); no other
#: fast-math liberty, so infinities and NaNs still propagate
FUSED = {"contract"}


@lru_cache(maxsize=1)
def _layout_kernels() -> tuple[Any, Any]:
    """The copies into and out of channels-last order, CHANNEL_GROUP channels at a
    time (a constant inner loop: one with a run-time end ran 5-10x slower)."""
    group = CHANNEL_GROUP

    @_compiled
    def to_channels_last(x, xh, r0, c0):                  # pragma: no cover (compiled)
        """xh[n, r, col, c] = x[n, c, r0 + r, c0 + col], zero outside x."""
        nb, C, H, W = x.shape
        R, Wc = xh.shape[1], xh.shape[2]
        lo, hi = max(0, -c0), max(0, min(Wc, W - c0))
        whole = C - C % group
        for n in range(nb):
            for r in range(R):
                row = r0 + r
                if row < 0 or row >= H:
                    xh[n, r] = 0
                    continue
                xh[n, r, :lo] = 0
                xh[n, r, hi:] = 0
                row = np.uintp(row)
                for g in range(0, whole, group):
                    for col in range(lo, hi):
                        src = np.uintp(c0 + col)
                        for c in range(group):
                            xh[n, r, col, g + c] = x[n, g + c, row, src]
                for col in range(lo, hi):
                    src = np.uintp(c0 + col)
                    for c in range(whole, C):
                        xh[n, r, col, c] = x[n, c, row, src]

    @_compiled
    def to_channels_first(yh, scale, bias, y, row0):      # pragma: no cover (compiled)
        """y[n, co, row0 + r, col] = yh[n, r, col, co] * scale[co] + bias[co]."""
        nb, rows, Ow, Cout = yh.shape
        whole = Cout - Cout % group
        for n in range(nb):
            for r in range(rows):
                row = np.uintp(row0 + r)
                for g in range(0, whole, group):
                    for col in range(Ow):
                        for co in range(group):
                            y[n, g + co, row, col] = (yh[n, r, col, g + co] * scale[g + co]
                                                      + bias[g + co])
                for co in range(whole, Cout):
                    for col in range(Ow):
                        y[n, co, row, col] = yh[n, r, col, co] * scale[co] + bias[co]

    return to_channels_last, to_channels_first


@lru_cache(maxsize=8)
def _transform_kernels(m: int, bt: tuple, at: tuple, dtype: str) -> tuple[Any, Any]:
    """The input and output transforms of F(m x m, 3x3), tile by tile: the matrices
    and the tile size are compile-time constants, so each sum over them unrolls into
    the channel loop, which vectorises."""
    span = m + 2
    b_t = np.array(bt, dtype).reshape(span, span)
    a_t = np.array(at, dtype).reshape(m, span)
    fused = partial(_compiled, fastmath=FUSED)

    @fused
    def input_transform(xh, v):                           # pragma: no cover (compiled)
        """v[i*span + j, tile, c] = (B^T d B)[i, j] over each tile d of xh."""
        nb, R, Wc, C = xh.shape
        nt, Tw = (R - 2) // m, (Wc - 2) // m
        z = np.empty((span, span, C), xh.dtype)
        for n in range(nb):
            for ty in range(nt):
                for tx in range(Tw):
                    p = (n * nt + ty) * Tw + tx
                    r0, c0 = m * ty, m * tx
                    for i in range(span):                 # B^T d: down the columns
                        for j in range(span):
                            for c in range(C):
                                acc = b_t[i, 0] * xh[n, r0, c0 + j, c]
                                for k in range(1, span):
                                    acc += b_t[i, k] * xh[n, r0 + k, c0 + j, c]
                                z[i, j, c] = acc
                    for i in range(span):                 # (B^T d) B: along the rows
                        for j in range(span):
                            for c in range(C):
                                acc = b_t[j, 0] * z[i, 0, c]
                                for k in range(1, span):
                                    acc += b_t[j, k] * z[i, k, c]
                                v[i * span + j, p, c] = acc

    @fused
    def output_transform(products, yh, nt, Tw):           # pragma: no cover (compiled)
        """yh[n, m*ty + r, m*tx + c, co] = (A^T M A)[r, c] over each tile M of the
        products, for the rows and columns inside yh."""
        nb, rows, Ow, Cout = yh.shape
        h = np.empty((m, span, Cout), products.dtype)
        for n in range(nb):
            for ty in range(nt):
                for tx in range(Tw):
                    p = (n * nt + ty) * Tw + tx
                    for r in range(m):                    # A^T M
                        for j in range(span):
                            for co in range(Cout):
                                acc = a_t[r, 0] * products[j, p, co]
                                for k in range(1, span):
                                    acc += a_t[r, k] * products[k * span + j, p, co]
                                h[r, j, co] = acc
                    for r in range(min(m, rows - m * ty)):     # (A^T M) A
                        for c in range(min(m, Ow - m * tx)):
                            for co in range(Cout):
                                acc = a_t[c, 0] * h[r, 0, co]
                                for k in range(1, span):
                                    acc += a_t[c, k] * h[r, k, co]
                                yh[n, m * ty + r, m * tx + c, co] = acc

    return input_transform, output_transform


def block_forward(x, u, bias, scale, pad, y, tiling, block, workspace):
    """One block of winograd.winograd_forward (tile rows t0:t1 of the images n) of
    y = conv(x, w) * scale + bias, from the transformed weights u (span^2, C, Cout)."""
    n, t0, t1 = block
    x, y = x[n], y[n]
    nb, C = x.shape[:2]
    Cout, Oh, Ow = y.shape[1:]
    m, span = tiling.m, tiling.span
    nt, Tw = t1 - t0, -(-Ow // m)
    tiles = nb * nt * Tw
    to_channels_last, to_channels_first = _layout_kernels()
    input_transform, output_transform = _transform_kernels(
        m, tuple(tiling.bt.ravel()), tuple(tiling.at.ravel()), x.dtype.str)
    xh = scratch(workspace, "winograd_in", (nb, m * nt + 2, m * Tw + 2, C), x.dtype)
    to_channels_last(x, xh, m * t0 - pad[0], -pad[1])
    v = scratch(workspace, "winograd_v", (span * span, tiles, C), x.dtype)
    input_transform(xh, v)
    products = scratch(workspace, "winograd_m", (span * span, tiles, Cout), x.dtype)
    np.matmul(v, u, out=products)
    yh = scratch(workspace, "winograd_y", (nb, min(m * nt, Oh - m * t0), Ow, Cout), x.dtype)
    output_transform(products, yh, nt, Tw)
    to_channels_first(yh, scale, bias, y, m * t0)
