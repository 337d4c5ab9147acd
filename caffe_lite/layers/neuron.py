"""Elementwise ("neuron") layers: one bottom, one top of the same shape, y = f(x).

The NeuronLayer base, and the arithmetic layers: AbsVal, Threshold, Exp, Log,
Power (base/scale/shift parameters), and Dropout (a random mask, a scale in
TRAIN, the identity in TEST). The activation functions (ReLU, PReLU, Clip,
Sigmoid, TanH, BNLL, ELU, Swish) are in activation.py.

Every one may run in place (bottom and top the same blob). Caffe writes some
backwards from y alone (Sigmoid, TanH, Exp, Swish); a layer whose backward needs
x keeps a copy of it when it runs in place, so in place gives the same gradients
as separate blobs (Caffe's own Power/Log/BNLL/Clip would read the overwritten x).

Exp/Log/Power derive their constants in the blob's dtype in Caffe's order
(float32 arithmetic for float32 nets), exp/log/pow round like the C library's
float functions (``ops.libm``), and each forward/backward skips the
multiplications Caffe skips, so results round like Caffe's.
"""
import math

import numpy as np

from ..ops.libm import expf, logf, powf
from ..proto import caffe_pb2
from ..rng import get_rng
from .base import Layer, kept_copy, register_layer


