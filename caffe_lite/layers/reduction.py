"""Reductions over the trailing axes: Reduction (SUM, ASUM, SUMSQ, MEAN) and
ArgMax (top-k indices and/or values)."""
import numpy as np

from ..proto import caffe_pb2
from .base import Layer, register_layer
from .shape import AxisMixin

_OP = caffe_pb2.ReductionParameter


@register_layer("Reduction")
class ReductionLayer(AxisMixin, Layer):
    """reduction_param: operation (SUM), axis (0), coeff (1). Reduces every axis
    from axis on: (N, C, H, W) with axis 1 -> (N,); axis 0 -> a scalar ().
    MEAN scales by coeff / count(axis) (one factor, as Caffe does)."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        rp = self.param.reduction_param
        self.op = rp.operation
        if self.op not in (_OP.SUM, _OP.ASUM, _OP.SUMSQ, _OP.MEAN):
            raise self.error(f"unknown reduction operation {self.op}")

    def reshape(self, bottom, top):
        x = bottom[0]
        axis = self.canonical_axis(x, self.param.reduction_param.axis, "axis",
                                   self.bottom_name(0))
        top[0].reshape(x.shape[:axis])
        self.num, self.dim = x.count_range(0, axis), x.count_range(axis)
        coeff = self.dtype.type(self.param.reduction_param.coeff)
        if self.op == _OP.MEAN:
            coeff = coeff / self.dtype.type(self.dim)
        self.coeff = coeff

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.num, self.dim)
        y = top[0].data.reshape(self.num)
        if self.op in (_OP.SUM, _OP.MEAN):
            np.sum(x, axis=1, out=y)
        elif self.op == _OP.ASUM:
            np.sum(np.abs(x), axis=1, out=y)
        else:
            np.einsum("ij,ij->i", x, x, out=y)
        if self.coeff != 1:
            y *= self.coeff

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        scale = (top[0].diff.reshape(self.num, 1) * self.coeff).astype(self.dtype)
        dx = bottom[0].diff.reshape(self.num, self.dim)
        x = bottom[0].data.reshape(self.num, self.dim)
        if self.op in (_OP.SUM, _OP.MEAN):
            dx[...] = scale
        elif self.op == _OP.ASUM:
            np.multiply(np.sign(x), scale, out=dx)
        else:
            np.multiply(x, 2 * scale, out=dx)


@register_layer("ArgMax")
class ArgMaxLayer(AxisMixin, Layer):
    """argmax_param: top_k (1), out_max_val (false), axis (unset).

    With axis: (.., D, ..) -> (.., top_k, ..) holding indices, or values if
    out_max_val. Without: each item's C*H*W values flattened -> (N, 1, top_k)
    indices, or (N, 2, top_k) = indices then values, padded with 1s to the
    bottom's number of axes. Ties: (value, index) pairs sorted descending, so
    the larger index comes first. Caffe has no backward for it.
    """
    exact_num_bottom = 1
    exact_num_top = 1
    has_backward = False

    def layer_setup(self, bottom, top):
        ap = self.param.argmax_param
        self.top_k = ap.top_k
        self.out_max_val = ap.out_max_val
        self.has_axis = ap.HasField("axis")
        if self.top_k < 1:
            raise self.error("argmax_param top_k must be at least 1")

    def reshape(self, bottom, top):
        x = bottom[0]
        if self.has_axis:
            self.axis = self.canonical_axis(x, self.param.argmax_param.axis, "axis",
                                            self.bottom_name(0))
            dim = x.shape[self.axis]
            shape = list(x.shape)
            shape[self.axis] = self.top_k
        else:
            if x.num_axes == 0:
                raise self.error("needs a bottom with a first (batch) axis",
                                 blob=self.bottom_name(0))
            dim = x.count_range(1)
            shape = [1] * max(x.num_axes, 3)
            shape[0], shape[1], shape[2] = x.shape[0], 2 if self.out_max_val else 1, \
                self.top_k
        if self.top_k > dim:
            raise self.error(f"top_k {self.top_k} is larger than the {dim} values it "
                             f"chooses from", blob=self.bottom_name(0))
        top[0].reshape(shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.has_axis:
            values = x.reshape(bottom[0].count_range(0, self.axis), x.shape[self.axis], -1)
        else:
            values = x.reshape(x.shape[0], -1, 1)                  # (N, D, 1)
        index = top_k_indices(values, self.top_k)                  # (O, K, I)
        if self.has_axis:
            out = np.take_along_axis(values, index, 1) if self.out_max_val else index
            top[0].data[...] = out.reshape(top[0].shape)
        else:
            y = top[0].data.reshape(x.shape[0], -1, self.top_k)
            y[:, 0] = index[:, :, 0]
            if self.out_max_val:
                y[:, 1] = np.take_along_axis(values, index, 1)[:, :, 0]


def top_k_indices(values, k):
    """Indices (O, k, I) of the k largest of (O, D, I) values along D, ordered as
    Caffe's descending sort of (value, index) pairs: the larger index wins a tie."""
    dim = values.shape[1]
    if k == 1 and values.shape[2] > 1:
        # one pass per channel beats argmax over a strided axis
        peak = values.max(axis=1)
        index = np.zeros(peak.shape, np.intp)
        for d in range(1, dim):
            np.maximum(index, (values[:, d] == peak) * d, out=index)
        return index[:, None, :]
    flipped = values.transpose(0, 2, 1)[..., ::-1]                # (O, I, D)
    if k == 1:
        order = np.argmax(flipped, axis=-1)[..., None]
    else:
        order = np.argsort(-flipped, axis=-1, kind="stable")[..., :k]
    return (dim - 1 - order).transpose(0, 2, 1)
