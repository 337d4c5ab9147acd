"""Layers that change a blob's shape or cut and join blobs along one axis:
Flatten, Reshape, Concat, Slice (Tile and the routing layers: routing.py).

Flatten and Reshape (and Concat with one bottom, Slice with one top) make the top
share the bottom's data and diff memory, as Caffe does: no copy, the gradient
reaches the bottom without a backward step, and an in-place layer after them
changes the bottom too (exactly what Caffe shows).
"""
import numpy as np

from .base import Layer, register_layer


def share_blob(top, bottom, shape):
    """Make ``top`` a view of ``bottom``'s data and diff with a new shape."""
    top.reshape(shape)
    top.share_data(bottom)
    top.share_diff(bottom)


class AxisMixin:
    def canonical_axis(self, blob, axis, what="axis", blob_name=None):
        """Caffe's CanonicalAxisIndex with an error naming this layer."""
        n = blob.num_axes
        if not -n <= axis < max(n, 1):
            raise self.error(f"{what} {axis} is out of range for a {n}-axis blob of "
                             f"shape {blob.shape}", blob=blob_name)
        return axis + n if axis < 0 else axis

    def bottom_name(self, i):
        return self.param.bottom[i] if i < len(self.param.bottom) else f"bottom[{i}]"


@register_layer("Flatten")
class FlattenLayer(AxisMixin, Layer):
    """Merges axes [axis, end_axis] into one: flatten_param axis (1), end_axis (-1).
    (N, C, H, W) -> (N, C*H*W) by default."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        self.axis = self.param.flatten_param.axis
        self.end_axis = self.param.flatten_param.end_axis

    def reshape(self, bottom, top):
        x = bottom[0]
        start = self.canonical_axis(x, self.axis, "axis", self.bottom_name(0))
        end = self.canonical_axis(x, self.end_axis, "end_axis", self.bottom_name(0))
        shape = x.shape[:start] + (x.count_range(start, end + 1),) + x.shape[end + 1:]
        share_blob(top[0], x, shape)

    def forward(self, bottom, top):
        pass                                   # top shares the bottom's data

    def backward(self, top, propagate_down, bottom):
        pass                                   # ... and its diff


@register_layer("Reshape")
class ReshapeLayer(AxisMixin, Layer):
    """reshape_param shape replaces axes [axis, axis + num_axes) (num_axes -1: to
    the end); a 0 dim copies the bottom's dim at that position, one -1 is inferred."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        rp = self.param.reshape_param
        self.dims = [int(d) for d in rp.shape.dim]
        self.axis = rp.axis
        self.num_axes = rp.num_axes
        if self.dims.count(-1) > 1:
            raise self.error(f"reshape_param shape {self.dims} has more than one -1 "
                             f"(at most one dim can be inferred)")
        if any(d < -1 for d in self.dims):
            raise self.error(f"reshape_param shape {self.dims} has a dim below -1")
        if self.num_axes < -1:
            raise self.error(f"reshape_param num_axes must be >= 0 or -1 (all), got "
                             f"{self.num_axes}")

    def reshape(self, bottom, top):
        x, name = bottom[0], self.bottom_name(0)
        n = x.num_axes
        start = self.axis if self.axis >= 0 else n + self.axis + 1
        if not 0 <= start <= n:
            raise self.error(f"reshape_param axis {self.axis} is out of range for a "
                             f"{n}-axis blob of shape {x.shape}", blob=name)
        end = n if self.num_axes == -1 else start + self.num_axes
        if end > n:
            raise self.error(f"axis + num_axes = {end} is past the last axis of a "
                             f"{n}-axis blob of shape {x.shape}", blob=name)
        new = list(self.dims)
        for i, d in enumerate(new):
            if d == 0:
                if start + i >= n:
                    raise self.error(f"shape dim {i} is 0 (copy) but the bottom has no "
                                     f"axis {start + i} to copy (shape {x.shape})",
                                     blob=name)
                new[i] = x.shape[start + i]
        if -1 in new:
            known = x.count_range(0, start) * x.count_range(end) * \
                int(np.prod([d for d in new if d != -1], dtype=np.int64))
            if known == 0 or x.count % known:
                raise self.error(f"cannot infer the -1 dim: the bottom count {x.count} "
                                 f"(shape {x.shape}) is not divisible by the product of "
                                 f"the other dims ({known})", blob=name)
            new[new.index(-1)] = x.count // known
        shape = x.shape[:start] + tuple(new) + x.shape[end:]
        if int(np.prod(shape, dtype=np.int64)) != x.count:
            raise self.error(f"output shape {shape} has {int(np.prod(shape))} elements "
                             f"but the bottom (shape {x.shape}) has {x.count}", blob=name)
        share_blob(top[0], x, shape)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass


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
