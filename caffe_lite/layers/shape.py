"""Layers that change a blob's shape: Flatten, Reshape (views, no copy), Tile
(repeats a block of axes) and Permute (SSD's transpose); and AxisMixin, the axis
checks every axis-taking layer shares. Cutting and joining blobs is in concat_slice.py.

Flatten and Reshape make the top share the bottom's data and diff memory, as
Caffe does: no copy, the gradient reaches the bottom without a backward step,
and an in-place layer after them changes the bottom too (exactly what Caffe shows).
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
        if not -n <= axis < n:
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


@register_layer("Permute")
class PermuteLayer(Layer):
    """permute_param {order (repeated)}: the SSD fork's transpose. Axes not named are
    appended in increasing order; each axis at most once. Bottom of any shape; top
    shape = bottom shape[order], top = transpose(bottom, order). Backward transposes
    the diff back. The identity order shares the bottom's memory, as the fork does."""
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        n = bottom[0].num_axes
        order = [int(a) for a in self.param.permute_param.order]
        if any(a >= n for a in order):
            raise self.error(f"order {order} names an axis beyond the {n} axes of "
                             f"{bottom[0].shape}")
        if len(set(order)) != len(order):
            raise self.error(f"order {order} repeats an axis")
        self.order = tuple(order + [a for a in range(n) if a not in order])
        self.inverse = tuple(int(i) for i in np.argsort(self.order))
        shape = tuple(bottom[0].shape[a] for a in self.order)
        self.identity = self.order == tuple(range(n))
        if self.identity:
            share_blob(top[0], bottom[0], shape)
        else:
            top[0].reshape(shape)

    def forward(self, bottom, top):
        if not self.identity:
            np.copyto(top[0].data, bottom[0].data.transpose(self.order))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0] and not self.identity:
            np.copyto(bottom[0].diff, top[0].diff.transpose(self.inverse))


@register_layer("ShuffleChannel")
class ShuffleChannelLayer(Layer):
    """ShuffleNet's channel shuffle, shuffle_channel_param.group g: bottom (N, C, ...)
    with g | C; channel i g' + j of the view (N, g, C/g) goes to j g + i, i.e.
    y = x.reshape(N, g, C/g, ...).swapaxes(1, 2); backward is the inverse shuffle."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        self.group = self.param.shuffle_channel_param.group
        if self.group < 1:
            raise self.error("shuffle_channel_param.group must be >= 1")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) < 2 or shape[1] % self.group:
            raise self.error(f"group {self.group} must divide the channels of a bottom "
                             f"(N, C, ...), got shape {shape}")
        top[0].reshape(shape)

    def _shuffle(self, x, groups):
        N, C = x.shape[:2]
        grouped = x.reshape((N, groups, C // groups) + x.shape[2:])   # (N, g, C/g, ...)
        return grouped.swapaxes(1, 2).reshape(x.shape)                 # (N, C/g, g, ...)

    def forward(self, bottom, top):
        top[0].data[...] = self._shuffle(bottom[0].data, self.group)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            C = top[0].shape[1]
            bottom[0].diff[...] = self._shuffle(top[0].diff, C // self.group)
