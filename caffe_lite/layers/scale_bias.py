"""Scale and Bias: multiply or add an operand broadcast over bottom[0].

The operand covers the axes [axis, axis + operand axes) of bottom[0]: it is either
bottom[1] (which then gets a gradient) or a learned blob shaped by num_axes.
Viewing bottom[0] as (outer, dim, inner) and the operand as (dim,) makes both
layers one broadcast each way.
"""
import numpy as np

from ..errors import CaffeLiteError
from ..fillers import fill
from ..proto import caffe_pb2
from .base import Layer, kept_copy, register_layer


class _OperandLayer(Layer):
    """What Scale and Bias share: the learned operand's shape and the
    (outer, dim, inner) view of bottom[0] around the operand."""
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1
    allows_in_place = True

    def canonical_axis(self, bottom, axis):
        try:
            return bottom[0].canonical_axis(axis)
        except CaffeLiteError as exc:
            raise self.error(exc.message, blob=self.param.bottom[0]) from None

    def operand_shape(self, bottom, axis, num_axes):
        """Shape of a learned operand: bottom[0]'s axes [axis, axis + num_axes)."""
        shape = bottom[0].shape
        axis = self.canonical_axis(bottom, axis)
        if num_axes < -1:
            raise self.error(f"num_axes must be >= 0, or -1 for all axes from axis; "
                             f"got {num_axes}")
        if num_axes >= 0 and len(shape) < axis + num_axes:
            raise self.error(f"operand of {num_axes} axes from axis {axis} extends past "
                             f"the bottom's shape {shape}", blob=self.param.bottom[0])
        return shape[axis:] if num_axes == -1 else shape[axis:axis + num_axes]

    def operand_view(self, bottom, operand, axis):
        """(outer, dim, inner) of bottom[0] for this operand (a scalar goes at axis
        0), after Caffe's shape checks."""
        shape, op_shape = bottom[0].shape, operand.shape
        axis = self.canonical_axis(bottom, axis) if op_shape else 0
        if shape[axis:axis + len(op_shape)] != tuple(op_shape):
            raise self.error(f"operand shape {op_shape} does not match the bottom's "
                             f"shape {shape} from axis {axis}",
                             blob=self.param.bottom[-1])
        outer = int(np.prod(shape[:axis], dtype=np.int64))
        return outer, operand.count, bottom[0].count // max(outer * operand.count, 1)

    def make_operand(self, shape, filler):
        blob = self.make_blob(shape)
        fill(blob, filler)
        return blob


def reduce_to_operand(values, view):
    """Sum (outer, dim, inner) values down to the operand's (dim,)."""
    return values.reshape(view).sum(axis=2).sum(axis=0)


@register_layer("Bias")
class BiasLayer(_OperandLayer):
    """bias_param {axis (1), num_axes (1; -1 = to the end; ignored with bottom[1]),
    filler (constant 0)}: y = x + b, b = bottom[1] or a learned blob."""

    def layer_setup(self, bottom, top):
        p = self.param.bias_param
        self.axis = p.axis
        if len(bottom) == 1:
            self.blobs = [self.make_operand(self.operand_shape(bottom, p.axis, p.num_axes),
                                            p.filler)]

    def _bias(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        self.view = self.operand_view(bottom, self._bias(bottom), self.axis)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        b = self._bias(bottom).data.reshape(self.view[1], 1)
        np.add(bottom[0].data.reshape(self.view), b, out=top[0].data.reshape(self.view))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0] and top[0] is not bottom[0]:
            np.copyto(bottom[0].diff, top[0].diff)
        if len(bottom) > 1 and propagate_down[1]:
            bottom[1].diff[...] = reduce_to_operand(top[0].diff, self.view).reshape(
                bottom[1].shape)
        elif len(bottom) == 1 and self.param_propagate_down[0]:
            self.blobs[0].diff[...] += reduce_to_operand(top[0].diff, self.view).reshape(
                self.blobs[0].shape)


