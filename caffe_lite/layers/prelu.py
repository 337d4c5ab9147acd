"""PReLU: a ReLU whose negative slope is learned, per channel or shared."""
import numpy as np

from ..fillers import fill
from ..proto import caffe_pb2
from .base import register_layer
from .neuron import NeuronLayer, slope_factor


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
