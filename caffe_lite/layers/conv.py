"""Convolution, Deconvolution and Im2col: the ConvolutionParameter read once, the
shapes, and calls into the kernels of ``ops/im2col.py`` (the numerics live there).

convolution_param fields read: num_output, bias_term, kernel_size / kernel_h+kernel_w,
stride / stride_h+stride_w, pad / pad_h+pad_w (each once, or once per spatial axis),
dilation, group, axis, weight_filler, bias_filler; the forks' hole (DeepLab-v1) and
filter_stride (ParseNet) as dilation.

Shapes: bottom (*lead, C, *S) with the channel axis at ``axis``; the leading axes are
folded into one batch axis N. Top (*lead, num_output, *O).
"""
from math import prod

from ..fillers import fill
from ..ops import deconv_fast
from ..ops.im2col import (Workspace, col2im, conv_backward, conv_forward_threaded,
                          conv_out_size, deconv_as_conv, deconv_backward, deconv_forward,
                          deconv_out_size, im2col)
from .base import Layer, register_layer


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


def _fork_dilation(cp, nd):
    """DeepLab-v1's ``hole`` and ParseNet's ``filter_stride`` meant dilation, or None."""
    if nd != 2:
        return None
    for name in ("hole", "filter_stride"):
        h = getattr(cp, name + "_h") if cp.HasField(name + "_h") else getattr(cp, name)
        w = getattr(cp, name + "_w") if cp.HasField(name + "_w") else getattr(cp, name)
        if (h, w) != (1, 1):
            return (h, w)
    return None


def parse_geometry(layer, cp, nd):
    """(kernel, stride, pad, dilation) tuples with one int per spatial axis."""
    kernel = _axis_values(layer, cp, "kernel", "kernel_size", nd, None)
    stride = _axis_values(layer, cp, "stride", "stride", nd, 1)
    pad = _axis_values(layer, cp, "pad", "pad", nd, 0)
    dilation = (_fork_dilation(cp, nd) if not cp.dilation else None) or \
        _axis_values(layer, cp, "dilation", "dilation", nd, 1)
    if min(dilation, default=1) <= 0:
        raise layer.error(f"dilation must be > 0, got {dilation}")
    return kernel, stride, pad, dilation


