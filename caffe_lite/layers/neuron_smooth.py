"""Smooth activations: Sigmoid, TanH, BNLL, ELU and Swish, the neuron layers built on
exp and tanh.

Each rounds like Caffe's own expression: float exp and tanh as glibc's expf/tanhf
(``ops.libm``), and what Caffe evaluates in double (Sigmoid's tanh, BNLL's log) in
float64 before rounding to the blob's dtype. Sigmoid, TanH and Swish write their
backward from y (ELU too when alpha >= 0), so in place costs no copy of x. The
NeuronLayer base and the piecewise-linear layers live in neuron.py.
"""
import numpy as np

from ..ops.libm import expf, tanhf
from .base import register_layer
from .neuron import NeuronLayer, slope_factor


def sigmoid(x):
    """0.5 tanh(0.5 x) + 0.5 in float64, as Caffe evaluates it (its 0.5 is a double)."""
    wide = np.tanh(np.multiply(x, 0.5, dtype=np.float64))
    wide *= 0.5
    wide += 0.5
    return wide


@register_layer("Sigmoid")
class SigmoidLayer(NeuronLayer):
    """y = 0.5 tanh(0.5 x) + 0.5; backward dy y (1 - y) from y, so in place is free.
    Both round from float64 like Caffe's double expressions."""

    def backward_needs_input(self):
        return False

    def compute(self, x, y):
        y[...] = sigmoid(x)

    def gradient(self, x, y, dy, dx):
        dx[...] = np.multiply(dy * y, np.subtract(1.0, y, dtype=np.float64))


@register_layer("TanH")
class TanHLayer(NeuronLayer):
    """y = tanh(x), rounded as glibc's tanhf (bit for bit); backward from y."""

    def backward_needs_input(self):
        return False

    def compute(self, x, y):
        tanhf(x, out=y)

    def gradient(self, x, y, dy, dx):
        dx[...] = dy * (1 - y * y)


@register_layer("BNLL")
class BNLLLayer(NeuronLayer):
    """y = log(1 + e^x), as x + log(1 + e^-x) for x > 0; the gradient
    dy e^x / (e^x + 1) clamps the exponent at 50 (Caffe's kBNLL_THRESHOLD). The
    exponentials are float, the rest double, as in Caffe's expressions."""
    EXP_LIMIT = 50.0

    def compute(self, x, y):
        e = expf(-np.abs(x)).astype(np.float64)
        wide = np.log(e + 1.0)
        wide += np.maximum(x, 0, dtype=np.float64)
        y[...] = wide

    def gradient(self, x, y, dy, dx):
        e = expf(np.minimum(x, self.EXP_LIMIT))
        dx[...] = np.divide(dy * e, np.add(e, 1.0, dtype=np.float64))


@register_layer("ELU")
class ELULayer(NeuronLayer):
    """elu_param.alpha a: y = max(x, 0) + a (exp(min(x, 0)) - 1); gradient 1 for
    x > 0, else a + y."""

    def layer_setup(self, bottom, top):
        self.alpha = self.param.elu_param.alpha

    def backward_needs_input(self):
        return self.alpha < 0          # otherwise y > 0 exactly where x > 0

    def compute(self, x, y):
        y[...] = np.maximum(x, 0) + self.alpha * (expf(np.minimum(x, 0)) - 1)

    def gradient(self, x, y, dy, dx):
        np.multiply(dy, slope_factor(x > 0, self.alpha + y, x.dtype), out=dx)


@register_layer("Swish")
class SwishLayer(NeuronLayer):
    """swish_param.beta b: y = x sigmoid(b x); backward
    dy (b y + sigmoid (1 - b y)) from y and the kept sigmoid (double, as Caffe)."""

    def layer_setup(self, bottom, top):
        self.beta = self.param.swish_param.beta

    def backward_needs_input(self):
        return False

    def compute(self, x, y):
        self.sig = sigmoid(x * self.beta).astype(x.dtype)
        y[...] = x * self.sig

    def gradient(self, x, y, dy, dx):
        by = (self.beta * y).astype(np.float64)
        dx[...] = dy * (by + self.sig * (1.0 - by))
