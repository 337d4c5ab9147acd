"""MAX pooling with Caffe's exact windows, for any number of spatial axes (sizes and
windows: pooling.py).

With numba (the extra ``fast``) the 2-D forward, with or without the mask, and the
backward run compiled (jit_pooling.py). Without it, the mask-free forward is
separable and flat (``_separable_max``): maxima of
-FLT_MAX-padded phase planes, one axis at a time, over cache-sized chunks of planes.
With a mask (a mask top, or TRAIN), 2-D runs per kernel offset with Caffe's strict
'>' argmax (``_flat_max_mask``), other dimensions through ``kernel_offsets``. Max is
order-free, so the values are bit-identical to Caffe's (numpy's fmax may keep either
zero of a -0/+0 tie); the backward adds the gradients in Caffe's order.
"""
from math import prod

import numpy as np

from . import jit, jit_pooling
from .geometry import check_out, kernel_offsets
from .pooling import CAFFE_MAX_INIT, is_global, pool_params

__all__ = ["max_pool_forward", "max_pool_backward"]


def max_pool_forward(x, kernel, stride, pad, out_shape, need_mask=False, out=None, mask_out=None):
    """MAX pooling: x (N, C, *S) -> (y (N, C, *O), mask (N, C, *O) or None).

    y is the maximum over the window clipped to the input; with ``need_mask`` the mask holds
    the flat index (h*W + w in 2-D) of the first maximum in row-major window order (strict
    >), as x.dtype like Caffe's mask top. The mask costs several times the plain max: ask only when the
    mask top or a backward needs it. ``out``/``mask_out``: C-contiguous arrays to fill.

    >>> x = np.array([[[[1., 3.], [3., 0.]]]])
    >>> max_pool_forward(x, 2, 1, 0, (1, 1), need_mask=True)
    (array([[[[3.]]]]), array([[[[1.]]]]))
    """
    N, C, *spatial = x.shape
    kernel, stride, pad, out_shape = pool_params(spatial, kernel, stride, pad, out_shape)
    y = check_out(out, (N, C) + out_shape, x.dtype)
    if not need_mask and is_global(spatial, kernel, pad, out_shape):
        planes = x.reshape(N, C, -1)
        np.fmax.reduce(planes, axis=2, out=y.reshape(N, C))        # max is order-free
        np.fmax(y, CAFFE_MAX_INIT, out=y)                          # all NaN/-inf: -FLT_MAX
        return y, None
    if not need_mask:
        if len(spatial) == 2 and jit.available():
            return jit_pooling.max_pool_2d(x, kernel, stride, pad, out_shape, y,
                                           CAFFE_MAX_INIT), None
        return _separable_max(x, kernel, stride, pad, out_shape, y), None
    if len(spatial) == 2:
        mask = check_out(mask_out, (N, C) + out_shape, x.dtype, "mask_out")
        if jit.handles(x.dtype):
            jit_pooling.max_pool_2d(x, kernel, stride, pad, out_shape, y, CAFFE_MAX_INIT,
                                    mask)
            return y, mask
        return _flat_max_mask(x, kernel, stride, pad, out_shape, y, mask)
    y.fill(CAFFE_MAX_INIT)
    offsets = list(kernel_offsets(spatial, out_shape, kernel, stride, pad))
    for _, oslc, islc in offsets:
        if oslc is not None:
            dst = y[(Ellipsis,) + oslc]
            np.fmax(dst, x[(Ellipsis,) + islc], out=dst)           # fmax: NaN never wins, as in Caffe
    # The running strict-'>' maximum ends on the FIRST offset (row-major) holding the final
    # maximum. Find it without data-dependent branches (masked copies of random masks are
    # ~10x slower): code = max_j [x_j == y] * (K - j), so the first offset is K - code.
    K = prod(kernel)
    code_type = np.uint8 if K < 2 ** 8 else np.uint16 if K < 2 ** 16 else np.uint32
    code = np.zeros(y.shape, code_type)                            # (N, C, *O)
    equal, step = np.empty(y.shape, bool), np.empty(y.shape, code_type)
    for j, (_, oslc, islc) in enumerate(offsets):
        if oslc is not None:
            sl = (Ellipsis,) + oslc
            np.equal(x[(Ellipsis,) + islc], y[sl], out=equal[sl])
            np.multiply(equal[sl].view(np.uint8), code_type(K - j), out=step[sl])
            np.maximum(code[sl], step[sl], out=code[sl])
    # mask = flat index of the window's unclipped first cell + flat offset of kernel offset K - code
    plane_strides = [prod(spatial[a + 1:]) for a in range(len(spatial))]
    offset_index = np.zeros(K + 1, x.dtype)                        # by code: [-, offset K-1, ..., offset 0]
    offset_index[1:] = [sum(ka * st for ka, st in zip(k, plane_strides)) for k, _, _ in reversed(offsets)]
    mask = check_out(mask_out, (N, C) + out_shape, x.dtype, "mask_out")
    np.take(offset_index, code, out=mask)
    for a, (o, s, p, st) in enumerate(zip(out_shape, stride, pad, plane_strides)):
        mask += ((np.arange(o) * s - p) * st).astype(x.dtype).reshape((-1,) + (1,) * (len(spatial) - 1 - a))
    unset = y == CAFFE_MAX_INIT                                   # no cell > -FLT_MAX: Caffe keeps -1
    if unset.any():
        mask[unset] = -1
    return y, mask


