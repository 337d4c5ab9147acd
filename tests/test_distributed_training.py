"""Data-parallel training: each data source gives rank r of N the items r, r + N,
... of its own order (in process, with data/shard.py's set_shard), and two ranks
started by MPICH's ``mpiexec -n 2`` (the ``mpi`` extra) train LeNet exactly as one
process with twice the batch, stop together on a signal to either rank, check
their weights at snapshots, and name a rank that hangs."""
import itertools
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import caffe_lite as caffe
from caffe_lite import distributed
from caffe_lite.data import shard
from caffe_lite.data.db import RecordWriter
from caffe_lite.formats import parse_net_param
from caffe_lite.io import array_to_datum

ROOT = pathlib.Path(__file__).resolve().parents[1]
LENET = ROOT / "models" / "lenet"


@pytest.fixture
def as_rank():
    """set_shard for the test, back to one process after it."""
    yield shard.set_shard
    shard.set_shard(0, 1)


# ---- every source, sharded in process ----------------------------------------------
ITEMS = 7                    # not a multiple of any batch below: reading wraps


def _lmdb(tmp_path, backend):
    pytest.importorskip("lmdb" if backend == "lmdb" else "plyvel")
    with RecordWriter(tmp_path / "db", backend) as db:
        for i in range(ITEMS):
            datum = array_to_datum(np.full((1, 2, 2), i, np.uint8), label=i)
            db.put(f"{i:08d}", datum.SerializeToString())
    return (f"layer {{ name: 'd' type: 'Data' top: 'data' top: 'label' data_param "
            f"{{ source: '{tmp_path / 'db'}' backend: {backend.upper()} batch_size: 3 }} }}")


def _hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    names = []
    for part, rows in enumerate((np.arange(0, 4), np.arange(4, ITEMS))):
        with h5py.File(tmp_path / f"p{part}.h5", "w") as f:
            f["data"] = rows[:, None].astype(np.float32)
            f["label"] = rows.astype(np.float32)
        names.append(str(tmp_path / f"p{part}.h5"))
    (tmp_path / "list.txt").write_text("\n".join(names))
    return (f"layer {{ name: 'h' type: 'HDF5Data' top: 'data' top: 'label' "
            f"hdf5_data_param {{ source: '{tmp_path / 'list.txt'}' batch_size: 3 "
            f"shuffle: true }} }}")


