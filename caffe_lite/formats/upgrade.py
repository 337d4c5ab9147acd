"""Bring old net and solver definitions up to date, in place, the way Caffe's
UpgradeNetAsNeeded / UpgradeSolverAsNeeded do (src/caffe/util/upgrade_proto.cpp),
plus the fork spellings found in the model zoo (V1 fork layer types, ``ceil_mode``,
DeepLab's ``hole``)."""
from __future__ import annotations

import logging
import os
from typing import Callable, TypeVar

from ..errors import CaffeLiteError, PrototxtError
from ..proto import caffe_pb2
from .upgrade_forks import upgrade_fork_params
from .upgrade_v0 import net_is_v0, upgrade_v0_padding, upgrade_v0_to_v1

__all__ = ["upgrade_net", "upgrade_solver", "upgrade_v0_padding", "upgrade_v0_to_v1",
           "upgrade_v1_to_v2", "upgrade_data_transform", "upgrade_input",
           "upgrade_batch_norm", "upgrade_fork_params", "v1_type_name"]

log = logging.getLogger(__name__)
V1 = caffe_pb2.V1LayerParameter

# V1 enum name -> V2 type string (upstream's table, then the forks' values).
V1_TYPE_NAMES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax",
    "BNLL": "BNLL", "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution", "DECONVOLUTION": "Deconvolution", "DATA": "Data",
    "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct", "LRN": "LRN", "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN",
    "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split",
    "SLICE": "Slice", "TANH": "TanH", "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
    # forks (DeconvNet, DeepLab-v1)
    "UNPOOLING": "Unpooling", "BN": "BN",
    # upstream never had a V1 CROP: this is the early FCN fork's, which took no
    # parameters and computed its offsets from the net's geometry. It keeps a name
    # of its own, so a net using it says so instead of cropping at offset 0.
    "CROP": "GeometricCrop",
    "ELTWISE_ACCURACY": "EltwiseAccuracy", "IMAGE_SEG_DATA": "ImageSegData",
    "WINDOW_SEG_DATA": "WindowSegData", "INTERP": "Interp", "MAT_WRITE": "MatWrite",
    "SEG_ACCURACY": "SegAccuracy", "DENSE_CRF": "DenseCRF",
}

SOLVER_TYPE_NAMES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad",
                     "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta", "ADAM": "Adam"}

# V1 fields upgrade_v1_to_v2 handles by hand; every other set *_param is copied by name.
# A V0 `layer` left inside a V1 entry has no V2 home and is dropped with a warning.
_V1_HANDLED = {"bottom", "top", "name", "include", "exclude", "type", "blobs", "param",
               "blob_share_mode", "blobs_lr", "weight_decay", "loss_weight"}

_M = TypeVar("_M")


def v1_type_name(value: int) -> str:
    """V2 type string of a V1 LayerType number (unknown numbers raise)."""
    try:
        return V1_TYPE_NAMES[V1.LayerType.Name(value)]
    except (KeyError, ValueError):
        raise PrototxtError(f"unknown V1 layer type number {value}") from None


def upgraded(message: _M, upgrade: Callable[[_M], object],
             filename: str | os.PathLike[str]) -> _M:
    """``message`` after ``upgrade`` (upgrade_net or upgrade_solver) has run on it
    in place; an error it raises names ``filename``."""
    try:
        upgrade(message)
    except CaffeLiteError as exc:
        exc.with_context(file=filename)
        raise
    return message


def upgrade_net(net: caffe_pb2.NetParameter) -> bool:
    """Upgrade a NetParameter in place to the current format; True if anything changed.

    Order as in Caffe: V0 -> V1, data transform fields, V1 -> V2, net inputs -> Input
    layer, BatchNorm param specs; then the fork spellings.
    """
    changed = False
    if net_is_v0(net):
        upgrade_v0_to_v1(net)
        changed = True
    changed |= upgrade_data_transform(net)
    if len(net.layers):
        upgrade_v1_to_v2(net)
        changed = True
    changed |= upgrade_input(net)
    changed |= upgrade_batch_norm(net)
    changed |= upgrade_fork_params(net)
    return changed


