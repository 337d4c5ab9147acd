"""Convolution, Deconvolution and Im2col: the ConvolutionParameter read once, the
shapes, and calls into the kernels of ``ops/im2col.py`` and ``ops/conv_gemm.py``
(sizes and workspaces from ``ops/geometry.py``).

convolution_param fields read: num_output, bias_term, kernel_size / kernel_h+kernel_w,
stride / stride_h+stride_w, pad / pad_h+pad_w (each once, or once per spatial axis),
dilation, group, axis, weight_filler, bias_filler; the forks' hole (DeepLab-v1) and
filter_stride (ParseNet) as dilation once loading has upgraded them
(formats.upgrade_net, which every Net runs). The per-axis geometry fields are parsed
and checked once, in setup (``parse_geometry``), in any form Caffe accepts: the
repeated field given once or once per spatial axis, or ``<name>_h``/``<name>_w``
(2-D only).

Shapes: bottom (*lead, C, *S) with the channel axis at ``axis``; the leading axes are
folded into one batch axis N. Top (*lead, num_output, *O).
"""
from __future__ import annotations

from math import prod
from typing import Callable

from ..fillers import fill
from ..ops import deconv_fast
from ..ops.conv_gemm import conv_backward, conv_forward, deconv_backward, deconv_forward
from ..ops.geometry import Workspace, conv_out_size, deconv_out_size
from ..ops.im2col import col2im, im2col
from .base import Layer, register_layer

# ==== convolution_param's geometry ===========================================

def _axis_values(layer, cp, name, field, nd, default):
    """One value per spatial axis: ``<name>_h``/``<name>_w`` (2-D only) or the repeated
    ``field`` given once or once per axis; ``default`` when absent (None: required)."""
    values = list(getattr(cp, field))
    if name != "dilation" and (cp.HasField(name + "_h") or cp.HasField(name + "_w")):
        if nd != 2:
            raise layer.error(f"{name}_h and {name}_w can only be used for 2-D convolution "
                              f"(the input has {nd} spatial axes)")
        if values:
            raise layer.error(f"give either {field} or {name}_h/{name}_w, not both")
        values = [getattr(cp, name + "_h"), getattr(cp, name + "_w")]
    elif not values:
        if default is None and nd > 0:
            raise layer.error("the kernel size is required: set kernel_size or "
                              "kernel_h and kernel_w")
        values = [default] * nd
    elif len(values) == 1:
        values = values * nd
    elif len(values) != nd:
        raise layer.error(f"{field} must be given once or once per spatial axis ({nd}), "
                          f"got {len(values)} values")
    if name != "pad" and any(v <= 0 for v in values):
        raise layer.error(f"{field} must be > 0 on every spatial axis, got {values}")
    return tuple(int(v) for v in values)


_FORK_DILATION = tuple(f + axis for f in ("hole", "filter_stride") for axis in ("", "_h", "_w"))


def parse_geometry(layer, cp, nd):
    """(kernel, stride, pad, dilation) tuples with one int per spatial axis."""
    for field in _FORK_DILATION:
        if cp.HasField(field):
            raise layer.error(f"convolution_param {field} is a fork's spelling of dilation "
                              f"that loading rewrites (formats.upgrade_net); build the layer "
                              f"from an upgraded NetParameter")
    kernel = _axis_values(layer, cp, "kernel", "kernel_size", nd, None)
    stride = _axis_values(layer, cp, "stride", "stride", nd, 1)
    pad = _axis_values(layer, cp, "pad", "pad", nd, 0)
    dilation = _axis_values(layer, cp, "dilation", "dilation", nd, 1)
    return kernel, stride, pad, dilation


# ==== the layers =============================================================

class _ConvGeometry(Layer):
    """The channel axis and the per-axis kernel/stride/pad/dilation of convolution_param,
    shared by the three layers; the leading axes before ``axis`` fold into N."""

    def read_geometry(self, bottom):
        cp = self.param.convolution_param
        self.axis = bottom[0].canonical_axis(cp.axis)
        self.num_spatial = bottom[0].num_axes - self.axis - 1
        self.kernel, self.stride, self.pad, self.dilation = parse_geometry(
            self, cp, self.num_spatial)
        return cp

    def bottom_name(self, i=0):
        return self.param.bottom[i] if i < len(self.param.bottom) else None

    def shape_input(self, bottom, out_size):
        """Check bottom 0 and set num, in_spatial, out_spatial (out_size per axis)."""
        shape = bottom[0].shape
        if len(shape) != self.axis + 1 + self.num_spatial:
            raise self.error(f"the input's number of axes may not change: set up with "
                             f"{self.axis + 1 + self.num_spatial}, got shape {shape}",
                             blob=self.bottom_name())
        self.num = bottom[0].count_range(0, self.axis)
        self.in_spatial = shape[self.axis + 1:]
        self.out_spatial = tuple(out_size(*a) for a in zip(
            self.in_spatial, self.kernel, self.stride, self.pad, self.dilation))
        if min(self.out_spatial, default=1) <= 0:
            raise self.error(f"input spatial shape {self.in_spatial} gives an empty output "
                             f"{self.out_spatial} (kernel {self.kernel}, stride {self.stride}, "
                             f"pad {self.pad}, dilation {self.dilation})", blob=self.bottom_name())

    def batch_view(self, array, channels, spatial):
        """(*lead, C, *S) -> (N, C, *S) view."""
        return array.reshape((self.num, channels) + tuple(spatial))


