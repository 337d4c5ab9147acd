"""Pooling (MAX / AVE / STOCHASTIC), SPP (a pyramid of poolings, flattened and
concatenated) and R-FCN's PSROIPooling (kernels in ``ops.psroi``).

Windows, output sizes and the AVE/STOCHASTIC numerics live in ``ops.pooling``, MAX's in ``ops.max_pool``;
this module reads the parameters, checks them, and keeps what backward needs. The MAX
index mask costs several times the plain max, so it is built in forward only when a mask top
asks for it or the net is training; otherwise backward
rebuilds it from the (unchanged) bottom.

STOCHASTIC exists in Caffe on the GPU only. We follow its kernels: TRAIN samples one
cell per window with probability proportional to its value (the uniform draws come
from caffe_lite.rng, here) and routes the gradient there; TEST outputs
sum(x^2) / sum(x) with that formula's exact gradient.
"""
import numpy as np

from ..ops.max_pool import max_pool_backward, max_pool_forward
from ..ops.pooling import (
    ave_pool_backward,
    ave_pool_forward,
    pool_out_size,
    stochastic_expectation,
    stochastic_expectation_backward,
    stochastic_sample,
)
from ..ops.psroi import psroi_backward, psroi_forward
from ..proto import caffe_pb2
from ..rng import get_rng
from .base import Layer, register_layer

P = caffe_pb2.PoolingParameter
TRAIN = caffe_pb2.TRAIN


class PoolWindows:
    """One pooling geometry (per-axis kernel, stride, pad) and method, shared by
    Pooling and each SPP level. ``forward`` returns the state ``backward`` needs."""

    def __init__(self, method, kernel, stride, pad, ceil=True):
        self.method, self.kernel, self.stride, self.pad = method, kernel, stride, pad
        self.ceil = ceil

    def out_shape(self, spatial):
        return tuple(pool_out_size(*a, ceil=self.ceil)
                     for a in zip(spatial, self.kernel, self.stride, self.pad))

    def forward(self, x, out, phase, need_mask=False, mask_out=None):
        """x (N, C, H, W) -> out (N, C, OH, OW); returns the mask / sample index or None."""
        geometry = (self.kernel, self.stride, self.pad, out.shape[2:])
        if self.method == P.MAX:
            _, mask = max_pool_forward(x, *geometry, need_mask=need_mask, out=out,
                                       mask_out=mask_out)
            return mask
        if self.method == P.AVE:
            ave_pool_forward(x, *geometry, out=out)
            return None
        if phase == TRAIN:
            uniform = get_rng().random(out.shape).astype(x.dtype)
            return stochastic_sample(x, self.kernel, self.stride, uniform, out)
        stochastic_expectation(x, self.kernel, self.stride, out)
        return None

    def backward(self, dy, x, state, phase, dx):
        """dx (N, C, H, W) from dy (N, C, OH, OW); ``state`` is what forward returned."""
        if self.method == P.AVE:
            ave_pool_backward(dy, self.kernel, self.stride, self.pad, x.shape, out=dx)
            return
        if self.method == P.MAX and state is None:
            _, state = max_pool_forward(x, self.kernel, self.stride, self.pad, dy.shape[2:],
                                        need_mask=True)
        if self.method == P.MAX or phase == TRAIN:
            max_pool_backward(dy, state, x.shape, out=dx)   # route to the chosen cell
        else:
            stochastic_expectation_backward(x, self.kernel, self.stride, dy, dx)


# ==== layers =================================================================

def hw_param(param, name, default=None, one=None):
    """(h, w) from ``one`` (default ``name``) or ``name_h`` + ``name_w``, the only two
    forms Caffe accepts; None when neither (and no default) or both are given."""
    one = one or name
    has_one = param.HasField(one)
    has_h, has_w = param.HasField(name + "_h"), param.HasField(name + "_w")
    if has_h or has_w:
        if has_one or not (has_h and has_w):
            return None
        return getattr(param, name + "_h"), getattr(param, name + "_w")
    if not has_one and default is None:
        return None
    return (getattr(param, one),) * 2


