"""Winograd F(m x m, 3x3) for 3x3 stride-1 convolutions (Lavin & Gray, 2015): an m x m
output tile costs (m+2)^2 multiplies per input/output channel pair instead of 9 m^2,
as (m+2)^2 GEMMs (Cout, C) @ (C, tiles) over transformed (m+2) x (m+2) input tiles.
F(6x6, 3x3) (64 multiplies per 36 outputs) runs on maps 56 wide or more, F(4x4, 3x3)
(36 per 16) on smaller ones, where 6-wide tiles would waste more of their outputs.

Not the default: the transforms round differently from Caffe's im2col + GEMM (a few
1e-6 relative per layer), so it runs only after ``set_conv_algorithm('winograd')``
(the CLI's ``--fast``). Forward only: training and every other convolution keep the
exact path.

Transforms (d: input tile, g: 3x3 kernel, m: product):
    V = B^T d B,  U = G g G^T,  Y = A^T m A,
from the points 0, 1, -1, 2, -2 (and 1/2, -1/2 for m = 6) and infinity. In numpy each
tile transform runs as two small GEMMs (rows, then columns) over a block of tiles
small enough for the cache; with numba (the extra ``fast``), jit_winograd.py runs
them compiled, channels-last.
"""
from functools import partial
from math import ceil

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import jit, jit_winograd, threads
from .geometry import check_out, per_axis, scratch

__all__ = ["ALGORITHMS", "set_conv_algorithm", "get_conv_algorithm", "fast_mode", "winograd_applies",
           "winograd_forward", "winograd_groups", "transform_weights", "WinogradWeights"]

ALGORITHMS = ("exact", "winograd")
_state = {"algorithm": "exact"}


def winograd_matrices(points, m, r=3):
    """(B^T, G, A^T) of Winograd F(m, r) with the given finite points and infinity:
    A^T and G evaluate at the points (G divided by the Lagrange denominators), and
    B^T is solved from A^T [(G g) * (B^T d)] = correlate(d, g) for all d, g."""
    n = m + r - 1
    p = np.asarray(points, np.float64)
    if len(p) != n - 1:
        raise ValueError(f"F({m}, {r}) needs {n - 1} finite points, got {len(p)}")
    at = np.zeros((m, n))
    at[:, :n - 1] = p[None, :] ** np.arange(m)[:, None]
    at[m - 1, n - 1] = 1
    denominators = [np.prod([p[j] - p[k] for k in range(n - 1) if k != j]) for j in range(n - 1)]
    g = np.zeros((n, r))
    g[:n - 1] = p[:, None] ** np.arange(r)[None, :] / np.array(denominators)[:, None]
    g[n - 1, r - 1] = 1
    products = np.einsum("ij,jk->ikj", at, g).reshape(m * r, n)   # row (i, k): A^T[i, j] G[j, k]
    shifts = np.zeros((m * r, n))
    for i in range(m):
        shifts[i * r:(i + 1) * r, i:i + r] = np.eye(r)            # output i reads inputs i..i+r-1
    bt = np.linalg.lstsq(products, shifts, rcond=None)[0]
    return np.round(bt, 12), g, at


class Tiling:
    """F(m x m, 3x3): m outputs and m + 2 inputs per tile side, and its matrices."""

    def __init__(self, m, points):
        self.m, self.span = m, m + 2
        self.bt, self.g, self.at = winograd_matrices(points, m)


F4 = Tiling(4, (0, 1, -1, 2, -2))
F6 = Tiling(6, (0, 1, -1, 2, -2, 0.5, -0.5))

#: output width from which F(6x6) is used: measured per layer (2 threads, batch 1)
#: 224 to 56 wide 1.1-1.4x faster than F(4x4); 28 and 14 wide slower (their 6-wide
#: tiles overhang the map by 7% and 29%)
F6_MIN_WIDTH = 56


def tiling_for(out_width):
    return F6 if out_width >= F6_MIN_WIDTH else F4


# Bytes of transformed input tiles per block: a block's tiles, transforms and products
# stay in the cache between the steps instead of streaming through memory.
TILE_BUDGET = 1 << 20
MIN_BLOCK_TILES = 128


def set_conv_algorithm(name: str) -> None:
    """'exact' (default: im2col + GEMM, Caffe's arithmetic) or 'winograd' (3x3 stride-1
    convolutions in forward via Winograd F(4x4, 3x3): faster, not bit-faithful)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown convolution algorithm {name!r}: use one of {ALGORITHMS}")
    _state["algorithm"] = name


def get_conv_algorithm() -> str:
    return _state["algorithm"]


def fast_mode() -> bool:
    """The fast mode is on: Winograd here, BatchNorm/Scale folding (net/fusion.py),
    LRN's power in float32 (ops/lrn.py)."""
    return _state["algorithm"] == "winograd"


