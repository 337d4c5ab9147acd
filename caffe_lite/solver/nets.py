"""Building a solver's train and test nets from a SolverParameter, as Caffe's
Solver::InitTrainNet / InitTestNets do.

Paths: Caffe opens every path in a solver file relative to the current directory.
We try that first and, when nothing is there, the directory of the solver file,
so a solver next to its net works from anywhere.
"""
import os

from ..errors import CaffeLiteError, SolverError
from ..net.net import TEST, TRAIN, Net
from ..proto import caffe_pb2


def resolve_path(path, base_dir, what, source=None):
    """``path`` as given if it exists, else next to the solver file; else an error."""
    if os.path.exists(path):
        return path
    if base_dir and not os.path.isabs(path):
        beside = os.path.join(base_dir, path)
        if os.path.exists(beside):
            return beside
    where = " or in '" + base_dir + "'" if base_dir else ""
    raise SolverError(f"{what} '{path}' does not exist (looked in the current "
                      f"directory{where})", file=source)


def _read_net(path, base_dir, what, source):
    """(the net's NetParameter, the path it was found at)."""
    from ..formats import read_net_param
    found = resolve_path(path, base_dir, what, source)
    return read_net_param(found), found


def _build(net_param, default_phase, state, origin, allow_python_layers):
    """A Net whose NetState is the solver default < the net's own < ``state``.
    A net from a file is built from that file, so its layers find their data
    files next to it."""
    merged = caffe_pb2.NetState()
    merged.phase = default_phase
    merged.MergeFrom(net_param.state)
    if state is not None:
        merged.MergeFrom(state)
    network = origin if origin is not None else net_param
    try:
        return Net(network, phase=merged.phase, level=merged.level,
                   stages=list(merged.stage), allow_python_layers=allow_python_layers)
    except CaffeLiteError as exc:
        exc.with_context(file=origin)
        raise


def build_train_net(param, base_dir, source, allow_python_layers=None):
    fields = [f for f in ("net", "net_param", "train_net", "train_net_param")
              if param.HasField(f)]
    if len(fields) != 1:
        raise SolverError("the solver must name its train net with exactly one of "
                          "net, net_param, train_net, train_net_param; it gives " +
                          (", ".join(fields) or "none"), file=source)
    field = fields[0]
    if field.endswith("_param"):
        net_param, origin = getattr(param, field), None
    else:
        net_param, origin = _read_net(getattr(param, field), base_dir,
                                      f"{field} file", source)
    try:
        return _build(net_param, TRAIN, param.train_state, origin, allow_python_layers)
    except CaffeLiteError as exc:
        exc.with_context(file=source)
        raise


def build_test_nets(param, base_dir, source, allow_python_layers=None):
    """One net per test_net_param, per test_net, then per remaining test_iter
    from the generic net / net_param (filtered to the TEST phase)."""
    if param.HasField("net") and param.HasField("net_param"):
        raise SolverError("give either net or net_param, not both", file=source)
    specs = [(p, None) for p in param.test_net_param]
    specs += [_read_net(p, base_dir, "test_net file", source) for p in param.test_net]
    generic = param.HasField("net") or param.HasField("net_param")
    if len(param.test_iter) < len(specs) or (not generic and
                                             len(param.test_iter) != len(specs)):
        raise SolverError(f"test_iter must be given once per test net: "
                          f"{len(param.test_iter)} test_iter for {len(specs)} test "
                          f"net(s)", file=source)
    remaining = len(param.test_iter) - len(specs)
    if remaining and param.HasField("net_param"):
        specs += [(param.net_param, None)] * remaining
    elif remaining:
        specs += [_read_net(param.net, base_dir, "net file", source)] * remaining
    if param.test_state and len(param.test_state) != len(specs):
        raise SolverError(f"give test_state once per test net ({len(specs)}) or "
                          f"not at all, got {len(param.test_state)}", file=source)
    if specs and param.test_interval <= 0:
        raise SolverError("test nets need test_interval > 0", file=source)
    nets = []
    for i, (net_param, origin) in enumerate(specs):
        state = param.test_state[i] if param.test_state else None
        try:
            nets.append(_build(net_param, TEST, state, origin, allow_python_layers))
        except CaffeLiteError as exc:
            exc.with_context(file=source)
            raise
    return nets


def load_weights(nets, param, base_dir, source):
    """The ``weights`` field: comma-separated caffemodels copied into every net."""
    for entry in param.weights:
        for name in (n.strip() for n in entry.split(",")):
            if not name:
                continue
            path = resolve_path(name, base_dir, "weights file", source)
            for net in nets:
                net.copy_from(path)
