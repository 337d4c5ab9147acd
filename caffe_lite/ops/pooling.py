"""MAX and AVE pooling with Caffe's exact windows, for any number of spatial axes.

Windows: output o covers inputs [o*s - p, o*s - p + k). MAX clips the window to the input
(padding never wins); AVE sums the cells inside the input but divides by the window size
clipped only to [-p, H + p) (Caffe counts padded cells, not the ceil overhang past H + p).

Every kernel loops over the k*k kernel offsets (row-major), each one a strided operation
on the whole batch (`kernel_offsets` from im2col). The float32 operations run in Caffe's
order, so forward and backward of MAX and AVE are bit-identical to Caffe's.
"""
from math import prod

import numpy as np

from .im2col import _check_out, _per_axis, kernel_offsets

__all__ = ["pool_out_size", "window_bounds", "max_pool_forward", "max_pool_backward",
           "ave_pool_forward", "ave_pool_backward"]

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
    kernel, stride, pad = (_per_axis(v, nd, n) for v, n in zip(
        (kernel, stride, pad), ("kernel", "stride", "pad")))
    out_shape = _per_axis(out_shape, nd, "out_shape")
    return kernel, stride, pad, out_shape


def max_pool_forward(x, kernel, stride, pad, out_shape, need_mask=False, out=None, mask_out=None):
    """MAX pooling: x (N, C, *S) -> (y (N, C, *O), mask (N, C, *O) or None).

    y is the maximum over the window clipped to the input; with ``need_mask`` the mask holds
    the flat index (h*W + w in 2-D) of the first maximum in row-major window order (strict
    >), as x.dtype like Caffe's mask top. The mask costs ~4x the plain max: ask only when the
    mask top or a backward needs it. ``out``/``mask_out``: C-contiguous arrays to fill.

    >>> x = np.array([[[[1., 3.], [3., 0.]]]])
    >>> max_pool_forward(x, 2, 1, 0, (1, 1), need_mask=True)
    (array([[[[3.]]]]), array([[[[1.]]]]))
    """
    N, C, *spatial = x.shape
    kernel, stride, pad, out_shape = _pool_params(spatial, kernel, stride, pad, out_shape)
    y = _check_out(out, (N, C) + out_shape, x.dtype)
    y.fill(_CAFFE_MAX_INIT)
    offsets = list(kernel_offsets(spatial, out_shape, kernel, stride, pad))
    for _, oslc, islc in offsets:
        if oslc is not None:
            dst = y[(Ellipsis,) + oslc]
            np.fmax(dst, x[(Ellipsis,) + islc], out=dst)           # fmax: NaN never wins, as in Caffe
    if not need_mask:
        return y, None
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
    mask = _check_out(mask_out, (N, C) + out_shape, x.dtype, "mask_out")
    np.take(offset_index, code, out=mask)
    for a, (o, s, p, st) in enumerate(zip(out_shape, stride, pad, plane_strides)):
        mask += ((np.arange(o) * s - p) * st).astype(x.dtype).reshape((-1,) + (1,) * (len(spatial) - 1 - a))
    unset = y == _CAFFE_MAX_INIT                                   # no cell > -FLT_MAX: Caffe keeps -1
    if unset.any():
        mask[unset] = -1
    return y, mask


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
    dx = _check_out(out, tuple(x_shape), dy.dtype)
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
    y = _check_out(out, (N, C) + out_shape, x.dtype)
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
    dx = _check_out(out, tuple(x_shape), dy.dtype)
    dx.fill(0)
    for _, oslc, islc in reversed(list(kernel_offsets(spatial, out_shape, kernel, stride, pad))):
        if oslc is not None:
            dst = dx[(Ellipsis,) + islc]
            np.add(dst, share[(Ellipsis,) + oslc], out=dst)
    return dx
