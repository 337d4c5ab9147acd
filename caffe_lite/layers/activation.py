"""Activation functions, the neuron layers that shape a response: the
piecewise-linear ReLU, PReLU (learned negative slope, per channel or shared)
Clip and ReLU6 (the MobileNet forks' clip at 6), and the smooth Sigmoid, TanH,
BNLL, ELU, Swish and Mish built on exp and tanh.
The NeuronLayer base (in place, kept inputs) is in neuron.py.

The smooth ones round like Caffe's own expression: float exp and tanh as glibc's
expf/tanhf (``ops.libm``), and what Caffe evaluates in double (Sigmoid's tanh,
BNLL's log) in float64 before rounding to the blob's dtype. Sigmoid, TanH and
Swish write their backward from y (ELU too when alpha >= 0), so in place costs
no copy of x.
"""
import numpy as np

from ..fillers import fill
from ..ops import clamp
from ..ops.libm import expf, tanhf
from ..proto import caffe_pb2
from .base import register_layer
from .neuron import NeuronLayer


@register_layer("ReLU")
class ReLULayer(NeuronLayer):
    """relu_param.negative_slope s: y = max(x, 0) + s min(x, 0); the gradient at
    x == 0 is s, as in Caffe."""

    def layer_setup(self, bottom, top):
        self.slope = self.param.relu_param.negative_slope

    def backward_needs_input(self):
        return self.slope < 0          # otherwise y > 0 exactly where x > 0

    def compute(self, x, y):
        if self.slope == 0:
            clamp.maximum(x, 0, out=y)
        else:
            y[...] = clamp.maximum(x, 0) + self.slope * clamp.minimum(x, 0)

    def gradient(self, x, y, dy, dx):
        positive = x > 0
        if self.slope == 0:
            np.multiply(dy, positive, out=dx)
        else:
            np.multiply(dy, slope_factor(positive, self.slope, x.dtype), out=dx)


def slope_factor(positive, slope, dtype):
    """1 where positive, else slope (Caffe's (x > 0) + slope (x <= 0)); arithmetic
    rather than np.where, which is slow on unpredictable masks."""
    factor = positive.astype(dtype)
    factor += np.multiply(~positive, slope, dtype=dtype)
    return factor


@register_layer("PReLU")
class PReLULayer(NeuronLayer):
    """prelu_param {filler (default constant 0.25), channel_shared}. Bottom (N, C, ...)
    with at least 2 axes; slope blob a of shape (C,), or () when channel_shared.
    y = max(x, 0) + a_c min(x, 0); the gradient at x == 0 uses a_c, and the slope
    gradient accumulates sum(dy x) over x <= 0. In place keeps a copy of x."""

    def layer_setup(self, bottom, top):
        p = self.param.prelu_param
        self._check_axes(bottom)
        self.channel_shared = p.channel_shared
        self.blobs = [self.make_blob(() if self.channel_shared else (bottom[0].shape[1],))]
        filler = p.filler if p.HasField("filler") else \
            caffe_pb2.FillerParameter(type="constant", value=0.25)
        fill(self.blobs[0], filler)

    def _check_axes(self, bottom):
        if bottom[0].num_axes < 2:
            raise self.error(f"needs a bottom with at least 2 axes (N, C, ...), got "
                             f"shape {bottom[0].shape}", blob=self.param.bottom[0])

    def reshape(self, bottom, top):
        self._check_axes(bottom)
        if not self.channel_shared and bottom[0].shape[1] != self.blobs[0].count:
            raise self.error(f"has {self.blobs[0].count} slopes but the bottom has "
                             f"{bottom[0].shape[1]} channels", blob=self.param.bottom[0])
        super().reshape(bottom, top)

    def _slopes(self, ndim):
        """The slopes broadcastable against (N, C, ...)."""
        a = self.blobs[0].data
        return a if self.channel_shared else a.reshape((1, -1) + (1,) * (ndim - 2))

    def compute(self, x, y):
        y[...] = np.maximum(x, 0) + self._slopes(x.ndim) * np.minimum(x, 0)

    def backward(self, top, propagate_down, bottom):
        x = self.forward_input(bottom, top)
        dy = top[0].diff
        # the slope gradient first: in place, the bottom diff overwrites dy
        if self.param_propagate_down[0]:
            contrib = dy * np.minimum(x, 0)                      # (N, C, ...)
            axes = None if self.channel_shared else (0,) + tuple(range(2, x.ndim))
            self.blobs[0].diff[...] += contrib.sum(axis=axes)
        if propagate_down[0]:
            np.multiply(dy, slope_factor(x > 0, self._slopes(x.ndim), x.dtype),
                        out=bottom[0].diff)


@register_layer("Clip")
class ClipLayer(NeuronLayer):
    """clip_param {min, max}: y = max(min, min(x, max)); the gradient passes at
    x == min and x == max."""

    def layer_setup(self, bottom, top):
        self.low = self.param.clip_param.min
        self.high = self.param.clip_param.max

    def compute(self, x, y):
        clamp.maximum(clamp.minimum(x, self.high), self.low, out=y)

    def gradient(self, x, y, dy, dx):
        np.multiply(dy, (x >= self.low) & (x <= self.high), out=dx)


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


@register_layer("ReLU6")
class ReLU6Layer(NeuronLayer):
    """The MobileNet forks' activation (no params): y = min(max(x, 0), 6); the
    gradient passes only for 0 < x < 6."""

    def compute(self, x, y):
        clamp.minimum(clamp.maximum(x, 0), 6, out=y)

    def gradient(self, x, y, dy, dx):
        np.multiply(dy, (x > 0) & (x < 6), out=dx)


@register_layer("Mish")
class MishLayer(NeuronLayer):
    """y = x tanh(softplus(x)), softplus(x) = log(1 + e^x), evaluated in float64;
    dy/dx = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2)."""

    def compute(self, x, y):
        wide = x.astype(np.float64)
        y[...] = wide * np.tanh(np.logaddexp(0, wide))

    def gradient(self, x, y, dy, dx):
        wide = x.astype(np.float64)
        t = np.tanh(np.logaddexp(0, wide))
        dx[...] = dy * (t + wide * sigmoid(wide) * (1 - t * t))
