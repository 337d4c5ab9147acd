"""Running a graph's layers over a range (forward, backward, reshape), each error
naming the layer it came from: what a Net and the batch-parallel shadows
(parallel.py) do."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CaffeLiteError
from . import fusion

if TYPE_CHECKING:
    from .graph import NetGraph


def _named(exc: CaffeLiteError, layer: Any) -> None:
    """Make ``exc`` name ``layer`` and its type (the caller re-raises). A plain try
    costs nothing in the loops below, where a context manager per layer cost ~2 us."""
    exc.with_context(layer=layer.name, layer_type=layer.type)


def run_forward(graph: NetGraph, start: int, end: int) -> float:
    """Run a graph's layers start..end inclusive and return the summed loss, the
    chains of per-channel layers after a convolution run as one (fusion.py)."""
    loss = 0.0
    chains, skipped = fusion.active_chains(graph, start, end)
    layers, bottoms, tops = graph.layers, graph.bottom_vecs, graph.top_vecs
    with np.errstate(all="ignore"):       # a non-finite result is data, not a warning
        for li in range(start, end + 1):
            layer = layers[li]
            try:
                if li in chains:
                    fusion.run_folded(graph, chains[li])
                elif li not in skipped:
                    loss += layer.run_forward(bottoms[li], tops[li])
            except CaffeLiteError as exc:
                _named(exc, layer)
                raise
    return loss


def run_backward(graph: NetGraph, start: int, end: int) -> None:
    """Backward for layers start..end inclusive, top to bottom, where needed."""
    with np.errstate(all="ignore"):
        for li in range(start, end - 1, -1):
            if graph.layer_need_backward[li]:
                layer = graph.layers[li]
                try:
                    layer.backward(graph.top_vecs[li], graph.bottom_need_backward[li],
                                   graph.bottom_vecs[li])
                except CaffeLiteError as exc:
                    _named(exc, layer)
                    raise


def reshape_layers(graph: NetGraph, start: int, end: int) -> None:
    """Reshape layers start..end inclusive, as their forwards would first."""
    for li in range(start, end + 1):
        layer = graph.layers[li]
        try:
            layer.reshape(graph.bottom_vecs[li], graph.top_vecs[li])
        except CaffeLiteError as exc:
            _named(exc, layer)
            raise
