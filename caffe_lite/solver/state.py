"""Snapshot files: Caffe's SolverState as a binary proto (.solverstate) or in
Caffe's HDF5 layout (.solverstate.h5), read and written compatibly both ways.

HDF5 layout (Caffe's SnapshotSolverStateToHDF5): int datasets ``iter`` and
``current_step`` of shape (1,), a NUL-terminated fixed string ``learned_net``,
and a group ``history`` with float datasets "0", "1", ... in history order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelFileError, SolverError, require
from ..formats.atomic import atomic_write
from ..proto import caffe_pb2


@dataclass
class SolverStateData:
    iter: int
    current_step: int
    learned_net: str | None = None              # None when the state names no weights
    history: list = field(default_factory=list)   # float32 arrays


def snapshot_filename(prefix, it, extension):
    return f"{prefix}_iter_{it}{extension}"


def is_hdf5(path):
    return os.fspath(path).endswith(".h5")


# -- writing -----------------------------------------------------------------
def write_state(path, state):
    if is_hdf5(path):
        _write_hdf5(path, state)
    else:
        _write_binary(path, state)


def _write_binary(path, state):
    from ..formats.caffemodel import blob_to_proto
    proto = caffe_pb2.SolverState()
    proto.iter = state.iter
    if state.learned_net is not None:
        proto.learned_net = state.learned_net
    proto.current_step = state.current_step
    for array in state.history:
        proto.history.add().CopyFrom(blob_to_proto(array))
    with atomic_write(path) as handle:
        handle.write(proto.SerializeToString())


def _write_hdf5(path, state):
    h5py = require("h5py", "hdf5", "an HDF5 solver state")
    with atomic_write(path, "w+b") as handle, h5py.File(handle, "w") as f:
        f.create_dataset("iter", data=np.array([state.iter], np.int32))
        if state.learned_net is not None:
            _write_c_string(h5py, f, "learned_net", state.learned_net)
        f.create_dataset("current_step", data=np.array([state.current_step], np.int32))
        group = f.create_group("history")
        for i, array in enumerate(state.history):
            group.create_dataset(str(i), data=np.asarray(array, np.float32))


def _write_c_string(h5py, f, name, text):
    """A scalar NUL-terminated string, as H5LTmake_dataset_string makes it."""
    raw = text.encode("utf-8") + b"\0"
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(raw))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    dset = h5py.h5d.create(f.id, name.encode(), tid, space)
    dset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw, dtype=f"S{len(raw)}"),
               mtype=tid)


# -- reading -----------------------------------------------------------------
def read_state(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SolverError("solver state file does not exist", file=path)
    return _read_hdf5(path) if is_hdf5(path) else _read_binary(path)


def _read_binary(path):
    from ..formats.caffemodel import blob_from_proto
    proto = caffe_pb2.SolverState()
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        proto.ParseFromString(raw)
    except Exception as exc:        # protobuf's DecodeError has no stable import path
        raise ModelFileError(f"not a binary SolverState ({exc})", file=path) from None
    history = [_as_array(blob_from_proto(b)) for b in proto.history]
    return SolverStateData(proto.iter, proto.current_step,
                           proto.learned_net if proto.HasField("learned_net") else None,
                           history)


def _as_array(blob):
    data = getattr(blob, "data", blob)
    return np.asarray(data, np.float32)


def _read_hdf5(path):
    h5py = require("h5py", "hdf5", "an HDF5 solver state")
    try:
        with h5py.File(path, "r") as f:
            it = int(np.asarray(f["iter"]).ravel()[0])
            step = int(np.asarray(f["current_step"]).ravel()[0])
            learned = None
            if "learned_net" in f:
                value = f["learned_net"][()]
                learned = (value.decode("utf-8") if isinstance(value, bytes)
                           else str(value)).rstrip("\0")
            group = f["history"]
            history = [np.asarray(group[str(i)], np.float32) for i in range(len(group))]
    except (OSError, KeyError) as exc:
        raise ModelFileError(f"not a Caffe HDF5 solver state ({exc})", file=path) from None
    return SolverStateData(it, step, learned, history)


def fit_history(saved, expected_shapes, path):
    """Check the saved history against the solver's; returns arrays in our shapes.

    Caffe only checks the count of blobs; a shape mismatch would silently
    corrupt training, so we check sizes too (a legacy 4-D blob of equal size is
    accepted, as Caffe would reshape it)."""
    if len(saved) != len(expected_shapes):
        raise SolverError(f"the snapshot holds {len(saved)} history blob(s), this "
                          f"solver and net need {len(expected_shapes)} (a snapshot "
                          f"of another net or solver type?)", file=path)
    out = []
    for i, (array, shape) in enumerate(zip(saved, expected_shapes)):
        if array.shape != tuple(shape):
            if array.size != int(np.prod(shape)) or array.ndim != 4:
                raise SolverError(f"history blob {i} has shape {array.shape} in the "
                                  f"snapshot but the net's param has shape "
                                  f"{tuple(shape)}", file=path)
            array = array.reshape(shape)
        out.append(array)
    return out