class NeuronLayer(Layer):
    """Base of the elementwise layers. A subclass gives ``compute(x, y)``, writing y
    (shape of x), and ``gradient(x, y, dy, dx)``, writing dx; y may be x and dx may
    be dy (in place), so each writes with one whole-array expression or ufunc."""
    exact_num_bottom = 1
    exact_num_top = 1
    allows_in_place = True
    _kept_input = None

    def backward_needs_input(self):
        """Whether gradient() reads x itself, not only y (then in place keeps x)."""
        return True

    def reshape(self, bottom, top):
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        if top[0] is bottom[0] and self.backward_needs_input() and not self.forward_only:
            x = self._kept_input = kept_copy(self._kept_input, x)
        self.compute(x, top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self.gradient(self.forward_input(bottom, top), top[0].data, top[0].diff,
                          bottom[0].diff)

    def forward_input(self, bottom, top):
        """The x of the last forward (its kept copy when that ran in place)."""
        if top[0] is bottom[0] and self.backward_needs_input() and not self.forward_only:
            return self._kept_input
        return bottom[0].data


@register_layer("AbsVal")
class AbsValLayer(NeuronLayer):
    """y = |x|; gradient sign(x), 0 at 0. (Caffe refuses AbsVal in place; we keep x.)"""

    def compute(self, x, y):
        np.abs(x, out=y)

    def gradient(self, x, y, dy, dx):
        np.multiply(np.sign(x), dy, out=dx)


@register_layer("Threshold")
class ThresholdLayer(NeuronLayer):
    """threshold_param.threshold t: y = 1 if x > t else 0. No backward (as in Caffe)."""
    has_backward = False

    def layer_setup(self, bottom, top):
        self.threshold = self.param.threshold_param.threshold

    def backward_needs_input(self):
        return False

    def compute(self, x, y):
        np.greater(x, self.threshold, out=y, casting="unsafe")

    def backward(self, top, propagate_down, bottom):
        pass


def _log_base(layer, base):
    """ln(base) in the layer's dtype; base -1 means e. Caffe's checks on the base."""
    if base == -1:
        return layer.dtype.type(1)
    if not base > 0:
        raise layer.error(f"base must be strictly positive (or -1 for e), got {base}")
    return layer.dtype.type(math.log(base))


@register_layer("Exp")
class ExpLayer(NeuronLayer):
    """exp_param {base b (-1 = e), scale a, shift s}: y = b^(a x + s), computed as
    b^s exp(ln(b) a x); backward dx = dy y ln(b) a."""

    def layer_setup(self, bottom, top):
        p, t = self.param.exp_param, self.dtype.type
        log_base = _log_base(self, p.base)
        self.inner = t(log_base * t(p.scale))
        if p.shift == 0:
            self.outer = t(1)
        elif p.base == -1:
            self.outer = t(math.exp(p.shift))
        else:
            self.outer = t(math.pow(p.base, p.shift))

    def backward_needs_input(self):
        return False

    def compute(self, x, y):
        expf(x if self.inner == 1 else x * self.inner, out=y)
        if self.outer != 1:
            y *= self.outer

    def gradient(self, x, y, dy, dx):
        np.multiply(y, dy, out=dx)
        if self.inner != 1:
            dx *= self.inner


@register_layer("Log")
class LogLayer(NeuronLayer):
    """log_param {base b (-1 = e), scale a, shift s}: y = log_b(a x + s); backward
    dx = dy a / (ln(b) (a x + s))."""

    def layer_setup(self, bottom, top):
        p, t = self.param.log_param, self.dtype.type
        log_base = _log_base(self, p.base)
        if log_base == 0:
            raise self.error("base 1 has no logarithm (1/ln(base) is infinite)")
        self.base_scale = t(1) / log_base
        self.input_scale, self.input_shift = t(p.scale), t(p.shift)
        self.backward_scale = self.input_scale / log_base

    def _argument(self, x):
        v = x
        if self.input_scale != 1:
            v = v * self.input_scale
        if self.input_shift != 0:
            v = v + self.input_shift
        return v

    def compute(self, x, y):
        logf(self._argument(x), out=y)
        if self.base_scale != 1:
            y *= self.base_scale

    def gradient(self, x, y, dy, dx):
        inverse = np.reciprocal(self._argument(x))
        if self.backward_scale != 1:
            inverse *= self.backward_scale
        np.multiply(dy, inverse, out=dx)


@register_layer("Power")
class PowerLayer(NeuronLayer):
    """power_param {power p, scale a, shift s}: y = (s + a x)^p. As in Caffe, p a == 0
    gives a constant, p == 1 an affine map, and the gradient p a (s + a x)^(p-1) is
    taken from y (y / (s + a x)), except for p == 2, where it is linear in x."""

    def layer_setup(self, bottom, top):
        p, t = self.param.power_param, self.dtype.type
        self.power, self.scale, self.shift = t(p.power), t(p.scale), t(p.shift)
        self.diff_scale = self.power * self.scale

    def _constant(self):
        return self.diff_scale == 0 or self.power == 1

    def backward_needs_input(self):
        return not self._constant()

    def compute(self, x, y):
        if self.diff_scale == 0:
            y[...] = 1 if self.power == 0 else math.pow(self.shift, self.power)
            return
        v = x
        if self.scale != 1:
            v = v * self.scale
        if self.shift != 0:
            v = v + self.shift
        if self.power != 1:
            powf(v, self.power, out=y)
        else:
            np.copyto(y, v)

    def gradient(self, x, y, dy, dx):
        if self.diff_scale == 0:
            dx[...] = 0
            return
        if self.power == 1:
            np.multiply(dy, self.diff_scale, out=dx)
            return
        if self.power == 2:
            g = x * (self.diff_scale * self.scale)
            if self.shift != 0:
                g += self.diff_scale * self.shift
        elif self.shift == 0:
            g = y / x
            g *= self.power
        else:
            v = x * self.scale if self.scale != 1 else x
            g = y / (v + self.shift)
            if self.diff_scale != 1:
                g *= self.diff_scale
        np.multiply(dy, g, out=dx)


@register_layer("Dropout")
class DropoutLayer(NeuronLayer):
    """dropout_param.dropout_ratio r: in TRAIN keep each x with probability 1 - r and
    scale it by 1/(1 - r) (inverted dropout); TEST is the identity. Fork fields:
    sample_weights_test (Bayesian SegNet) drops in TEST too; scale_train false
    (Faster R-CNN's fork) drops unscaled in TRAIN and scales by 1 - r in TEST."""

    def layer_setup(self, bottom, top):
        p = self.param.dropout_param
        self.ratio = p.dropout_ratio
        if not 0 <= self.ratio < 1:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio}")
        self.scale = self.dtype.type(1.0 / (1.0 - self.ratio))
        self.scale_train = p.scale_train
        self.random = self.phase == caffe_pb2.TRAIN or p.sample_weights_test

    def backward_needs_input(self):
        return False

    def compute(self, x, y):
        if self.random:
            keep = get_rng().random(x.shape, dtype=np.float32) < 1.0 - self.ratio
            self.mask = keep.astype(x.dtype)
            if self.scale_train:
                self.mask *= self.scale
        elif self.scale_train:
            self.mask = None
        else:
            self.mask = x.dtype.type(1.0 / float(self.scale))
        if self.mask is None:
            np.copyto(y, x)
        else:
            np.multiply(x, self.mask, out=y)

    def gradient(self, x, y, dy, dx):
        if self.mask is None:
            np.copyto(dx, dy)
        else:
            np.multiply(dy, self.mask, out=dx)
