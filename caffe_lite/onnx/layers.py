"""Caffe layer -> ONNX nodes, one function per layer type (upstream Caffe's types;
the forks' and SSD's are in forks.py).

Each converter reads the built layer's parsed attributes (never re-parses what the
layer already checked) and the blob shapes the net gave, so every shape in the
graph is static. It raises NoMapping for a setting that ONNX cannot compute the
way Caffe does; the exporter collects those for every layer before writing.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..proto import caffe_pb2
from .builder import GraphBuilder, NoMapping, Step

Converter = Callable[[GraphBuilder, Step], None]
CONVERTERS: dict[str, Converter] = {}


def converts(*types: str) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for t in types:
            CONVERTERS[t] = fn
        return fn
    return register


def blob_const(b: GraphBuilder, step: Step, index: int, role: str,
               shape: Any = None) -> str:
    data = step.layer.blobs[index].data
    return b.const(data if shape is None else data.reshape(shape), f"{step.name}.{role}")


def channel_shape(count: int, ndim: int, axis: int = 1) -> tuple[int, ...]:
    """(C, 1, ..., 1): a per-channel operand broadcast against an ndim-axis blob."""
    return (count,) + (1,) * (ndim - axis - 1)


def emit(b: GraphBuilder, step: Step, op: str, inputs: list[str], **attrs: Any) -> None:
    """One node computing the layer's single top."""
    b.node(op, inputs, [step.outputs[0]], step.name, **attrs)


# ==== identity, inputs ======================================================

@converts("Split")
def split(b: GraphBuilder, step: Step) -> None:
    for top in step.layer.param.top:
        b.alias(top, step.inputs[0])


