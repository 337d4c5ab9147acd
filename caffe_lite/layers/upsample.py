"""Upsampling layers of the segmentation forks: Unpooling (DeconvNet), Upsample
(SegNet / ENet) and Interp (PSPNet / DeepLab). Semantics: conformance/README-forks.md.

Max unpooling scatters by a Pooling mask (flat index into the output plane, last write
wins); AVE/TILE unpooling are AVE pooling's adjoint window kernels; Interp is a
separable bilinear resize. Mask bottoms never receive a gradient.
"""
import numpy as np

from ..ops.pooling import ave_pool_backward, ave_pool_forward
from ..ops.unpool_parsenet import unpool_backward, unpool_forward
from ..ops.upsample import (
    gather,
    interp_backward,
    interp_forward,
    plane_index,
    scatter_last,
    window_scatter_add,
)
from ..proto import caffe_pb2
from .base import Layer, register_layer
from .pooling import hw_param

U = caffe_pb2.UnpoolingParameter


class _MaskScatter(Layer):
    """Shared by Unpooling (MAX) and Upsample: top[index[i]] = bottom[i] per plane."""

    def _blob(self, i):
        return self.param.bottom[i] if len(self.param.bottom) > i else None

    def _check_inputs(self, bottom):
        if bottom[0].num_axes != 4:
            raise self.error(f"input must have 4 axes (N, C, H, W), got {bottom[0].shape}",
                             blob=self._blob(0))
        if len(bottom) > 1 and bottom[1].shape != bottom[0].shape:
            raise self.error(f"the mask has shape {bottom[1].shape} but the data has "
                             f"{bottom[0].shape}; they must be equal", blob=self._blob(1))

    def _indices(self, mask, plane):
        """The mask's flat indices (N, C, L), checked against the output plane."""
        index = plane_index(mask.reshape(mask.shape[0], mask.shape[1], -1))
        bad = (index < 0) | (index >= plane)
        if bad.any():
            value = mask.reshape(index.shape)[bad][0]
            raise self.error(f"mask index {value:g} is outside the {self.out_hw[0]}x"
                             f"{self.out_hw[1]} output plane (the pooling that made the "
                             f"mask had a different input size?)", blob=self._blob(1))
        return index

    def _scatter(self, x, index, top):
        N, C = x.shape[:2]
        scatter_last(x.reshape(N, C, -1), index, self.plane, out=top.data.reshape(N, C, -1))

    def _gather(self, top, index, bottom):
        N, C = bottom.shape[:2]
        gather(top.diff.reshape(N, C, -1), index, out=bottom.diff.reshape(N, C, -1))

    @property
    def plane(self):
        return self.out_hw[0] * self.out_hw[1]

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0


