"""Layers that repeat, pick or drop items without arithmetic: Tile, Silence,
Parameter, BatchReindex, Filter."""
import numpy as np

from .base import Layer, register_layer
from .shape import AxisMixin


@register_layer("Tile")
class TileLayer(AxisMixin, Layer):
    """Repeats the block of axes [axis, end) tile_param tiles times along axis
    (axis 1): (N, C, H, W) -> (N, tiles*C, H, W) as [x, x, ..., x]."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        tp = self.param.tile_param
        if not tp.HasField("tiles"):
            raise self.error("tile_param tiles (the number of copies) must be given")
        if tp.tiles <= 0:
            raise self.error(f"tile_param tiles must be positive, got {tp.tiles}")
        self.tiles = tp.tiles

    def reshape(self, bottom, top):
        x = bottom[0]
        axis = self.canonical_axis(x, self.param.tile_param.axis, "axis",
                                   self.bottom_name(0))
        self.outer, self.inner = x.count_range(0, axis), x.count_range(axis)
        top[0].reshape(x.shape[:axis] + (x.shape[axis] * self.tiles,) + x.shape[axis + 1:])

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.outer, 1, self.inner)
        np.copyto(top[0].data.reshape(self.outer, self.tiles, self.inner), x)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.outer, self.tiles, self.inner)
        dx = bottom[0].diff.reshape(self.outer, self.inner)
        np.copyto(dx, dy[:, 0])
        for t in range(1, self.tiles):          # Caffe's order of additions
            dx += dy[:, t]


@register_layer("Silence")
class SilenceLayer(Layer):
    """Consumes blobs nobody else uses (no tops); backward gives them zero diffs."""
    min_bottom = 1
    exact_num_top = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for b, down in zip(bottom, propagate_down):
            if down:
                b.diff[...] = 0


@register_layer("Parameter")
class ParameterLayer(Layer):
    """A learnable blob (parameter_param shape, zeros until weights load) exposed
    as the top. The top shares the blob's data and diff, so the consumer's gradient
    lands in the param diff directly, as in Caffe."""
    exact_num_bottom = 0
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        self.dtype = top[0].dtype
        shape = [int(d) for d in self.param.parameter_param.shape.dim]
        if any(d < 0 for d in shape):
            raise self.error(f"parameter_param shape {shape} has a negative dim")
        self.blobs = [self.make_blob(shape)]

    def reshape(self, bottom, top):
        top[0].reshape(self.blobs[0].shape)

    def forward(self, bottom, top):
        # share again each pass: the net may swap in a shared param blob
        top[0].share_data(self.blobs[0])
        top[0].share_diff(self.blobs[0])

    def backward(self, top, propagate_down, bottom):
        pass


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
