"""Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions: each 2x2 output tile costs 16
multiplies per input/output channel pair instead of 36, as 16 batched GEMMs
(Cout, C) @ (C, tiles) over transformed 4x4 input tiles (Lavin & Gray, 2015).

Not the default: the transforms round differently from Caffe's im2col + GEMM (about
1e-6 relative here, growing with depth), so it runs only after
``set_conv_algorithm('winograd')`` (the CLI's ``--fast``). Forward only: training
and every other convolution keep the exact path.

Transforms (d: 4x4 input tile, g: 3x3 kernel, m: 4x4 product):
    V = B^T d B, B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    U = G g G^T, G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    Y = A^T m A, A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
"""
from math import ceil

import numpy as np

from . import threads
from .geometry import check_out, per_axis, scratch

__all__ = ["ALGORITHMS", "set_conv_algorithm", "get_conv_algorithm", "winograd_applies",
           "winograd_forward", "transform_weights", "WinogradWeights"]

ALGORITHMS = ("exact", "winograd")
_state = {"algorithm": "exact"}

# Bytes of transformed input tiles per chunk: the image slices (or tile-row ranges of one
# image) are walked so V and the GEMM output stay near the cache instead of in fresh memory.
TILE_BUDGET = 1 << 23

_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


def set_conv_algorithm(name: str) -> None:
    """'exact' (default: im2col + GEMM, Caffe's arithmetic) or 'winograd' (3x3 stride-1
    convolutions in forward via Winograd F(2x2, 3x3): faster, not bit-faithful)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown convolution algorithm {name!r}: use one of {ALGORITHMS}")
    _state["algorithm"] = name


def get_conv_algorithm() -> str:
    return _state["algorithm"]


# Winograd trades multiplies (2.25x fewer) for input and output transforms whose cost
# grows with C + Cout, not C * Cout: with few channels the transforms dominate. Measured
# on VGG16 (b10, 2 threads, caffe-lite time): conv1_1 (3 -> 64) 29 -> 167 ms, conv1_2
# (64 -> 64) 350 -> 491 ms, conv2_x and conv3_1 slower too; conv4_x (256/512) 1.35x faster.
MIN_CHANNELS = 256


#: output positions per image from which the transforms pay: on one BLAS thread
#: (a worker thread) 14x14 gained 1.1-1.35x and 7x7 lost (0.83x); with BLAS's 2
#: threads behind the exact GEMM, 14x14 lost too (0.8x) and 28x28 gained 1.66x
MIN_POSITIONS = 28 * 28
MIN_POSITIONS_ON_A_WORKER = 14 * 14


def winograd_applies(x, w, stride, dilation, group):
    """Winograd is on, and this is a 2-D 3x3 stride-1 undilated ungrouped convolution
    with at least MIN_CHANNELS input and output channels and maps large enough
    (where it pays)."""
    positions = x.shape[-1] * x.shape[-2] if x.ndim == 4 else 0
    return (_state["algorithm"] == "winograd" and x.ndim == 4 and group == 1
            and tuple(w.shape[2:]) == (3, 3) and per_axis(stride, 2, "stride") == (1, 1)
            and per_axis(dilation, 2, "dilation") == (1, 1)
            and min(w.shape[0], w.shape[1]) >= MIN_CHANNELS
            and positions >= (MIN_POSITIONS_ON_A_WORKER if threads.in_worker()
                              else MIN_POSITIONS))


def transform_weights(w):
    """U (16, Cout, C) = G g G^T for every kernel g = w[o, c] (3x3)."""
    u = np.einsum("ai,ocij,bj->aboc", _G, w.astype(np.float64), _G, optimize=True)
    return np.ascontiguousarray(u.reshape(16, w.shape[0], w.shape[1]), dtype=w.dtype)


class WinogradWeights:
    """The last transformed weights, reused while the weights are unchanged (checked
    element for element, so in-place updates are seen)."""

    def __init__(self):
        self.w = self.u = None

    def get(self, w):
        if self.w is None or self.w.shape != w.shape or not np.array_equal(self.w, w):
            self.w, self.u = w.copy(), transform_weights(w)
        return self.u


def _chunks(N, Th, Tw, C):
    """(image slice, first tile row, last tile row) pieces of about TILE_BUDGET bytes."""
    per_row = 16 * C * Tw * 4
    rows = max(1, TILE_BUDGET // per_row)
    if rows >= Th:
        images = max(1, rows // Th)
        return [(slice(n, min(n + images, N)), 0, Th) for n in range(0, N, images)]
    return [(slice(n, n + 1), t, min(t + rows, Th)) for n in range(N) for t in range(0, Th, rows)]


def winograd_forward(x, w, b=None, pad=0, out=None, workspace=None, cache=None):
    """y = conv(x, w) + b for x (N, C, H, W), w (Cout, C, 3, 3), stride 1, pad per axis."""
    N, C, H, W = x.shape
    Cout = w.shape[0]
    ph, pw = per_axis(pad, 2, "pad")
    Oh, Ow = H + 2 * ph - 2, W + 2 * pw - 2
    if Oh <= 0 or Ow <= 0:
        raise ValueError(f"winograd_forward: empty output for input {x.shape} and pad {pad}")
    y = check_out(out, (N, Cout, Oh, Ow), x.dtype)
    Th, Tw = ceil(Oh / 2), ceil(Ow / 2)
    u = (cache or WinogradWeights()).get(w)
    for n, t0, t1 in _chunks(N, Th, Tw, C):
        nb, nt = len(range(*n.indices(N))), t1 - t0
        # the input rows/cols the tiles read, zero outside the image
        xp = scratch(workspace, "winograd_in", (nb, C, 2 * nt + 2, 2 * Tw + 2), x.dtype)
        r0, c0 = 2 * t0 - ph, -pw
        rs, re = max(r0, 0), min(r0 + 2 * nt + 2, H)
        cs, ce = max(c0, 0), min(c0 + 2 * Tw + 2, W)
        xp.fill(0)
        xp[:, :, rs - r0:re - r0, cs - c0:ce - c0] = x[n, :, rs:re, cs:ce]
        v = _input_transform(xp, nt, Tw, workspace)                    # (16, C, P)
        m = scratch(workspace, "winograd_m", (16, Cout, v.shape[2]), x.dtype)
        np.matmul(u, v, out=m)
        _output_transform(m.reshape(4, 4, Cout, nb, nt, Tw), y[n], 2 * t0, Oh, Ow, workspace)
    if b is not None:
        y += b.reshape(1, Cout, 1, 1)
    return y


def _input_transform(xp, nt, Tw, workspace):
    """V (16, C, nb*nt*Tw) = B^T d B for every 4x4 tile d of xp (nb, C, 2nt+2, 2Tw+2)."""
    nb, C = xp.shape[:2]
    d = [xp[:, :, i:i + 2 * nt:2, :] for i in range(4)]               # tile row i
    rows = scratch(workspace, "winograd_rows", (4,) + d[0].shape, xp.dtype)
    np.subtract(d[0], d[2], out=rows[0])
    np.add(d[1], d[2], out=rows[1])
    np.subtract(d[2], d[1], out=rows[2])
    np.subtract(d[1], d[3], out=rows[3])
    v = scratch(workspace, "winograd_v", (4, 4, C, nb, nt, Tw), xp.dtype)
    for a in range(4):
        e = [rows[a][..., j:j + 2 * Tw:2] for j in range(4)]          # (nb, C, nt, Tw)
        va = v[a].transpose(0, 2, 1, 3, 4)                             # (4, nb, C, nt, Tw)
        np.subtract(e[0], e[2], out=va[0])
        np.add(e[1], e[2], out=va[1])
        np.subtract(e[2], e[1], out=va[2])
        np.subtract(e[1], e[3], out=va[3])
    return v.reshape(16, C, nb * nt * Tw)


def _output_transform(m, y, row0, Oh, Ow, workspace):
    """y[:, :, row0 + 2t + r, 2s + c] = (A^T m A)[r, c] for the tiles of m (4, 4, Cout, nb, nt, Tw)."""
    _, _, Cout, nb, nt, Tw = m.shape
    q = scratch(workspace, "winograd_q", (2, 4, Cout, nb, nt, Tw), m.dtype)
    np.add(m[0], m[1], out=q[0])
    q[0] += m[2]
    np.subtract(m[1], m[2], out=q[1])
    q[1] -= m[3]
    tile = scratch(workspace, "winograd_tile", (Cout, nb, nt, Tw), m.dtype)
    for r in range(2):
        rows = len(range(row0 + r, min(row0 + 2 * nt, Oh), 2))
        for c in range(2):
            cols = len(range(c, Ow, 2))
            if c == 0:
                np.add(q[r][0], q[r][1], out=tile)
                tile += q[r][2]
            else:
                np.subtract(q[r][1], q[r][2], out=tile)
                tile -= q[r][3]
            dst = y[:, :, row0 + r:row0 + 2 * nt:2, c::2]
            dst[...] = tile.transpose(1, 0, 2, 3)[:, :, :rows, :cols]
