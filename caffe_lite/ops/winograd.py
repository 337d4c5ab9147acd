"""Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions: each 4x4 output tile costs 36
multiplies per input/output channel pair instead of 144, as 36 GEMMs
(Cout, C) @ (C, tiles) over transformed 6x6 input tiles (Lavin & Gray, 2015).

Not the default: the transforms round differently from Caffe's im2col + GEMM (a few
1e-6 relative per layer), so it runs only after ``set_conv_algorithm('winograd')``
(the CLI's ``--fast``). Forward only: training and every other convolution keep the
exact path.

Transforms (d: 6x6 input tile, g: 3x3 kernel, m: 6x6 product), with the points
0, 1, -1, 2, -2 and infinity:
    V = B^T d B,  U = G g G^T,  Y = A^T m A.
Each tile transform runs as two small GEMMs (rows, then columns) over a block of
tiles small enough for the cache.
"""
from math import ceil

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import threads
from .geometry import check_out, per_axis, scratch

__all__ = ["ALGORITHMS", "set_conv_algorithm", "get_conv_algorithm", "winograd_applies",
           "winograd_forward", "transform_weights", "WinogradWeights"]

ALGORITHMS = ("exact", "winograd")
_state = {"algorithm": "exact"}

TILE = 4                      # outputs per tile side
SPAN = TILE + 2               # inputs per tile side
_BT = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)
_G = np.array([[1 / 4, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6],
               [0, 0, 1]], dtype=np.float64)
_AT = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], dtype=np.float64)

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


# Where the transforms cost less than the multiplies they save, measured per layer
# against the exact path (2-vCPU EPYC, tools' A/B runs): on a worker thread (one BLAS
# thread, 4 images) 1.2-1.8x faster from 64 channels and 14x14 maps (ResNet-50's and
# GoogLeNet's 3x3 layers), even at 7x7; off a worker, with BLAS's 2 threads behind the
# exact GEMM, only layers of about 1 G multiply-adds or more gained (VGG16 b1: 0.92 G
# and 1.85 G layers 1.4-1.8x; 0.1-0.46 G layers 0.7-1.1x).
MIN_CHANNELS = 64
MIN_POSITIONS = 14 * 14
MIN_MACS_OFF_A_WORKER = 500_000_000


def winograd_applies(x, w, stride, dilation, group):
    """Winograd is on, and this is a 2-D 3x3 stride-1 undilated ungrouped convolution
    with at least MIN_CHANNELS input and output channels and maps large enough
    (where it pays)."""
    if not (_state["algorithm"] == "winograd" and x.ndim == 4 and group == 1
            and tuple(w.shape[2:]) == (3, 3) and per_axis(stride, 2, "stride") == (1, 1)
            and per_axis(dilation, 2, "dilation") == (1, 1)
            and min(w.shape[0], w.shape[1]) >= MIN_CHANNELS):
        return False
    positions = x.shape[-1] * x.shape[-2]
    macs = x.shape[0] * w.size * positions
    return positions >= MIN_POSITIONS and (threads.in_worker() or macs >= MIN_MACS_OFF_A_WORKER)


def transform_weights(w):
    """U (36, Cout, C) = G g G^T for every kernel g = w[o, c] (3x3)."""
    u = np.einsum("ai,ocij,bj->aboc", _G, w.astype(np.float64), _G, optimize=True)
    return np.ascontiguousarray(u.reshape(SPAN * SPAN, w.shape[0], w.shape[1]), dtype=w.dtype)


class WinogradWeights:
    """The last transformed weights, reused while the weights are unchanged (checked
    element for element, so in-place updates are seen)."""

    def __init__(self):
        self.w = self.u = None

    def get(self, w):
        if self.w is None or self.w.shape != w.shape or not np.array_equal(self.w, w):
            self.w, self.u = w.copy(), transform_weights(w)
        return self.u


