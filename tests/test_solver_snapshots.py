"""Snapshots (binary and HDF5, Caffe's layouts), atomic writes, restore checks,
resume being bit-identical, and SIGINT / SIGHUP effects during solve()."""
import os
import signal

import numpy as np
import pytest
from solver_testnet import solver_param, targets

import caffe_lite as caffe
from caffe_lite.errors import SolverError
from caffe_lite.proto import caffe_pb2


def make(tmp_path, text='type: "Adam" momentum: 0.9', **kw):
    param = solver_param(f'{text} snapshot_prefix: "{tmp_path}/quad"', **kw)
    return caffe.get_solver(param)


def train(solver, iters):
    for _ in range(iters):
        solver.net.blobs["t"].data[...] = targets(solver.iter)
        solver.step(1)


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_snapshot_resume_is_bit_identical(tmp_path, fmt):
    if fmt == "HDF5":
        pytest.importorskip("h5py")
    text = f'type: "Adam" momentum: 0.9 snapshot_format: {fmt}'
    straight = make(tmp_path, text)
    train(straight, 7)
    first = make(tmp_path, text)
    train(first, 4)
    model, state = first.snapshot()
    ext = ".h5" if fmt == "HDF5" else ""
    assert model == f"{tmp_path}/quad_iter_4.caffemodel{ext}"
    assert state == f"{tmp_path}/quad_iter_4.solverstate{ext}"
    resumed = make(tmp_path, text)
    resumed.restore(state)
    assert resumed.iter == 4
    train(resumed, 3)
    for a, b in zip(straight.net.learnable_params, resumed.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)
    for a, b in zip(straight.history, resumed.history):
        np.testing.assert_array_equal(a, b)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]   # no temp files


def test_binary_solverstate_is_caffes_message(tmp_path):
    solver = make(tmp_path, 'type: "SGD" momentum: 0.9 lr_policy: "multistep" '
                            'gamma: 0.5 stepvalue: 1 stepvalue: 2')
    train(solver, 3)
    _, path = solver.snapshot()
    state = caffe_pb2.SolverState()
    state.ParseFromString(open(path, "rb").read())
    assert (state.iter, state.current_step) == (3, 2)
    assert state.learned_net == f"{tmp_path}/quad_iter_3.caffemodel"
    assert [tuple(h.shape.dim) for h in state.history] == [(3, 4), (4,)]
    np.testing.assert_array_equal(np.array(state.history[0].data, np.float32).reshape(3, 4),
                                  solver.history[0])


def test_hdf5_solverstate_has_caffes_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    solver = make(tmp_path, 'type: "AdaDelta" momentum: 0.9 snapshot_format: HDF5')
    train(solver, 2)
    _, path = solver.snapshot()
    with h5py.File(path, "r") as f:
        assert f["iter"].shape == (1,) and f["iter"].dtype == np.int32
        assert int(f["iter"][0]) == 2 and int(f["current_step"][0]) == 0
        tid = f["learned_net"].id.get_type()
        assert tid.get_strpad() == h5py.h5t.STR_NULLTERM
        assert f["learned_net"][()].rstrip(b"\0").decode() == \
            f"{tmp_path}/quad_iter_2.caffemodel.h5"
        assert sorted(f["history"], key=int) == ["0", "1", "2", "3"]
        np.testing.assert_array_equal(f["history/2"][()], solver.history[2])


