"""In-place chains of per-channel layers (BatchNorm with global statistics, Scale,
ReLU: ResNet's and MobileNet's conv -> BN -> Scale -> ReLU) run one block of
channels at a time in a net that runs forward only (the batch-parallel shadows).

Each layer alone is one or two passes over its blob; a chain of three is five
passes over memory. A block of channels small enough for the cache goes through
every layer of the chain before the next block is read, with each layer's own
ops on it, so every value gets the same operations in the same order: the result
is bit-identical. Only forward-only nets fuse: a fused layer keeps nothing for
a backward.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..errors import CaffeLiteError

if TYPE_CHECKING:
    from .graph import NetGraph

#: bytes of a blob one block holds: well inside a core's L2 (1 MB here)
BLOCK_BYTES = 1 << 18


def chains(graph: NetGraph, start: int, stop: int) -> dict[int, int]:
    """first layer -> last layer of each chain of two or more in-place layers over
    one blob, each with a channel_op, among the layers [start, stop)."""
    found: dict[int, int] = {}
    li = start
    while li < stop:
        end = li
        while end < stop and _fusable(graph, end) and (
                end == li or graph.bottom_vecs[end][0] is graph.bottom_vecs[li][0]):
            end += 1
        if end - li >= 2:
            found[li] = end - 1
            li = end
        else:
            li += 1
    return found


def _fusable(graph: NetGraph, li: int) -> bool:
    bottoms, tops = graph.bottom_vecs[li], graph.top_vecs[li]
    layer = graph.layers[li]
    return (len(bottoms) == 1 and len(tops) == 1 and bottoms[0] is tops[0]
            and len(bottoms[0].shape) >= 2 and hasattr(layer, "channel_op")
            and layer.channel_op() is not None)


def run_chain(graph: NetGraph, first: int, last: int) -> None:
    """Forward of the layers first..last (one chain) a block of channels at a time."""
    ops: list[Callable[[Any, slice], None]] = []
    for li in range(first, last + 1):
        layer = graph.layers[li]
        try:
            layer.reshape(graph.bottom_vecs[li], graph.top_vecs[li])
            ops.append(layer.channel_op())
        except CaffeLiteError as exc:
            exc.with_context(layer=layer.name, layer_type=layer.type)
            raise
    blob = graph.bottom_vecs[first][0]
    n, channels = blob.shape[:2]
    values = blob.data.reshape(n, channels, -1)
    per_channel = values.shape[2] * values.itemsize
    block = max(1, BLOCK_BYTES // max(1, per_channel))
    for image in range(n):
        for c in range(0, channels, block):
            part = slice(c, min(c + block, channels))
            view = values[image:image + 1, part]
            for op in ops:
                op(view, part)
