"""Embed: a lookup table, i.e. an InnerProduct over one-hot inputs given as
integer indices."""
import numpy as np

from ..fillers import fill
from .base import Layer, register_layer


@register_layer("Embed")
class EmbedLayer(Layer):
    """embed_param: num_output N, input_dim K, bias_term (true), weight_filler,
    bias_filler. Indices (any shape S, integer values in [0, K) stored as floats)
    -> (S..., N) = weight[index] (+ bias). Weight (K, N) (InnerProduct's transpose),
    bias (N,). The indices get no gradient."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        ep = self.param.embed_param
        self.num_output, self.input_dim = ep.num_output, ep.input_dim
        if self.num_output <= 0:
            raise self.error("embed_param num_output must be positive")
        if self.input_dim <= 0:
            raise self.error("embed_param input_dim must be positive")
        self.bias_term = ep.bias_term
        self.blobs = [self.make_blob((self.input_dim, self.num_output))]
        fill(self.blobs[0], ep.weight_filler)
        if self.bias_term:
            self.blobs.append(self.make_blob((self.num_output,)))
            fill(self.blobs[1], ep.bias_filler)

    def allow_force_backward(self, bottom_index):
        return False

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape + (self.num_output,))

    def _indices(self, bottom):
        values = bottom[0].data.reshape(-1)
        in_range = (values >= 0) & (values < self.input_dim)
        index = np.where(in_range, values, 0).astype(np.intp)
        bad = ~in_range | (index != values)
        if bad.any():
            raise self.error(f"index {values[bad][0]:g} is not an integer in "
                             f"[0, input_dim={self.input_dim})",
                             blob=self.param.bottom[0] if self.param.bottom else None)
        return index

    def forward(self, bottom, top):
        y = top[0].data.reshape(-1, self.num_output)                 # (M, N)
        np.take(self.blobs[0].data, self._indices(bottom), axis=0, out=y)
        if self.bias_term:
            y += self.blobs[1].data

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(-1, self.num_output)                # (M, N)
        if self.param_propagate_down[0]:       # param diffs accumulate
            np.add.at(self.blobs[0].diff, self._indices(bottom), dy)
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff += dy.sum(axis=0)
