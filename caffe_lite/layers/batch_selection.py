"""Layers that choose items of the batch by index: BatchReindex (gather items by
an index bottom, scatter-add the gradient back) and Filter (keep the items whose
selector is non-zero). Index and selector bottoms never take a gradient.
"""
import numpy as np

from .base import Layer, register_layer
from .shape import AxisMixin


def _check_index_range(layer, values, limit, blob_name, what):
    """Indices given as floats must lie in [0, limit) (compared as floats, then
    truncated, as Caffe does)."""
    bad = ~((values >= 0) & (values < limit))
    if bad.any():
        raise layer.error(f"{what} {values[bad].flat[0]:g} is out of range [0, {limit})",
                          blob=blob_name)
    return values.astype(np.intp)


@register_layer("BatchReindex")
class BatchReindexLayer(AxisMixin, Layer):
    """top[i] = bottom[0][indices[i]]: x (N, ...), indices (M,) -> (M, ...).
    Backward sums the diffs of repeated indices; the indices get no gradient."""
    exact_num_bottom = 2
    exact_num_top = 1

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1

    def reshape(self, bottom, top):
        if bottom[1].num_axes != 1:
            raise self.error(f"the index blob must be 1-D, got shape {bottom[1].shape}",
                             blob=self.bottom_name(1))
        if bottom[0].num_axes == 0:
            raise self.error("cannot pick items from a scalar", blob=self.bottom_name(0))
        top[0].reshape(bottom[1].shape[:1] + bottom[0].shape[1:])

    def _indices(self, bottom):
        return _check_index_range(self, bottom[1].data, bottom[0].shape[0],
                                  self.bottom_name(1), "index")

    def forward(self, bottom, top):
        np.take(bottom[0].data, self._indices(bottom), axis=0, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            diff = bottom[0].diff
            diff[...] = 0
            np.add.at(diff, self._indices(bottom), top[0].diff)


@register_layer("Filter")
class FilterLayer(AxisMixin, Layer):
    """Keeps the items n of bottoms[:-1] whose selector (last bottom, shape (N,) or
    (N, 1, ...)) is non-zero: k data bottoms -> k tops of shape (count_nonzero, ...)."""
    min_bottom = 2
    min_top = 1

    def layer_setup(self, bottom, top):
        if len(top) != len(bottom) - 1:
            raise self.error(f"needs one top per filtered bottom: {len(bottom) - 1} "
                             f"data bottom(s) but {len(top)} top(s)")
        self.first_reshape = True

    def allow_force_backward(self, bottom_index):
        return bottom_index != len(self.param.bottom) - 1

    def reshape(self, bottom, top):
        sel, sel_name = bottom[-1], self.bottom_name(len(bottom) - 1)
        if sel.num_axes == 0 or any(d != 1 for d in sel.shape[1:]):
            raise self.error(f"the selector must have shape (N,) or (N, 1, ...), got "
                             f"{sel.shape}", blob=sel_name)
        for i, b in enumerate(bottom[:-1]):
            if b.num_axes == 0 or b.shape[0] != sel.shape[0]:
                raise self.error(f"first dim of shape {b.shape} differs from the "
                                 f"selector's {sel.shape[0]}", blob=self.bottom_name(i))
        self.keep = np.flatnonzero(sel.data.reshape(-1))
        # like Caffe, the first reshape (at setup) keeps every item
        num = sel.shape[0] if self.first_reshape else len(self.keep)
        self.first_reshape = False
        for t, b in zip(top, bottom):
            t.reshape((num,) + b.shape[1:])

    def forward(self, bottom, top):
        for t, b in zip(top, bottom):
            np.take(b.data, self.keep, axis=0, out=t.data)

    def backward(self, top, propagate_down, bottom):
        for t, b, down in zip(top, bottom, propagate_down):
            if down:
                b.diff[...] = 0
                b.diff[self.keep] = t.diff