def _separable_max(x, kernel, stride, pad, out_shape, y):
    """The window max one axis at a time (a k x k window costs 2k maxima, not k^2),
    on chunks of whole planes that stay in cache. Max is exact and order-free, so the
    result is the joint window's bit for bit (fmax: NaN never wins; a window with
    nothing above -FLT_MAX gives -FLT_MAX, as Caffe's initial value).

    numpy pays ~100 ns per inner loop and strided float loops run without SIMD, so a
    row-by-row or stride-s maximum is several times slower than a flat one. Each axis
    pass therefore reads ``s`` phase arrays (phase q holds the cells q, q + s, q + 2s,
    ... of every line; a copy unless s = 1 and the line keeps its length), in which
    kernel offset j of every window is the same phase shifted by a constant: one flat
    contiguous maximum per offset. Windows that overhang the line would read the next
    line there: the last axis (first pass) recomputes its few overhanging columns one
    column at a time and stays compact, the leading axes get -FLT_MAX margins (whole
    rows, cheap) that the final copy into y leaves out."""
    N, C, *spatial = x.shape
    planes, nd = N * C, len(spatial)
    xr, yr = x.reshape((planes,) + tuple(spatial)), y.reshape((planes,) + tuple(out_shape))
    per_chunk = max(1, _CHUNK // max(1, prod(spatial)))
    buffers = {}
    for first in range(0, planes, per_chunk):
        count = len(xr[first:first + per_chunk])
        current = _last_axis_max(xr[first:first + per_chunk].reshape(-1, spatial[-1]),
                                 kernel[-1], stride[-1], pad[-1], out_shape[-1], buffers)
        lengths, windows = [out_shape[-1]], [slice(None)]
        for axis in reversed(range(nd - 1)):         # (lines, L, later axes) -> margined
            current, margin = _margined_axis_max(
                current.reshape(count * prod(spatial[:axis]), spatial[axis], prod(lengths)),
                kernel[axis], stride[axis], pad[axis], out_shape[axis], buffers, axis)
            lengths.insert(0, current.shape[1])
            windows.insert(0, slice(margin, margin + out_shape[axis]))
        full = current.reshape([count] + lengths)
        np.fmax(full[(slice(None),) + tuple(windows)], CAFFE_MAX_INIT,
                out=yr[first:first + per_chunk])
    return y


def _flat_max_mask(x, kernel, stride, pad, out_shape, y, mask):
    """2-D MAX with Caffe's mask, on chunks of planes, every step a flat contiguous
    operation: the chunk is copied once into s_h x s_w phase planes with -FLT_MAX
    margins (phase (a, b) holds the cells (a + i s_h, b + j s_w)), so kernel offset
    (j_h, j_w) of every window is one phase shifted by a constant. The max is the fmax
    over offsets; the mask's first maximum in row-major window order is found as in
    the joint loop: code = max_j [x_j == y] (K - j), offset K - code."""
    N, C, H, W = x.shape
    OH, OW = out_shape
    taps = [_taps(k, s, p) for k, s, p in zip(kernel, stride, pad)]
    left = [max(0, -min(d for _, d in t)) for t in taps]
    length = [o + lo + max(0, max(d for _, d in t)) for o, lo, t in zip(out_shape, left, taps)]
    plane = length[0] * length[1]
    planes = N * C
    per_chunk = max(1, _CHUNK // max(1, H * W))
    K = prod(kernel)
    code_type = np.uint8 if K < 2 ** 8 else np.uint16 if K < 2 ** 16 else np.uint32
    # kernel offsets (row-major): phase, flat shift, flat index in the input plane
    offsets = [((qh, qw), dh * length[1] + dw, jh * W + jw)
               for jh, (qh, dh) in enumerate(taps[0]) for jw, (qw, dw) in enumerate(taps[1])]
    offset_index = np.array([0] + [index for _, _, index in reversed(offsets)], x.dtype)
    starts = ((np.arange(OH) * stride[0] - pad[0])[:, None] * W
              + (np.arange(OW) * stride[1] - pad[1])).astype(x.dtype)   # window (0, 0) cell
    xr, yr, mr = (a.reshape(planes, *a.shape[2:]) for a in (x, y, mask))
    valid = (slice(None), slice(left[0], left[0] + OH), slice(left[1], left[1] + OW))
    for first in range(0, planes, per_chunk):
        xs = xr[first:first + per_chunk]
        P = len(xs)
        size = P * plane
        phases = {}
        for qh, qw in sorted({phase for phase, _, _ in offsets}):
            ph = np.full((P, length[0], length[1]), CAFFE_MAX_INIT, x.dtype)
            nh = min((H - 1 - qh) // stride[0] + 1, length[0] - left[0])
            nw = min((W - 1 - qw) // stride[1] + 1, length[1] - left[1])
            ph[:, left[0]:left[0] + nh, left[1]:left[1] + nw] = \
                xs[:, qh:qh + (nh - 1) * stride[0] + 1:stride[0],
                   qw:qw + (nw - 1) * stride[1] + 1:stride[1]]
            phases[qh, qw] = ph.reshape(-1)
        lo = left[0] * length[1] + left[1]
        hi = size - (length[0] - left[0] - OH) * length[1] - (length[1] - left[1] - OW)
        views = [phases[q][lo + shift:hi + shift] for q, shift, _ in offsets]
        best = np.empty(size, x.dtype)
        _flat_max(best[lo:hi], views)
        code, step = np.zeros(size, code_type), np.empty(hi - lo, code_type)
        equal = np.empty(hi - lo, bool)
        for j, view in enumerate(views):
            np.equal(view, best[lo:hi], out=equal)
            np.multiply(equal.view(np.uint8), code_type(K - j), out=step)
            np.maximum(code[lo:hi], step, out=code[lo:hi])
        ys, ms = yr[first:first + P], mr[first:first + P]
        np.fmax(best.reshape(P, *length)[valid], CAFFE_MAX_INIT, out=ys)
        np.take(offset_index, code.reshape(P, *length)[valid], out=ms)
        ms += starts
        unset = ys == CAFFE_MAX_INIT                      # nothing > -FLT_MAX: Caffe keeps -1
        if unset.any():
            ms[unset] = -1
    return y, mask


# elements per chunk of planes in _separable_max: its buffers stay in L2 / L3
_CHUNK = 1 << 19


def _taps(kernel, stride, pad):
    """Kernel offset j reads phase (j - pad) mod s, shifted by (j - pad) // s outputs."""
    return [((j - pad) % stride, (j - pad) // stride) for j in range(kernel)]


def _flat_max(dst, views):
    if len(views) == 1:
        np.copyto(dst, views[0])
        return
    np.fmax(views[0], views[1], out=dst)
    for view in views[2:]:
        np.fmax(dst, view, out=dst)


def _margined_axis_max(lines, kernel, stride, pad, out_size, buffers, axis):
    """Max over axis 1 of ``lines`` (R, L, I) -> ((R, out_size + margins, I), left
    margin); the valid outputs are [margin, margin + out_size) of axis 1."""
    R, L, inner = lines.shape
    taps = _taps(kernel, stride, pad)
    left = max(0, -min(d for _, d in taps))
    length = out_size + left + max(0, max(d for _, d in taps))
    size = R * length * inner
    phases = {}
    for q in sorted({q for q, _ in taps}):
        phase = _buffer(buffers, ("phase", q), size, lines.dtype).reshape(R, length, inner)
        n = min((L - 1 - q) // stride + 1, length - left)    # cells q + i s < L, at left + i
        phase[:, :left] = CAFFE_MAX_INIT
        phase[:, left + n:] = CAFFE_MAX_INIT
        phase[:, left:left + n] = lines[:, q:q + (n - 1) * stride + 1:stride]
        phases[q] = phase.reshape(-1)
    out = _buffer(buffers, ("out", axis), size, lines.dtype)
    lo, hi = left * inner, size - (length - left - out_size) * inner
    _flat_max(out[lo:hi], [phases[q][lo + d * inner:hi + d * inner] for q, d in taps])
    return out.reshape(R, length, inner), left


def _last_axis_max(lines, kernel, stride, pad, out_size, buffers):
    """Max over axis 1 of the contiguous ``lines`` (R, L) -> (R, out_size), compact."""
    R, L = lines.shape
    taps = _taps(kernel, stride, pad)
    phases = {}
    for q in sorted({q for q, _ in taps}):
        n = min((L - 1 - q) // stride + 1, out_size)         # cells q + o s < L
        if q == 0 and stride == 1 and n == out_size == L:
            phases[q] = lines                                  # the lines themselves
            continue
        phase = _buffer(buffers, ("phase", q), R * out_size, lines.dtype)
        phase = phase.reshape(R, out_size)
        phase[:, n:] = CAFFE_MAX_INIT
        phase[:, :n] = lines[:, q:q + (n - 1) * stride + 1:stride]
        phases[q] = phase
    out = _buffer(buffers, ("out", "last"), R * out_size, lines.dtype).reshape(R, out_size)
    low, high = max(0, -min(d for _, d in taps)), max(0, max(d for _, d in taps))
    flat = {q: phase.reshape(-1) for q, phase in phases.items()}
    lo, hi = low, R * out_size - high
    if hi > lo:
        _flat_max(out.reshape(-1)[lo:hi], [flat[q][lo + d:hi + d] for q, d in taps])
    # columns whose windows reach past either end of their line, one column at a time
    for o in sorted(set(range(min(low, out_size))) |
                    set(range(max(0, out_size - high), out_size))):
        cells = range(max(0, o * stride - pad), min(L, o * stride - pad + kernel))
        valid = [lines[:, i] for i in cells]
        if valid:
            _flat_max(out[:, o], valid)
        else:
            out[:, o] = CAFFE_MAX_INIT
    return out


def _buffer(buffers, name, size, dtype):
    """A scratch array of ``size`` from ``buffers``, grown when needed."""
    buf = buffers.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = buffers[name] = np.empty(size, dtype)
    return buf[:size]


def max_pool_backward(dy, mask, x_shape, out=None):
    """Adjoint of MAX pooling: route dy (N, C, *O) to x_shape by the mask's flat indices.

    Indices are per (n, c) plane. Cells chosen by several windows sum their gradients in
    float32 in output row-major order, as Caffe does (np.add.at applies its updates in
    order, and in numpy 2 it beats bincount here). Negative mask entries are dropped.
    """
    N, C, *spatial = x_shape
    if jit.handles(dy.dtype) and (out is None or out.flags.c_contiguous):
        dx = check_out(out, tuple(x_shape), dy.dtype)
        return jit_pooling.max_pool_backward_flat(dy, mask, dx)
    plane = prod(spatial)
    index = mask.reshape(N * C, -1).astype(np.intp)               # (N*C, L)
    grads = dy.reshape(N * C, -1)
    keep = index >= 0
    if not keep.all():
        index, grads = index[keep], grads[keep]                    # row-major order is kept
        index += np.repeat(np.arange(N * C) * plane, keep.sum(axis=1))
    else:
        index += (np.arange(N * C) * plane)[:, None]
    dx = check_out(out, tuple(x_shape), dy.dtype)
    dx.fill(0)
    np.add.at(dx.reshape(-1), index.reshape(-1), grads.reshape(-1))
    return dx