def _blocks(N, Th, Tw, C):
    """(image slice, first tile row, end tile row) blocks of about TILE_BUDGET bytes of
    transformed tiles, and at least MIN_BLOCK_TILES tiles (thinner GEMMs run slowly)."""
    tiles = max(MIN_BLOCK_TILES, TILE_BUDGET // (SPAN * SPAN * C * 4))
    rows = max(1, tiles // Tw)
    if rows >= Th:
        images = max(1, rows // Th)
        return [(slice(n, min(n + images, N)), 0, Th) for n in range(0, N, images)]
    return [(slice(n, n + 1), t, min(t + rows, Th)) for n in range(N) for t in range(0, Th, rows)]


def winograd_forward(x, w, b=None, pad=0, out=None, workspace=None, cache=None, scale=None):
    """y = conv(x, w) (* scale) + b for x (N, C, H, W), w (Cout, C, 3, 3), stride 1, pad
    per axis; scale and b per output channel. Off a worker thread, the tile blocks are
    shared out over the worker threads."""
    N, C, H, W = x.shape
    Cout = w.shape[0]
    pad = per_axis(pad, 2, "pad")
    Oh, Ow = H + 2 * pad[0] - 2, W + 2 * pad[1] - 2
    if Oh <= 0 or Ow <= 0:
        raise ValueError(f"winograd_forward: empty output for input {x.shape} and pad {pad}")
    y = check_out(out, (N, Cout, Oh, Ow), x.dtype)
    u = (cache or WinogradWeights()).get(w)
    blocks = _blocks(N, ceil(Oh / TILE), ceil(Ow / TILE), C)
    count = min(threads.threads(), len(blocks))
    if count < 2:
        for block in blocks:
            _block_forward(x, u, b, scale, pad, y, block, workspace)
        return y
    parts = threads.split(len(blocks), count)
    threads.run_parts([
        lambda k=k, part=part: [_block_forward(x, u, b, scale, pad, y, block,
                                               None if workspace is None else workspace.part(k))
                                for block in blocks[part]]
        for k, part in enumerate(parts)])
    return y


def _block_forward(x, u, b, scale, pad, y, block, workspace):
    """The output tiles of one block: tile rows t0:t1 of the images n."""
    n, t0, t1 = block
    C = x.shape[1]
    Cout, Oh, Ow = y.shape[1:]
    nb, nt, Tw = len(range(*n.indices(x.shape[0]))), t1 - t0, ceil(Ow / TILE)
    P = nb * nt * Tw
    d = _tiles(x[n], pad, t0, nt, Tw, workspace)                           # (6, 6, C*P)
    v = _transform(_BT, d, workspace, "winograd_v")                       # (6, 6, C*P)
    m = scratch(workspace, "winograd_m", (SPAN * SPAN, Cout, P), x.dtype)
    np.matmul(u, v.reshape(SPAN * SPAN, C, P), out=m)
    t = _transform(_AT, m.reshape(SPAN, SPAN, -1), workspace, "winograd_y")  # (4, 4, Cout*P)
    t = t.reshape(TILE, TILE, Cout, nb, nt, Tw)
    if scale is not None:
        t *= scale.reshape(Cout, 1, 1, 1)
    if b is not None:
        t += b.reshape(Cout, 1, 1, 1)
    for r in range(TILE):
        rows = len(range(TILE * t0 + r, min(TILE * t1, Oh), TILE))
        for c in range(TILE):
            cols = len(range(c, Ow, TILE))
            dst = y[n, :, TILE * t0 + r:TILE * t1:TILE, c::TILE]
            dst[...] = t[r, c].transpose(1, 0, 2, 3)[:, :, :rows, :cols]


def _transform(k, a, workspace, name):
    """k a k^T on the two leading axes of a (s, s, rest), as two small GEMMs."""
    k = k.astype(a.dtype, copy=False)
    half = scratch(workspace, name + "_half", (k.shape[0],) + a.shape[1:], a.dtype)
    np.matmul(k, a.reshape(a.shape[0], -1), out=half.reshape(k.shape[0], -1))
    out = scratch(workspace, name, (k.shape[0], k.shape[0], a.shape[2]), a.dtype)
    np.matmul(k, half, out=out)
    return out


def _tiles(x, pad, t0, nt, Tw, workspace):
    """The 6x6 input tiles d (6, 6, C*nb*nt*Tw) of tile rows t0:t0+nt, zero outside x."""
    nb, C, H, W = x.shape
    xp = scratch(workspace, "winograd_in", (nb, C, TILE * nt + 2, TILE * Tw + 2), x.dtype)
    r0, c0 = TILE * t0 - pad[0], -pad[1]
    rs, re = max(r0, 0), min(r0 + xp.shape[2], H)
    cs, ce = max(c0, 0), min(c0 + xp.shape[3], W)
    xp.fill(0)
    xp[:, :, rs - r0:re - r0, cs - c0:ce - c0] = x[:, :, rs:re, cs:ce]
    s = xp.strides
    d = scratch(workspace, "winograd_d", (SPAN, SPAN, C, nb, nt, Tw), x.dtype)
    d[...] = as_strided(xp, d.shape, (s[2], s[3], s[1], s[0], TILE * s[2], TILE * s[3]),
                        writeable=False)
    return d.reshape(SPAN, SPAN, -1)
