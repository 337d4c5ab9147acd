"""Caffe's elementwise layers (ReLU, PReLU, Sigmoid, ..., Power, Exp, Log) and
Softmax -> ONNX. Power/Exp/Log skip the multiplications Caffe skips."""
from __future__ import annotations

import numpy as np

from .builder import GraphBuilder, Step
from .layers import affine, blob_const, channel_shape, converts, emit, finish


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

