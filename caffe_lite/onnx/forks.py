"""ONNX mappings of the forks' layers: Interp (PSPNet/DeepLab) -> Resize with
aligned corners, Upsample (SegNet) and Unpooling (DeconvNet) -> MaxUnpool, the
forks' BN, and SSD's Normalize and PriorBox (a constant: it depends on shapes only).

Caffe's pooling mask holds h*W + w inside each (n, c) plane (as a float); ONNX's
MaxUnpool wants indices into the whole flattened output (N, C, OH, OW), so each
plane's offset (n*C + c)*OH*OW is added (pooling.pool does the reverse).
"""
from __future__ import annotations

import numpy as np

from ..proto import caffe_pb2
from .builder import GraphBuilder, NoMapping, Step
from .layers import converts, emit, normalize_by_batch
from .pooling import plane_offsets

SEGNET_EPS = 1e-9


@converts("Interp")
def interp(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    x, (H, W) = step.inputs[0], step.in_shapes[0][2:]
    crop = -int(layer.pad_beg)
    eff = tuple(layer.eff)
    if eff != (H, W):                                 # crop both axes from -pad_beg
        x = b.op("Slice", [x, b.ints([crop, crop], f"{step.name}/starts"),
                           b.ints([crop + eff[0], crop + eff[1]], f"{step.name}/ends"),
                           b.ints([2, 3], f"{step.name}/axes")], step, "crop")
    if tuple(layer.out_hw) == eff:
        b.node("Identity", [x], step.outputs, step.name)
        return
    sizes = b.ints(step.out_shapes[0], f"{step.name}/sizes")
    emit(b, step, "Resize", [x, "", "", sizes], mode="linear",
         coordinate_transformation_mode="align_corners")


def mask_scatter(b: GraphBuilder, step: Step, index: str, out_hw: tuple[int, int],
                 kernel: tuple[int, int], stride: tuple[int, int]) -> None:
    """top[n, c].flat[index[n, c, i]] = x[n, c].flat[i], zero elsewhere: MaxUnpool on
    indices made global by each plane's offset."""
    shape = step.in_shapes[0]
    offsets = b.const(plane_offsets(shape, out_hw[0] * out_hw[1]),
                      f"{step.name}/plane_offsets", np.int64)
    flat = b.op("Add", [index, offsets], step, "indices")
    out_shape = b.ints(step.out_shapes[0], f"{step.name}/output_shape")
    emit(b, step, "MaxUnpool", [step.inputs[0], flat, out_shape],
         kernel_shape=list(kernel), strides=list(stride))


def mask_index(b: GraphBuilder, step: Step) -> str:
    return b.op("Cast", [step.inputs[1]], step, "mask_index", to=b.onnx.TensorProto.INT64)


def unpool_kernel(step: Step, out_hw: tuple[int, int]) -> tuple[int, int]:
    """A kernel = stride for MaxUnpool's attributes: the output shape is given, so
    they only must not imply a larger one ((H - 1) s + k <= OH)."""
    H, W = step.in_shapes[0][2:]
    return (max(1, out_hw[0] // H), max(1, out_hw[1] // W))


@converts("Upsample")
def upsample(b: GraphBuilder, step: Step) -> None:
    out_hw = tuple(step.layer.out_hw)
    k = unpool_kernel(step, out_hw)
    mask_scatter(b, step, mask_index(b, step), out_hw, k, k)


@converts("Unpooling")
def unpooling(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    U = caffe_pb2.UnpoolingParameter
    out_hw = tuple(layer.out_hw)
    shape = step.in_shapes[0]
    if layer.method == U.MAX:
        if len(step.inputs) > 1:
            index = mask_index(b, step)
        else:                                 # each value to its window's top-left cell
            cells = np.ascontiguousarray(layer._unmasked_index(shape)).reshape(shape)
            index = b.const(cells, f"{step.name}/cells", np.int64)
        k = unpool_kernel(step, out_hw)
        mask_scatter(b, step, index, out_hw, k, k)
        return
    # AVE / TILE: every window's clipped cells get x (AVE: / the clipped area):
    # a depthwise transposed convolution with a ones kernel, cut to the output size
    (H, W), (kh, kw), (sh, sw) = shape[2:], layer.kernel, layer.stride
    x = step.inputs[0]
    if layer.method == U.AVE:
        rows = np.minimum(np.arange(H) * sh + kh, out_hw[0]) - np.arange(H) * sh
        cols = np.minimum(np.arange(W) * sw + kw, out_hw[1]) - np.arange(W) * sw
        area = np.outer(rows, cols).astype(np.float32)
        x = b.op("Div", [x, b.const(area, f"{step.name}/window_area")], step, "spread")
    C = shape[1]
    ones = b.const(np.ones((C, 1, kh, kw)), f"{step.name}/ones")
    full = ((H - 1) * sh + kh, (W - 1) * sw + kw)
    extra = [max(0, o - f) for o, f in zip(out_hw, full)]
    y = b.op("ConvTranspose", [x, ones], step, "windows", kernel_shape=[kh, kw],
             strides=[sh, sw], group=C, output_padding=[0, 0])
    if any(extra):
        y = b.op("Pad", [y, b.ints([0, 0, 0, 0, 0, 0] + extra,
                                   f"{step.name}/pads")], step, "pad")
    emit(b, step, "Slice", [y, b.ints([0, 0], f"{step.name}/starts"),
                            b.ints(list(out_hw), f"{step.name}/ends"),
                            b.ints([2, 3], f"{step.name}/axes")])


@converts("BN")
def bn(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    x, C = step.inputs[0], step.in_shapes[0][1]
    if layer.pspnet:
        if not layer._use_global_stats():
            raise NoMapping("PSPNet BN with batch statistics (not frozen, TRAIN phase)")
        emit(b, step, "BatchNormalization",
             [x, b.const(layer.blobs[0].data.reshape(-1), f"{step.name}.slope"),
              b.const(layer.blobs[1].data.reshape(-1), f"{step.name}.bias"),
              b.const(layer.blobs[2].data.reshape(-1), f"{step.name}.mean"),
              b.const(layer.blobs[3].data.reshape(-1), f"{step.name}.variance")],
             epsilon=float(layer.eps))
        return
    scale = b.const(layer.blobs[0].data.reshape(C, 1, 1), f"{step.name}.scale")
    shift = b.const(layer.blobs[1].data.reshape(C, 1, 1), f"{step.name}.shift")
    if layer.inference:                               # y = scale x + shift
        y = b.op("Mul", [x, scale], step, "scaled")
        emit(b, step, "Add", [y, shift])
        return
    if len(step.outputs) > 1:
        raise NoMapping("SegNet BN LEARN with the batch statistics as extra tops")
    # LEARN: batch statistics, in every phase
    normalized = normalize_by_batch(b, step, x, [0, 2, 3], SEGNET_EPS)
    y = b.op("Mul", [normalized, scale], step, "scaled")
    emit(b, step, "Add", [y, shift])


@converts("Normalize")
def normalize(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    x, shape = step.inputs[0], step.in_shapes[0]
    axes = list(range(1, len(shape))) if layer.across_spatial else [1]
    sums = b.reduce("ReduceSumSquare", x, axes, step, "sum_squares")
    shifted = b.op("Add", [sums, b.scalar(float(layer.eps), step, "eps")], step, "sum_eps")
    norm = b.op("Sqrt", [shifted], step, "norm")
    y = b.op("Div", [x, norm], step, "unit")
    s = layer.blobs[0].data
    s = s.reshape(()) if layer.channel_shared else s.reshape((-1,) + (1,) * (len(shape) - 2))
    emit(b, step, "Mul", [y, b.const(s, f"{step.name}.scale")])


@converts("PriorBox")
def prior_box(b: GraphBuilder, step: Step) -> None:
    if not step.top_data:
        raise NoMapping("PriorBox needs a forward pass before export")
    b.node("Identity", [b.const(step.top_data[0], f"{step.name}.priors")], step.outputs,
           step.name)


@converts("Axpy")
def axpy(b: GraphBuilder, step: Step) -> None:
    a, x, y = step.inputs
    shape = step.in_shapes[1]
    a = b.reshape(a, tuple(shape[:2]) + (1,) * (len(shape) - 2), step, "a_view")
    emit(b, step, "Add", [b.op("Mul", [a, x], step, "ax"), y])
