"""Softmax over one axis, and the kernels the softmax-based losses share."""
import numpy as np

from .base import Layer, register_layer
from .shape import AxisMixin

_CHUNK = 1 << 16


def rounded(ufunc, a):
    """ufunc(a) evaluated in float64 and rounded once to a's dtype. glibc's expf and
    logf (what Caffe calls) round correctly; numpy's float32 exp/log are often
    1 ulp off, which breaks bit parity."""
    return ufunc(a.astype(np.float64)).astype(a.dtype, copy=False)


def exp_inplace(a):
    """a = exp(a), rounded like ``rounded`` but in cache-sized chunks (no big
    float64 temporary)."""
    if a.dtype != np.float32:
        np.exp(a, out=a)
        return
    flat = a.reshape(-1)
    work = np.empty(min(_CHUNK, flat.size), np.float64)
    for start in range(0, flat.size, _CHUNK):
        part = flat[start:start + _CHUNK]
        buf = work[:part.size]
        np.copyto(buf, part)
        np.exp(buf, out=buf)
        np.copyto(part, buf, casting="same_kind")


def softmax_forward(x, out):
    """out = exp(x - max) / sum(exp(x - max)) over axis 1 of (outer, C, inner)
    arrays; ``out`` may be ``x`` itself."""
    peak = x.max(axis=1, keepdims=True)                    # (outer, 1, inner)
    np.subtract(x, peak, out=out)
    exp_inplace(out)
    out /= out.sum(axis=1, keepdims=True)


def softmax_backward(prob, dprob, out):
    """out = (dprob - <dprob, prob>_C) * prob on (outer, C, inner) arrays."""
    dot = np.einsum("ocj,ocj->oj", dprob, prob)[:, None, :]  # (outer, 1, inner)
    np.subtract(dprob, dot, out=out)
    out *= prob


def outer_inner(blob, axis):
    """(outer, C, inner) sizes around ``axis``."""
    return blob.count_range(0, axis), blob.shape[axis], blob.count_range(axis + 1)


@register_layer("Softmax")
class SoftmaxLayer(AxisMixin, Layer):
    """softmax_param axis (1): normalised exponentials along that axis, the max
    subtracted first. Same shape in and out; may run in place."""
    exact_num_bottom = 1
    exact_num_top = 1
    allows_in_place = True

    def reshape(self, bottom, top):
        axis = self.canonical_axis(bottom[0], self.param.softmax_param.axis, "axis",
                                   self.bottom_name(0))
        self.dims = outer_inner(bottom[0], axis)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        softmax_forward(bottom[0].data.reshape(self.dims), top[0].data.reshape(self.dims))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            softmax_backward(top[0].data.reshape(self.dims), top[0].diff.reshape(self.dims),
                             bottom[0].diff.reshape(self.dims))
