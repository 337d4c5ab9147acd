"""The fast mode's folding of TEST-phase BatchNorm and Scale into a Convolution.

A Convolution followed in place by a BatchNorm on global statistics, and optionally
a per-channel Scale, computes ``((W x + b) - mean) / std * gamma + beta``, which is
``a (W x) + c`` per output channel, with ``a = gamma / std`` and ``c = (b - mean) a +
beta``. In the fast mode (``set_conv_algorithm('winograd')``) the convolution
scales and shifts its output that way, in place of its bias, and the two layers and
their four passes over the blob are skipped. The blob holds what the chain would have left in it, up
to rounding (the folding rounds differently from Caffe's three steps), so it stays
out of the default mode.

Only chains that run forward only fold (no layer below a loss, as in deploy nets):
a backward would need the layers' own state. A chain folds only when a forward
runs all of it; a forward that starts or ends inside a chain runs its layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..ops.winograd import fast_mode

if TYPE_CHECKING:
    from .graph import NetGraph


@dataclass
class Chain:
    """Layer indices: the convolution, then the layers folded into it."""
    conv: int
    folded: tuple[int, ...]


def chains_of(graph: NetGraph) -> dict[int, Chain]:
    """The graph's foldable chains by convolution index, found on first use (after
    a lean net or a shadow has marked its layers forward only)."""
    if graph.fusion_chains is None:
        graph.fusion_chains = {c.conv: c for c in _chains(graph)}
    return graph.fusion_chains


def _chains(graph: NetGraph) -> list[Chain]:
    found = []
    layers: list[Any] = list(graph.layers)
    for ci, conv in enumerate(layers[:-1]):
        if not (conv.type in ("Convolution", "ConvolutionDepthwise") and _runs_alone(graph, ci)
                and getattr(conv, "axis", None) == 1):
            continue
        blob = graph.top_vecs[ci][0]
        bn = layers[ci + 1]
        if not (bn.type == "BatchNorm" and bn.use_global_stats and _in_place_on(graph, ci + 1, blob)
                and bn.channels == conv.num_output):
            continue
        folded = [ci + 1]
        if ci + 2 < len(layers):
            scale = layers[ci + 2]
            if (scale.type == "Scale" and _in_place_on(graph, ci + 2, blob)
                    and len(graph.bottom_vecs[ci + 2]) == 1 and scale.axis == 1
                    and scale.blobs[0].shape == (conv.num_output,)):
                folded.append(ci + 2)
        found.append(Chain(ci, tuple(folded)))
    return found


def _runs_alone(graph: NetGraph, li: int) -> bool:
    layer = graph.layers[li]
    return (layer.forward_only and len(graph.bottom_vecs[li]) == 1
            and len(graph.top_vecs[li]) == 1 and not any(layer.loss_weights))


def _in_place_on(graph: NetGraph, li: int, blob: Any) -> bool:
    return (_runs_alone(graph, li) and graph.bottom_vecs[li][0] is blob
            and graph.top_vecs[li][0] is blob)


def active_chains(graph: NetGraph, start: int, end: int) -> tuple[dict[int, Chain], set[int]]:
    """In the fast mode, the chains wholly inside layers start..end and the indices
    of the layers they skip; nothing otherwise."""
    if not fast_mode():
        return {}, set()
    chains = {ci: c for ci, c in chains_of(graph).items()
              if ci >= start and max(c.folded) <= end}
    return chains, {li for c in chains.values() for li in c.folded}


def run_folded(graph: NetGraph, chain: Chain) -> None:
    """The chain's convolution, its output scaled and shifted per channel as the
    folded layers would, into its (in-place) blob."""
    ci = chain.conv
    conv: Any = graph.layers[ci]
    bottom, top = graph.bottom_vecs[ci], graph.top_vecs[ci]
    conv.reshape(bottom, top)
    scale, shift = _affine(conv, [graph.layers[li] for li in chain.folded])
    conv.forward_with(bottom, top, scale, shift)


def _affine(conv: Any, layers: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel (a, c) with chain(conv(x) + b) = a conv(x) + c, from the
    layers' current values (a few values per channel: made each forward, so any
    change of weights or statistics is seen), in float64, returned in the
    weights' dtype."""
    bias = conv.blobs[1].data.astype(np.float64) if conv.bias_term else 0.0
    bn = layers[0]
    mean_sum, var_sum, factor = (b.data.astype(np.float64) for b in bn.blobs)
    s = 0.0 if factor[0] == 0 else 1.0 / factor[0]
    scale = 1.0 / np.sqrt(s * var_sum + float(bn.eps))
    shift = (bias - s * mean_sum) * scale
    if len(layers) > 1:
        gamma = layers[1].blobs[0].data.astype(np.float64)
        beta = layers[1].blobs[1].data.astype(np.float64) if layers[1].bias_term else 0.0
        scale, shift = scale * gamma, shift * gamma + beta
    dtype = conv.blobs[0].data.dtype
    return scale.astype(dtype), np.broadcast_to(shift, scale.shape).astype(dtype)
