"""Training that goes wrong says so where it happens: a non-finite loss or
output names the first layer whose top stopped being finite. The scan runs only
once the loss is already bad, so healthy iterations pay one isfinite per output."""
from __future__ import annotations

import numpy as np

from ..errors import SolverError
from ..net import Net


class NonFiniteError(SolverError):
    """The loss or an output became NaN or infinite during training."""


def outputs_finite(net: Net, loss: float) -> bool:
    """Whether the loss and every output blob of the net are finite."""
    if not np.isfinite(loss):
        return False
    return all(np.isfinite(net.blobs[name].data).all() for name in net.outputs)


def first_nonfinite_top(net: Net) -> tuple[str, str, str] | None:
    """(layer name, layer type, top name) of the first layer, in forward order,
    whose output holds a NaN or an infinity; None when every top is finite."""
    for li, layer in enumerate(net.layers):
        tops = net.top_names[net._layer_names[li]]
        for ti, blob in enumerate(net.top_vecs[li]):
            if not np.isfinite(blob.data).all():
                name = tops[ti] if ti < len(tops) else f"{layer.name}[{ti}]"
                return layer.name, layer.type, name
    return None


def describe(net: Net, it: int, loss: float) -> str:
    """What went non-finite at iteration ``it``, and where it started."""
    first = first_nonfinite_top(net)
    where = (f"the first layer whose output is not finite is '{first[0]}' "
             f"({first[1]}), top '{first[2]}'" if first else
             "every layer's output is finite, so the loss layer itself overflowed")
    return f"Iteration {it}: the loss is {loss:g}; {where}"


def params_finite(net: Net) -> bool:
    return all(np.isfinite(blob.data).all() for blob in net.learnable_params)
