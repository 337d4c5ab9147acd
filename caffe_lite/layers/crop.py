"""Crop: cut bottom[0] to the shape of bottom[1] from a given axis on (FCN's way of
aligning a deconvolution's output with the input)."""
from .base import Layer, register_layer


@register_layer("Crop")
class CropLayer(Layer):
    """crop_param: axis (2), offset (none: 0; one: every cropped axis; else one per axis
    from ``axis`` on). Bottoms: data (N, C, H, W, ...) and a reference blob whose sizes
    are taken for the axes >= axis; top: data[..., o_i : o_i + ref_i, ...]. The reference
    never gets a gradient."""
    exact_num_bottom = 2
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.crop_param
        ndim = bottom[0].num_axes
        if not -ndim <= p.axis < ndim:
            raise self.error(f"crop axis {p.axis} is out of range for a {ndim}-axis input",
                             blob=self._bottom_name(0))
        self.axis = p.axis % ndim
        self.offsets = list(p.offset)
        if len(self.offsets) > 1 and len(self.offsets) != ndim - self.axis:
            raise self.error(f"{len(self.offsets)} offsets given: give one, or exactly one "
                             f"per axis from axis {self.axis} on ({ndim - self.axis})")

    def _bottom_name(self, i):
        return self.param.bottom[i] if len(self.param.bottom) > i else None

    def reshape(self, bottom, top):
        data, ref = bottom[0].shape, bottom[1].shape
        if len(ref) != len(data):
            raise self.error(f"the reference blob has {len(ref)} axes, the data "
                             f"{len(data)}", blob=self._bottom_name(1))
        shape, self.region = list(data), []
        for i, size in enumerate(data):
            offset = 0
            if i >= self.axis:
                if self.offsets:
                    offset = self.offsets[0 if len(self.offsets) == 1 else i - self.axis]
                shape[i] = ref[i]
                if size - offset < ref[i]:
                    raise self.error(
                        f"crop of axis {i} runs past the input: offset {offset} + size "
                        f"{ref[i]} > {size} (data shape {data}, reference shape {ref})",
                        blob=self._bottom_name(0))
            self.region.append(slice(offset, offset + shape[i]))
        self.region = tuple(self.region)
        top[0].reshape(shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data[self.region]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dx = bottom[0].diff
            dx.fill(0)
            dx[self.region] = top[0].diff

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0
