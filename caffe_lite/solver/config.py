"""Reading and checking a SolverParameter: what Caffe would reject (or abort on
mid-training) is a SolverError naming the solver file, raised up front."""
import os

from ..errors import SolverError
from ..formats import read_solver_param, upgrade_solver
from ..proto import caffe_pb2
from .lr_policies import check_lr_policy
from .testing import check_eval_type


def load_param(solver, source=None):
    """(an upgraded copy of the SolverParameter, the file it came from or None)."""
    if isinstance(solver, caffe_pb2.SolverParameter):
        param = caffe_pb2.SolverParameter()
        param.CopyFrom(solver)
        upgrade_solver(param)
        return param, (os.fspath(source) if source is not None else None)
    source = os.fspath(solver)
    if not os.path.isfile(source):
        raise SolverError("solver file does not exist", file=source)
    return read_solver_param(source), source


def check_param(param, rule, source):
    where = {"file": source}
    try:
        rule.check(param)
        check_lr_policy(param)
    except SolverError as exc:
        exc.with_context(**where)
        raise
    check_eval_type(param, source)
    if param.base_lr < 0:
        raise SolverError(f"base_lr: must not be negative, got {param.base_lr:g} "
                          f"(Caffe accepts it silently and training climbs the loss)",
                          **where)
    if param.momentum < 0:
        raise SolverError(f"momentum: must not be negative, got {param.momentum:g} "
                          f"(Caffe accepts it silently)", **where)
    if param.average_loss < 1:
        raise SolverError("average_loss must be >= 1", **where)
    if param.iter_size < 1:
        raise SolverError("iter_size must be >= 1", **where)
    if param.regularization_type not in ("L1", "L2"):
        raise SolverError(f"unknown regularization_type "
                          f"'{param.regularization_type}' (L1 or L2)", **where)
    if param.snapshot and not param.snapshot_prefix:
        raise SolverError("snapshot is set but snapshot_prefix is not", **where)
    if param.snapshot or (param.snapshot_after_train and param.snapshot_prefix):
        # fail now rather than after hours of training
        check_prefix_dir(param.snapshot_prefix, source)


def check_prefix_dir(prefix, source=None):
    directory = os.path.dirname(prefix) or "."
    if not os.path.isdir(directory):
        raise SolverError(f"cannot write snapshots with prefix '{prefix}': directory "
                          f"'{directory}' does not exist", file=source)
