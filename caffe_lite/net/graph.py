"""A Net's state, made in one place: ``build_graph`` runs the construction passes
in order (check the layer types, wire each layer to its named blobs and set it
up, decide which layers and bottoms need backward by Caffe's rules, share
parameters by ParamSpec name) and returns one ``NetGraph``. Everything else in
``net/`` only reads it."""
from __future__ import annotations

import os
import warnings
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..blob import Blob, memory_budget
from ..errors import (
    CaffeLiteError,
    DuplicateLayerNameWarning,
    MemoryLimitError,
    NetError,
    UnknownLayerError,
)
from ..layers.base import Layer, layer_class, layer_types
from ..proto import caffe_pb2


@dataclass
class NetGraph:
    """Layers over named blobs, in execution order; list fields are per layer."""
    param: caffe_pb2.NetParameter             # filtered, with Splits inserted
    source: str | None = None                 # the file it came from, for errors
    layers: list[Layer] = field(default_factory=list)
    layer_names: list[str] = field(default_factory=list)
    blobs: "OrderedDict[str, Blob]" = field(default_factory=OrderedDict)
    bottom_vecs: list[list[Blob]] = field(default_factory=list)
    top_vecs: list[list[Blob]] = field(default_factory=list)
    bottom_names: "OrderedDict[str, list[str]]" = field(default_factory=OrderedDict)
    top_names: "OrderedDict[str, list[str]]" = field(default_factory=OrderedDict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    blob_loss_weights: "OrderedDict[str, float]" = field(default_factory=OrderedDict)
    layer_need_backward: list[bool] = field(default_factory=list)
    bottom_need_backward: list[list[bool]] = field(default_factory=list)
    param_specs: list[list[caffe_pb2.ParamSpec]] = field(default_factory=list)
    # learnable parameters, one entry per distinct blob (shared ones once)
    learnable_params: list[Blob] = field(default_factory=list)
    params_lr: list[float] = field(default_factory=list)
    params_weight_decay: list[float] = field(default_factory=list)
    param_display_names: list[str] = field(default_factory=list)
    # chains of per-channel layers after a convolution (fusion.py), and those that
    # run as one for a forward's (start, end, compiled, fast), made once each
    fusion_chains: dict[int, Any] | None = None
    fusion_active: dict[tuple, Any] = field(default_factory=dict)

    def error(self, cls: type[CaffeLiteError], lp: Any, message: str,
              blob: str | None = None) -> CaffeLiteError:
        return cls(message, file=self.source, layer=lp.name, layer_type=lp.type,
                   blob=blob)


def build_graph(param: caffe_pb2.NetParameter, source: str | None = None,
                allow_python_layers: bool | None = None,
                dtype: npt.DTypeLike = np.float32) -> NetGraph:
    """The construction passes, in order, over a filtered and split NetParameter."""
    check_layer_types(param, source, allow_python_layers)
    graph = NetGraph(param=param, source=source)
    try:
        with memory_budget():
            wire_layers(graph, np.dtype(dtype))
    except MemoryLimitError as exc:
        exc.message += f"; the largest so far: {_largest_blobs(graph)}"
        exc.with_context(file=source)
        raise
    decide_backward(graph)
    share_params(graph)
    return graph


ALLOW_PYTHON_LAYERS_VARIABLE = "CAFFE_LITE_ALLOW_PYTHON_LAYERS"

#: what to do about a type that nobody implements, where there is something to say
UNSUPPORTED_TYPE_HINTS = {
    "GeometricCrop": "the V1 CROP of FCN's early fork, which computed its offsets "
                     "from the net's geometry; write it as a Crop layer with "
                     "crop_param axis and offset (caffe.coord_map.crop computes them "
                     "for a NetSpec)",
}


def python_layers_allowed(allow_python_layers: bool | None = None) -> bool:
    """The caller's choice, or else the environment's (set to 1 by the pycaffe
    script runner, since the person runs their own code)."""
    if allow_python_layers is not None:
        return bool(allow_python_layers)
    return os.environ.get(ALLOW_PYTHON_LAYERS_VARIABLE, "") not in ("", "0")


def _largest_blobs(graph: NetGraph, count: int = 3) -> str:
    """The ``count`` largest blobs and parameters built so far, with their sizes."""
    sizes = [(blob.count * blob.dtype.itemsize * 2, name, blob.shape)
             for name, blob in graph.blobs.items() if blob.shape]
    sizes += [(blob.count * blob.dtype.itemsize * 2, f"{layer.name}[{i}]", blob.shape)
              for layer in graph.layers for i, blob in enumerate(layer.blobs)]
    top = sorted(sizes, key=lambda item: -item[0])[:count]
    return ", ".join(f"'{name}' {shape} {size:,} bytes" for size, name, shape in top)


def check_layer_types(param: caffe_pb2.NetParameter, source: str | None,
                      allow_python_layers: bool | None = None) -> None:
    """One error listing every layer this net cannot build, not just the first."""
    known = set(layer_types())
    allowed = python_layers_allowed(allow_python_layers)
    problems, hints = [], {}
    for lp in param.layer:
        if lp.type == "Python" and not allowed:
            problems.append(f"'{lp.name}' (Python layer importing module "
                            f"'{lp.python_param.module}': pass "
                            f"allow_python_layers=True or set "
                            f"{ALLOW_PYTHON_LAYERS_VARIABLE}=1 to run it)")
        elif lp.type not in known:
            problems.append(f"'{lp.name}' (type '{lp.type}')")
            if lp.type in UNSUPPORTED_TYPE_HINTS:
                hints[lp.type] = UNSUPPORTED_TYPE_HINTS[lp.type]
    if problems:
        notes = "".join(f" {kind}: {hint}." for kind, hint in hints.items())
        raise UnknownLayerError(
            f"cannot build {len(problems)} layer(s): " + "; ".join(problems) +
            f".{notes} Known types: {', '.join(sorted(known))}", file=source)


class _Wiring:
    """What wiring tracks while it walks the layers: which blobs are produced
    and not yet consumed, and which need a gradient so far."""

    def __init__(self, graph: NetGraph, dtype: np.dtype[Any]) -> None:
        self.graph = graph
        self.dtype = dtype
        self.available: set[str] = set()
        self.need_backward: dict[str, bool] = {}


def wire_layers(graph: NetGraph, dtype: np.dtype[Any]) -> None:
    """Create each layer, connect it to its named blobs and set it up."""
    wiring = _Wiring(graph, dtype)
    phase = graph.param.state.phase
    for lp in graph.param.layer:
        if not lp.HasField("phase"):
            lp.phase = phase
        layer = layer_class(lp.type, lp.name)(lp)
        layer.net_file = graph.source          # resolves relative file params
        bottoms, bottom_need = _connect_bottoms(wiring, lp)
        tops = _connect_tops(wiring, lp, layer)
        try:
            layer.set_up(bottoms, tops)
        except CaffeLiteError as exc:
            exc.with_context(file=graph.source, layer=lp.name,
                             layer_type=lp.type)
            raise
        for name, weight in zip(lp.top, layer.loss_weights):
            graph.blob_loss_weights[name] = weight
        specs = _param_specs(graph, lp, layer)
        # learnable params, or a bottom that needs backward, make the layer need it
        need = any(layer.param_propagate_down) or \
            any(wiring.need_backward[n] for n in lp.bottom)
        if need:
            for name in lp.top:
                wiring.need_backward[name] = True
        graph.layers.append(layer)
        graph.layer_names.append(lp.name)
        graph.bottom_vecs.append(bottoms)
        graph.top_vecs.append(tops)
        graph.bottom_names[lp.name] = list(lp.bottom)
        graph.top_names[lp.name] = list(lp.top)
        graph.bottom_need_backward.append(bottom_need)
        graph.layer_need_backward.append(need)
        graph.param_specs.append(specs)
    # outputs: produced and never consumed, in name order (Caffe keeps a std::set)
    graph.outputs = sorted(wiring.available)
    _warn_duplicate_names(graph)


def _warn_duplicate_names(graph: NetGraph) -> None:
    """Caffe accepts layers that share a name; so do we, saying which: weights go
    to the first of them (CopyTrainedLayersFrom), and pycaffe's name-keyed views
    (params, layer_dict) show the last under the first one's position."""
    counts = Counter(graph.layer_names)
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        where = f"{graph.source}: " if graph.source else ""
        warnings.warn(f"{where}layer names used more than once: {', '.join(repeated)} "
                      f"(weights are copied into the first layer of each name)",
                      DuplicateLayerNameWarning, stacklevel=4)


def _connect_bottoms(wiring: _Wiring, lp: Any) -> tuple[list[Blob], list[bool]]:
    """The layer's bottom blobs, and whether each needs a gradient."""
    graph = wiring.graph
    if lp.propagate_down and len(lp.propagate_down) != len(lp.bottom):
        raise graph.error(NetError, lp, f"propagate_down has "
                          f"{len(lp.propagate_down)} entries for "
                          f"{len(lp.bottom)} bottoms")
    bottoms, need = [], []
    for i, name in enumerate(lp.bottom):
        if name not in wiring.available:
            raise graph.error(NetError, lp, "unknown bottom blob" + (
                " (it was produced but already consumed by an earlier layer)"
                if name in graph.blobs else ""), blob=name)
        wiring.available.discard(name)
        bottoms.append(graph.blobs[name])
        propagate = lp.propagate_down[i] if lp.propagate_down else True
        need.append(wiring.need_backward[name] and propagate)
    return bottoms, need


def _connect_tops(wiring: _Wiring, lp: Any, layer: Layer) -> list[Blob]:
    """New blobs for the tops, or the bottom's blob for an in-place top."""
    graph = wiring.graph
    tops = []
    for i, name in enumerate(lp.top):
        if i < len(lp.bottom) and lp.bottom[i] == name:
            if not getattr(layer, "allows_in_place", False):
                raise graph.error(NetError, lp, "this layer type cannot run in "
                                  "place (its top and bottom must be different "
                                  "blobs)", blob=name)
            blob = graph.blobs[name]
        elif name in graph.blobs:
            raise graph.error(NetError, lp, "top blob produced by more than one "
                              "layer", blob=name)
        else:
            blob = graph.blobs[name] = Blob(dtype=wiring.dtype)
            wiring.need_backward[name] = False
        if lp.type == "Input":
            graph.inputs.append(name)
        wiring.available.add(name)
        tops.append(blob)
    while layer.auto_top_blobs and len(tops) < layer.required_num_top():
        tops.append(Blob(dtype=wiring.dtype))     # anonymous, as in Caffe
    return tops


def _param_specs(graph: NetGraph, lp: Any, layer: Layer) -> list[Any]:
    """One ParamSpec per param blob (defaults past the given ones); a param
    with lr_mult 0 gets no gradient."""
    if len(lp.param) > len(layer.blobs):
        raise graph.error(NetError, lp, f"{len(lp.param)} param specs for "
                          f"{len(layer.blobs)} parameter blobs")
    specs = [lp.param[k] if k < len(lp.param) else caffe_pb2.ParamSpec()
             for k in range(len(layer.blobs))]
    layer.param_propagate_down = [s.lr_mult != 0 for s in specs]
    return specs


def decide_backward(graph: NetGraph) -> None:
    """Skip backward for layers that do not lead to a loss (Caffe's rules),
    then apply force_backward."""
    under_loss: set[str | None] = set()
    skip_backprop: set[str | None] = set()
    need, bottom_need = graph.layer_need_backward, graph.bottom_need_backward
    for li in reversed(range(len(graph.layers))):
        layer, lp = graph.layers[li], graph.param.layer[li]
        contributes, skip_down = False, True
        for ti in range(len(graph.top_vecs[li])):
            name = lp.top[ti] if ti < len(lp.top) else None    # None: anonymous top
            if layer.loss_weights[ti] or name in under_loss:
                contributes = True
            if name not in skip_backprop:
                skip_down = False
            if contributes and not skip_down:
                break
        if need[li] and skip_down:
            need[li] = False
            bottom_need[li] = [False] * len(lp.bottom)
        if not contributes:
            need[li] = False
        for bi, name in enumerate(lp.bottom):
            if contributes:
                under_loss.add(name)
            else:
                bottom_need[li][bi] = False
            if not bottom_need[li][bi]:
                skip_backprop.add(name)
    if graph.param.force_backward:
        for li, layer in enumerate(graph.layers):
            need[li] = True
            bottom_need[li] = [n or layer.allow_force_backward(bi)
                               for bi, n in enumerate(bottom_need[li])]
            layer.param_propagate_down = [True] * len(layer.blobs)
    for li, layer in enumerate(graph.layers):
        if not layer.has_backward:
            need[li] = False
        if not need[li]:
            layer.forward_only = True      # its backward never runs: keep nothing for it


def share_params(graph: NetGraph) -> None:
    """One Blob per ParamSpec name; collect learnable params with lr/decay."""
    owners: dict[str, tuple[int, Blob]] = {}     # spec name -> (layer idx, blob)
    for li, layer in enumerate(graph.layers):
        for pi, spec in enumerate(graph.param_specs[li]):
            blob = layer.blobs[pi]
            if spec.name and spec.name in owners:
                owner_li, owner_blob = owners[spec.name]
                strict = spec.share_mode != caffe_pb2.ParamSpec.PERMISSIVE
                if (strict and owner_blob.shape != blob.shape) or \
                        owner_blob.count != blob.count:
                    raise NetError(
                        f"shared param '{spec.name}' has shape {blob.shape} here "
                        f"but {owner_blob.shape} in its owner layer "
                        f"'{graph.layer_names[owner_li]}'", file=graph.source,
                        layer=layer.name, layer_type=layer.type)
                layer.blobs[pi] = owner_blob
                k = graph.learnable_params.index(owner_blob)
                if spec.HasField("lr_mult"):
                    graph.params_lr[k] = spec.lr_mult
                if spec.HasField("decay_mult"):
                    graph.params_weight_decay[k] = spec.decay_mult
                continue
            if spec.name:
                owners[spec.name] = (li, blob)
            graph.learnable_params.append(blob)
            graph.params_lr.append(spec.lr_mult)
            graph.params_weight_decay.append(spec.decay_mult)
            graph.param_display_names.append(spec.name or f"{layer.name}[{pi}]")
