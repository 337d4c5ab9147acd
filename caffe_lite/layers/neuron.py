"""Elementwise ("neuron") layers: one bottom, one top of the same shape, y = f(x).

The NeuronLayer base, and the piecewise-linear layers: ReLU, AbsVal, Clip,
Threshold, Dropout. Every one may run in place (bottom and top the same blob).
Caffe writes some backwards from y alone (Sigmoid, TanH, Exp, Swish); a layer whose
backward needs x keeps a copy of it when it runs in place, so in place gives the
same gradients as separate blobs (Caffe's own Power/Log/BNLL/Clip would read the
overwritten x). The smooth exp/tanh activations (Sigmoid, TanH, BNLL, ELU, Swish)
live in neuron_smooth.py, the arithmetic layers with base/scale/shift parameters in
neuron_math.py.
"""
import numpy as np

from ..proto import caffe_pb2
from ..rng import get_rng
from .base import Layer, register_layer


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
        if top[0] is bottom[0] and self.backward_needs_input():
            kept = self._kept_input
            if kept is None or kept.shape != x.shape or kept.dtype != x.dtype:
                kept = self._kept_input = np.empty_like(x)
            np.copyto(kept, x)
            x = kept
        self.compute(x, top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self.gradient(self.forward_input(bottom, top), top[0].data, top[0].diff,
                          bottom[0].diff)

    def forward_input(self, bottom, top):
        """The x of the last forward (its kept copy when that ran in place)."""
        if top[0] is bottom[0] and self.backward_needs_input():
            return self._kept_input
        return bottom[0].data


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
            np.maximum(x, 0, out=y)
        else:
            y[...] = np.maximum(x, 0) + self.slope * np.minimum(x, 0)

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


@register_layer("AbsVal")
class AbsValLayer(NeuronLayer):
    """y = |x|; gradient sign(x), 0 at 0. (Caffe refuses AbsVal in place; we keep x.)"""

    def compute(self, x, y):
        np.abs(x, out=y)

    def gradient(self, x, y, dy, dx):
        np.multiply(np.sign(x), dy, out=dx)


@register_layer("Clip")
class ClipLayer(NeuronLayer):
    """clip_param {min, max}: y = max(min, min(x, max)); the gradient passes at
    x == min and x == max."""

    def layer_setup(self, bottom, top):
        self.low = self.param.clip_param.min
        self.high = self.param.clip_param.max

    def compute(self, x, y):
        np.maximum(np.minimum(x, self.high), self.low, out=y)

    def gradient(self, x, y, dy, dx):
        np.multiply(dy, (x >= self.low) & (x <= self.high), out=dx)


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
