"""Taking and restoring a solver's snapshot: the weights file plus the solver
state (iteration, lr-policy step, history) that names it, as Caffe does."""
import os

from ..errors import SolverError
from ..formats.atomic import atomic_write
from ..proto import caffe_pb2
from . import health, nets
from . import state as state_io
from .config import check_prefix_dir


def take_snapshot(solver):
    """<prefix>_iter_N.caffemodel(.h5) then .solverstate(.h5); returns both paths.
    Each is written to a temporary file and renamed, so a crash never leaves a
    half-written file under the final name."""
    p = solver.param
    model, state = snapshot_paths(solver)
    check_prefix_dir(p.snapshot_prefix, solver.source)
    hdf5 = p.snapshot_format == caffe_pb2.SolverParameter.HDF5
    mark = os.path.basename(model).endswith((".nonfinite.caffemodel",
                                             ".nonfinite.caffemodel.h5"))
    if p.snapshot_diff and not hdf5:
        with atomic_write(model) as handle:
            handle.write(solver.net.to_proto(write_diff=True).SerializeToString())
    else:
        solver.net.save(model, fmt="hdf5" if hdf5 else "binary")     # atomic
    if mark:
        solver.reporter.message(f"Warning: the weights are not finite; the snapshot "
                                f"goes to {model} so no finite snapshot is replaced")
    state_io.write_state(state, state_io.SolverStateData(
        solver.iter, solver.current_step, model, list(solver.history)))
    solver.reporter.snapshot([model, state])
    return model, state


def snapshot_paths(solver):
    """The (weights, state) file names a snapshot now takes. Weights that are
    NaN or infinite never take a snapshot's name: a finite snapshot written
    earlier under it stays as it was."""
    p = solver.param
    if not p.snapshot_prefix:
        raise SolverError("cannot snapshot: the solver has no snapshot_prefix",
                          file=solver.source)
    hdf5 = p.snapshot_format == caffe_pb2.SolverParameter.HDF5
    mark = "" if health.params_finite(solver.net) else ".nonfinite"
    model = state_io.snapshot_filename(p.snapshot_prefix, solver.iter,
                                       mark + (".caffemodel.h5" if hdf5 else ".caffemodel"))
    state = state_io.snapshot_filename(p.snapshot_prefix, solver.iter,
                                       mark + (".solverstate.h5" if hdf5 else ".solverstate"))
    return model, state


def restore_snapshot(solver, state_file):
    """Iteration, current_step, history, and the weights the state's learned_net
    names (as given, else next to the state file). Everything is checked before
    anything changes."""
    state_file = os.fspath(state_file)
    saved = state_io.read_state(state_file)
    history = state_io.fit_history(saved.history, [h.shape for h in solver.history],
                                   state_file)
    if saved.learned_net:
        weights = nets.resolve_path(saved.learned_net,
                                    os.path.dirname(os.path.abspath(state_file)),
                                    "learned_net weights file", state_file)
        solver.net.copy_from(weights)
    for dst, src in zip(solver.history, history):
        dst[...] = src
    solver.iter = saved.iter
    solver.current_step = saved.current_step