def test_a_failed_write_leaves_no_file_under_the_final_name(tmp_path, monkeypatch):
    solver = make(tmp_path)
    train(solver, 1)
    model, state = solver.snapshot()
    before = open(state, "rb").read()
    train(solver, 1)
    solver.iter = 1                       # same names as the first snapshot

    def crash(fd):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        solver.snapshot()
    monkeypatch.undo()
    assert open(state, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["quad_iter_1.caffemodel",
                                            "quad_iter_1.solverstate"]


def test_restore_rejects_a_snapshot_of_another_net_or_solver(tmp_path):
    sgd = make(tmp_path, 'type: "SGD"')
    _, sgd_state = sgd.snapshot()
    adam = make(tmp_path)
    with pytest.raises(SolverError, match="holds 2 history blob.*need 4"):
        adam.restore(sgd_state)
    # same count, other shapes: rewrite the history with a wrong shape
    state = caffe_pb2.SolverState()
    state.ParseFromString(open(sgd_state, "rb").read())
    del state.history[0].shape.dim[:]
    state.history[0].shape.dim.extend([4, 3])
    bad = tmp_path / "bad.solverstate"
    bad.write_bytes(state.SerializeToString())
    with pytest.raises(SolverError, match=r"history blob 0 has shape \(4, 3\)"):
        make(tmp_path, 'type: "SGD"').restore(str(bad))
    with pytest.raises(SolverError, match="does not exist"):
        adam.restore(str(tmp_path / "missing.solverstate"))


def test_snapshot_prefix_in_a_missing_directory(tmp_path):
    solver = make(tmp_path)
    solver.param.snapshot_prefix = str(tmp_path / "nope" / "quad")
    with pytest.raises(SolverError, match="does not exist"):
        solver.snapshot()


def test_restored_learned_net_is_found_next_to_the_state(tmp_path, monkeypatch):
    solver = make(tmp_path)
    train(solver, 2)
    monkeypatch.chdir(tmp_path)
    solver.param.snapshot_prefix = "rel"          # learned_net = "rel_iter_2..."
    _, state = solver.snapshot()
    monkeypatch.chdir("/")
    other = make(tmp_path)
    other.restore(str(tmp_path / state))
    np.testing.assert_array_equal(other.net.learnable_params[0].data,
                                  solver.net.learnable_params[0].data)


def _signal_at(solver, sig, at_iter):
    def on_start():
        if solver.iter == at_iter:
            os.kill(os.getpid(), sig)
    solver.add_callback(on_start, None)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_sighup_snapshots_and_training_goes_on(tmp_path):
    solver = make(tmp_path, 'type: "SGD" max_iter: 6 snapshot_after_train: false')
    _signal_at(solver, signal.SIGHUP, 2)
    before = signal.getsignal(signal.SIGHUP)
    solver.solve(sigint_effect="stop", sighup_effect="snapshot")
    assert solver.iter == 6
    assert sorted(os.listdir(tmp_path)) == ["quad_iter_3.caffemodel",
                                            "quad_iter_3.solverstate"]
    assert signal.getsignal(signal.SIGHUP) is before


def test_sigint_stops_after_the_iteration_and_snapshots(tmp_path):
    solver = make(tmp_path, 'type: "SGD" max_iter: 6')
    _signal_at(solver, signal.SIGINT, 2)
    solver.solve(sigint_effect="stop", sighup_effect="snapshot")
    assert solver.iter == 3 and solver.requested_early_exit
    assert (tmp_path / "quad_iter_3.solverstate").exists()


def test_sigint_none_is_ignored_and_bad_effects_rejected(tmp_path):
    solver = make(tmp_path, 'type: "SGD" max_iter: 4 snapshot_after_train: false')
    _signal_at(solver, signal.SIGINT, 1)
    solver.solve(sigint_effect="none", sighup_effect="none")
    assert solver.iter == 4
    with pytest.raises(SolverError, match="sigint_effect"):
        make(tmp_path).solve(sigint_effect="pause")


def test_action_function_drives_stop_and_snapshot(tmp_path):
    solver = make(tmp_path, 'type: "SGD" max_iter: 10 snapshot_after_train: false')
    actions = iter(["snapshot", "none", "stop"])
    solver.set_action_function(lambda: next(actions, "none"))
    solver.solve()
    assert solver.iter == 3
    assert (tmp_path / "quad_iter_1.caffemodel").exists()