def _images(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    lines = []
    for i in range(ITEMS):
        Image.fromarray(np.full((2, 2), i, np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png {i}")
    (tmp_path / "list.txt").write_text("\n".join(lines))
    return (f"layer {{ name: 'i' type: 'ImageData' top: 'data' top: 'label' "
            f"image_data_param {{ source: '{tmp_path / 'list.txt'}' root_folder: "
            f"'{tmp_path}/' batch_size: 3 shuffle: true is_color: false }} }}")


SOURCES = {"lmdb": lambda p: _lmdb(p, "lmdb"), "leveldb": lambda p: _lmdb(p, "leveldb"),
           "hdf5": _hdf5, "image_list": _images}


def _labels(text, phase, batches):
    caffe.set_random_seed(3)                  # the same shuffles in every "rank"
    net = caffe.Net(parse_net_param(text), phase)
    return np.concatenate([net.forward()["label"].ravel().copy() for _ in range(batches)])


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_rank_r_of_n_reads_items_r_r_plus_n_of_the_source_order(tmp_path, as_rank, source):
    text = SOURCES[source](tmp_path)
    alone = _labels(text, caffe.TRAIN, 8)                 # 24 items: over three epochs
    for size in (2, 3):
        for rank in range(size):
            as_rank(rank, size)
            mine = _labels(text, caffe.TRAIN, 8 // size + 1)
            expected = alone[rank::size]
            np.testing.assert_array_equal(mine[:len(expected)], expected)
        as_rank(0, 1)
    assert sorted(alone[:ITEMS]) == list(range(ITEMS))


def test_test_nets_are_not_sharded(tmp_path, as_rank):
    text = _lmdb(tmp_path, "lmdb")
    alone = _labels(text, caffe.TEST, 2)
    as_rank(1, 2)
    np.testing.assert_array_equal(_labels(text, caffe.TEST, 2), alone)


def test_memory_data_shards_rows_and_python_layers_see_rank_and_size(as_rank):
    text = ("layer { name: 'm' type: 'MemoryData' top: 'data' top: 'label' "
            "memory_data_param { batch_size: 2 channels: 1 height: 1 width: 1 } }")
    data = np.arange(6, dtype=np.float32).reshape(6, 1, 1, 1)
    as_rank(1, 2)
    assert (distributed.rank(), distributed.size()) == (1, 2)
    net = caffe.Net(parse_net_param(text), caffe.TRAIN)
    net.set_input_arrays(data, data.ravel())
    seen = [net.forward()["label"].ravel().tolist() for _ in range(3)]
    assert seen == [[1, 3], [5, 1], [3, 5]]
    with pytest.raises(caffe.CaffeLiteError, match="rank 2 of 2"):
        as_rank(2, 2)


# ---- two ranks under mpiexec ---------------------------------------------------------
def _mpiexec():
    pytest.importorskip("mpi4py", reason="the mpi extra (mpi4py) is not installed")
    found = shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec on PATH (pip install 'caffe-lite[mpi]' brings MPICH's)")
    return found


SOLVER = """net: "{net}"
type: "{type}"
base_lr: {lr}
momentum: 0.9
{extra}
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
max_iter: {max_iter}
random_seed: 1701
snapshot_prefix: "{prefix}"
"""


def _lenet(folder, batch, solver_type="SGD", max_iter=5, extra=""):
    text = (LENET / "train_val.prototxt").read_text()
    text = text.replace('"models/lenet/data/', f'"{LENET / "data"}/')
    text = text.replace("batch_size: 64", f"batch_size: {batch}")
    net = folder / f"lenet_b{batch}.prototxt"
    net.write_text(text)
    path = folder / f"{solver_type}_b{batch}.prototxt"
    lr, more = (0.001, "momentum2: 0.999") if solver_type == "Adam" else (0.01, "")
    path.write_text(SOLVER.format(net=net, type=solver_type, lr=lr, max_iter=max_iter,
                                  extra=more + "\n" + extra,
                                  prefix=folder / f"snap_{solver_type}"))
    return path


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.update(extra)
    return env


def test_two_ranks_equal_one_process_with_twice_the_batch_sgd_and_adam(tmp_path,
                                                                      monkeypatch):
    mpiexec = _mpiexec()
    monkeypatch.chdir(ROOT)                  # the LeNet data list names files from here
    iters = 4
    solvers = [_lenet(tmp_path, 4, t) for t in ("SGD", "Adam")]
    out = tmp_path / "rank"
    subprocess.run([mpiexec, "-n", "2", sys.executable, str(ROOT / "tests" /
                    "mpi_train_script.py"), str(out), str(iters)] + [str(s) for s in solvers],
                   check=True, timeout=120, env=_env(), cwd=ROOT)
    ranks = [np.load(f"{out}{r}.npz") for r in (0, 1)]
    assert [list(r["rank_size"]) for r in ranks] == [[0, 2], [1, 2]]
    for k, solver_type in enumerate(("SGD", "Adam")):
        single = caffe.get_solver(str(_lenet(tmp_path, 8, solver_type)), distributed=False)
        for it in range(iters):
            single.step(1)
            for r in ranks:                               # both ranks hold the same
                np.testing.assert_allclose(r[f"loss_{k}_{it}"], single.smoothed_loss,
                                           rtol=1e-5, err_msg=f"{solver_type} loss {it}")
                for i, blob in enumerate(single.net.learnable_params):
                    np.testing.assert_allclose(r[f"param_{k}_{it}_{i}"], blob.data,
                                               rtol=1e-4, atol=1e-6,
                                               err_msg=f"{solver_type} param {i} it {it}")
            np.testing.assert_array_equal(ranks[0][f"param_{k}_{it}_0"],
                                          ranks[1][f"param_{k}_{it}_0"])


class _Run:
    """``mpiexec -n 2 caffe-lite train`` in the background; its stderr is read
    as it comes, for the ranks' pids."""

    def __init__(self, solver, *flags, env=None):
        self.proc = subprocess.Popen(
            [_mpiexec(), "-n", "2", sys.executable, "-m", "caffe_lite", "train",
             "--solver", str(solver), *flags], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env or _env(), cwd=ROOT)
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(stream, lines),
                                         daemon=True)
                        for stream, lines in ((self.proc.stdout, self.out),
                                              (self.proc.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.append(line)

    def wait_for(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.err):
                found = re.search(pattern, line)
                if found:
                    return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"no '{pattern}' in: {''.join(self.err)}")

    def pids(self):
        found = self.wait_for(r"rank 0: pid (\d+) on .*, rank 1: pid (\d+) on ")
        return int(found[1]), int(found[2])

    def finish(self, timeout=60):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        for reader in self.readers:
            reader.join(5)
        return self.proc.returncode, "".join(self.out), "".join(self.err)


def test_mpiexec_train_snapshots_on_rank_0_and_resumes(tmp_path):
    solver = _lenet(tmp_path, 4, max_iter=6, extra="snapshot: 3\ndisplay: 1\n"
                    "test_iter: 1\ntest_interval: 3")
    code, out, err = _Run(solver).finish()
    assert code == 0, err
    assert out.count("Trained DigitsLeNet for 6 iterations") == 1, out      # rank 0 alone
    assert err.count("Data-parallel training on 2 ranks") == 1
    assert err.count("Iteration 3, test net #0") == 1
    assert sorted(p.name for p in tmp_path.glob("snap_SGD_iter_*")) == [
        "snap_SGD_iter_3.caffemodel", "snap_SGD_iter_3.solverstate",
        "snap_SGD_iter_6.caffemodel", "snap_SGD_iter_6.solverstate"]
    first = caffe.Net(str(tmp_path / "lenet_b4.prototxt"), caffe.TEST,
                      weights=str(tmp_path / "snap_SGD_iter_6.caffemodel"))
    code, out, err = _Run(solver, "--snapshot",
                          str(tmp_path / "snap_SGD_iter_3.solverstate")).finish()
    assert code == 0, err
    assert "Iteration 4, loss" in err and "Iteration 1, loss" not in err
    resumed = caffe.Net(str(tmp_path / "lenet_b4.prototxt"), caffe.TEST,
                        weights=str(tmp_path / "snap_SGD_iter_6.caffemodel"))
    # the resumed run starts its data again from the first item, as Caffe's does
    assert not np.array_equal(first.params["conv1"][0].data,
                              resumed.params["conv1"][0].data)
    assert np.isfinite(resumed.params["conv1"][0].data).all()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGHUP"])
def test_a_signal_to_either_rank_acts_on_both(tmp_path, sig):
    solver = _lenet(tmp_path, 4, max_iter=100000, extra="display: 1")
    effect = ["--sighup_effect", "stop"] if sig == "SIGHUP" else []
    run = _Run(solver, *effect)
    _, rank1 = run.pids()
    run.wait_for(r"Iteration 3, loss")
    os.kill(rank1, getattr(signal, sig))
    code, out, err = run.finish()
    assert code == 0, err
    assert "Optimization stopped early" in err
    snaps = list(tmp_path.glob("snap_SGD_iter_*.caffemodel"))
    assert len(snaps) == 1, err                           # one rank wrote, once
    stopped = int(re.search(r"iter_(\d+)", snaps[0].name)[1])
    assert out.count(f"Trained DigitsLeNet for {stopped} iterations") == 1


def test_a_rank_that_hangs_is_named_within_the_timeout(tmp_path):
    solver = _lenet(tmp_path, 4, max_iter=100000, extra="display: 1")
    run = _Run(solver, env=_env(CAFFE_LITE_MPI_TIMEOUT="3"))
    _, rank1 = run.pids()
    run.wait_for(r"Iteration 2, loss")
    os.kill(rank1, signal.SIGSTOP)
    start = time.monotonic()
    try:
        code, _, err = run.finish(timeout=60)
    finally:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(rank1, sig)
            except ProcessLookupError:
                pass
    assert code != 0
    assert time.monotonic() - start < 40
    assert re.search(rf"rank 1 \(pid {rank1} on .*\) (did not reach iteration \d+|"
                     r"stopped answering) within 3 s", err), err


def test_a_killed_rank_ends_the_run_and_is_named_by_pid(tmp_path):
    solver = _lenet(tmp_path, 4, max_iter=100000, extra="display: 1")
    run = _Run(solver)
    _, rank1 = run.pids()
    run.wait_for(r"Iteration 2, loss")
    os.kill(rank1, signal.SIGKILL)
    code, _, err = run.finish(timeout=60)
    assert code != 0
    # MPICH's mpiexec reports the dead process by pid; our first line maps it to rank 1
    assert f"rank 1: pid {rank1}" in err and str(rank1) in err.split("rank 1: pid")[-1]


def test_mpiexec_without_mpi4py_names_the_extra(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "mpi4py.py").write_text("raise ImportError('mpi4py is not installed')\n")
    solver = _lenet(tmp_path, 4, max_iter=1)
    env = _env(PMI_SIZE="2", PMI_RANK="0")                 # as mpiexec sets them
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), env["PYTHONPATH"]])
    result = subprocess.run([sys.executable, "-m", "caffe_lite", "train", "--solver",
                             str(solver)], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 1
    assert "pip install 'caffe-lite[mpi]'" in result.stderr, result.stderr
    assert "training under mpiexec (2 ranks)" in result.stderr


def test_one_process_needs_no_mpi():
    assert list(itertools.islice(shard.own_items(iter(range(5))), 5)) == list(range(5))
    from caffe_lite.distributed.parallel import join_if_launched
    assert join_if_launched() is None


def test_ranks_share_the_order_but_not_the_random_sampling(as_rank):
    from caffe_lite.layers.data import layer_rng
    draws = []
    for rank in (0, 1):
        as_rank(rank, 2)
        caffe.set_random_seed(5)
        draws.append((layer_rng().integers(10 ** 6, size=4).tolist(),
                      layer_rng(per_rank=True).integers(10 ** 6, size=4).tolist()))
    assert draws[0][0] == draws[1][0]          # the shuffled order every rank shares out
    assert draws[0][1] != draws[1][1]          # crops, mirrors, WindowData's windows


def test_a_solver_built_on_one_rank_only_is_an_error_within_the_timeout(tmp_path):
    mpiexec = _mpiexec()
    solver = _lenet(tmp_path, 4, max_iter=1)
    script = ("from mpi4py import MPI\nimport caffe_lite as caffe\n"
              f"if MPI.COMM_WORLD.Get_rank() == 0:\n    caffe.get_solver({str(solver)!r})\n")
    result = subprocess.run([mpiexec, "-n", "2", sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=60,
                            env=_env(CAFFE_LITE_MPI_TIMEOUT="2"), cwd=ROOT)
    assert result.returncode != 0
    assert "did not start their solver within 2 s" in result.stderr, result.stderr
