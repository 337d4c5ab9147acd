"""MAX and AVE pooling with Caffe's exact windows, for any number of spatial axes,
and STOCHASTIC pooling (2-D, no padding).

Windows: output o covers inputs [o*s - p, o*s - p + k). MAX clips the window to the input
(padding never wins); AVE sums the cells inside the input but divides by the window size
clipped only to [-p, H + p) (Caffe counts padded cells, not the ceil overhang past H + p).

Every kernel loops over the k*k kernel offsets (row-major), each one a strided operation
on the whole batch (`kernel_offsets` from geometry), except the mask-free MAX forward,
which is separable and flat (`_separable_max`). The float32 operations run in Caffe's
order (max is order-free), so forward and backward of MAX and AVE are bit-identical to
Caffe's.

STOCHASTIC follows Caffe's GPU kernels: Caffe has no CPU code for it. TRAIN samples
one cell per window with probability proportional to its value and routes the
gradient there (``stochastic_sample``; the gradient is MAX's ``max_pool_backward``
with the sample indices as the mask). TEST outputs the activation-weighted average
sum(x^2) / sum(x) (``stochastic_expectation``) with that formula's exact gradient.
Windows are clipped to the input, as for MAX. The uniform draws come from the
caller, so these kernels hold no random state.
"""
from math import prod

import numpy as np

from .geometry import check_out, kernel_offsets, per_axis

__all__ = ["pool_out_size", "window_bounds", "max_pool_forward", "max_pool_backward",
           "ave_pool_forward", "ave_pool_backward", "window_sums", "stochastic_expectation",
           "stochastic_expectation_backward", "stochastic_sample"]

# Caffe starts every max at -FLT_MAX (for either Dtype), so an all -inf/NaN window gives it.
_CAFFE_MAX_INIT = -float(np.finfo(np.float32).max)


