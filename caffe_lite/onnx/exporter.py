"""Net -> ONNX model, written atomically, then checked against our own forward.

Shapes are static: the graph computes the net at the input shapes it was built
with (every Reshape, Crop and pooling divisor is known then, as in Caffe, whose
shapes are fixed until the next reshape).
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ExportError, VerificationError, require
from ..formats.atomic import atomic_write
from ..proto import caffe_pb2
from . import forks, neurons, pooling, shapes  # noqa: F401  (they register converters)
from .builder import GraphBuilder, NoMapping, Step
from .layers import CONVERTERS
from .verify import Verification, unverified_path, verify

DEFAULT_OPSET = 17
#: layers whose tops are known before any forward (only their shapes matter)
SHAPE_ONLY = {"PriorBox"}
#: types that mean "this is a training prototxt", with what to say about them
TRAINING_TYPES = ("Data", "ImageData", "HDF5Data", "WindowData", "AnnotatedData",
                  "DenseImageData", "ImageSegData", "MemoryData", "DummyData")


def load_onnx() -> Any:
    require("onnxruntime", "onnx", "checking an ONNX export")
    return require("onnx", "onnx", "exporting to ONNX")


def check_exportable(net: Any) -> None:
    """The refusals that come before any mapping: TRAIN nets and Python layers."""
    source = net.source
    if net.phase == caffe_pb2.TRAIN:
        raise ExportError("the net was built in the TRAIN phase; export the deploy "
                          "prototxt (Input layers, no losses), or build it with phase "
                          "TEST (caffe-lite export --phase TEST)", file=source)
    python = [f"'{layer.param.name}' (module '{layer.param.python_param.module}', "
              f"layer '{layer.param.python_param.layer}')"
              for layer in net.layers if layer.param.type == "Python"]
    if python:
        raise ExportError(f"Python layers run arbitrary code and cannot be exported: "
                          f"{', '.join(python)}", file=source)


def build_model(net: Any, opset: int = DEFAULT_OPSET) -> Any:
    """The ONNX ModelProto of ``net``; one ExportError lists every layer that has no
    faithful mapping."""
    onnx = load_onnx()
    check_exportable(net)
    layers = net.layers
    writes = Counter(top for layer in layers for top in layer.param.top)
    b = GraphBuilder(onnx, opset, writes)
    graph_inputs, problems = [], []
    for i, layer in enumerate(layers):
        lp = layer.param
        tops = list(lp.top)
        if lp.type == "Input":
            for top in tops:
                graph_inputs.append((top, b.graph_input(top)))
            continue
        if lp.type in SHAPE_ONLY:
            layer.forward(net.bottom_vecs[i], net.top_vecs[i])
        step = Step(layer, [b.value(x) for x in lp.bottom], [],
                    [net.blobs[x].shape for x in lp.bottom],
                    [net.blobs[t].shape for t in tops],
                    [net.blobs[t].data.copy() for t in tops] if lp.type in SHAPE_ONLY
                    else [])
        convert = CONVERTERS.get(lp.type)
        if convert is None:
            problems.append(f"'{lp.name}' ({lp.type}{_why_missing(lp.type)})")
        if not _aliases(layer):
            step.outputs = [b.define(t, lp.name) for t in tops]
        try:
            if convert is not None:
                convert(b, step)
        except NoMapping as exc:
            problems.append(f"'{lp.name}' ({lp.type}: {exc})")
        for top in tops:                       # a failed layer still defines its tops
            if top not in b.current:
                b.alias(top, top)
    if problems:
        raise ExportError(f"{len(problems)} layer(s) have no faithful ONNX mapping, "
                          f"nothing was written: {'; '.join(problems)}", file=net.source)
    return _assemble(onnx, b, net, graph_inputs, opset)


def _aliases(layer: Any) -> bool:
    """Whether the layer's tops are its bottom, unchanged (no node, no new value)."""
    if layer.param.type == "Dropout":
        return bool(layer.scale_train and not layer.random)
    return bool(layer.param.type == "Split")


def _why_missing(layer_type: str) -> str:
    if layer_type in TRAINING_TYPES:
        return ": a data layer that reads files; export the deploy prototxt with " \
               "Input layers"
    if layer_type.endswith("Loss") or layer_type == "Accuracy":
        return ": training only; export the deploy prototxt"
    return ": no ONNX mapping"


def _assemble(onnx: Any, b: GraphBuilder, net: Any, graph_inputs: list[tuple[str, str]],
              opset: int) -> Any:
    helper, FLOAT = onnx.helper, onnx.TensorProto.FLOAT
    outputs = []
    for blob in net.outputs:
        value = b.value(blob)
        if value != blob and blob not in b.used:   # the last write was an alias
            b.node("Identity", [value], [blob], f"{blob}/output")
            value = blob
        outputs.append(helper.make_tensor_value_info(value, FLOAT, net.blobs[blob].shape))
    inputs = [helper.make_tensor_value_info(value, FLOAT, net.blobs[blob].shape)
              for blob, value in graph_inputs]
    graph = helper.make_graph(b.nodes, net.param.name or "caffe_net", inputs, outputs,
                              initializer=b.initializers)
    from .. import __version__
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="caffe_lite", producer_version=__version__)
    model.ir_version = min(model.ir_version, 10)     # readable by older runtimes too
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the ONNX graph does not validate: {exc}",
                          file=net.source) from exc
    return model


def export(net: Any, path: str | os.PathLike[str], opset: int = DEFAULT_OPSET,
           inputs: Sequence[Mapping[str, np.ndarray]] | Mapping[str, np.ndarray] |
           None = None, rtol: float = 1e-4, seed: int = 0) -> Verification:
    """Write ``net`` as an ONNX model at ``path`` and verify it: onnxruntime runs it
    on a seeded random input and on each of ``inputs`` (dicts of input name ->
    array), and every output must match caffe_lite's forward within ``rtol`` (max
    abs difference / max abs value). Returns the Verification; on a mismatch the
    file is renamed to ``*.unverified.onnx`` and VerificationError is raised."""
    if opset < DEFAULT_OPSET:
        raise ExportError(f"opset {opset} is too old: the exporter needs {DEFAULT_OPSET} "
                          f"or newer")
    model = build_model(net, opset)
    path = os.fspath(path)
    with atomic_write(path) as handle:
        handle.write(model.SerializeToString())
    result = verify(net, path, inputs=inputs, rtol=rtol, seed=seed)
    if not result.ok:
        bad = unverified_path(path)
        os.replace(path, bad)
        raise VerificationError(f"the export does not compute what the net computes "
                                f"(relative tolerance {rtol:g}); kept as {bad}",
                                file=bad, verification=result)
    return result
