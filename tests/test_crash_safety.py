"""Crash safety: a training process killed with SIGKILL at random moments, most
of them while it writes snapshots, never leaves a partial file under a final
name; the last snapshot always loads, resuming from it continues, and a run
resumed after a kill follows the uninterrupted run's trajectory bit for bit.

The process is forked from the test (it has already imported caffe_lite), so
fifty kills cost seconds, not fifty interpreter start-ups."""
import os
import random
import re
import signal
import time

import numpy as np
import pytest

import caffe_lite as caffe
from caffe_lite.formats import read_weights
from caffe_lite.solver.state import read_state

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (POSIX)")

# an 8 MB weight matrix makes each snapshot (weights + momentum history) the slow
# part of an iteration, so most random kills land inside a snapshot write
NET = """name: "big"
layer { name: "data" type: "DummyData" top: "x" top: "t"
        dummy_data_param { shape { dim: 4 dim: 256 } shape { dim: 4 dim: 8192 }
                           data_filler { type: "constant" value: 0.01 }
                           data_filler { type: "constant" value: 0.5 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 8192 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""

SOLVER = """net: "net.prototxt"
base_lr: 0.1
momentum: 0.9
lr_policy: "fixed"
max_iter: %d
snapshot: %d
snapshot_prefix: "run"
random_seed: 3
"""

FINAL = re.compile(r"^run_iter_(\d+)\.(caffemodel|solverstate)$")


def _write(folder, max_iter, every):
    (folder / "net.prototxt").write_text(NET)
    (folder / "solver.prototxt").write_text(SOLVER % (max_iter, every))


def _train_in_child(folder, resume):
    """Fork a child that trains (resuming from ``resume``); returns its pid."""
    pid = os.fork()
    if pid == 0:                                   # the child never returns
        code = 1
        try:
            os.chdir(folder)
            solver = caffe.get_solver("solver.prototxt")
            if resume:
                solver.restore(resume)
            solver.solve()
            code = 0
        finally:
            os._exit(code)
    return pid


def _temporary_files(folder):
    return {n for n in os.listdir(folder) if n.endswith(".tmp")}


def _wait_for_writes(folder, count, old, timeout=30.0):
    """Return once ``count`` snapshot writes have begun (each atomic write first
    creates its own temporary file next to the final name; ``old`` are earlier
    kills' leftovers)."""
    seen, deadline = set(), time.time() + timeout
    while len(seen) < count and time.time() < deadline:
        seen.update(n for n in os.listdir(folder) if n.endswith(".tmp") and n not in old)
        time.sleep(0.0005)


def _latest_state(folder):
    states = [(int(m[1]), name) for name in os.listdir(folder)
              if (m := FINAL.match(name)) and m[2] == "solverstate"]
    return max(states)[1] if states else None


def _check_final_files(folder, checked):
    """Every file under a final name loads whole (the ones not checked before)."""
    for name in sorted(os.listdir(folder)):
        if not FINAL.match(name) or name in checked:
            continue
        path = os.path.join(folder, name)
        if name.endswith(".caffemodel"):
            layers = {layer.name: layer for layer in read_weights(path)}
            assert layers["ip"].blobs[0].data.size == 8192 * 256, name
        else:
            state = read_state(path)
            assert os.path.exists(os.path.join(folder, state.learned_net)), name
        checked.add(name)


def test_fifty_kills_never_leave_a_partial_snapshot_and_resume_continues(tmp_path,
                                                                       monkeypatch):
    _write(tmp_path, max_iter=100000, every=1)
    rng = random.Random(1234)
    checked, resume, iterations = set(), None, []
    for _ in range(50):
        writes, old = rng.randint(1, 4), _temporary_files(tmp_path)
        pid = _train_in_child(tmp_path, resume)
        _wait_for_writes(tmp_path, writes, old)   # the k-th file write begins,
        time.sleep(rng.uniform(0, 0.008))               # then a random moment in it
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        _check_final_files(tmp_path, checked)
        resume = _latest_state(tmp_path)
        if resume:
            iterations.append(read_state(str(tmp_path / resume)).iter)
            for name in list(checked):          # keep the folder small: last snapshot only
                m = FINAL.match(name)
                if int(m[1]) < iterations[-1]:
                    os.unlink(tmp_path / name)
                    checked.discard(name)
            resume = str(tmp_path / resume)
    assert iterations and iterations == sorted(iterations) and iterations[-1] > 5
    # kills inside a write leave their temporary file (never a final name)
    interrupted_writes = _temporary_files(tmp_path)
    print(f"{len(interrupted_writes)} of 50 kills landed inside a snapshot write; "
          f"reached iteration {iterations[-1]}")
    assert len(interrupted_writes) >= 25
    # the last snapshot resumes in this process too
    monkeypatch.chdir(tmp_path)
    solver = caffe.get_solver("solver.prototxt")
    solver.restore(resume)
    solver.step(1)
    assert solver.iter == iterations[-1] + 1


def test_a_run_resumed_after_kill_follows_the_uninterrupted_trajectory(tmp_path,
                                                                       monkeypatch):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for folder in (straight, killed):
        folder.mkdir()
        _write(folder, max_iter=12, every=3)
    monkeypatch.chdir(straight)
    reference = caffe.get_solver("solver.prototxt")
    reference.solve()
    expected = reference.net.params["ip"][0].data.copy()

    pid = _train_in_child(killed, None)
    deadline = time.time() + 60
    while not (killed / "run_iter_6.solverstate").exists() and time.time() < deadline:
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    resume = _latest_state(killed)
    assert resume is not None
    monkeypatch.chdir(killed)
    solver = caffe.get_solver("solver.prototxt")
    solver.restore(resume)
    solver.solve()
    assert solver.iter == 12
    np.testing.assert_array_equal(solver.net.params["ip"][0].data, expected)