def upgrade_data_transform(net):
    """V1 data layers' scale/mean_file/crop_size/mirror -> transform_param."""
    changed = False
    for layer in net.layers:
        kind = V1.LayerType.Name(layer.type) if layer.HasField("type") else ""
        name = {"DATA": "data_param", "IMAGE_DATA": "image_data_param",
                "WINDOW_DATA": "window_data_param"}.get(kind)
        if name is None or not layer.HasField(name):
            continue
        source = getattr(layer, name)
        for field in ("scale", "mean_file", "crop_size", "mirror"):
            if source.HasField(field):
                setattr(layer.transform_param, field, getattr(source, field))
                source.ClearField(field)
                changed = True
    return changed


def upgrade_v1_to_v2(net):
    """V1 ``layers`` (enum types, blobs_lr, ...) -> V2 ``layer`` in place.

    Returns False when something could not be carried across (warned), else True.
    """
    if len(net.layer):
        raise PrototxtError(
            "the net mixes V1 'layers { type: ENUM }' and V2 'layer { type: \"Name\" }' "
            "definitions; rewrite the 'layers' entries in the 'layer' format")
    old = list(net.layers)
    net.ClearField("layers")
    compatible = True
    for v1 in old:
        compatible &= _upgrade_v1_layer(v1, net.layer.add())
    return compatible


def _upgrade_v1_layer(v1, out):
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    if v1.HasField("name"):
        out.name = v1.name
    out.include.extend(v1.include)
    out.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        try:
            out.type = v1_type_name(v1.type)
        except PrototxtError as exc:
            exc.with_context(layer=v1.name)
            raise
    out.blobs.extend(v1.blobs)
    for values, apply in ((v1.param, lambda p, v: setattr(p, "name", v)),
                          (v1.blob_share_mode, lambda p, v: setattr(p, "share_mode", v)),
                          (v1.blobs_lr, lambda p, v: setattr(p, "lr_mult", v)),
                          (v1.weight_decay, lambda p, v: setattr(p, "decay_mult", v))):
        for i, value in enumerate(values):
            while len(out.param) <= i:
                out.param.add()
            apply(out.param[i], value)
    out.loss_weight.extend(v1.loss_weight)
    compatible = True
    targets = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    for field, value in v1.ListFields():
        if field.name in _V1_HANDLED:
            continue
        target = targets.get(field.name)
        if (target is not None and field.message_type is not None
                and target.message_type.full_name == field.message_type.full_name):
            getattr(out, field.name).CopyFrom(value)
        else:
            log.warning("V1 layer '%s': field %s has no V2 equivalent; dropped",
                        v1.name, field.name)
            compatible = False
    return compatible


def upgrade_input(net):
    """Net-level input/input_shape/input_dim -> an Input layer named "input" first."""
    if not len(net.input):
        return False
    if len(net.input_shape) or len(net.input_dim):
        shapes = []
        for i, name in enumerate(net.input):
            if len(net.input_shape):
                if i >= len(net.input_shape):
                    raise PrototxtError(f"net input '{name}' has no input_shape",
                                        blob=name)
                shapes.append(list(net.input_shape[i].dim))
            else:
                dims = list(net.input_dim[4 * i: 4 * i + 4])
                if len(dims) != 4:
                    raise PrototxtError(f"net input '{name}' needs 4 input_dim values, "
                                        f"found {len(dims)}", blob=name)
                shapes.append(dims)
        layer = caffe_pb2.LayerParameter(name="input", type="Input", top=list(net.input))
        for dims in shapes:
            layer.input_param.shape.add().dim.extend(dims)
        layers = [layer] + list(net.layer)
        del net.layer[:]
        net.layer.extend(layers)
    # An input without shapes is a legacy caffemodel's leftover: just drop it.
    for field in ("input", "input_shape", "input_dim"):
        net.ClearField(field)
    return True


def upgrade_batch_norm(net):
    """Old BatchNorm definitions declared 3 param specs; their statistics must not
    be learned, so force lr_mult = decay_mult = 0 (other spec fields kept)."""
    changed = False
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0
                spec.decay_mult = 0
            changed = True
    return changed


def upgrade_solver(solver: caffe_pb2.SolverParameter) -> bool:
    """solver_type enum -> type string, in place; True if changed."""
    if not solver.HasField("solver_type"):
        return False
    if solver.HasField("type"):
        raise PrototxtError("the solver sets both the old solver_type (enum) and the "
                            "new type (string); keep only type")
    name = caffe_pb2.SolverParameter.SolverType.Name(solver.solver_type)
    solver.type = SOLVER_TYPE_NAMES[name]
    solver.ClearField("solver_type")
    return True
