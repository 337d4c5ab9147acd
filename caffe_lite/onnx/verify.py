"""Run an exported model in onnxruntime and compare every output with the net's
own forward: the proof that the file computes what Caffe computes.

The relative difference of an output is its largest absolute difference over its
largest absolute value (so outputs near zero do not blow it up).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ExportError, require


@dataclass
class Comparison:
    """One output on one input set."""
    inputs: str          # "seeded" or "input 1", ...
    output: str
    max_abs: float
    max_rel: float
    ok: bool


@dataclass
class Verification:
    path: str
    rtol: float
    rows: list[Comparison] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def max_rel(self) -> float:
        return max((row.max_rel for row in self.rows), default=0.0)

    def format(self) -> str:
        width = max([len(r.output) for r in self.rows] + [6])
        lines = [f"{'inputs':<8} {'output':<{width}} {'max abs diff':>12} "
                 f"{'max rel diff':>12}"]
        for r in self.rows:
            flag = "" if r.ok else f"  > rtol {self.rtol:g}"
            lines.append(f"{r.inputs:<8} {r.output:<{width}} {r.max_abs:>12.3g} "
                         f"{r.max_rel:>12.3g}{flag}")
        return "\n".join(lines)


def unverified_path(path: str) -> str:
    stem = path[:-5] if path.endswith(".onnx") else path
    return stem + ".unverified.onnx"


def seeded_inputs(net: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard normal values for every net input, from one seed; an input that
    an Embed layer reads gets valid indices instead."""
    rng = np.random.default_rng(seed)
    source = {top: layer.param.bottom[0] for layer in net.layers
              if layer.param.type == "Split" for top in layer.param.top}
    rows = {source.get(layer.param.bottom[0], layer.param.bottom[0]): layer.input_dim
            for layer in net.layers if layer.param.type == "Embed"}
    feed = {}
    for name in net.inputs:
        shape = net.blobs[name].shape
        feed[name] = (rng.integers(0, rows[name], shape) if name in rows else
                      rng.standard_normal(shape)).astype(np.float32)
    return feed


def compare(output: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(max abs difference, that over the reference's max abs value)."""
    diff = np.abs(output.astype(np.float64) - reference.astype(np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


def verify(net: Any, path: str | os.PathLike[str],
           inputs: Sequence[Mapping[str, np.ndarray]] | Mapping[str, np.ndarray] |
           None = None, rtol: float = 1e-4, seed: int = 0) -> Verification:
    """Compare the model at ``path`` with ``net`` on a seeded input and on ``inputs``
    (dicts of input name -> array, or one such dict)."""
    ort = require("onnxruntime", "onnx", "checking an ONNX export", file=path)
    path = os.fspath(path)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # idle onnxruntime threads must not spin while numpy's BLAS runs our forward
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:          # onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot load the model: {exc}", file=path) from exc
    names = [o.name for o in session.get_outputs()]
    onnx_inputs = [i.name for i in session.get_inputs()]
    if sorted(onnx_inputs) != sorted(net.inputs):
        raise ExportError(f"the model's inputs {onnx_inputs} are not the net's "
                          f"{list(net.inputs)}", file=path)
    for given in session.get_inputs():
        wanted = net.blobs[given.name].shape
        if tuple(given.shape) != wanted:
            raise ExportError(f"the model was exported for input '{given.name}' of shape "
                              f"{tuple(given.shape)}, the net's is {wanted}: build the "
                              f"net with the model's shapes", file=path, blob=given.name)
    result = Verification(path, rtol)
    sets = [("seeded", seeded_inputs(net, seed))]
    if isinstance(inputs, Mapping):                  # one set given as a dict
        inputs = [inputs]
    sets += [(f"input {i}", dict(feed)) for i, feed in enumerate(inputs or [], 1)]
    for label, feed in sets:
        feed = _checked(net, feed, label, path)
        reference = {k: v.copy() for k, v in net.forward(**feed).items()}
        try:
            produced = session.run(names, feed)
        except Exception as exc:
            raise ExportError(f"onnxruntime failed on the {label} input: {exc}",
                              file=path) from exc
        for name, value in zip(names, produced):
            value = np.asarray(value)
            if value.shape != reference[name].shape:
                result.rows.append(Comparison(label, name, float("inf"), float("inf"),
                                              False))
                continue
            max_abs, max_rel = compare(value, reference[name])
            result.rows.append(Comparison(label, name, max_abs, max_rel,
                                          bool(max_rel <= rtol)))
    return result


def _checked(net: Any, feed: dict[str, Any], label: str, path: str) -> dict[str, Any]:
    if set(feed) != set(net.inputs):
        raise ExportError(f"the {label} gives {sorted(feed)}, the net's inputs are "
                          f"{list(net.inputs)}", file=path)
    out = {}
    for name, value in feed.items():
        value = np.asarray(value, dtype=np.float32)
        if value.shape != net.blobs[name].shape:
            raise ExportError(f"the {label} for '{name}' has shape {value.shape}; the "
                              f"model is exported for {net.blobs[name].shape}",
                              file=path, blob=name)
        out[name] = value
    return out


#: per layer type, how to draw each of its blobs: variances and scales positive
_POSITIVE: dict[str, tuple[int, ...]] = {"BatchNorm": (1, 2), "Scale": (0,),
                                         "PReLU": (0,), "Normalize": (0,)}


def seeded_weights(net: Any, seed: int = 0) -> None:
    """Random weights for a prototxt without a caffemodel, scaled so activations
    stay near unit size through deep nets (weights N(0, 1/fan_in), other blobs
    small, variances and scales in [0.5, 1.5), BatchNorm's factor 1)."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        kind = layer.param.type
        positive = _POSITIVE.get(kind, ())
        if kind == "BN":                   # SegNet: scale, shift; PSPNet: + mean, var
            positive = (0, 3) if len(layer.blobs) == 4 else (0,)
        for i, blob in enumerate(layer.blobs):
            shape = blob.shape
            if kind == "BatchNorm" and i == 2:
                values = np.ones(shape)
            elif i in positive:
                values = rng.uniform(0.5, 1.5, shape)
            elif len(shape) >= 2:
                fan_in = max(1, blob.count // shape[0])
                values = rng.standard_normal(shape) / np.sqrt(fan_in)
            else:
                values = 0.1 * rng.standard_normal(shape)
            blob.data[...] = values
