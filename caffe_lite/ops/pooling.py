"""Pooling windows and sizes, AVE pooling with Caffe's exact windows for any number of
spatial axes, and STOCHASTIC pooling (2-D, no padding); MAX pooling is in max_pool.py.

Windows: output o covers inputs [o*s - p, o*s - p + k). MAX clips the window to the input
(padding never wins); AVE sums the cells inside the input but divides by the window size
clipped only to [-p, H + p) (Caffe counts padded cells, not the ceil overhang past H + p).

Every AVE kernel loops over the k*k kernel offsets (row-major), each one a strided
operation on the whole batch (`kernel_offsets` from geometry), or sums a global
window in one reduction. The float32 operations run in Caffe's order, so forward and
backward are bit-identical to Caffe's.

STOCHASTIC follows Caffe's GPU kernels: Caffe has no CPU code for it. TRAIN samples
one cell per window with probability proportional to its value and routes the
gradient there (``stochastic_sample``; the gradient is MAX's ``max_pool_backward``
with the sample indices as the mask). TEST outputs the activation-weighted average
sum(x^2) / sum(x) (``stochastic_expectation``) with that formula's exact gradient.
Windows are clipped to the input, as for MAX. The uniform draws come from the
caller, so these kernels hold no random state.
"""
import numpy as np

from .geometry import check_out, kernel_offsets, per_axis

__all__ = ["pool_out_size", "window_bounds", "pool_params", "is_global", "CAFFE_MAX_INIT",
           "ave_pool_forward", "ave_pool_backward", "window_sums", "stochastic_expectation",
           "stochastic_expectation_backward", "stochastic_sample"]

# Caffe starts every max at -FLT_MAX (for either Dtype), so an all -inf/NaN window gives it.
CAFFE_MAX_INIT = -float(np.finfo(np.float32).max)


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


def pool_params(spatial, kernel, stride, pad, out_shape):
    """kernel, stride, pad and the output shape as per-axis tuples."""
    nd = len(spatial)
    kernel, stride, pad = (per_axis(v, nd, n) for v, n in zip(
        (kernel, stride, pad), ("kernel", "stride", "pad")))
    out_shape = per_axis(out_shape, nd, "out_shape")
    return kernel, stride, pad, out_shape


def is_global(spatial, kernel, pad, out_shape):
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
    kernel, stride, pad, out_shape = pool_params(spatial, kernel, stride, pad, out_shape)
    y = check_out(out, (N, C) + out_shape, x.dtype)
    if is_global(spatial, kernel, pad, out_shape):
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
    kernel, stride, pad, out_shape = pool_params(spatial, kernel, stride, pad, dy.shape[2:])
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