@register_layer("Pooling")
class PoolingLayer(Layer):
    """pooling_param: pool (MAX, AVE, STOCHASTIC), kernel_size | kernel_h+kernel_w,
    stride (1), pad (0) (or their _h/_w forms), global_pooling, round_mode (CEIL) or the
    forks' ceil_mode; or ParseNet's bin_size | bin_h+bin_w (the geometry from the input). Bottom (N, C, H, W); top (N, C, OH, OW) and, for MAX, an optional
    mask top: the flat index h*W + w of each window's first maximum, as a float."""
    exact_num_bottom = 1
    min_top = 1
    max_top = 2

    def layer_setup(self, bottom, top):
        p = self.param.pooling_param
        self.method = p.pool
        if len(top) > 1 and self.method != P.MAX:
            raise self.error("only MAX pooling has a second (mask) top")
        self.global_pooling = p.global_pooling
        has_kernel = p.HasField("kernel_size") or p.HasField("kernel_h") or \
            p.HasField("kernel_w")
        self.bins = None
        if p.HasField("bin_size") or p.HasField("bin_h") or p.HasField("bin_w"):
            self.bins = hw_param(p, "bin", one="bin_size")
            if self.bins is None or min(self.bins) <= 0 or self.global_pooling:
                raise self.error("bins (ParseNet): give bin_size, or both bin_h and bin_w, "
                                 "positive, without global_pooling")
            self.windows = PoolWindows(self.method, None, (1, 1), (0, 0))
            self.state = None
            return
        if self.global_pooling and has_kernel:
            raise self.error("global_pooling takes the kernel from the input: do not "
                             "also give kernel_size/kernel_h/kernel_w")
        kernel = None if self.global_pooling else hw_param(p, "kernel", one="kernel_size")
        if not self.global_pooling and kernel is None:
            raise self.error("give kernel_size, or both kernel_h and kernel_w (not both forms)")
        pad, stride = hw_param(p, "pad", 0), hw_param(p, "stride", 1)
        if pad is None or stride is None:
            raise self.error("give pad (stride) or both pad_h and pad_w (stride_h and "
                             "stride_w), not both forms")
        if kernel is not None and min(kernel) <= 0 or min(stride) <= 0:
            raise self.error(f"kernel {kernel} and stride {stride} must be positive")
        if self.global_pooling and (pad != (0, 0) or stride != (1, 1)):
            raise self.error(f"global_pooling needs pad 0 and stride 1, got pad {pad} "
                             f"and stride {stride}")
        if pad != (0, 0) and self.method == P.STOCHASTIC:
            raise self.error("padding is implemented only for MAX and AVE pooling")
        if kernel is not None and (pad[0] >= kernel[0] or pad[1] >= kernel[1]):
            raise self.error(f"pad {pad} must be smaller than the kernel {kernel}")
        ceil = p.ceil_mode if p.HasField("ceil_mode") else p.round_mode == P.CEIL
        self.windows = PoolWindows(self.method, kernel, stride, pad, ceil)
        self.state = None

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.num_axes != 4:
            raise self.error(f"input must have 4 axes (N, C, H, W), got shape {x.shape}",
                             blob=self.param.bottom[0] if self.param.bottom else None)
        if self.global_pooling:
            self.windows.kernel = x.shape[2:]
        if self.bins is not None:
            self._bin_geometry(x.shape[2:])
        out = self.windows.out_shape(x.shape[2:])
        if min(out) <= 0:
            raise self.error(f"kernel {self.windows.kernel} with pad {self.windows.pad} "
                             f"does not fit the input {x.shape[2:]}")
        for blob in top:
            blob.reshape(x.shape[:2] + out)

    def _bin_geometry(self, hw):
        """ParseNet's bins: kernel ceil(H / bins), stride the kernel (1 when it is the
        whole axis), pad int(((bins - 1) stride + kernel - H) / 2)."""
        for b, size in zip(self.bins, hw):
            if b > size // 2:
                raise self.error(f"bin number {b} is more than half of the input size {size}")
        kernel = tuple(-(-size // b) for b, size in zip(self.bins, hw))
        stride = tuple(1 if k == size else k for k, size in zip(kernel, hw))
        pad = tuple(int(((b - 1) * s + k - size) / 2)
                    for b, s, k, size in zip(self.bins, stride, kernel, hw))
        if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
            raise self.error(f"bins {self.bins} on {hw} need pad {pad} >= kernel {kernel}")
        self.windows.kernel, self.windows.stride, self.windows.pad = kernel, stride, pad

    def forward(self, bottom, top):
        mask_out = top[1].data if len(top) > 1 else None
        need_mask = mask_out is not None or self.phase == TRAIN
        self.state = self.windows.forward(bottom[0].data, top[0].data, self.phase,
                                          need_mask, mask_out)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        state = top[1].data if len(top) > 1 else self.state     # Caffe reads the mask top
        if state is not None and state.shape != top[0].shape:
            state = None
        if state is None and self.method == P.STOCHASTIC and self.phase == TRAIN:
            raise self.error("backward needs the samples of a forward at this shape")
        self.windows.backward(top[0].diff, bottom[0].data, state, self.phase,
                              bottom[0].diff)


@register_layer("SPP")
class SPPLayer(Layer):
    """spp_param: pyramid_height, pool. Level l pools (N, C, H, W) into 2^l x 2^l bins
    (kernel = stride = ceil(H / 2^l), pad = (kernel * 2^l - H + 1) // 2); the levels are
    flattened and concatenated: top (N, sum_l C * bins_l). One level: top (N, C, 1, 1)."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.spp_param
        self.height = p.pyramid_height
        if self.height < 1:
            raise self.error("spp_param.pyramid_height must be at least 1")
        self.method = p.pool
        self.levels, self.states = [], []

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.num_axes != 4 or min(x.shape[2:]) <= 0:
            raise self.error(f"input must have 4 axes (N, C, H, W) and a non-empty plane, "
                             f"got shape {x.shape}")
        self.levels, sizes = [], []
        for level in range(self.height):
            bins = 2 ** level
            kernel = tuple(-(-s // bins) for s in x.shape[2:])
            pad = tuple((k * bins - s + 1) // 2 for k, s in zip(kernel, x.shape[2:]))
            if pad[0] >= kernel[0] or pad[1] >= kernel[1] or \
                    (pad != (0, 0) and self.method == P.STOCHASTIC):
                raise self.error(f"pyramid level {level} ({bins}x{bins} bins) needs pad "
                                 f"{pad} with kernel {kernel}: the input {x.shape[2:]} is "
                                 f"too small for pyramid_height {self.height}")
            windows = PoolWindows(self.method, kernel, kernel, pad)
            self.levels.append(windows)
            sizes.append(windows.out_shape(x.shape[2:]))
        self.out_shapes = [x.shape[:2] + s for s in sizes]
        if self.height == 1:
            top[0].reshape(self.out_shapes[0])
        else:
            top[0].reshape(x.shape[0], sum(int(np.prod(s[1:])) for s in self.out_shapes))

    def _parts(self, array):
        """Per level, its columns of the (N, total) top as an (N, C, OH, OW) array."""
        flat, start = array.reshape(array.shape[0], -1), 0
        for shape in self.out_shapes:
            width = int(np.prod(shape[1:]))
            yield flat, slice(start, start + width), shape
            start += width

    def forward(self, bottom, top):
        x = bottom[0].data
        self.states = []
        for windows, (flat, cols, shape) in zip(self.levels, self._parts(top[0].data)):
            y = np.empty(shape, x.dtype)
            self.states.append(windows.forward(x, y, self.phase, self.phase == TRAIN))
            flat[:, cols] = y.reshape(shape[0], -1)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, dx = bottom[0].data, bottom[0].diff
        level_dx = np.empty_like(dx)
        for i, (windows, (flat, cols, shape)) in enumerate(
                zip(self.levels, self._parts(top[0].diff))):
            state = self.states[i] if i < len(self.states) else None
            dy = np.ascontiguousarray(flat[:, cols]).reshape(shape)
            windows.backward(dy, x, state, self.phase, dx if i == 0 else level_dx)
            if i:
                dx += level_dx                        # Caffe's Split sums in level order


@register_layer("PSROIPooling")
class PSROIPoolingLayer(Layer):
    """R-FCN's position-sensitive ROI pooling. psroi_pooling_param {spatial_scale,
    output_dim K, group_size G}. Bottoms: maps (N, K G G, H, W), rois (R, 5) rows
    [batch, x1, y1, x2, y2] in image pixels (ends inclusive). Top (R, K, G, G): bin
    (ph, pw) of class channel k is the average of map channel (k G + ph) G + pw over
    the bin, 0 for an empty bin. Backward spreads dy / area over each bin (the
    fork's GPU backward; its CPU one is NOT_IMPLEMENTED); rois get no gradient."""
    exact_num_bottom = 2
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.psroi_pooling_param
        self.spatial_scale, self.output_dim, self.group_size = (
            p.spatial_scale, p.output_dim, p.group_size)
        if self.output_dim <= 0 or self.group_size <= 0:
            raise self.error("psroi_pooling_param needs output_dim > 0 and group_size > 0")

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    def reshape(self, bottom, top):
        G, K = self.group_size, self.output_dim
        shape = bottom[0].shape
        if len(shape) != 4 or shape[1] != K * G * G:
            raise self.error(f"needs maps (N, output_dim * group_size^2 = {K * G * G}, H, W), "
                             f"got {shape}", blob=self.param.bottom[0])
        if bottom[1].count % 5:
            raise self.error(f"rois must be (R, 5), got {bottom[1].shape}",
                             blob=self.param.bottom[1])
        top[0].reshape(bottom[1].count // 5, K, G, G)

    def _rois(self, bottom):
        return bottom[1].data.reshape(-1, 5)

    def forward(self, bottom, top):
        top[0].data[...] = psroi_forward(bottom[0].data, self._rois(bottom),
                                         self.spatial_scale, self.output_dim, self.group_size)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = psroi_backward(top[0].diff, self._rois(bottom),
                                                 bottom[0].shape, self.spatial_scale,
                                                 self.group_size)
