"""Arithmetic neuron layers with base/scale/shift parameters: Exp, Log, Power.

Constants are derived in the blob's dtype in Caffe's order (float32 arithmetic for
float32 nets), exp/log/pow round like the C library's float functions, and each
forward/backward skips the multiplications Caffe skips, so results round like
Caffe's.
"""
import math

import numpy as np

from ..ops.libm import expf, logf, powf
from .base import register_layer
from .neuron import NeuronLayer


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
