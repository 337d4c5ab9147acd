"""STOCHASTIC pooling (2-D, no padding), following Caffe's GPU kernels: Caffe has no
CPU code for it.

TRAIN samples one cell per window with probability proportional to its value and
routes the gradient there (``stochastic_sample``; the gradient is MAX's
``max_pool_backward`` with the sample indices as the mask). TEST outputs the
activation-weighted average sum(x^2) / sum(x) (``stochastic_expectation``) with that
formula's exact gradient. Windows are clipped to the input, as in ``ops.pooling``.
The uniform draws come from the caller, so these kernels hold no random state.
"""
import numpy as np

from .im2col import _per_axis, kernel_offsets

__all__ = ["window_sums", "stochastic_expectation", "stochastic_expectation_backward",
           "stochastic_sample"]


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
    stride = _per_axis(stride, 2, "stride")
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
