"""Depthwise convolution (group == channels == num_output, MobileNet's 3x3 layers)
without a GEMM per channel: with one input channel per group, Caffe's GEMMs have a
contraction of prod(K) (9) and a single output row, where BLAS runs at a few percent
of its peak.

2-D layers gather, for a block of whole planes, the K shifted input runs the kernel
offsets read ("columns", as Caffe's im2col, zero where Caffe pads) with a few long
contiguous copies, then sum them with one batched matrix-vector product per plane,
(1, K) @ (K, plane). Copies and BLAS both run near memory speed, where numpy's
multiply by a per-plane weight runs at half of it. Output the size of the input at
stride 1 (MobileNet's pad 1) reads the runs straight from x and writes y in place
(``_same_forward``); other strides and pads first split the padded input into phase
planes (``_PhasePlan``) so every offset is again one contiguous run. Blocks hold
about ``COLUMN_BLOCK_BYTES`` of columns: per-call overheads, not cache misses,
dominated smaller blocks on this machine.

With numba (the extra ``fast``), 2-D layers run compiled instead (jit.py).

1-D and 3-D layers, and the backward pass, add one strided multiply per kernel offset
into the output, in blocks of about ``BLOCK_BYTES`` so the running sum and the product
stay in cache.
"""
from math import prod

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import jit
from .geometry import check_out, conv_geometry, kernel_offsets, scratch

__all__ = ["is_depthwise", "depthwise_forward", "depthwise_backward"]

BLOCK_BYTES = 1 << 18
COLUMN_BLOCK_BYTES = 1 << 21


def is_depthwise(x, w, group):
    """True when every group has one input channel and one output channel."""
    return group > 1 and group == x.shape[1] == w.shape[0] and w.shape[1] == 1