class BaseConvolution(_ConvGeometry):
    """Weights and shapes shared by Convolution and Deconvolution.

    Weights: Convolution (num_output, C/G, *K); Deconvolution (C, num_output/G, *K)
    (``reverse``). Bias (num_output,). Every bottom is convolved with the same weights.
    """
    min_bottom = 1
    min_top = 1
    equal_num_bottom_top = True
    reverse = False
    out_size: Callable[..., int] | None = None      # per-axis output size function

    def layer_setup(self, bottom, top):
        cp = self.read_geometry(bottom)
        self.channels = bottom[0].shape[self.axis]
        self.num_output, self.bias_term = cp.num_output, cp.bias_term
        self.group = self.group_of(cp)
        if self.num_output <= 0:
            raise self.error("num_output must be > 0")
        if self.group <= 0 or self.channels % self.group or self.num_output % self.group:
            raise self.error(f"group {self.group} must divide both the input channels "
                             f"({self.channels}) and num_output ({self.num_output})",
                             blob=self.bottom_name())
        G = self.group
        w_shape = ((self.channels, self.num_output // G) if self.reverse else
                   (self.num_output, self.channels // G)) + self.kernel
        self.blobs = [self.make_blob(w_shape)]
        fill(self.blobs[0], cp.weight_filler)
        if self.bias_term:
            self.blobs.append(self.make_blob((self.num_output,)))
            fill(self.blobs[1], cp.bias_filler)
        self.param_propagate_down = [True] * len(self.blobs)
        self.workspace = Workspace()

    def group_of(self, cp):
        """convolution_param.group (ConvolutionDepthwise forces its own)."""
        return cp.group

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if shape != getattr(self, "_checked_shape", None) or len(bottom) > 1:
            self._check_input(bottom, shape)
        for blob in top:
            blob.reshape(shape[:self.axis] + (self.num_output,) + self.out_spatial)

    def _check_input(self, bottom, shape):
        """Check the bottoms and size the output; once per input shape (every forward
        reshapes first)."""
        self._checked_shape = None
        self.shape_input(bottom, type(self).out_size)
        if shape[self.axis] != self.channels:
            raise self.error(f"input has {shape[self.axis]} channels on axis {self.axis}, "
                             f"the weights were made for {self.channels}",
                             blob=self.bottom_name())
        for i, blob in enumerate(bottom[1:], 1):
            if blob.shape != shape:
                raise self.error(f"every bottom must have the shape of bottom 0 {shape}, "
                                 f"got {blob.shape}", blob=self.bottom_name(i))
        self._checked_shape = shape

    def views(self, bb, tb, what):
        """(bottom data, bottom ``what``, top ``what``) as (N, C, *S) / (N, Cout, *O)."""
        return (self.batch_view(bb.data, self.channels, self.in_spatial),
                self.batch_view(getattr(bb, what), self.channels, self.in_spatial),
                self.batch_view(getattr(tb, what), self.num_output, self.out_spatial))

    def kernel_args(self):
        """(w, b or None, keyword geometry for the ops kernels)."""
        return (self.blobs[0].data, self.blobs[1].data if self.bias_term else None,
                dict(stride=self.stride, pad=self.pad, dilation=self.dilation, group=self.group))

    def backward_params(self, backward_op, x, dy, need_dx, dx):
        """Run an ops backward kernel; parameter diffs accumulate (+=), as Caffe's do."""
        need_dw = bool(self.param_propagate_down[0])
        need_db = self.bias_term and bool(self.param_propagate_down[1])
        if not (need_dw or need_db or need_dx):
            return
        w, _, geometry = self.kernel_args()
        _, dw, db = backward_op(x, w, dy, need_dx=need_dx, need_dw=need_dw, need_db=need_db,
                                dx_out=dx, workspace=self.workspace, **geometry)
        if need_dw:
            self.blobs[0].diff[...] += dw
        if need_db:
            self.blobs[1].diff[...] += db


@register_layer("Convolution")
class ConvolutionLayer(BaseConvolution):
    """y[n, o] = sum_{c in group(o), k} w[o, c, k] x[n, c, o*s - p + k*d] + b[o];
    O = (S + 2p - (d(K-1)+1)) / s + 1 (integer division)."""
    out_size = staticmethod(conv_out_size)

    def forward(self, bottom, top):
        self.forward_with(bottom, top, None, self.blobs[1].data if self.bias_term else None)

    def forward_with(self, bottom, top, scale, shift):
        """y = scale * conv(x) + shift per output channel (either may be None), instead
        of conv(x) + bias (net/fusion.py's chains)."""
        w, _, geometry = self.kernel_args()
        for bb, tb in zip(bottom, top):
            x, _, y = self.views(bb, tb, "data")
            conv_forward(x, w, shift, out=y, workspace=self.workspace, scale=scale, **geometry)

    def backward(self, top, propagate_down, bottom):
        for i, (tb, bb) in enumerate(zip(top, bottom)):
            x, dx, dy = self.views(bb, tb, "diff")
            self.backward_params(conv_backward, x, dy, propagate_down[i], dx)


@register_layer("ConvolutionDepthwise")
class ConvolutionDepthwiseLayer(ConvolutionLayer):
    """The MobileNet forks' depthwise convolution: Convolution with group = input
    channels, whatever convolution_param.group says; weights (num_output, 1, *K),
    num_output a multiple of the channels (usually equal)."""

    def group_of(self, cp):
        return self.channels


@register_layer("Deconvolution")
class DeconvolutionLayer(BaseConvolution):
    """The transpose of Convolution, its weights read as (C, num_output/G, *K):
    forward = convolution's backward-data (col2im of W^T x) + b;
    O = s(S-1) + d(K-1) + 1 - 2p. FCN's frozen bilinear weights take a separable path."""
    reverse = True
    out_size = staticmethod(deconv_out_size)

    def layer_setup(self, bottom, top):
        super().layer_setup(bottom, top)
        self.bilinear = deconv_fast.BilinearDetector()

    def separable_plan(self):
        """Upsampling matrices when the weights are exactly bilinear, else None."""
        return self.bilinear.plan(self.blobs[0].data, self.group, self.in_spatial,
                                  self.out_spatial, self.stride, self.pad, self.dilation)

    def forward(self, bottom, top):
        w, b, geometry = self.kernel_args()
        plan = self.separable_plan()
        for bb, tb in zip(bottom, top):
            x, _, y = self.views(bb, tb, "data")
            if plan is not None:
                deconv_fast.separable_deconv(x, plan, b, out=y)
            else:
                deconv_forward(x, w, b, out=y, workspace=self.workspace, **geometry)

    def backward(self, top, propagate_down, bottom):
        plan = self.separable_plan() if any(propagate_down) else None
        for i, (tb, bb) in enumerate(zip(top, bottom)):
            x, dx, dy = self.views(bb, tb, "diff")
            need_dx = propagate_down[i]
            if need_dx and plan is not None:
                deconv_fast.separable_deconv_backward(dy, plan, out=dx)
                need_dx = False
            self.backward_params(deconv_backward, x, dy, need_dx, dx)


@register_layer("Im2col")
class Im2colLayer(_ConvGeometry):
    """Top (*lead, C*prod(K), *O): Caffe's column buffer of each image, as a blob."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        self.read_geometry(bottom)
        if self.num_spatial < 1:
            raise self.error(f"needs a spatial axis after the channel axis {self.axis}, got "
                             f"shape {bottom[0].shape}", blob=self.bottom_name())
        self.geometry = dict(kernel=self.kernel, stride=self.stride, pad=self.pad,
                             dilation=self.dilation)

    def reshape(self, bottom, top):
        self.shape_input(bottom, conv_out_size)
        C = bottom[0].shape[self.axis]
        self.x_shape = (self.num, C) + self.in_spatial
        self.cols_shape = (self.num, C * prod(self.kernel), prod(self.out_spatial))
        top[0].reshape(bottom[0].shape[:self.axis] + (self.cols_shape[1],) + self.out_spatial)

    def forward(self, bottom, top):
        im2col(bottom[0].data.reshape(self.x_shape), out=top[0].data.reshape(self.cols_shape),
               **self.geometry)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            col2im(top[0].diff.reshape(self.cols_shape), self.x_shape,
                   out=bottom[0].diff.reshape(self.x_shape), **self.geometry)