def pool_out_size(size, kernel, stride=1, pad=0, ceil=True):
    """Caffe's pooling output size along one axis.

    ceil((size + 2p - k) / s) + 1 (floor when ``ceil`` is False); when p > 0 and the last
    window would start at or past size + p, it is dropped.

    >>> pool_out_size(55, 3, 2), pool_out_size(7, 2, 2), pool_out_size(7, 2, 2, ceil=False)
    (27, 4, 3)
    >>> pool_out_size(6, 3, 2, 1), pool_out_size(5, 2, 2, 1)
    (4, 3)
    """
    num = size + 2 * pad - kernel
    out = (-(-num // stride) if ceil else num // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def window_bounds(out_size, kernel, stride, pad, in_size):
    """Per-output window bounds along one axis -> (start, end, start_clipped, end_clipped).

    start = o*s - p and end = min(start + k, in_size + p) are Caffe's unclipped bounds (AVE's
    divisor is end - start); the clipped ones are limited to [0, in_size) (the cells read).
    All are int arrays of length ``out_size``.

    >>> window_bounds(4, 3, 2, 1, 6)
    (array([-1,  1,  3,  5]), array([2, 4, 6, 7]), array([0, 1, 3, 5]), array([2, 4, 6, 6]))
    """
    start = np.arange(out_size) * stride - pad
    end = np.minimum(start + kernel, in_size + pad)
    return start, end, np.maximum(start, 0), np.minimum(end, in_size)


def _pool_params(spatial, kernel, stride, pad, out_shape):
    nd = len(spatial)
    kernel, stride, pad = (per_axis(v, nd, n) for v, n in zip(
        (kernel, stride, pad), ("kernel", "stride", "pad")))
    out_shape = per_axis(out_shape, nd, "out_shape")
    return kernel, stride, pad, out_shape


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
    kernel, stride, pad, out_shape = _pool_params(spatial, kernel, stride, pad, out_shape)
    y = check_out(out, (N, C) + out_shape, x.dtype)
    if not need_mask and _is_global(spatial, kernel, pad, out_shape):
        planes = x.reshape(N, C, -1)
        np.fmax.reduce(planes, axis=2, out=y.reshape(N, C))        # max is order-free
        np.fmax(y, _CAFFE_MAX_INIT, out=y)                          # all NaN/-inf: -FLT_MAX
        return y, None
    if not need_mask:
        return _separable_max(x, kernel, stride, pad, out_shape, y), None
    if len(spatial) == 2:
        mask = check_out(mask_out, (N, C) + out_shape, x.dtype, "mask_out")
        return _flat_max_mask(x, kernel, stride, pad, out_shape, y, mask)
    y.fill(_CAFFE_MAX_INIT)
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
    unset = y == _CAFFE_MAX_INIT                                   # no cell > -FLT_MAX: Caffe keeps -1
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
        np.fmax(full[(slice(None),) + tuple(windows)], _CAFFE_MAX_INIT,
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
            ph = np.full((P, length[0], length[1]), _CAFFE_MAX_INIT, x.dtype)
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
        np.fmax(best.reshape(P, *length)[valid], _CAFFE_MAX_INIT, out=ys)
        np.take(offset_index, code.reshape(P, *length)[valid], out=ms)
        ms += starts
        unset = ys == _CAFFE_MAX_INIT                      # nothing > -FLT_MAX: Caffe keeps -1
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
        phase[:, :left] = _CAFFE_MAX_INIT
        phase[:, left + n:] = _CAFFE_MAX_INIT
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
        phase[:, n:] = _CAFFE_MAX_INIT
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
            out[:, o] = _CAFFE_MAX_INIT
    return out


def _buffer(buffers, name, size, dtype):
    """A scratch array of ``size`` from ``buffers``, grown when needed."""
    buf = buffers.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = buffers[name] = np.empty(size, dtype)
    return buf[:size]


def _is_global(spatial, kernel, pad, out_shape):
    """One window covering the whole plane (global pooling, SqueezeNet's pool10)."""
    return (all(o == 1 for o in out_shape) and all(p == 0 for p in pad)
            and all(k >= s for k, s in zip(kernel, spatial)))


def _global_sum(x, y):
    """y (N, C, 1..) = sum of each plane, added in row-major order in x's dtype as the
    per-offset loop (and Caffe) does: a reduction over the leading axis of the (L, N*C)
    transpose adds whole rows one after another (over the contiguous axis numpy would
    sum pairwise, which rounds differently)."""
    N, C = x.shape[:2]
    cells = np.ascontiguousarray(x.reshape(N * C, -1).T)            # (L, N*C)
    np.add.reduce(cells, axis=0, out=y.reshape(N * C))


def max_pool_backward(dy, mask, x_shape, out=None):
    """Adjoint of MAX pooling: route dy (N, C, *O) to x_shape by the mask's flat indices.

    Indices are per (n, c) plane. Cells chosen by several windows sum their gradients in
    float32 in output row-major order, as Caffe does (np.add.at applies its updates in
    order, and in numpy 2 it beats bincount here). Negative mask entries are dropped.
    """
    N, C, *spatial = x_shape
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


def _ave_divisor(spatial, kernel, stride, pad, out_shape, dtype):
    """Caffe's per-window divisor (*O): product over axes of end - start (unclipped)."""
    div = np.ones(out_shape, dtype)
    for a, (o, k, s, p, i) in enumerate(zip(out_shape, kernel, stride, pad, spatial)):
        start, end, _, _ = window_bounds(o, k, s, p, i)
        div = div * np.reshape(end - start, (-1,) + (1,) * (len(out_shape) - 1 - a)).astype(dtype)
    return div


def ave_pool_forward(x, kernel, stride, pad, out_shape, out=None):
    """AVE pooling: x (N, C, *S) -> y (N, C, *O).

    y = (sum of the window's cells inside the input) / (window size clipped to [-p, S+p)).

    >>> ave_pool_forward(np.ones((1, 1, 2, 2)), 2, 2, 1, (2, 2))[0, 0]
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    N, C, *spatial = x.shape
    kernel, stride, pad, out_shape = _pool_params(spatial, kernel, stride, pad, out_shape)
    y = check_out(out, (N, C) + out_shape, x.dtype)
    if _is_global(spatial, kernel, pad, out_shape):
        _global_sum(x, y)
        y /= _ave_divisor(spatial, kernel, stride, pad, out_shape, x.dtype)
        return y
    y.fill(0)
    for _, oslc, islc in kernel_offsets(spatial, out_shape, kernel, stride, pad):
        if oslc is not None:
            dst = y[(Ellipsis,) + oslc]
            np.add(dst, x[(Ellipsis,) + islc], out=dst)
    y /= _ave_divisor(spatial, kernel, stride, pad, out_shape, x.dtype)
    return y


def ave_pool_backward(dy, kernel, stride, pad, x_shape, out=None):
    """Adjoint of AVE pooling: dx[i] = sum over windows w containing i of dy[w] / size(w).

    Offsets run in reverse row-major order so each cell sums its windows in Caffe's
    (output row-major) order: bit-identical in float32.
    """
    N, C, *spatial = x_shape
    kernel, stride, pad, out_shape = _pool_params(spatial, kernel, stride, pad, dy.shape[2:])
    share = dy / _ave_divisor(spatial, kernel, stride, pad, out_shape, dy.dtype)
    dx = check_out(out, tuple(x_shape), dy.dtype)
    dx.fill(0)
    for _, oslc, islc in reversed(list(kernel_offsets(spatial, out_shape, kernel, stride, pad))):
        if oslc is not None:
            dst = dx[(Ellipsis,) + islc]
            np.add(dst, share[(Ellipsis,) + oslc], out=dst)
    return dx


# ==== STOCHASTIC (2-D, no padding) ===========================================

def window_sums(x, kernel, stride, out_shape, power=1):
    """Sum over each window (clipped to the input, no padding) of x**power:
    x (N, C, H, W) -> (N, C, *out_shape).

    >>> window_sums(np.arange(4.).reshape(1, 1, 2, 2), 2, 1, (1, 1), power=2)
    array([[[[14.]]]])
    """
    s = np.zeros(x.shape[:2] + tuple(out_shape), x.dtype)
    for _, oslc, islc in kernel_offsets(x.shape[2:], out_shape, kernel, stride, 0):
        if oslc is not None:
            v = x[(Ellipsis,) + islc]
            s[(Ellipsis,) + oslc] += v * v if power == 2 else v
    return s


def stochastic_expectation(x, kernel, stride, out):
    """TEST: out (N, C, OH, OW) = sum(x^2) / sum(x) per window, 0 where sum(x) <= 0.

    >>> y = np.empty((1, 1, 1, 1))
    >>> stochastic_expectation(np.array([[[[1., 3.], [0., 0.]]]]), 2, 1, y); y
    array([[[[2.5]]]])
    """
    total = window_sums(x, kernel, stride, out.shape[2:])
    squares = window_sums(x, kernel, stride, out.shape[2:], power=2)
    positive = total > 0
    out[...] = np.where(positive, squares / np.where(positive, total, 1), 0)


def stochastic_expectation_backward(x, kernel, stride, dy, dx):
    """Exact gradient of the TEST formula into dx (N, C, H, W):
    d/dx_i (Q/S) = (2 x_i - y) / S.

    Caffe has no CPU backward, and its GPU backward reuses the TRAIN sample indices
    (stale in TEST); the true derivative is the sensible choice.
    """
    total = window_sums(x, kernel, stride, dy.shape[2:])
    squares = window_sums(x, kernel, stride, dy.shape[2:], power=2)
    positive = total > 0
    safe = np.where(positive, total, 1)
    g = np.where(positive, dy / safe, 0)                  # dy / S
    h = g * np.where(positive, squares / safe, 0)         # dy * y / S
    dx.fill(0)
    for _, oslc, islc in kernel_offsets(x.shape[2:], dy.shape[2:], kernel, stride, 0):
        if oslc is not None:
            cell = (Ellipsis,) + islc
            dx[cell] += 2 * x[cell] * g[(Ellipsis,) + oslc] - h[(Ellipsis,) + oslc]


def stochastic_sample(x, kernel, stride, uniform, out):
    """TRAIN: pick a cell with probability proportional to its value (Caffe's GPU rule:
    the first cell whose running sum reaches u * window sum, with ``uniform`` the
    draws u ~ U[0, 1), shaped like out (N, C, OH, OW)). Writes the picked values to
    out and returns the chosen flat index h*W + w per window, as x.dtype (-1 if none
    qualifies, e.g. all-negative windows: the output is then 0 and no gradient flows).
    """
    out_shape = out.shape[2:]
    W = x.shape[3]
    stride = per_axis(stride, 2, "stride")
    threshold = uniform * window_sums(x, kernel, stride, out_shape)
    running = np.zeros_like(out)
    index = np.full(out.shape, -1, x.dtype)
    out.fill(0)
    for k, oslc, islc in kernel_offsets(x.shape[2:], out_shape, kernel, stride, 0):
        if oslc is None:
            continue
        o = (Ellipsis,) + oslc
        v = x[(Ellipsis,) + islc]
        running[o] += v
        pick = (running[o] >= threshold[o]) & (index[o] < 0)
        rows = np.arange(oslc[0].start, oslc[0].stop)[:, None] * stride[0] + k[0]
        cols = np.arange(oslc[1].start, oslc[1].stop) * stride[1] + k[1]
        np.copyto(out[o], v, where=pick)
        np.copyto(index[o], np.broadcast_to(rows * W + cols, pick.shape).astype(x.dtype),
                  where=pick)
    return index