def _blocks(N, C, plane_bytes):
    """(image slice, channel slice) blocks of at most ~BLOCK_BYTES of output planes."""
    per = max(1, BLOCK_BYTES // max(1, plane_bytes))
    if per >= C:
        step = max(1, per // C)
        return [(slice(n, min(n + step, N)), slice(None)) for n in range(0, N, step)]
    return [(slice(n, n + 1), slice(c, min(c + per, C))) for n in range(N) for c in range(0, C, per)]


def _offsets(spatial, osz, kernel, stride, pad, dilation):
    """[(flat kernel index, out slices, in slices)] for offsets that touch the input."""
    return [(j, o, i) for j, (_, o, i) in enumerate(
        kernel_offsets(spatial, osz, kernel, stride, pad, dilation)) if o is not None]


def depthwise_forward(x, w, b=None, stride=1, pad=0, dilation=1, out=None, workspace=None):
    """y[n, c] = sum_k w[c, 0, k] x[n, c, o*s - p + k*d] + b[c]: x (N, C, *S), w (C, 1, *K)."""
    N, C, *spatial = x.shape
    kernel, stride, pad, dilation, osz = conv_geometry(spatial, w.shape[2:], stride, pad,
                                                       dilation)
    y = check_out(out, (N, C) + osz, x.dtype)
    nd = len(osz)
    if nd == 2 and jit.available():
        return jit.depthwise_2d(x, w, b, stride, pad, dilation, y, workspace)
    taps = w.reshape(C, prod(kernel))
    if _is_same(x, stride, osz):
        return _same_forward(x, taps, b, kernel, pad, dilation, y, workspace)
    if nd == 2:
        return _phase_forward(x, taps, b, (kernel, stride, pad, dilation), y, workspace)
    offsets = _offsets(spatial, osz, kernel, stride, pad, dilation)
    for n, c in _blocks(N, C, prod(osz) * x.itemsize):
        yb, xb = y[n, c], x[n, c]
        tb = taps[c]
        prod_buf = scratch(workspace, "depthwise", yb.shape, x.dtype)
        if b is None:
            yb.fill(0)
        else:
            yb[...] = b[c].reshape((-1,) + (1,) * nd)
        for j, oslc, islc in offsets:
            dst = yb[(Ellipsis,) + oslc]
            t = prod_buf[(Ellipsis,) + oslc]
            np.multiply(xb[(Ellipsis,) + islc], tb[:, j].reshape((-1,) + (1,) * nd), out=t)
            np.add(dst, t, out=dst)
    return y


def _same_forward(x, taps, b, kernel, pad, dilation, y, workspace):
    """Stride-1 2-D depthwise forward whose output is the input's size (MobileNet's 3x3
    pad 1), straight from x into y: no padded copy, no copy out (see _same_columns).
    Each plane's taps (1, K) multiply its columns (K, plane) as one batched
    matrix-vector product written into y."""
    N, C, H, W = x.shape
    yf = y.reshape(N * C, 1, H * W)
    for p0, p1, cols in _same_columns(x, kernel, pad, dilation, workspace):
        channel = np.arange(p0, p1) % C
        acc = yf[p0:p1]
        _taps_times_columns(taps[channel], cols, acc)
        if b is not None:
            acc += b[channel].reshape(-1, 1, 1)
    return y


def _same_columns(x, kernel, pad, dilation, workspace):
    """Yield (first plane, end plane, columns (K, planes*H*W)) for blocks of x's planes.

    In x's flat (N*C*H*W) memory, kernel offset (i, j) reads output cell q's input at
    q + (i*dh - ph)*W + (j*dw - pw): for a block of whole planes, one shifted contiguous
    run, and all K runs are one strided view (kh, kw, cells) of x, copied in one call.
    The cells whose read leaves its own plane (it would wrap into a neighbouring row or
    plane) are the ones Caffe's padding makes zero; they are zeroed, as in Caffe's im2col.
    """
    N, C, H, W = x.shape
    (kh, kw), (dh, dw), (ph, pw) = kernel, dilation, pad
    plane, ntaps, planes = H * W, kh * kw, N * C
    xf = x.reshape(-1)
    first = -ph * W - pw                                   # shift of kernel offset (0, 0)
    row_masks = [_outside(H, i * dh - ph) for i in range(kh)]
    col_masks = [_outside(W, j * dw - pw) for j in range(kw)]
    per = max(1, COLUMN_BLOCK_BYTES // ((ntaps + 1) * plane * x.itemsize))
    for p0 in range(0, planes, per):
        p1 = min(planes, p0 + per)
        m = p1 - p0
        cells = m * plane
        cols = scratch(workspace, "depthwise", (kh, kw, cells), x.dtype)
        lo = p0 * plane + first
        hi = p1 * plane + first + (kh - 1) * dh * W + (kw - 1) * dw
        if lo >= 0 and hi <= xf.size:
            np.copyto(cols, as_strided(xf[lo:], (kh, kw, cells),
                                       (dh * W * xf.itemsize, dw * xf.itemsize, xf.itemsize)))
        else:       # the runs overhang x's ends: those cells read outside their plane,
            for i in range(kh):                            # so the masks below zero them
                for j in range(kw):
                    start = p0 * plane + first + i * dh * W + j * dw
                    a, z = max(0, -start), min(cells, xf.size - start)
                    if z > a:
                        cols[i, j, a:z] = xf[start + a:start + z]
        grid = cols.reshape(kh, kw, m, H, W)
        for i, rows in enumerate(row_masks):
            for sl in rows:
                grid[i, :, :, sl] = 0
        for j, cs in enumerate(col_masks):
            for sl in cs:
                grid[:, j, :, :, sl] = 0
        yield p0, p1, cols.reshape(ntaps, cells)


def _is_same(x, stride, spatial_out):
    """The 2-D stride-1 layers whose output is the input's size, on contiguous x."""
    return (x.ndim == 4 and stride == (1, 1) and spatial_out == x.shape[2:]
            and x.flags.c_contiguous)


def _taps_times_columns(tb, cols, out):
    """out (m, 1, R) = tb (m, K) row by row times cols (K, m*R) read as (m, K, R): one
    matrix-vector product per row; a single tap is a broadcast multiply."""
    m, ntaps = tb.shape
    if ntaps == 1:
        np.multiply(cols.reshape(m, 1, -1), tb.reshape(m, 1, 1), out=out)
    else:
        np.matmul(tb.reshape(m, 1, ntaps), cols.reshape(ntaps, m, -1).transpose(1, 0, 2),
                  out=out)


def _outside(size, shift):
    """Slices of output positions o (0 <= o < size) whose read o + shift leaves [0, size)."""
    return [sl for sl in (slice(0, min(size, max(0, -shift))),
                          slice(max(0, size - shift), size)) if sl.stop > sl.start]


class _PhasePlan:
    """Where each kernel offset of a 2-D depthwise layer reads in the phase planes.

    Padded input row s*h + i*d (output row h, kernel row i) is row h + (i*d)//s of the
    phase plane holding the padded rows congruent to (i*d) % s, and likewise for columns.
    Each phase plane is Hq x Wq with Hq = Oh + ((kh-1)*dh)//sh, so kernel offset (i, j) is
    one flat shift of its phase plane, (i*dh//sh)*Wq + j*dw//sw, for every output cell:
    one multiply-add over whole planes. Cells past Ow in a row (and past Oh in a plane)
    are computed and dropped. Stride 1 has a single phase: the padded plane itself.
    """

    def __init__(self, spatial, osz, kernel, stride, pad, dilation):
        (H, W), (Oh, Ow) = spatial, osz
        self.Hq = Oh + (kernel[0] - 1) * dilation[0] // stride[0]
        self.Wq = Ow + (kernel[1] - 1) * dilation[1] // stride[1]
        self.plane = self.Hq * self.Wq
        phases, self.taps = [], []
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                ri, rj = divmod(i * dilation[0], stride[0]), divmod(j * dilation[1], stride[1])
                phase = (ri[1], rj[1])
                if phase not in phases:
                    phases.append(phase)
                self.taps.append((phases.index(phase), ri[0] * self.Wq + rj[0]))
        # per phase: (rows of the phase plane, rows of x, columns of the plane, of x)
        self.fills = []
        for a, c in phases:
            rows = _phase_range(H, self.Hq, a, stride[0], pad[0])
            cols = _phase_range(W, self.Wq, c, stride[1], pad[1])
            self.fills.append(None if rows is None or cols is None else rows + cols)


def _phase_range(size, qsize, phase, stride, pad):
    """(phase-plane slice, input slice) of the cells u with 0 <= s*u + phase - pad < size."""
    lo = max(0, -((phase - pad) // stride))                  # ceil((pad - phase) / s)
    hi = min(qsize, -((phase - pad - size) // stride))       # ceil((size + pad - phase) / s)
    if hi <= lo:
        return None
    start = lo * stride + phase - pad
    return slice(lo, hi), slice(start, start + (hi - lo - 1) * stride + 1, stride)


def _phase_forward(x, taps, b, geometry, y, workspace):
    """2-D depthwise forward on phase planes (see _PhasePlan), channel-major blocks.

    A block is a run of channels over a run of images, laid out channel by channel with
    no gap between planes, so each kernel offset's shifted view of a phase is one
    contiguous run: nine 1-D copies make the block's columns (K, cells), and one batched
    matrix-vector product per channel, (1, K) @ (K, cells), sums the taps. Plain copies
    and BLAS run at about twice the speed of numpy's multiply by a per-row weight.
    """
    N, C, H, W = x.shape
    Oh, Ow = y.shape[2:]
    plan = _PhasePlan((H, W), (Oh, Ow), *geometry)
    nph, plane, ntaps = len(plan.fills), plan.plane, len(plan.taps)
    tail = max(offset for _, offset in plan.taps)          # reads past the block's end
    per = max(1, COLUMN_BLOCK_BYTES // ((nph + ntaps + 1) * plane * x.itemsize))
    ni = min(N, per)
    mc = max(1, per // ni)
    for c0 in range(0, C, mc):
        c1 = min(C, c0 + mc)
        m = c1 - c0
        tb = taps[c0:c1]
        for n0 in range(0, N, ni):
            n1 = min(N, n0 + ni)
            k = n1 - n0
            cells = m * k * plane
            buf = scratch(workspace, "depthwise_padded", (nph, cells + tail), x.dtype)
            buf.fill(0)
            src = x[n0:n1, c0:c1].transpose(1, 0, 2, 3)
            for p, fill in enumerate(plan.fills):
                if fill is not None:
                    qr, xr, qc, xc = fill
                    dst = buf[p, :cells].reshape(m, k, plan.Hq, plan.Wq)
                    dst[:, :, qr, qc] = src[:, :, xr, xc]
            acc = scratch(workspace, "depthwise_acc", (m, 1, k * plane), x.dtype)
            cols = scratch(workspace, "depthwise", (ntaps, cells), x.dtype)
            for j, (p, offset) in enumerate(plan.taps):
                np.copyto(cols[j], buf[p, offset:offset + cells])
            _taps_times_columns(tb, cols, acc)
            dst = y[n0:n1, c0:c1].transpose(1, 0, 2, 3)
            res = acc.reshape(m, k, plan.Hq, plan.Wq)[:, :, :Oh, :Ow]
            if b is None:
                dst[...] = res
            else:
                np.add(res, b[c0:c1].reshape(m, 1, 1, 1), out=dst)
    return y


def depthwise_backward(x, w, dy, stride=1, pad=0, dilation=1, need_dx=True, need_dw=True,
                       dx_out=None, workspace=None):
    """(dx or None, dw or None) of depthwise_forward given dy (N, C, *O)."""
    N, C, *spatial = x.shape
    kernel, stride, pad, dilation, osz = conv_geometry(spatial, w.shape[2:], stride, pad,
                                                       dilation)
    nd = len(osz)
    taps = w.reshape(C, prod(kernel))
    if _is_same(x, stride, osz) and dy.flags.c_contiguous:
        return _same_backward(x, taps, dy, kernel, pad, dilation, need_dx, need_dw, dx_out,
                              workspace, w.shape)
    offsets = _offsets(spatial, osz, kernel, stride, pad, dilation)
    dx = check_out(dx_out, x.shape, dy.dtype, "dx_out") if need_dx else None
    dw = np.zeros((C, prod(kernel)), np.float64) if need_dw else None
    for n, c in _blocks(N, C, prod(spatial) * x.itemsize):
        dyb, xb = dy[n, c], x[n, c]
        prod_buf = scratch(workspace, "depthwise", dyb.shape, dy.dtype)
        if need_dx:
            dxb = dx[n, c]
            dxb.fill(0)
        for j, oslc, islc in offsets:
            g = dyb[(Ellipsis,) + oslc]
            t = prod_buf[(Ellipsis,) + oslc]
            if need_dw:
                np.multiply(g, xb[(Ellipsis,) + islc], out=t)
                dw[c, j] += t.sum(axis=(0,) + tuple(range(2, 2 + nd)), dtype=np.float64)
            if need_dx:
                dst = dxb[(Ellipsis,) + islc]
                np.multiply(g, taps[c, j].reshape((-1,) + (1,) * nd), out=t)
                np.add(dst, t, out=dst)
    return dx, None if dw is None else dw.astype(w.dtype).reshape(w.shape)


def _same_backward(x, taps, dy, kernel, pad, dilation, need_dx, need_dw, dx_out, workspace,
                   w_shape):
    """depthwise_backward for _same_forward's layers. dw: each plane's columns (K, plane)
    times its dy (plane,), one batched matrix-vector product, summed per channel over
    the images in float64. dx: with output = input size, 2p = (K-1)d on each axis, so
    dx is the same depthwise convolution of dy with the kernel flipped."""
    N, C, H, W = x.shape
    dw = None
    if need_dw:
        acc = np.zeros((C, taps.shape[1]), np.float64)
        dyf = dy.reshape(N * C, H * W, 1)
        for p0, p1, cols in _same_columns(x, kernel, pad, dilation, workspace):
            m = p1 - p0
            per_plane = np.matmul(cols.reshape(-1, m, H * W).transpose(1, 0, 2), dyf[p0:p1])
            np.add.at(acc, np.arange(p0, p1) % C, per_plane[:, :, 0])
        dw = acc.astype(taps.dtype).reshape(w_shape)
    dx = None
    if need_dx:
        dx = check_out(dx_out, x.shape, dy.dtype, "dx_out")
        _same_forward(dy, np.ascontiguousarray(taps[:, ::-1]), None, kernel, pad, dilation, dx,
                      workspace)
    return dx, dw
