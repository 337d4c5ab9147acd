"""Concat and Slice: join blobs along one axis, and cut one blob along an axis;
each is the other's backward. concat_dim / slice_dim (legacy) or axis.

Concat with one bottom and Slice with one top make the top share the bottom's
memory (``shape.share_blob``), as Caffe does.
"""
import numpy as np

from .base import Layer, register_layer
from .shape import AxisMixin, share_blob


def _legacy_or_axis(layer, blob, param, legacy_name):
    """Axis from ``axis`` or from the deprecated uint32 ``concat_dim``/``slice_dim``."""
    if param.HasField(legacy_name):
        axis = getattr(param, legacy_name)
        if axis >= blob.num_axes:
            raise layer.error(f"{legacy_name} {axis} is out of range for a "
                              f"{blob.num_axes}-axis blob of shape {blob.shape}",
                              blob=layer.bottom_name(0))
        return axis
    return layer.canonical_axis(blob, param.axis, "axis", layer.bottom_name(0))


@register_layer("Concat")
class ConcatLayer(AxisMixin, Layer):
    """Joins bottoms along concat_param axis (1; legacy concat_dim); every other
    axis must match. (N, C1, H, W) + (N, C2, H, W) -> (N, C1+C2, H, W)."""
    min_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        cp = self.param.concat_param
        if cp.HasField("axis") and cp.HasField("concat_dim"):
            raise self.error("give either concat_param axis or the deprecated "
                             "concat_dim, not both")

    def reshape(self, bottom, top):
        first = bottom[0]
        self.concat_axis = axis = _legacy_or_axis(self, first, self.param.concat_param,
                                                  "concat_dim")
        shape = list(first.shape)
        for i, b in enumerate(bottom[1:], 1):
            if b.num_axes != first.num_axes or any(
                    b.shape[j] != first.shape[j] for j in range(b.num_axes) if j != axis):
                raise self.error(f"bottom shapes must match except at axis {axis}: "
                                 f"{first.shape} vs {b.shape}", blob=self.bottom_name(i))
            shape[axis] += b.shape[axis]
        if len(bottom) == 1:
            share_blob(top[0], first, shape)
        else:
            top[0].reshape(shape)

    def _pieces(self, array, bottom):
        """Views of a top-shaped array, one per bottom, along the concat axis."""
        start = 0
        for b in bottom:
            stop = start + b.shape[self.concat_axis]
            index = (slice(None),) * self.concat_axis + (slice(start, stop),)
            yield array[index]
            start = stop

    def forward(self, bottom, top):
        if len(bottom) > 1:
            for part, b in zip(self._pieces(top[0].data, bottom), bottom):
                np.copyto(part, b.data)

    def backward(self, top, propagate_down, bottom):
        if len(bottom) > 1:
            for part, b, down in zip(self._pieces(top[0].diff, bottom), bottom,
                                     propagate_down):
                if down:
                    np.copyto(b.diff, part)


@register_layer("Slice")
class SliceLayer(AxisMixin, Layer):
    """Cuts the bottom along slice_param axis (1; legacy slice_dim) at the sorted
    slice_point list (one fewer than tops), or into equal parts without points."""
    exact_num_bottom = 1
    min_top = 1

    def layer_setup(self, bottom, top):
        sp = self.param.slice_param
        if sp.HasField("axis") and sp.HasField("slice_dim"):
            raise self.error("give either slice_param axis or the deprecated "
                             "slice_dim, not both")
        self.points = [int(p) for p in sp.slice_point]

    def reshape(self, bottom, top):
        x = bottom[0]
        self.slice_axis = axis = _legacy_or_axis(self, x, self.param.slice_param,
                                                 "slice_dim")
        size = x.shape[axis]
        if self.points:
            if len(self.points) != len(top) - 1:
                raise self.error(f"{len(self.points)} slice_point(s) for {len(top)} "
                                 f"tops: give one fewer point than tops")
            bounds = [0] + self.points + [size]
            if any(b <= a for a, b in zip(bounds[:-2], bounds[1:-1])) or \
                    bounds[-2] > size or len(top) > size:
                raise self.error(f"slice_point {self.points} must increase strictly "
                                 f"and stay within axis {axis} of size {size}",
                                 blob=self.bottom_name(0))
        else:
            if size % len(top):
                raise self.error(f"{len(top)} tops do not evenly divide axis {axis} of "
                                 f"size {size}", blob=self.bottom_name(0))
            step = size // len(top)
            bounds = [i * step for i in range(len(top) + 1)]
        self.bounds = bounds
        for t, (a, b) in zip(top, zip(bounds[:-1], bounds[1:])):
            shape = x.shape[:axis] + (b - a,) + x.shape[axis + 1:]
            if len(top) == 1:
                share_blob(t, x, shape)
            else:
                t.reshape(shape)

    def _piece(self, array, i):
        index = (slice(None),) * self.slice_axis + \
            (slice(self.bounds[i], self.bounds[i + 1]),)
        return array[index]

    def forward(self, bottom, top):
        if len(top) > 1:
            for i, t in enumerate(top):
                np.copyto(t.data, self._piece(bottom[0].data, i))

    def backward(self, top, propagate_down, bottom):
        if len(top) > 1 and propagate_down[0]:
            diff = bottom[0].diff
            for i, t in enumerate(top):
                np.copyto(self._piece(diff, i), t.diff)
