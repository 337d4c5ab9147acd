"""LSTMUnit: one LSTM cell step, the layer Caffe's unrolled LSTM is made of.

Bottoms c_prev (1, N, H), gate inputs (1, N, 4H) ordered i, f, o, g, cont (1, N);
tops c (1, N, H), h (1, N, H). c = f * c_prev + i * g, h = o * tanh(c), with
f = 0 where cont == 0. cont never takes a gradient.
"""
from ..ops.lstm import lstm_unit_backward, lstm_unit_forward
from .base import Layer, register_layer


def _name(names, i):
    return names[i] if i < len(names) else f"bottom[{i}]"


@register_layer("LSTMUnit")
class LSTMUnitLayer(Layer):
    exact_num_bottom = 3
    exact_num_top = 2

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def reshape(self, bottom, top):
        c_prev, gates, cont = bottom
        N = c_prev.shape[1] if c_prev.num_axes > 1 else -1
        for i, (blob, axes) in enumerate(zip(bottom, (3, 3, 2))):
            if blob.num_axes != axes or blob.shape[0] != 1 or blob.shape[1] != N:
                raise self.error(f"bottom {i} must have {axes} axes shaped (1, N, ...) "
                                 f"with N from c_prev, got {blob.shape}",
                                 blob=_name(self.param.bottom, i))
        if gates.shape[2] != 4 * c_prev.shape[2]:
            raise self.error(f"gates must have 4 x {c_prev.shape[2]} channels, got "
                             f"{gates.shape[2]}", blob=_name(self.param.bottom, 1))
        top[0].reshape(c_prev.shape)
        top[1].reshape(c_prev.shape)

    def forward(self, bottom, top):
        c, h = lstm_unit_forward(bottom[0].data[0], bottom[1].data[0], bottom[2].data[0])
        top[0].data[0] = c
        top[1].data[0] = h

    def backward(self, top, propagate_down, bottom):
        if not (propagate_down[0] or propagate_down[1]):
            return
        dc_prev, dgates = lstm_unit_backward(
            bottom[0].data[0], bottom[1].data[0], bottom[2].data[0], top[0].data[0],
            top[0].diff[0], top[1].diff[0])
        if propagate_down[0]:
            bottom[0].diff[0] = dc_prev
        if propagate_down[1]:
            bottom[1].diff[0] = dgates