@register_layer("Scale")
class ScaleLayer(_OperandLayer):
    """scale_param {axis (1), num_axes (1; -1 = to the end; ignored with bottom[1]),
    filler (constant 1), bias_term, bias_filler (constant 0)}: y = x s (+ b), s =
    bottom[1] or a learned blob; bias_term appends a learned bias blob shaped like s.
    Learned diffs accumulate (Caffe overwrites the scale's diff when the outer dim
    is 1 or the scale is as large as x); bottom[1]'s diff is written. In place
    keeps a copy of x for the scale's gradient, as Caffe, unless its backward never
    runs (forward_only: no loss below it, a lean net)."""
    _kept = None                                 # the buffer x is kept in, reused

    def layer_setup(self, bottom, top):
        p = self.param.scale_param
        self.axis = p.axis
        self.blobs = []
        if len(bottom) == 1:
            filler = p.filler if p.HasField("filler") else \
                caffe_pb2.FillerParameter(type="constant", value=1)
            self.blobs.append(self.make_operand(
                self.operand_shape(bottom, p.axis, p.num_axes), filler))
        self.bias_term = p.bias_term
        if self.bias_term:
            bias_axes = bottom[1].num_axes if len(bottom) > 1 else p.num_axes
            self.blobs.append(self.make_operand(
                self.operand_shape(bottom, p.axis, bias_axes), p.bias_filler))

    def _scale(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        self.view = self.operand_view(bottom, self._scale(bottom), self.axis)
        if self.bias_term:
            self.bias_view = self.operand_view(bottom, self.blobs[-1], self.axis)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.view)
        self.kept_input = None
        if top[0] is bottom[0] and not self.forward_only:
            self._kept = self.kept_input = kept_copy(self._kept, x)  # the gradient needs x
        y = top[0].data.reshape(self.view)
        np.multiply(x, self._scale(bottom).data.reshape(self.view[1], 1), out=y)
        if self.bias_term:
            y = top[0].data.reshape(self.bias_view)
            y += self.blobs[-1].data.reshape(self.bias_view[1], 1)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        if self.bias_term and self.param_propagate_down[-1]:
            bias = self.blobs[-1]
            bias.diff[...] += reduce_to_operand(dy, self.bias_view).reshape(bias.shape)
        learned = len(bottom) == 1
        scale = self._scale(bottom)
        if (learned and self.param_propagate_down[0]) or (not learned and propagate_down[1]):
            x = self.kept_input if top[0] is bottom[0] else bottom[0].data
            grad = reduce_to_operand(dy.reshape(self.view) * x.reshape(self.view),
                                     self.view).reshape(scale.shape)
            if learned:
                scale.diff[...] += grad
            else:
                scale.diff[...] = grad
        if propagate_down[0]:
            np.multiply(dy.reshape(self.view), scale.data.reshape(self.view[1], 1),
                        out=bottom[0].diff.reshape(self.view))


@register_layer("Axpy")
class AxpyLayer(Layer):
    """SENet's fused excitation: bottoms a (N, C, 1, 1) (or (N, C)), x and y
    (N, C, ...) -> a x + y. Backward: da = sum over space of dtop x, dx = a dtop,
    dy = dtop."""
    exact_num_bottom = 3
    exact_num_top = 1

    def reshape(self, bottom, top):
        a, x, y = (b.shape for b in bottom)
        if x != y or len(x) < 2 or a[:2] != x[:2] or any(d != 1 for d in a[2:]):
            raise self.error(f"needs a (N, C, 1, 1), x and y (N, C, ...) of one shape, "
                             f"got {a}, {x} and {y}")
        top[0].reshape(x)

    def _scale(self, bottom):
        x = bottom[1].data
        return bottom[0].data.reshape(x.shape[:2] + (1,) * (x.ndim - 2))

    def forward(self, bottom, top):
        out = self._scale(bottom) * bottom[1].data + bottom[2].data
        top[0].data[...] = out                    # top may be bottom[2] (in place)

    def backward(self, top, propagate_down, bottom):
        dtop = top[0].diff
        x = bottom[1].data
        if propagate_down[0]:
            axes = tuple(range(2, x.ndim))
            bottom[0].diff[...] = (dtop * x).sum(axis=axes).reshape(bottom[0].shape)
        if propagate_down[1]:
            bottom[1].diff[...] = self._scale(bottom) * dtop
        if propagate_down[2] and bottom[2] is not top[0]:
            bottom[2].diff[...] = dtop
