"""Lean inference (``Net(..., lean=True)``): blobs whose lifetimes do not overlap
share memory, and layers share one scratch workspace.

A blob lives from the layer that first writes it to the last layer that reads
or writes it. Walking the layers in order, each new blob takes a free buffer
(the smallest big enough, else the largest, grown), and a blob's buffer is free
again after its last layer. Inputs, outputs and the blobs named in ``keep`` get
memory of their own and keep their values; the others hold whatever a later
layer wrote. Blobs already sharing memory (Reshape, Flatten) move together;
blobs that share a parameter's memory (Parameter) are left alone.
"""
from __future__ import annotations

from typing import Any, Iterable, cast

import numpy as np

from ..blob import Blob
from ..ops.geometry import Workspace
from .graph import NetGraph


class LeanMemory:
    """The plan for one graph: which blobs move together and when each group
    lives are fixed by the wiring; the buffers follow the current shapes."""

    def __init__(self, graph: NetGraph, keep: Iterable[str] = ()) -> None:
        self.keep = set(keep)
        share_workspaces(graph)
        for layer in graph.layers:
            layer.forward_only = True
        self.groups, self.lifetimes = _groups_and_lifetimes(graph, self.keep)
        self.saved_bytes = 0

    def apply(self) -> None:
        """Point every group at a shared buffer sized for the current shapes."""
        order = sorted(self.lifetimes, key=lambda g: self.lifetimes[g][0])
        free: list[int] = []                 # slot indices
        capacity: list[int] = []             # values per slot
        slot_of: dict[int, int] = {}         # group -> slot
        ends: dict[int, list[int]] = {}      # layer index -> groups last used there
        for group in order:                  # in order of their first layer
            start, end = self.lifetimes[group]
            for li in sorted(k for k in ends if k < start):
                free.extend(slot_of[g] for g in ends.pop(li))
            need = max(blob.count for blob in self.groups[group])
            slot = _take(free, capacity, need)
            capacity[slot] = max(capacity[slot], need)
            slot_of[group] = slot
            ends.setdefault(end, []).append(group)
        buffers: dict[tuple[int, str], np.ndarray] = {}
        for group, slot in slot_of.items():
            dtype = self.groups[group][0].dtype
            if (slot, dtype.str) not in buffers:
                buffers[slot, dtype.str] = np.zeros(capacity[slot], dtype)
            for blob in self.groups[group]:
                blob.use_memory(buffers[slot, dtype.str])
        separate = sum(max(b.count for b in blobs) * blobs[0].dtype.itemsize
                       for blobs in self.groups.values())
        self.saved_bytes = separate - sum(buf.nbytes for buf in buffers.values())


def share_workspaces(graph: NetGraph) -> None:
    """One scratch workspace for every layer that keeps one (convolutions):
    layers run one at a time, and a forward keeps nothing in it."""
    shared = Workspace()
    for layer in graph.layers:
        if isinstance(getattr(layer, "workspace", None), Workspace):
            cast(Any, layer).workspace = shared


def _groups_and_lifetimes(graph: NetGraph, keep: set[str]
                          ) -> tuple[dict[int, list[Blob]], dict[int, tuple[int, int]]]:
    """Blobs grouped by the memory they already share, and each group's first and
    last layer; kept blobs (and whatever shares their memory) are left out."""
    kept = set(graph.inputs) | set(graph.outputs) | keep
    by_memory: dict[int, list[Blob]] = {}
    for blob in {id(b): b for b in graph.blobs.values()}.values():
        by_memory.setdefault(id(blob._data_buf), []).append(blob)
    excluded = {id(b._data_buf) for name, b in graph.blobs.items() if name in kept}
    excluded |= {id(b._data_buf) for layer in graph.layers for b in layer.blobs}
    named = {id(b) for b in graph.blobs.values()}
    for tops in graph.top_vecs:                     # anonymous tops stay as they are
        excluded |= {id(b._data_buf) for b in tops if id(b) not in named}
    groups = {key: blobs for key, blobs in by_memory.items() if key not in excluded}
    member = {id(blob): key for key, blobs in groups.items() for blob in blobs}
    lifetimes: dict[int, tuple[int, int]] = {}
    for li, (bottoms, tops) in enumerate(zip(graph.bottom_vecs, graph.top_vecs)):
        for blob in list(tops) + list(bottoms):
            key = member.get(id(blob))
            if key is not None:
                start, _ = lifetimes.get(key, (li, li))
                lifetimes[key] = (start, li)
    return {key: groups[key] for key in lifetimes}, lifetimes


def _take(free: list[int], capacity: list[int], need: int) -> int:
    """A free slot: the smallest that holds ``need`` values, else the largest
    (grown by the caller), else a new one."""
    if not free:
        capacity.append(0)
        return len(capacity) - 1
    fitting = [s for s in free if capacity[s] >= need]
    slot = (min(fitting, key=lambda s: capacity[s]) if fitting
            else max(free, key=lambda s: capacity[s]))
    free.remove(slot)
    return slot