@register_layer("Unpooling")
class UnpoolingLayer(_MaskScatter):
    """unpooling_param: unpool (MAX, AVE, TILE), kernel_size | kernel_h+kernel_w and
    unpool_size | unpool_h+unpool_w (both required), stride (1), pad (must be 0).
    Bottom (N, C, H, W) [+ MAX mask of the same shape]; top (N, C, unpool_h, unpool_w).
    MAX: scatter by the mask, or without one to each window's clamped top-left cell.
    AVE: each window's clipped cells get x / clipped area; TILE: x. Backward of AVE and
    TILE alike: window sum / clipped area (the fork's rule, not TILE's adjoint)."""
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.unpooling_param
        self.method = p.unpool
        if self.method not in (U.MAX, U.AVE, U.TILE):
            raise self.error(f"unpool method {U.UnpoolMethod.Name(self.method)} is not "
                             f"implemented (MAX, AVE and TILE are)")
        if len(bottom) > 1 and self.method != U.MAX:
            raise self.error("only MAX unpooling takes a mask bottom")
        self.kernel = hw_param(p, "kernel", one="kernel_size")
        self.stride = hw_param(p, "stride", 1)
        pad = hw_param(p, "pad", 0)
        self.out_hw = hw_param(p, "unpool", one="unpool_size")
        if self.kernel is None or min(self.kernel) <= 0:
            raise self.error("Unpooling needs a kernel: kernel_size, or both kernel_h and "
                             "kernel_w (positive; not both forms)")
        if self.out_hw is None or min(self.out_hw) <= 0:
            raise self.error("Unpooling needs the output size: unpool_size, or both "
                             "unpool_h and unpool_w (positive; not both forms)")
        if self.stride is None or min(self.stride) <= 0:
            raise self.error("give a positive stride, or both stride_h and stride_w")
        if pad != (0, 0):
            raise self.error(f"Unpooling supports only pad 0, got {pad}")

    def reshape(self, bottom, top):
        self._check_inputs(bottom)
        H, W = bottom[0].shape[2:]
        if self.method != U.MAX and ((H - 1) * self.stride[0] >= self.out_hw[0] or
                                     (W - 1) * self.stride[1] >= self.out_hw[1]):
            raise self.error(f"{H}x{W} windows with stride {self.stride} start outside "
                             f"the {self.out_hw[0]}x{self.out_hw[1]} output",
                             blob=self._blob(0))
        top[0].reshape(bottom[0].shape[:2] + self.out_hw)

    def _unmasked_index(self, shape):
        """Without a mask: each input goes to its window's top-left cell, clamped."""
        (H, W), (OH, OW) = shape[2:], self.out_hw
        rows = np.minimum(np.arange(H) * self.stride[0], OH - 1)
        cols = np.minimum(np.arange(W) * self.stride[1], OW - 1)
        index = (rows[:, None] * OW + cols).reshape(1, 1, -1)
        return np.broadcast_to(index, shape[:2] + (H * W,))

    def _index(self, bottom):
        if len(bottom) > 1:
            return self._indices(bottom[1].data, self.plane)
        return self._unmasked_index(bottom[0].shape)

    def forward(self, bottom, top):
        # The fork adds AVE/TILE into a top it never clears, so a second forward doubles
        # the output; we clear it and give the first forward's result every time.
        x = bottom[0].data
        if self.method == U.MAX:
            self._scatter(x, self._index(bottom), top[0])
        elif self.method == U.AVE:
            ave_pool_backward(x, self.kernel, self.stride, 0, top[0].shape, out=top[0].data)
        else:
            window_scatter_add(x, self.kernel, self.stride, self.out_hw, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.method == U.MAX:
            self._gather(top[0], self._index(bottom), bottom[0])
        else:                       # AVE and TILE: window mean of the top diff
            ave_pool_forward(top[0].diff, self.kernel, self.stride, 0, bottom[0].shape[2:],
                             out=bottom[0].diff)


@register_layer("Upsample")
class UpsampleLayer(_MaskScatter):
    """upsample_param: upsample_h + upsample_w, else scale (2) or scale_h + scale_w with
    pad_out_h/_w (subtract 1; scale 2 only). Bottoms: data (N, C, H, W) and its Pooling
    mask (same shape); top (N, C, OH, OW), zero but at the mask's cells."""
    exact_num_bottom = 2
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.upsample_param
        self.size = None
        if p.HasField("upsample_h") and p.HasField("upsample_w"):
            self.size = (p.upsample_h, p.upsample_w)
            if min(self.size) <= 1:
                raise self.error(f"upsample_h/upsample_w must be > 1, got {self.size}")
            return
        if p.HasField("scale_h") or p.HasField("scale_w"):
            if p.HasField("scale") or not (p.HasField("scale_h") and p.HasField("scale_w")):
                raise self.error("give scale, or both scale_h and scale_w (not both forms)")
            self.scale = (p.scale_h, p.scale_w)
        else:
            self.scale = (p.scale, p.scale)
        if min(self.scale) <= 1:
            raise self.error(f"the scale must be > 1, got {self.scale}")
        self.pad_out = (int(p.pad_out_h), int(p.pad_out_w))
        for pad, scale, axis in zip(self.pad_out, self.scale, "hw"):
            if pad and scale != 2:
                raise self.error(f"pad_out_{axis} needs scale_{axis} == 2, got {scale}")

    def reshape(self, bottom, top):
        # The fork freezes a scale-derived size at the first reshape; we follow the input.
        self._check_inputs(bottom)
        H, W = bottom[0].shape[2:]
        self.out_hw = self.size or (H * self.scale[0] - self.pad_out[0],
                                    W * self.scale[1] - self.pad_out[1])
        top[0].reshape(bottom[0].shape[:2] + tuple(self.out_hw))

    def forward(self, bottom, top):
        self._scatter(bottom[0].data, self._indices(bottom[1].data, self.plane), top[0])

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self._gather(top[0], self._indices(bottom[1].data, self.plane), bottom[0])


@register_layer("Interp")
class InterpLayer(Layer):
    """interp_param: shrink_factor and/or zoom_factor (both: shrink, then zoom), else
    height + width; pad_beg/pad_end <= 0 crop both axes first. Bottom (N, C, H, W); top
    (N, C, OH, OW) by bilinear interpolation with aligned corners (point sampling when
    shrinking, no anti-aliasing)."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.interp_param
        if p.pad_beg > 0 or p.pad_end > 0:
            raise self.error(f"pad_beg/pad_end must be <= 0 (cropping only), got "
                             f"{p.pad_beg}/{p.pad_end}")
        self.pad_beg, self.pad_end = p.pad_beg, p.pad_end
        self.shrink = p.shrink_factor if p.HasField("shrink_factor") else None
        self.zoom = p.zoom_factor if p.HasField("zoom_factor") else None
        self.size = (p.height, p.width) if p.HasField("height") and p.HasField("width") \
            else None
        if self.shrink is None and self.zoom is None and self.size is None:
            raise self.error("give shrink_factor and/or zoom_factor, or both height and width")
        if (self.shrink is not None and self.shrink < 1) or \
                (self.zoom is not None and self.zoom < 1):
            raise self.error(f"shrink_factor ({self.shrink}) and zoom_factor ({self.zoom}) "
                             f"must be >= 1")

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.num_axes != 4:
            raise self.error(f"input must have 4 axes (N, C, H, W), got {x.shape}")
        self.eff = tuple(s + self.pad_beg + self.pad_end for s in x.shape[2:])
        out = self.eff
        if self.shrink is None and self.zoom is None:
            out = self.size
        if self.shrink is not None:
            out = tuple((s - 1) // self.shrink + 1 for s in out)
        if self.zoom is not None:
            out = tuple(s + (s - 1) * (self.zoom - 1) for s in out)
        if min(self.eff) <= 0 or min(out) <= 0:
            raise self.error(f"input {x.shape[2:]} cropped by {self.pad_beg}/{self.pad_end} "
                             f"gives {self.eff} and output {out}: both must be positive")
        self.out_hw = out
        top[0].reshape(x.shape[:2] + tuple(out))

    def forward(self, bottom, top):
        interp_forward(bottom[0].data, -self.pad_beg, self.eff, self.out_hw,
                       out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            interp_backward(top[0].diff, -self.pad_beg, self.eff, bottom[0].shape,
                            out=bottom[0].diff)


@register_layer("UnPooling")
class ParseNetUnPoolingLayer(Layer):
    """ParseNet's UnPooling (weiliu89/caffe branch fcn; a different layer from
    DeconvNet's Unpooling). unpooling_param: unpool FIXED, DIV or REP;
    out_kernel_size | out_kernel_h+out_kernel_w, out_stride (1) | out_stride_h+
    out_stride_w, out_pad (0) | out_pad_h+out_pad_w. With a second bottom (only its
    size is read) kernel = stride = ceil(H1 / H0) (stride 1 where H0 is 1) and pad =
    floor(((H0 - 1) stride + kernel - H1) / 2), per axis: ParseNet's global-context
    unpooling. Top (N, C, (H - 1) stride - 2 pad + kernel, ...). Window rules in
    ops/unpool_parsenet.py."""
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1
    METHODS = {U.FIXED: "FIXED", U.DIV: "DIV", U.REP: "REP"}

    def layer_setup(self, bottom, top):
        p = self.param.unpooling_param
        if p.unpool not in self.METHODS:
            raise self.error(f"UnPooling (ParseNet) takes unpool FIXED, DIV or REP, got "
                             f"{U.UnpoolMethod.Name(p.unpool)}")
        self.method = self.METHODS[p.unpool]

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    def _geometry(self, bottom):
        p = self.param.unpooling_param
        if len(bottom) > 1:
            (H0, W0), (H1, W1) = bottom[0].shape[2:], bottom[1].shape[2:]
            kernel = (-(-H1 // H0), -(-W1 // W0))
            stride = tuple(1 if k == size else k for k, size in zip(kernel, (H1, W1)))
            pad = tuple(((n - 1) * s + k - size) // 2 for n, s, k, size in
                        zip((H0, W0), stride, kernel, (H1, W1)))
        else:
            if p.HasField("out_kernel_size") == (p.HasField("out_kernel_h") and
                                                 p.HasField("out_kernel_w")):
                raise self.error("give out_kernel_size, or out_kernel_h and out_kernel_w "
                                 "(one form), or a second bottom")
            kernel = hw_param(p, "out_kernel", one="out_kernel_size")
            stride = hw_param(p, "out_stride", 1)
            pad = hw_param(p, "out_pad", 0)
            if kernel is None or min(kernel) <= 0 or stride is None or pad is None:
                raise self.error("out_kernel, out_stride and out_pad need one value or "
                                 "both _h and _w, kernel positive")
        if max(pad) > 0 and (pad[0] >= kernel[0] or pad[1] >= kernel[1]):
            raise self.error(f"out_pad {pad} must be smaller than the kernel {kernel}")
        return kernel, stride, pad

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"input must have 4 axes (N, C, H, W), got {bottom[0].shape}")
        self.kernel, self.stride, self.pad = self._geometry(bottom)
        H, W = bottom[0].shape[2:]
        self.out_hw = tuple((n - 1) * s - 2 * q + k for n, s, q, k in
                            zip((H, W), self.stride, self.pad, self.kernel))
        if min(self.out_hw) <= 0:
            raise self.error(f"the output would be {self.out_hw}")
        top[0].reshape(bottom[0].shape[:2] + self.out_hw)

    def forward(self, bottom, top):
        top[0].data[...] = unpool_forward(bottom[0].data, self.method, self.kernel,
                                          self.stride, self.pad, self.out_hw)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = unpool_backward(top[0].diff, self.method, self.kernel,
                                                  self.stride, self.pad,
                                                  bottom[0].shape[2:])
