"""pycaffe's scripting conveniences (pycaffe.py's additions to Net): feed inputs
and top diffs by name, run whole data sets batch by batch. Functions of a Net,
called by its methods of the same names."""
from __future__ import annotations

from typing import Any, Dict, Iterable, Sequence, Union

import numpy as np
import numpy.typing as npt

from ..blob import Blob
from ..errors import NetError

# ``net`` below is a Net (typed Any: net.py imports this module, so it cannot be
# imported here without an import cycle).
Outputs = Dict[str, np.ndarray]
#: a whole data set for one input (or top diff): sliced into batches
Batches = Union[np.ndarray, Sequence[Any]]


def forward(net: Any, blobs: Iterable[str] | None = None, start: str | None = None,
            end: str | None = None, **kwargs: npt.ArrayLike) -> Outputs:
    """pycaffe's forward: feed inputs by name, return the outputs' data."""
    blobs = list(blobs or [])
    check_blob_names(net, blobs, "blobs")
    start_i = net._layer_index(start) if start is not None else 0
    if end is not None:
        end_i = net._layer_index(end)
        wanted = net.top_names[end] + blobs
    else:
        end_i = len(net.layers) - 1
        wanted = net.outputs + blobs
    if kwargs:
        if set(kwargs) != set(net.inputs):
            raise NetError(f"input blob arguments {sorted(kwargs)} do not match "
                           f"the net inputs {net.inputs}", file=net.source)
        for name, value in kwargs.items():
            _feed(net, net.blobs[name], name, value, "data")
    net.forward_range(start_i, end_i)
    return {name: net.blobs[name].data for name in dict.fromkeys(wanted)}


def backward(net: Any, diffs: Iterable[str] | None = None, start: str | None = None,
             end: str | None = None, **kwargs: npt.ArrayLike) -> Outputs:
    """pycaffe's backward: set output diffs by name, return input diffs."""
    diffs = list(diffs or [])
    check_blob_names(net, diffs, "diffs")
    start_i = net._layer_index(start) if start is not None else len(net.layers) - 1
    if end is not None:
        end_i = net._layer_index(end)
        wanted = net.bottom_names[end] + diffs
    else:
        end_i = 0
        wanted = net.inputs + diffs
    if kwargs:
        if set(kwargs) != set(net.outputs):
            raise NetError(f"top diff arguments {sorted(kwargs)} do not match the "
                           f"net outputs {net.outputs}", file=net.source)
        for name, value in kwargs.items():
            _feed(net, net.blobs[name], name, value, "diff")
    net.backward_range(start_i, end_i)
    return {name: net.blobs[name].diff for name in dict.fromkeys(wanted)}


def check_blob_names(net: Any, names: Iterable[str], argument: str) -> None:
    """A name the net has no blob for is an error naming it and the known ones."""
    unknown = [name for name in names if name not in net.blobs]
    if unknown:
        raise NetError(f"{argument}={unknown}: the net has no blob named "
                       f"{', '.join(map(repr, unknown))} (blobs: {', '.join(net.blobs)})",
                       file=net.source, blob=unknown[0])


def _feed(net: Any, blob: Blob, name: str, value: npt.ArrayLike, what: str) -> None:
    array = np.asarray(value)
    if array.shape != blob.shape:
        raise NetError(f"{what} of shape {array.shape} does not fit the blob's "
                       f"shape {blob.shape} (reshape the blob first)",
                       file=net.source, blob=name)
    getattr(blob, what)[...] = array


def forward_all(net: Any, blobs: Iterable[str] | None = None,
                **kwargs: Batches) -> Outputs:
    """Run forward over inputs of any batch count, batch by batch."""
    outs: dict[str, list[np.ndarray]] = {
        name: [] for name in dict.fromkeys(net.outputs + list(blobs or []))}
    batch = net.blobs[net.inputs[0]].shape[0] if net.inputs else 1
    total = len(next(iter(kwargs.values()))) if kwargs else batch
    for start in range(0, total, batch):
        chunk = {}
        for name, value in kwargs.items():
            part = np.asarray(value[start:start + batch])
            if len(part) < batch:          # pad the last batch, drop later
                pad = np.zeros((batch - len(part),) + part.shape[1:], part.dtype)
                part = np.concatenate([part, pad])
            chunk[name] = part
        result = net.forward(blobs, **chunk)
        for name in outs:
            outs[name].extend(result[name].copy())
    return {name: np.asarray(values[:total]) for name, values in outs.items()}


def forward_backward_all(net: Any, blobs: Iterable[str] | None = None,
                         diffs: Iterable[str] | None = None,
                         **kwargs: Batches) -> tuple[Outputs, Outputs]:
    """Forward and backward batch by batch; returns (outputs, input diffs)."""
    fwd_in = {k: v for k, v in kwargs.items() if k in net.inputs}
    bwd_in = {k: v for k, v in kwargs.items() if k in net.outputs}
    outs: dict[str, list[np.ndarray]] = {
        n: [] for n in dict.fromkeys(net.outputs + list(blobs or []))}
    grads: dict[str, list[np.ndarray]] = {
        n: [] for n in dict.fromkeys(net.inputs + list(diffs or []))}
    batch = net.blobs[net.inputs[0]].shape[0] if net.inputs else 1
    total = len(next(iter(fwd_in.values()))) if fwd_in else batch
    for start in range(0, total, batch):
        f = net.forward(blobs, **{k: v[start:start + batch] for k, v in fwd_in.items()})
        b = net.backward(diffs, **{k: v[start:start + batch] for k, v in bwd_in.items()})
        for n in outs:
            outs[n].extend(f[n].copy())
        for n in grads:
            grads[n].extend(b[n].copy())
    return ({n: np.asarray(v) for n, v in outs.items()},
            {n: np.asarray(v) for n, v in grads.items()})


def set_input_arrays(net: Any, data: np.ndarray, labels: np.ndarray,
                     layer_index: int = 0) -> None:
    """Feed a MemoryData layer (pycaffe's set_input_arrays)."""
    layer = net.layers[layer_index]
    if layer.type != "MemoryData":
        raise NetError("set_input_arrays needs a MemoryData layer",
                       layer=layer.name, layer_type=layer.type)
    layer.reset(data, labels)