# Where the transforms cost less than the multiplies they save, measured per layer
# against the exact path (2-vCPU EPYC, tools' A/B runs): on a worker thread (one BLAS
# thread, 4 images) 1.2-1.8x faster from 64 channels and 14x14 maps (ResNet-50's and
# GoogLeNet's 3x3 layers), even at 7x7; off a worker, with BLAS's 2 threads behind the
# exact GEMM, only layers of about 1 G multiply-adds or more gained (VGG16 b1: 0.92 G
# and 1.85 G layers 1.4-1.8x; 0.1-0.46 G layers 0.7-1.1x). 13x13 maps pay on workers
# once grouped layers qualify too: CaffeNet b8's conv3-5 (two of them grouped) 112 ->
# 95-98 ms compiled, 115 -> 100 ms numpy (in-process A/B).
MIN_CHANNELS = 64
MIN_POSITIONS = 13 * 13
MIN_MACS_OFF_A_WORKER = 500_000_000


def winograd_applies(x, w, stride, dilation, group):
    """Winograd is on, and this is a 2-D 3x3 stride-1 undilated convolution with at
    least MIN_CHANNELS input and output channels per group and maps large enough
    (where it pays)."""
    if not (_state["algorithm"] == "winograd" and x.ndim == 4
            and tuple(w.shape[2:]) == (3, 3) and per_axis(stride, 2, "stride") == (1, 1)
            and per_axis(dilation, 2, "dilation") == (1, 1)
            and min(w.shape[0] // group, w.shape[1]) >= MIN_CHANNELS):
        return False
    positions = x.shape[-1] * x.shape[-2]
    macs = x.shape[0] * w.size * positions
    return positions >= MIN_POSITIONS and (threads.in_worker() or macs >= MIN_MACS_OFF_A_WORKER)


def transform_weights(w, tiling=F4, channels_last=False):
    """U (span^2, Cout, C) = G g G^T for every kernel g = w[o, c] (3x3), or
    (span^2, C, Cout) for the channels-last transforms."""
    g = tiling.g
    u = np.einsum("ai,ocij,bj->aboc", g, w.astype(np.float64), g, optimize=True)
    u = u.reshape(tiling.span ** 2, w.shape[0], w.shape[1])
    return np.ascontiguousarray(u.transpose(0, 2, 1) if channels_last else u, dtype=w.dtype)


class WinogradWeights:
    """The last transformed weights, reused while the weights and the tiling are
    unchanged (checked element for element, so in-place updates are seen)."""

    def __init__(self):
        self.w = self.u = self.key = None

    def get(self, w, tiling=F4, channels_last=False):
        key = (tiling, channels_last)
        if (self.w is None or self.key != key or self.w.shape != w.shape
                or not np.array_equal(self.w, w)):
            self.w, self.u, self.key = w.copy(), transform_weights(w, *key), key
        return self.u


def _blocks(N, Th, Tw, C, span):
    """(image slice, first tile row, end tile row) blocks of about TILE_BUDGET bytes of
    transformed tiles, and at least MIN_BLOCK_TILES tiles (thinner GEMMs run slowly)."""
    tiles = max(MIN_BLOCK_TILES, TILE_BUDGET // (span * span * C * 4))
    rows = max(1, tiles // Tw)
    if rows >= Th:
        images = max(1, rows // Th)
        return [(slice(n, min(n + images, N)), 0, Th) for n in range(0, N, images)]
    return [(slice(n, n + 1), t, min(t + rows, Th)) for n in range(N) for t in range(0, Th, rows)]


def winograd_forward(x, w, b=None, pad=0, out=None, workspace=None, cache=None, scale=None):
    """y = conv(x, w) (* scale) + b for x (N, C, H, W), w (Cout, C, 3, 3), stride 1, pad
    per axis; scale and b per output channel. x and ``out`` may be strided views (one
    group of a grouped convolution). Off a worker thread, the tile blocks are shared
    out over the worker threads."""
    N, C, H, W = x.shape
    Cout = w.shape[0]
    pad = per_axis(pad, 2, "pad")
    Oh, Ow = H + 2 * pad[0] - 2, W + 2 * pad[1] - 2
    if Oh <= 0 or Ow <= 0:
        raise ValueError(f"winograd_forward: empty output for input {x.shape} and pad {pad}")
    y = check_out(out, (N, Cout, Oh, Ow), x.dtype, strided=True)
    tiling = tiling_for(Ow)
    compiled = jit.handles(x.dtype)
    u = (cache or WinogradWeights()).get(w, tiling, channels_last=compiled)
    one_block = _block_forward
    if compiled:                        # its epilogue always scales and shifts
        one_block = jit_winograd.block_forward
        scale = np.ones(Cout, x.dtype) if scale is None else scale.astype(x.dtype, copy=False)
        b = np.zeros(Cout, x.dtype) if b is None else b.astype(x.dtype, copy=False)
    m = tiling.m
    blocks = _blocks(N, ceil(Oh / m), ceil(Ow / m), C, tiling.span)
    count = min(threads.threads(), len(blocks))
    if count < 2:
        for block in blocks:
            one_block(x, u, b, scale, pad, y, tiling, block, workspace)
        return y
    def run(k, part):
        part_workspace = None if workspace is None else workspace.part(k)
        for block in blocks[part]:
            one_block(x, u, b, scale, pad, y, tiling, block, part_workspace)
    threads.run_parts([partial(run, k, part)
                       for k, part in enumerate(threads.split(len(blocks), count))])
    return y


def winograd_groups(x, w, b, pad, group, y, workspace, cache_for, scale=None):
    """winograd_forward of each group of a grouped convolution into its channels of y,
    with the weight cache ``cache_for(w_group)``."""
    C, Cout = x.shape[1] // group, w.shape[0] // group
    for g in range(group):
        i, o = slice(g * C, (g + 1) * C), slice(g * Cout, (g + 1) * Cout)
        winograd_forward(x[:, i], w[o], None if b is None else b[o], pad, y[:, o], workspace,
                         cache_for(w[o]), None if scale is None else scale[o])
    return y


def _block_forward(x, u, b, scale, pad, y, tiling, block, workspace):
    """The output tiles of one block: tile rows t0:t1 of the images n."""
    n, t0, t1 = block
    C = x.shape[1]
    Cout, Oh, Ow = y.shape[1:]
    m, span = tiling.m, tiling.span
    nb, nt, Tw = len(range(*n.indices(x.shape[0]))), t1 - t0, ceil(Ow / m)
    P = nb * nt * Tw
    d = _tiles(x[n], pad, t0, nt, Tw, m, workspace)                        # (s, s, C*P)
    v = _transform(tiling.bt, d, workspace, "winograd_v")                 # (s, s, C*P)
    products = scratch(workspace, "winograd_m", (span * span, Cout, P), x.dtype)
    np.matmul(u, v.reshape(span * span, C, P), out=products)
    t = _transform(tiling.at, products.reshape(span, span, -1), workspace, "winograd_y")
    t = t.reshape(m, m, Cout, nb, nt, Tw)
    if scale is not None:
        t *= scale.reshape(Cout, 1, 1, 1)
    if b is not None:
        t += b.reshape(Cout, 1, 1, 1)
    for r in range(m):
        rows = len(range(m * t0 + r, min(m * t1, Oh), m))
        for c in range(m):
            cols = len(range(c, Ow, m))
            dst = y[n, :, m * t0 + r:m * t1:m, c::m]
            dst[...] = t[r, c].transpose(1, 0, 2, 3)[:, :, :rows, :cols]


def _transform(k, a, workspace, name):
    """k a k^T on the two leading axes of a (s, s, rest), as two small GEMMs."""
    k = k.astype(a.dtype, copy=False)
    half = scratch(workspace, name + "_half", (k.shape[0],) + a.shape[1:], a.dtype)
    np.matmul(k, a.reshape(a.shape[0], -1), out=half.reshape(k.shape[0], -1))
    out = scratch(workspace, name, (k.shape[0], k.shape[0], a.shape[2]), a.dtype)
    np.matmul(k, half, out=out)
    return out


def _tiles(x, pad, t0, nt, Tw, m, workspace):
    """The (m+2) x (m+2) input tiles d (m+2, m+2, C*nb*nt*Tw) of tile rows t0:t0+nt,
    zero outside x."""
    nb, C, H, W = x.shape
    xp = scratch(workspace, "winograd_in", (nb, C, m * nt + 2, m * Tw + 2), x.dtype)
    r0, c0 = m * t0 - pad[0], -pad[1]
    rs, re = max(r0, 0), min(r0 + xp.shape[2], H)
    cs, ce = max(c0, 0), min(c0 + xp.shape[3], W)
    xp.fill(0)
    xp[:, :, rs - r0:re - r0, cs - c0:ce - c0] = x[:, :, rs:re, cs:ce]
    s = xp.strides
    d = scratch(workspace, "winograd_d", (m + 2, m + 2, C, nb, nt, Tw), x.dtype)
    d[...] = as_strided(xp, d.shape, (s[2], s[3], s[1], s[0], m * s[2], m * s[3]),
                        writeable=False)
    return d.reshape(m + 2, m + 2, -1)