class BaseConvolution(Layer):
    """Parameter parsing, weights and shapes shared by Convolution and Deconvolution.

    Weights: Convolution (num_output, C/G, *K); Deconvolution (C, num_output/G, *K)
    (``reverse``). Bias (num_output,). Every bottom is convolved with the same weights.
    """
    min_bottom = 1
    min_top = 1
    equal_num_bottom_top = True
    reverse = False

    def layer_setup(self, bottom, top):
        cp = self.param.convolution_param
        self.axis = bottom[0].canonical_axis(cp.axis)
        self.num_spatial = bottom[0].num_axes - self.axis - 1
        self.kernel, self.stride, self.pad, self.dilation = parse_geometry(
            self, cp, self.num_spatial)
        self.channels = bottom[0].shape[self.axis]
        self.num_output, self.group, self.bias_term = cp.num_output, cp.group, cp.bias_term
        if self.num_output <= 0:
            raise self.error("num_output must be > 0")
        if self.group <= 0 or self.channels % self.group or self.num_output % self.group:
            raise self.error(f"group {self.group} must divide both the input channels "
                             f"({self.channels}) and num_output ({self.num_output})",
                             blob=self.param.bottom[0] if self.param.bottom else None)
        if self.reverse:
            w_shape = (self.channels, self.num_output // self.group) + self.kernel
        else:
            w_shape = (self.num_output, self.channels // self.group) + self.kernel
        self.blobs = [self.make_blob(w_shape)]
        fill(self.blobs[0], cp.weight_filler)
        if self.bias_term:
            self.blobs.append(self.make_blob((self.num_output,)))
            fill(self.blobs[1], cp.bias_filler)
        self.param_propagate_down = [True] * len(self.blobs)
        self.workspace = Workspace()

    def output_spatial(self, spatial):
        raise NotImplementedError

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != self.axis + 1 + self.num_spatial:
            raise self.error(f"the input's number of axes may not change: set up with "
                             f"{self.axis + 1 + self.num_spatial}, got shape {shape}",
                             blob=self.param.bottom[0])
        if shape[self.axis] != self.channels:
            raise self.error(f"input has {shape[self.axis]} channels on axis {self.axis}, "
                             f"the weights were made for {self.channels}",
                             blob=self.param.bottom[0])
        for i, blob in enumerate(bottom[1:], 1):
            if blob.shape != shape:
                raise self.error(f"every bottom must have the shape of bottom 0 {shape}, "
                                 f"got {blob.shape}", blob=self.param.bottom[i])
        self.num = bottom[0].count_range(0, self.axis)
        self.in_spatial = shape[self.axis + 1:]
        self.out_spatial = self.output_spatial(self.in_spatial)
        if min(self.out_spatial, default=1) <= 0:
            raise self.error(f"input spatial shape {self.in_spatial} gives an empty output "
                             f"{self.out_spatial} (kernel {self.kernel}, stride "
                             f"{self.stride}, pad {self.pad}, dilation {self.dilation})",
                             blob=self.param.bottom[0])
        for blob in top:
            blob.reshape(shape[:self.axis] + (self.num_output,) + self.out_spatial)

    def batch_view(self, array, channels, spatial):
        """(*lead, C, *S) -> (N, C, *S) view."""
        return array.reshape((self.num, channels) + tuple(spatial))

    def conv_args(self):
        return dict(stride=self.stride, pad=self.pad, dilation=self.dilation,
                    group=self.group)

    def accumulate_param_diffs(self, dw, db):
        """Parameter diffs accumulate (+=), as Caffe's do."""
        if dw is not None:
            self.blobs[0].diff[...] += dw
        if db is not None:
            self.blobs[1].diff[...] += db

    def need_param_diffs(self):
        need_dw = bool(self.param_propagate_down[0])
        need_db = self.bias_term and bool(self.param_propagate_down[1])
        return need_dw, need_db


@register_layer("Convolution")
class ConvolutionLayer(BaseConvolution):
    """y[n, o] = sum_{c in group(o), k} w[o, c, k] x[n, c, o*s - p + k*d] + b[o];
    O = (S + 2p - (d(K-1)+1)) / s + 1 (integer division)."""

    def output_spatial(self, spatial):
        return tuple(conv_out_size(*a) for a in
                     zip(spatial, self.kernel, self.stride, self.pad, self.dilation))

    def forward(self, bottom, top):
        w = self.blobs[0].data
        b = self.blobs[1].data if self.bias_term else None
        for bb, tb in zip(bottom, top):
            conv_forward_threaded(self.batch_view(bb.data, self.channels, self.in_spatial), w, b,
                                  out=self.batch_view(tb.data, self.num_output, self.out_spatial),
                                  workspace=self.workspace, **self.conv_args())

    def backward(self, top, propagate_down, bottom):
        need_dw, need_db = self.need_param_diffs()
        for i, (tb, bb) in enumerate(zip(top, bottom)):
            if not (need_dw or need_db or propagate_down[i]):
                continue
            _, dw, db = conv_backward(
                self.batch_view(bb.data, self.channels, self.in_spatial), self.blobs[0].data,
                self.batch_view(tb.diff, self.num_output, self.out_spatial),
                need_dx=propagate_down[i], need_dw=need_dw, need_db=need_db,
                dx_out=self.batch_view(bb.diff, self.channels, self.in_spatial),
                workspace=self.workspace, **self.conv_args())
            self.accumulate_param_diffs(dw, db)


@register_layer("Deconvolution")
class DeconvolutionLayer(BaseConvolution):
    """The transpose of Convolution with the same weight layout read as (C, num_output/G,
    *K): forward = convolution's backward-data (col2im of W^T x) + b;
    O = s(S-1) + d(K-1) + 1 - 2p. FCN's frozen bilinear weights take a separable path;
    a stride-1 deconvolution runs as the equivalent convolution (flipped weights)."""
    reverse = True

    def layer_setup(self, bottom, top):
        super().layer_setup(bottom, top)
        self.bilinear = deconv_fast.BilinearDetector()

    def output_spatial(self, spatial):
        return tuple(deconv_out_size(*a) for a in
                     zip(spatial, self.kernel, self.stride, self.pad, self.dilation))

    def separable_plan(self):
        """Upsampling matrices when the weights are exactly bilinear, else None."""
        return self.bilinear.plan(self.blobs[0].data, self.group, self.in_spatial,
                                  self.out_spatial, self.stride, self.pad, self.dilation)

    def forward(self, bottom, top):
        w = self.blobs[0].data
        b = self.blobs[1].data if self.bias_term else None
        plan = self.separable_plan()
        as_conv = None if plan is not None else deconv_as_conv(
            w, self.group, self.in_spatial, self.stride, self.pad, self.dilation)
        for bb, tb in zip(bottom, top):
            x = self.batch_view(bb.data, self.channels, self.in_spatial)
            y = self.batch_view(tb.data, self.num_output, self.out_spatial)
            if plan is not None:
                deconv_fast.separable_deconv(x, plan, b, out=y)
            elif as_conv is not None:
                conv_forward_threaded(x, as_conv[0], b, pad=as_conv[1], dilation=self.dilation,
                                      group=self.group, out=y, workspace=self.workspace)
            else:
                deconv_forward(x, w, b, out=y, workspace=self.workspace, **self.conv_args())

    def backward(self, top, propagate_down, bottom):
        need_dw, need_db = self.need_param_diffs()
        plan = self.separable_plan() if any(propagate_down) else None
        for i, (tb, bb) in enumerate(zip(top, bottom)):
            need_dx = propagate_down[i]
            dy = self.batch_view(tb.diff, self.num_output, self.out_spatial)
            dx = self.batch_view(bb.diff, self.channels, self.in_spatial)
            if need_dx and plan is not None:
                deconv_fast.separable_deconv_backward(dy, plan, out=dx)
                need_dx = False
            if not (need_dw or need_db or need_dx):
                continue
            _, dw, db = deconv_backward(
                self.batch_view(bb.data, self.channels, self.in_spatial), self.blobs[0].data,
                dy, need_dx=need_dx, need_dw=need_dw, need_db=need_db, dx_out=dx,
                workspace=self.workspace, **self.conv_args())
            self.accumulate_param_diffs(dw, db)


@register_layer("Im2col")
class Im2colLayer(Layer):
    """Top (*lead, C*prod(K), *O): Caffe's column buffer of each image, as a blob."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        cp = self.param.convolution_param
        self.axis = bottom[0].canonical_axis(cp.axis)
        self.num_spatial = bottom[0].num_axes - self.axis - 1
        if self.num_spatial < 1:
            raise self.error(f"needs at least one spatial axis after the channel axis "
                             f"{self.axis}, got shape {bottom[0].shape}",
                             blob=self.param.bottom[0])
        self.kernel, self.stride, self.pad, self.dilation = parse_geometry(
            self, cp, self.num_spatial)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != self.axis + 1 + self.num_spatial:
            raise self.error(f"the input's number of axes may not change, got shape {shape}",
                             blob=self.param.bottom[0])
        self.num = bottom[0].count_range(0, self.axis)
        self.x_shape = (self.num,) + shape[self.axis:]
        out = tuple(conv_out_size(*a) for a in zip(
            shape[self.axis + 1:], self.kernel, self.stride, self.pad, self.dilation))
        if min(out) <= 0:
            raise self.error(f"input spatial shape {shape[self.axis + 1:]} gives an empty "
                             f"output {out}", blob=self.param.bottom[0])
        self.cols_shape = (self.num, shape[self.axis] * prod(self.kernel), prod(out))
        top[0].reshape(shape[:self.axis] + (self.cols_shape[1],) + out)

    def geometry(self):
        return dict(kernel=self.kernel, stride=self.stride, pad=self.pad,
                    dilation=self.dilation)

    def forward(self, bottom, top):
        im2col(bottom[0].data.reshape(self.x_shape), out=top[0].data.reshape(self.cols_shape),
               **self.geometry())

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            col2im(top[0].diff.reshape(self.cols_shape), self.x_shape,
                   out=bottom[0].diff.reshape(self.x_shape), **self.geometry())


__all__ = ["BaseConvolution", "ConvolutionLayer", "DeconvolutionLayer", "Im2colLayer",
           "parse_geometry"]
