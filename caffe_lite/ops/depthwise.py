"""Depthwise convolution (group == channels == num_output, MobileNet's 3x3 layers) as
one strided multiply-add per kernel offset, instead of im2col plus one tiny GEMM per
channel: with one input channel per group the GEMMs have a contraction of prod(K)
(9) and a single output row, where BLAS runs at a few percent of its peak.

The planes are walked in blocks of about ``BLOCK_BYTES`` so the running sum and the
product stay in cache while the kernel offsets add into them. Stride-1 2-D layers
(most of MobileNet's) run on flattened padded planes: output position (h, w) of a
plane with padded width Wp is h*Wp + w, and kernel offset (i, j) reads flat position
h*Wp + w + i*d*Wp + j*d, so each offset is one multiply-add over whole rows of
Oh*Wp cells instead of Oh rows of Ow; the Wp - Ow columns past the output's edge
are computed and dropped.
"""
from math import prod

import numpy as np

from .geometry import check_out, conv_geometry, kernel_offsets, scratch

__all__ = ["is_depthwise", "depthwise_forward", "depthwise_backward"]

BLOCK_BYTES = 1 << 18


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
    taps = w.reshape(C, prod(kernel))
    if nd == 2 and stride == (1, 1):
        return _flat_forward(x, taps, b, kernel, pad, dilation, y, workspace)
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


def _flat_forward(x, taps, b, kernel, pad, dilation, y, workspace):
    """Stride-1 2-D depthwise forward on flattened padded planes (see the module doc)."""
    N, C, H, W = x.shape
    Oh, Ow = y.shape[2:]
    (ph, pw), (dh, dw) = pad, dilation
    Hp, Wp = H + 2 * ph, W + 2 * pw
    slack = (kernel[1] - 1) * dw                       # reads past the last plane's end
    planes = x.reshape(N * C, H, W)
    out = y.reshape(N * C, Oh, Ow)
    rows = Oh * Wp
    per = max(1, BLOCK_BYTES // (Hp * Wp * x.itemsize))
    for start in range(0, N * C, per):
        stop = min(start + per, N * C)
        m = stop - start
        channel = np.arange(start, stop) % C
        padded = scratch(workspace, "depthwise_padded", (m, Hp * Wp + slack), x.dtype)
        padded.fill(0)
        padded[:, :Hp * Wp].reshape(m, Hp, Wp)[:, ph:ph + H, pw:pw + W] = planes[start:stop]
        acc = scratch(workspace, "depthwise_acc", (m, rows), x.dtype)
        tmp = scratch(workspace, "depthwise", (m, rows), x.dtype)
        block_taps = taps[channel]                                    # (m, K)
        for j in range(prod(kernel)):
            i, k = divmod(j, kernel[1])
            offset = i * dh * Wp + k * dw
            src = padded[:, offset:offset + rows]
            if j == 0:
                np.multiply(src, block_taps[:, :1], out=acc)
            else:
                np.multiply(src, block_taps[:, j:j + 1], out=tmp)
                acc += tmp
        dst = out[start:stop]
        dst[...] = acc.reshape(m, Oh, Wp)[:, :, :Ow]
        if b is not None:
            dst += b[channel].reshape(m, 1, 1)
    return y


def depthwise_backward(x, w, dy, stride=1, pad=0, dilation=1, need_dx=True, need_dw=True,
                       dx_out=None, workspace=None):
    """(dx or None, dw or None) of depthwise_forward given dy (N, C, *O)."""
    N, C, *spatial = x.shape
    kernel, stride, pad, dilation, osz = conv_geometry(spatial, w.shape[2:], stride, pad,
                                                       dilation)
    nd = len(osz)
    taps = w.reshape(C, prod(kernel))
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
