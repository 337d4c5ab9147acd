"""Caffe layer -> ONNX nodes, one function per layer type: the registry, and the
layers with weights or windows (convolution, pooling, fully connected,
normalization, scale, eltwise). Elementwise layers are in neurons.py, shape
layers in shapes.py, the forks' and SSD's in forks.py.

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


# ==== identity, inputs ======================================================

@converts("Split")
def split(b: GraphBuilder, step: Step) -> None:
    for top in step.layer.param.top:
        b.alias(top, step.inputs[0])


@converts("Silence")
def silence(b: GraphBuilder, step: Step) -> None:
    """Consumes its bottoms, computes nothing."""


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


@converts("Parameter")
def parameter(b: GraphBuilder, step: Step) -> None:
    b.node("Identity", [blob_const(b, step, 0, "value")], step.outputs, step.name)


# ==== convolution, fully connected ===========================================

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