@converts("Dropout")
def dropout(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    if layer.random:
        raise NoMapping("random dropout at test time (sample_weights_test) has no "
                        "deterministic ONNX equivalent")
    if layer.scale_train:
        b.alias(step.lp.top[0], step.inputs[0])
        return
    factor = b.scalar(1.0 - layer.ratio, step, "keep")     # scale_train false: x (1 - r)
    emit(b, step, "Mul", [step.inputs[0], factor])


@converts("BatchReindex")
def batch_reindex(b: GraphBuilder, step: Step) -> None:
    index = b.op("Cast", [step.inputs[1]], step, "index", to=b.onnx.TensorProto.INT64)
    emit(b, step, "Gather", [step.inputs[0], index], axis=0)


@converts("ROIPooling")
def roi_pooling(b: GraphBuilder, step: Step) -> None:
    """ONNX's MaxRoiPool: rows [batch, x1, y1, x2, y2] in image pixels, as Caffe's."""
    layer = step.layer
    rois = b.reshape(step.inputs[1], (step.in_shapes[1][0], 5), step, "rois")
    emit(b, step, "MaxRoiPool", [step.inputs[0], rois],
         pooled_shape=[layer.pooled_h, layer.pooled_w],
         spatial_scale=float(layer.spatial_scale))


@converts("Parameter")
def parameter(b: GraphBuilder, step: Step) -> None:
    b.node("Identity", [blob_const(b, step, 0, "value")], step.outputs, step.name)


# ==== convolution, pooling, fully connected =================================

@converts("Convolution", "ConvolutionDepthwise", "Deconvolution")
def convolution(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    if layer.axis != 1:
        raise NoMapping(f"convolution over axis {layer.axis}: ONNX convolves from axis 1")
    inputs = [step.inputs[0], blob_const(b, step, 0, "weight")]
    if layer.bias_term:
        inputs.append(blob_const(b, step, 1, "bias"))
    emit(b, step, "ConvTranspose" if layer.reverse else "Conv", inputs,
         kernel_shape=list(layer.kernel), strides=list(layer.stride),
         pads=list(layer.pad) * 2, dilations=list(layer.dilation), group=layer.group)


def pool_end_pads(in_hw: tuple[int, ...], out_hw: tuple[int, ...], kernel: Any,
                  stride: Any, pad: Any) -> list[int]:
    """Explicit end pads that make floor-mode windows reproduce Caffe's output size:
    the last window starts inside the input (Caffe drops one that would start in
    the padding) and may run past it (its ceil rounding)."""
    ends = []
    for size, out, k, s, p in zip(in_hw, out_hw, kernel, stride, pad):
        end = max(0, (out - 1) * s + k - size - p)
        if (size + p + end - k) // s + 1 != out or end >= k:
            raise NoMapping(f"pooling geometry {size} -> {out} (kernel {k}, stride {s}, "
                            f"pad {p}) has no explicit-pad equivalent")
        ends.append(end)
    return ends


def ave_divisor_factor(in_hw: tuple[int, ...], out_hw: tuple[int, ...], kernel: Any,
                       stride: Any, pad: Any) -> np.ndarray:
    """(OH, OW) factors k_h k_w / Caffe's divisor: Caffe divides each window's sum by
    its size clipped to the padded input [-p, H + p), padding counted, overhang not."""
    factors = []
    for size, out, k, s, p in zip(in_hw, out_hw, kernel, stride, pad):
        start = np.arange(out) * s - p
        factors.append(k / (np.minimum(start + k, size + p) - start))
    return np.outer(factors[0], factors[1]).astype(np.float32)


def pool(b: GraphBuilder, step: Step, x: str, windows: Any, in_shape: tuple[int, ...],
         out_shape: tuple[int, ...], out: str | None = None, mask: str | None = None,
         what: str = "pool") -> str:
    """MAX or AVE pooling with Caffe's windows: explicit end pads for its rounding,
    and for AVE a constant that turns ONNX's k_h k_w divisor into Caffe's. With
    ``mask``, also Caffe's mask (h W + w per plane, as a float)."""
    P = caffe_pb2.PoolingParameter
    if windows.method == P.STOCHASTIC:
        raise NoMapping("STOCHASTIC pooling has no ONNX operator")
    out = out or b.unique(f"{step.name}/{what}")
    ends = pool_end_pads(in_shape[2:], out_shape[2:], windows.kernel, windows.stride,
                         windows.pad)
    geometry = dict(kernel_shape=list(windows.kernel), strides=list(windows.stride),
                    pads=list(windows.pad) + ends)
    if windows.method == P.MAX:
        if mask is None:
            return b.node("MaxPool", [x], [out], step.name, **geometry)[0]
        index = b.unique(f"{step.name}/indices")           # flat over (N, C, H, W)
        b.node("MaxPool", [x], [out, index], step.name, **geometry)
        plane = b.const(plane_offsets(in_shape), f"{step.name}/plane_offsets", np.int64)
        local = b.op("Sub", [index, plane], step, "plane_index")   # Caffe's h W + w
        b.node("Cast", [local], [mask], f"{step.name}/mask", to=b.onnx.TensorProto.FLOAT)
        return out
    factor = ave_divisor_factor(in_shape[2:], out_shape[2:], windows.kernel,
                                windows.stride, windows.pad)
    if np.all(factor == 1):
        return b.node("AveragePool", [x], [out], step.name, count_include_pad=1,
                      **geometry)[0]
    mean = b.op("AveragePool", [x], step, f"{what}_window_mean", count_include_pad=1,
                **geometry)
    return b.node("Mul", [mean, b.const(factor, f"{step.name}/{what}_divisor_factor")],
                  [out], step.name)[0]


@converts("Pooling")
def pooling(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    P = caffe_pb2.PoolingParameter
    if layer.global_pooling and len(step.outputs) == 1 and layer.method != P.STOCHASTIC:
        emit(b, step, "GlobalMaxPool" if layer.method == P.MAX else "GlobalAveragePool",
             [step.inputs[0]])
        return
    pool(b, step, step.inputs[0], layer.windows, step.in_shapes[0], step.out_shapes[0],
         out=step.outputs[0], mask=step.outputs[1] if len(step.outputs) > 1 else None)


@converts("SPP")
def spp(b: GraphBuilder, step: Step) -> None:
    """One pooling per pyramid level, each flattened, concatenated."""
    layer = step.layer
    in_shape = step.in_shapes[0]
    if layer.height == 1:
        pool(b, step, step.inputs[0], layer.levels[0], in_shape, layer.out_shapes[0],
             out=step.outputs[0])
        return
    flat = []
    for level, (windows, shape) in enumerate(zip(layer.levels, layer.out_shapes)):
        y = pool(b, step, step.inputs[0], windows, in_shape, shape, what=f"level{level}")
        flat.append(b.reshape(y, (in_shape[0], -1), step, f"level{level}_flat"))
    emit(b, step, "Concat", flat, axis=1)


def plane_offsets(shape: tuple[int, ...], plane: int | None = None) -> np.ndarray:
    """(N, C, 1, 1) start of each (n, c) plane in a flat (N, C, H, W) index."""
    N, C = shape[:2]
    plane = int(np.prod(shape[2:])) if plane is None else plane
    return (np.arange(N * C, dtype=np.int64) * plane).reshape(N, C, 1, 1)


@converts("InnerProduct")
def inner_product(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    in_shape, out_shape = step.in_shapes[0], step.out_shapes[0]
    outer = int(np.prod(in_shape[:layer.axis]))
    x = step.inputs[0]
    if len(in_shape) != 2:
        x = b.reshape(x, (outer, layer.K), step, "rows")            # (outer, K)
    inputs = [x, blob_const(b, step, 0, "weight")]
    if layer.bias_term:
        inputs.append(blob_const(b, step, 1, "bias"))
    if len(out_shape) == 2:
        emit(b, step, "Gemm", inputs, transB=0 if layer.transpose else 1)
        return
    y = b.op("Gemm", inputs, step, "gemm", transB=0 if layer.transpose else 1)
    b.reshape(y, out_shape, step, out=step.outputs[0])


@converts("Embed")
def embed(b: GraphBuilder, step: Step) -> None:
    """Rows of the weight picked by the (float) indices, plus the bias."""
    layer = step.layer
    index = b.op("Cast", [step.inputs[0]], step, "index", to=b.onnx.TensorProto.INT64)
    rows = [blob_const(b, step, 0, "weight"), index]
    if not layer.bias_term:
        emit(b, step, "Gather", rows, axis=0)
        return
    picked = b.op("Gather", rows, step, "rows", axis=0)
    emit(b, step, "Add", [picked, blob_const(b, step, 1, "bias")])


# ==== normalization ===========================================================

@converts("LRN")
def lrn(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    x = step.inputs[0]
    if layer.across:
        emit(b, step, "LRN", [x], size=int(layer.size), alpha=float(layer.alpha),
             beta=float(layer.beta), bias=float(layer.k))
        return
    if len(step.in_shapes[0]) != 4:
        raise NoMapping("WITHIN_CHANNEL LRN needs a 4-axis input")
    # y = x (1 + alpha/n^2 sum_{n x n} x^2)^-beta, zero padded: the window mean of x^2
    n, p = int(layer.size), int(layer.pre_pad)
    square = b.op("Mul", [x, x], step, "square")
    mean = b.op("AveragePool", [square], step, "window_mean", kernel_shape=[n, n],
                pads=[p, p, n - 1 - p, n - 1 - p], count_include_pad=1)
    scaled = b.op("Mul", [mean, b.scalar(layer.alpha, step, "alpha")], step, "scaled")
    base = b.op("Add", [scaled, b.scalar(1.0, step, "one")], step, "base")
    power = b.op("Pow", [base, b.scalar(-layer.beta, step, "minus_beta")], step, "power")
    emit(b, step, "Mul", [x, power])


@converts("BatchNorm")
def batch_norm(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    x, shape = step.inputs[0], step.in_shapes[0]
    C = layer.channels
    if not layer.use_global_stats:
        axes = [a for a in range(len(shape)) if a != 1]
        y = normalize_by_batch(b, step, x, axes, float(layer.eps))
        b.node("Identity", [y], [step.outputs[0]], step.name)
        return
    factor = layer.blobs[2].data.reshape(-1)[0]
    factor = 0.0 if factor == 0 else 1.0 / float(factor)
    mean = (layer.blobs[0].data * np.float32(factor)).astype(np.float32)
    var = (layer.blobs[1].data * np.float32(factor)).astype(np.float32)
    if len(shape) < 2:
        raise NoMapping("BatchNorm of a 1-axis blob")
    emit(b, step, "BatchNormalization",
         [x, b.const(np.ones(C), f"{step.name}.scale"),
          b.const(np.zeros(C), f"{step.name}.shift"),
          b.const(mean, f"{step.name}.mean"), b.const(var, f"{step.name}.variance")],
         epsilon=float(layer.eps))


def normalize_by_batch(b: GraphBuilder, step: Step, x: str, axes: list[int],
                       eps: float) -> str:
    """(x - E[x]) / sqrt(Var[x] + eps) with the statistics over ``axes``."""
    mean = b.reduce("ReduceMean", x, axes, step, "batch_mean")
    centered = b.op("Sub", [x, mean], step, "centered")
    square = b.op("Mul", [centered, centered], step, "centered_square")
    var = b.reduce("ReduceMean", square, axes, step, "batch_var")
    shifted = b.op("Add", [var, b.scalar(eps, step, "eps")], step, "var_eps")
    std = b.op("Sqrt", [shifted], step, "std")
    return b.op("Div", [centered, std], step, "normalized")


@converts("MVN")
def mvn(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    x, shape = step.inputs[0], step.in_shapes[0]
    axes = list(range(1 if layer.across_channels else 2, len(shape)))
    mean = b.reduce("ReduceMean", x, axes, step, "mean")
    centered = b.op("Sub", [x, mean], step, "centered")
    if not layer.normalize_variance:
        b.node("Identity", [centered], [step.outputs[0]], step.name)
        return
    square = b.op("Mul", [centered, centered], step, "square")
    var = b.reduce("ReduceMean", square, axes, step, "var")
    std = b.op("Sqrt", [var], step, "std")                      # Caffe: eps after sqrt
    std_eps = b.op("Add", [std, b.scalar(layer.eps, step, "eps")], step, "std_eps")
    emit(b, step, "Div", [centered, std_eps])


# ==== scale, bias, eltwise ====================================================

def operand(b: GraphBuilder, step: Step, value_or_blob: Any, axis: int,
            role: str) -> str:
    """A Scale/Bias operand (shape S covering axes [axis, axis + len(S))), reshaped so
    it broadcasts against the data: S + (1,) * trailing axes."""
    ndim = len(step.in_shapes[0])
    if isinstance(value_or_blob, str):                 # a second bottom
        shape = step.in_shapes[1]
        target = tuple(shape) + (1,) * (ndim - axis - len(shape))
        return b.reshape(value_or_blob, target, step, f"{role}_view")
    data = value_or_blob.data
    target = tuple(data.shape) + (1,) * (ndim - axis - data.ndim)
    return b.const(data.reshape(target) if target else data.reshape(()),
                   f"{step.name}.{role}")


@converts("Scale")
def scale(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    axis = layer.axis % len(step.in_shapes[0]) if step.in_shapes[0] else 0
    source = step.inputs[1] if len(step.inputs) > 1 else layer.blobs[0]
    factor = operand(b, step, source, axis, "scale")
    if not layer.bias_term:
        emit(b, step, "Mul", [step.inputs[0], factor])
        return
    y = b.op("Mul", [step.inputs[0], factor], step, "scaled")
    emit(b, step, "Add", [y, operand(b, step, layer.blobs[-1], axis, "bias")])


@converts("Bias")
def bias(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    axis = layer.axis % len(step.in_shapes[0]) if step.in_shapes[0] else 0
    source = step.inputs[1] if len(step.inputs) > 1 else layer.blobs[0]
    emit(b, step, "Add", [step.inputs[0], operand(b, step, source, axis, "bias")])


@converts("Eltwise")
def eltwise(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    E = caffe_pb2.EltwiseParameter
    xs = list(step.inputs)
    if layer.op == E.PROD:
        y = xs[0]
        for i, x in enumerate(xs[1:-1], 1):
            y = b.op("Mul", [y, x], step, f"product{i}")
        emit(b, step, "Mul", [y, xs[-1]])
    elif layer.op == E.MAX:
        emit(b, step, "Max", xs)
    else:
        terms = [x if c == 1 else b.op("Mul", [x, b.scalar(c, step, f"coeff{i}")], step,
                                       f"term{i}")
                 for i, (x, c) in enumerate(zip(xs, layer.coeffs))]
        emit(b, step, "Sum", terms)


# ==== shapes ==================================================================

@converts("Concat")
def concat(b: GraphBuilder, step: Step) -> None:
    emit(b, step, "Concat", list(step.inputs), axis=int(step.layer.concat_axis))


@converts("Slice")
def slice_layer(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    axis = int(layer.slice_axis)
    sizes = [shape[axis] for shape in step.out_shapes]
    if len(step.outputs) == 1:
        b.node("Identity", [step.inputs[0]], step.outputs, step.name)
        return
    b.node("Split", [step.inputs[0], b.ints(sizes, f"{step.name}/sizes")], step.outputs,
           step.name, axis=axis)


@converts("Flatten", "Reshape")
def reshape(b: GraphBuilder, step: Step) -> None:
    b.reshape(step.inputs[0], step.out_shapes[0], step, out=step.outputs[0])


@converts("Permute")
def permute(b: GraphBuilder, step: Step) -> None:
    emit(b, step, "Transpose", [step.inputs[0]], perm=list(step.layer.order))


@converts("ShuffleChannel")
def shuffle_channel(b: GraphBuilder, step: Step) -> None:
    shape, g = step.in_shapes[0], int(step.layer.group)
    grouped = b.reshape(step.inputs[0], (shape[0], g, shape[1] // g) + shape[2:], step,
                        "groups")
    order = [0, 2, 1] + list(range(3, len(shape) + 1))
    swapped = b.op("Transpose", [grouped], step, "swap", perm=order)
    b.reshape(swapped, step.out_shapes[0], step, out=step.outputs[0])


@converts("Tile")
def tile(b: GraphBuilder, step: Step) -> None:
    shape, out = step.in_shapes[0], step.out_shapes[0]
    repeats = [o // i for i, o in zip(shape, out)]
    emit(b, step, "Tile", [step.inputs[0], b.ints(repeats, f"{step.name}/repeats")])


@converts("Crop")
def crop(b: GraphBuilder, step: Step) -> None:
    region = step.layer.region
    axes = [i for i, r in enumerate(region) if r != slice(0, step.in_shapes[0][i])]
    if not axes:
        b.node("Identity", [step.inputs[0]], step.outputs, step.name)
        return
    emit(b, step, "Slice", [step.inputs[0],
                            b.ints([region[a].start for a in axes], f"{step.name}/starts"),
                            b.ints([region[a].stop for a in axes], f"{step.name}/ends"),
                            b.ints(axes, f"{step.name}/axes")])


# ==== softmax, neurons ========================================================

@converts("Silence")
def silence(b: GraphBuilder, step: Step) -> None:
    """Consumes its bottoms, computes nothing."""


@converts("Softmax")
def softmax(b: GraphBuilder, step: Step) -> None:
    ndim = len(step.in_shapes[0])
    emit(b, step, "Softmax", [step.inputs[0]], axis=int(step.lp.softmax_param.axis) % ndim)


@converts("ReLU")
def relu(b: GraphBuilder, step: Step) -> None:
    slope = float(step.layer.slope)
    if slope == 0:
        emit(b, step, "Relu", [step.inputs[0]])
    else:
        emit(b, step, "LeakyRelu", [step.inputs[0]], alpha=slope)


@converts("PReLU")
def prelu(b: GraphBuilder, step: Step) -> None:
    layer, ndim = step.layer, len(step.in_shapes[0])
    shape = (1,) if layer.channel_shared else channel_shape(layer.blobs[0].count, ndim)
    emit(b, step, "PRelu", [step.inputs[0], blob_const(b, step, 0, "slope", shape)])


SIMPLE = {"Sigmoid": "Sigmoid", "TanH": "Tanh", "AbsVal": "Abs", "BNLL": "Softplus"}


@converts(*SIMPLE)
def simple(b: GraphBuilder, step: Step) -> None:
    emit(b, step, SIMPLE[step.lp.type], [step.inputs[0]])


@converts("ELU")
def elu(b: GraphBuilder, step: Step) -> None:
    emit(b, step, "Elu", [step.inputs[0]], alpha=float(step.layer.alpha))


@converts("Clip", "ReLU6")
def clip(b: GraphBuilder, step: Step) -> None:
    low, high = (0.0, 6.0) if step.lp.type == "ReLU6" else (step.layer.low,
                                                             step.layer.high)
    emit(b, step, "Clip", [step.inputs[0], b.scalar(low, step, "min"),
                           b.scalar(high, step, "max")])


@converts("Swish")
def swish(b: GraphBuilder, step: Step) -> None:
    x, beta = step.inputs[0], float(step.layer.beta)
    scaled = x if beta == 1 else b.op("Mul", [x, b.scalar(beta, step, "beta")], step,
                                      "scaled")
    gate = b.op("Sigmoid", [scaled], step, "gate")
    emit(b, step, "Mul", [x, gate])


@converts("Mish")
def mish(b: GraphBuilder, step: Step) -> None:
    x = step.inputs[0]
    soft = b.op("Softplus", [x], step, "softplus")
    emit(b, step, "Mul", [x, b.op("Tanh", [soft], step, "tanh")])


@converts("Threshold")
def threshold(b: GraphBuilder, step: Step) -> None:
    above = b.op("Greater", [step.inputs[0], b.scalar(step.layer.threshold, step, "t")],
                 step, "above")
    emit(b, step, "Cast", [above], to=b.onnx.TensorProto.FLOAT)


def affine(b: GraphBuilder, step: Step, x: str, scale: float, shift: float) -> str:
    if scale != 1:
        x = b.op("Mul", [x, b.scalar(scale, step, "scale")], step, "scaled")
    if shift != 0:
        x = b.op("Add", [x, b.scalar(shift, step, "shift")], step, "shifted")
    return x


def finish(b: GraphBuilder, step: Step, y: str) -> None:
    """Name the last helper value as the layer's top."""
    if y in step.inputs:
        b.node("Identity", [y], [step.outputs[0]], step.name)
    else:
        b.nodes[-1].output[0] = step.outputs[0]


@converts("Power")
def power(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    p, a, s = float(layer.power), float(layer.scale), float(layer.shift)
    if p == 0 or a == 0:         # Caffe: a constant, 1 or shift^power
        value = 1.0 if p == 0 else float(np.float32(s) ** np.float32(p))
        emit(b, step, "Expand", [b.scalar(value, step, "value"),
                                 b.ints(step.out_shapes[0], f"{step.name}/shape")])
        return
    y = affine(b, step, step.inputs[0], a, s)
    if p != 1:
        y = b.op("Pow", [y, b.scalar(p, step, "power")], step, "power")
    finish(b, step, y)


@converts("Exp")
def exp(b: GraphBuilder, step: Step) -> None:
    layer = step.layer       # y = outer exp(inner x)
    y = affine(b, step, step.inputs[0], float(layer.inner), 0.0)
    y = b.op("Exp", [y], step, "exp")
    finish(b, step, affine(b, step, y, float(layer.outer), 0.0))


@converts("Log")
def log(b: GraphBuilder, step: Step) -> None:
    layer = step.layer       # y = log(shift + scale x) / ln(base)
    y = affine(b, step, step.inputs[0], float(layer.input_scale), float(layer.input_shift))
    y = b.op("Log", [y], step, "log")
    finish(b, step, affine(b, step, y, float(layer.base_scale), 0.0))


@converts("Reduction")
def reduction(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    R = caffe_pb2.ReductionParameter
    ops = {R.SUM: "ReduceSum", R.ASUM: "ReduceL1", R.SUMSQ: "ReduceSumSquare",
           R.MEAN: "ReduceMean"}
    shape = step.in_shapes[0]
    axis = len(step.out_shapes[0])                 # top keeps the axes before `axis`
    rows = b.reshape(step.inputs[0], tuple(shape[:axis]) + (-1,), step, "rows")
    y = b.reduce(ops[layer.op], rows, [axis], step, "reduce", keepdims=0)
    coeff = float(layer.param.reduction_param.coeff)
    finish(b, step, affine(b, step, y, coeff, 0.0))


@converts("ArgMax")
def argmax(b: GraphBuilder, step: Step) -> None:
    """TopK on the input reversed along the axis: TopK breaks a tie by the lower
    index, Caffe's (value, index) sort by the higher, and reversing swaps the two."""
    layer = step.layer
    shape = step.in_shapes[0]
    x, axis = step.inputs[0], getattr(layer, "axis", 1)
    if not layer.has_axis:
        x = b.reshape(x, (shape[0], -1), step, "rows")                 # (N, D)
    size = shape[axis] if layer.has_axis else int(np.prod(shape[1:]))
    flipped = b.op("Slice", [x, b.ints([-1], f"{step.name}/starts"),
                             b.ints([-size - 1], f"{step.name}/ends"),
                             b.ints([axis], f"{step.name}/axes"),
                             b.ints([-1], f"{step.name}/steps")], step, "reversed")
    values, reversed_index = b.unique(f"{step.name}/values"), b.unique(f"{step.name}/rindex")
    b.node("TopK", [flipped, b.ints([layer.top_k], f"{step.name}/k")],
           [values, reversed_index], f"{step.name}/topk", axis=axis, largest=1, sorted=1)
    last = b.const(np.int64(size - 1), f"{step.name}/last", np.int64)
    index = b.op("Sub", [last, reversed_index], step, "index")
    index = b.op("Cast", [index], step, "float_index", to=b.onnx.TensorProto.FLOAT)
    if layer.has_axis:
        b.node("Identity", [values if layer.out_max_val else index], step.outputs,
               step.name)
        return
    k = layer.top_k
    parts = [b.reshape(index, (shape[0], 1, k), step, "index_row")]
    if layer.out_max_val:
        parts.append(b.reshape(values, (shape[0], 1, k), step, "value_row"))
    joined = parts[0] if len(parts) == 1 else b.op("Concat", parts, step, "rows", axis=1)
    b.reshape(joined, step.out_shapes[0], step, out=step.outputs[0])
