"""Chains of per-channel layers run with the Convolution before them.

A Convolution is often followed, in place on its blob, by a BatchNorm on global
statistics, a per-channel Scale and a ReLU: ``relu(((W x + b) - mean) / std *
gamma + beta)``, one pass over the blob per step. Such a chain runs as one:

- **With compiled kernels** (numba, ops/jit.py), in both modes, the convolution
  leaves out its bias and one compiled pass takes every value through the steps.
  In the default mode the steps are the layers' own float operations in their
  order (bias, - mean, / std, * gamma, + beta, max(., 0)), so the blob gets the
  same bits as from the layers one by one. In the fast mode the BatchNorm and
  Scale are folded first (below) and the pass is ``relu(a conv(x) + c)``.
- **Without them, in the fast mode** (``set_conv_algorithm('winograd')``), a
  BatchNorm and Scale fold into the convolution: per output channel the chain is
  ``a (W x) + c`` with ``a = gamma / std`` and ``c = (b - mean) a + beta``, and the
  convolution scales and shifts its output that way (the ReLU runs as a layer).
  The folding rounds differently from Caffe's steps, so it stays out of the
  default mode.

An Eltwise adding two blobs, followed in place by a ReLU (ResNet's shortcut joins),
runs as one compiled pass as well.

Only chains that run forward only fold (no layer below a loss, as in deploy nets):
a backward would need the layers' own state. A forward that starts inside a chain
runs its layers; one that ends inside it runs the part up to its end.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..ops import jit
from ..ops.winograd import fast_mode
from ..proto import caffe_pb2

if TYPE_CHECKING:
    from .graph import NetGraph


@dataclass(frozen=True)
class Chain:
    """Layer indices: the head (a convolution, or an Eltwise SUM of two blobs), then
    those of its steps that are present (an Eltwise head has only a ReLU)."""
    head: int
    bn: int | None = None
    scale: int | None = None
    relu: int | None = None
    eltwise: bool = False

    @property
    def folded(self) -> tuple[int, ...]:
        return tuple(i for i in (self.bn, self.scale, self.relu) if i is not None)


def chains_of(graph: NetGraph) -> dict[int, Chain]:
    """The graph's chains by head index, found on first use (after a lean net
    or a shadow has marked its layers forward only)."""
    if graph.fusion_chains is None:
        graph.fusion_chains = {c.head: c for c in _chains(graph)}
    return graph.fusion_chains


def _chains(graph: NetGraph) -> list[Chain]:
    found = []
    layers: list[Any] = list(graph.layers)
    for ci, conv in enumerate(layers[:-1]):
        if _is_plain_sum(graph, ci) and _relu_in_place(graph, ci + 1, graph.top_vecs[ci][0]):
            found.append(Chain(ci, relu=ci + 1, eltwise=True))
            continue
        if not (conv.type in ("Convolution", "ConvolutionDepthwise") and _runs_alone(graph, ci)
                and getattr(conv, "axis", None) == 1):
            continue
        blob, li = graph.top_vecs[ci][0], ci + 1
        steps: dict[str, Any] = {}
        bn = layers[li]
        if (bn.type == "BatchNorm" and bn.use_global_stats and _in_place_on(graph, li, blob)
                and bn.channels == conv.num_output):
            steps["bn"], li = li, li + 1
            scale = layers[li] if li < len(layers) else None
            if (scale is not None and scale.type == "Scale" and _in_place_on(graph, li, blob)
                    and len(graph.bottom_vecs[li]) == 1 and scale.axis == 1
                    and scale.blobs[0].shape == (conv.num_output,)):
                steps["scale"], li = li, li + 1
        if li < len(layers) and _relu_in_place(graph, li, blob):
            steps["relu"] = li
        if steps:
            found.append(Chain(ci, **steps))
    return found


def _relu_in_place(graph: NetGraph, li: int, blob: Any) -> bool:
    relu: Any = graph.layers[li]
    return relu.type == "ReLU" and relu.slope == 0 and _in_place_on(graph, li, blob)


def _is_plain_sum(graph: NetGraph, li: int) -> bool:
    """An Eltwise adding two blobs with coefficients 1 (ResNet's shortcut joins)."""
    layer: Any = graph.layers[li]
    return (layer.type == "Eltwise" and layer.op == caffe_pb2.EltwiseParameter.SUM
            and len(graph.bottom_vecs[li]) == 2
            and all(c == 1 for c in layer.coeffs) and layer.forward_only
            and len(graph.top_vecs[li]) == 1 and not any(layer.loss_weights))


def _runs_alone(graph: NetGraph, li: int) -> bool:
    layer = graph.layers[li]
    return (layer.forward_only and len(graph.bottom_vecs[li]) == 1
            and len(graph.top_vecs[li]) == 1 and not any(layer.loss_weights))


def _in_place_on(graph: NetGraph, li: int, blob: Any) -> bool:
    return (_runs_alone(graph, li) and graph.bottom_vecs[li][0] is blob
            and graph.top_vecs[li][0] is blob)


def active_chains(graph: NetGraph, start: int, end: int) -> tuple[dict[int, Chain], set[int]]:
    """The chains that run as one in a forward over layers start..end (what the
    mode and the compiled kernels allow, cut at ``end``), and the indices of the
    layers they take over."""
    found = chains_of(graph)
    compiled, fast = bool(found) and jit.available(), fast_mode()
    if not (compiled or fast):
        return {}, set()
    key = (start, end, compiled, fast)
    if key not in graph.fusion_active:
        graph.fusion_active[key] = _active(found, start, end, compiled)
    return graph.fusion_active[key]


def _active(found: dict[int, Chain], start: int, end: int,
            compiled: bool) -> tuple[dict[int, Chain], set[int]]:
    chains = {}
    for ci, chain in found.items():
        if ci < start or ci >= end:
            continue
        if not compiled:                       # fast mode, folded into the convolution
            chain = replace(chain, relu=None)
            if chain.bn is None or chain.eltwise:
                continue
        past: dict[str, Any] = {step: None for step in ("bn", "scale", "relu")
                                if (getattr(chain, step) or -1) > end}
        chain = replace(chain, **past)
        if chain.bn is None and chain.scale is not None:
            continue                           # a Scale whose BatchNorm runs as a layer
        if chain.folded:
            chains[ci] = chain
    return chains, {li for c in chains.values() for li in c.folded}


def run_folded(graph: NetGraph, chain: Chain) -> None:
    """The chain's convolution and steps, into its (in-place) blob."""
    ci = chain.head
    conv: Any = graph.layers[ci]
    bottom, top = graph.bottom_vecs[ci], graph.top_vecs[ci]
    conv.reshape(bottom, top)
    if chain.eltwise:                                     # compiled only: a ReLU follows
        jit.sum_relu(bottom[0].data, bottom[1].data, top[0].data)
        return
    bn: Any = None if chain.bn is None else graph.layers[chain.bn]
    scale: Any = None if chain.scale is None else graph.layers[chain.scale]
    if not jit.available():
        conv.forward_with(bottom, top, *_affine(conv, bn, scale))
        return
    conv.forward_with(bottom, top, None, None)            # no bias: the pass adds it
    y = top[0].data
    relu = chain.relu is not None
    if fast_mode() and bn is not None:
        a, c = _affine(conv, bn, scale)
        jit.channel_epilogue(y, gamma=a, beta=c, relu=relu)
        return
    bias = conv.blobs[1].data if conv.bias_term else None
    mean, std = bn.global_statistics() if bn is not None else (None, None)
    gamma = scale.blobs[0].data if scale is not None else None
    beta = scale.blobs[1].data if scale is not None and scale.bias_term else None
    jit.channel_epilogue(y, bias, mean, std, gamma, beta, relu)


def _affine(conv: Any, bn: Any, scale: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel (a, c) with chain(conv(x) + b) = a conv(x) + c, from the
    layers' current values (a few values per channel: made each forward, so any
    change of weights or statistics is seen), in float64, returned in the
    weights' dtype."""
    bias = conv.blobs[1].data.astype(np.float64) if conv.bias_term else 0.0
    mean_sum, var_sum, factor = (b.data.astype(np.float64) for b in bn.blobs)
    s = 0.0 if factor[0] == 0 else 1.0 / factor[0]
    a = 1.0 / np.sqrt(s * var_sum + float(bn.eps))
    c = (bias - s * mean_sum) * a
    if scale is not None:
        gamma = scale.blobs[0].data.astype(np.float64)
        beta = scale.blobs[1].data.astype(np.float64) if scale.bias_term else 0.0
        a, c = a * gamma, c * gamma + beta
    dtype = conv.blobs[0].data.dtype
    return a.astype(dtype), np.broadcast_to(c, a.shape).astype(dtype)
