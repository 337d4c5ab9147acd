"""Batch inference over a data set (``caffe-lite run``, distributed.run_dataset):
outputs in input order equal a forward pass per image; Dask workers (a
LocalCluster of 2 processes, the ``dask`` extra) give bit-identical results,
also when a worker process is killed mid-run;
outputs are refused when they exist, resumed when a run was killed (kill -9),
and an unreachable scheduler is named within the timeout."""
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import caffe_lite as caffe
from caffe_lite import cli
from caffe_lite.data.db import RecordWriter
from caffe_lite.data.image import read_image, to_chw
from caffe_lite.distributed import run_dataset
from caffe_lite.errors import CaffeLiteError, DistributedError
from caffe_lite.io import array_to_datum

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEPLOY = str(ROOT / "models" / "lenet" / "deploy.prototxt")
COUNT = 11                                 # no batch size below divides it
SCALE = "scale: 0.00390625"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Weights, a folder of digit PNGs, a list of them (reversed) and an LMDB."""
    Image = pytest.importorskip("PIL.Image")
    h5py = pytest.importorskip("h5py")
    folder = tmp_path_factory.mktemp("run")
    caffe.set_random_seed(11)
    weights = str(folder / "lenet.caffemodel")
    caffe.Net(DEPLOY, caffe.TEST).save(weights)
    with h5py.File(ROOT / "models" / "lenet" / "data" / "digits_test.h5", "r") as f:
        digits = (np.asarray(f["data"][:COUNT, 0]) * 255).round().astype(np.uint8)
    images = folder / "images"
    images.mkdir()
    for i, digit in enumerate(digits):
        Image.fromarray(digit).save(images / f"d{i:02d}.png")
    listing = folder / "list.txt"
    listing.write_text("".join(f"images/d{i:02d}.png {i}\n" for i in reversed(range(COUNT))))
    return {"weights": weights, "folder": str(images), "list": str(listing),
            "digits": digits, "root": folder}


def reference(weights, paths):
    """One forward pass per image, read as Caffe's ImageData reads it."""
    net = caffe.Net(DEPLOY, caffe.TEST, weights=weights)
    out = []
    for path in paths:
        net.blobs["data"].data[...] = to_chw(read_image(path, 16, 16, False)) / np.float32(256)
        out.append(net.forward()["prob"].copy())
    return np.concatenate(out)


def test_a_list_runs_in_input_order_as_one_forward_per_image(data):
    result = run_dataset(DEPLOY, data["weights"], data["list"], batch_size=4,
                         shard_size=4, transform=SCALE)
    order = list(reversed(range(COUNT)))
    assert result.keys == [f"images/d{i:02d}.png" for i in order]
    assert result.arrays["prob"].shape == (COUNT, 10)
    expected = reference(data["weights"], [f"{data['folder']}/d{i:02d}.png" for i in order])
    np.testing.assert_allclose(result.arrays["prob"], expected, rtol=1e-5, atol=1e-7)


def test_a_folder_and_an_lmdb_give_the_same_rows(data, tmp_path):
    pytest.importorskip("lmdb")
    with RecordWriter(tmp_path / "db", "lmdb") as db:
        for i, digit in enumerate(data["digits"]):
            db.put(f"{i:08d}", array_to_datum(digit[None], label=i).SerializeToString())
    folder = run_dataset(DEPLOY, data["weights"], data["folder"], blobs=["prob", "ip1"],
                         batch_size=3, transform=SCALE)
    lmdb = run_dataset(DEPLOY, data["weights"], str(tmp_path / "db"), blobs=["prob", "ip1"],
                       batch_size=5, transform=SCALE)
    assert folder.keys == [f"d{i:02d}.png" for i in range(COUNT)]
    assert lmdb.keys == [f"{i:08d}" for i in range(COUNT)]
    for blob in ("prob", "ip1"):
        np.testing.assert_allclose(folder.arrays[blob], lmdb.arrays[blob], rtol=1e-5,
                                   atol=1e-6)


def test_a_pycaffe_transformer_preprocesses_instead(data):
    transformer = caffe.io.Transformer({"data": (1, 1, 16, 16)})
    transformer.set_transpose("data", (2, 0, 1))
    transformer.set_input_scale("data", 0.5)
    result = run_dataset(DEPLOY, data["weights"], data["folder"], transformer=transformer,
                         batch_size=2)
    net = caffe.Net(DEPLOY, caffe.TEST, weights=data["weights"])
    for i in (0, COUNT - 1):
        image = caffe.io.load_image(f"{data['folder']}/d{i:02d}.png", color=False)
        net.blobs["data"].data[...] = transformer.preprocess("data", image)
        np.testing.assert_allclose(result.arrays["prob"][i], net.forward()["prob"][0],
                                   rtol=1e-5, atol=1e-7)


def test_outputs_are_refused_when_they_exist(data, tmp_path):
    out = tmp_path / "out.h5"
    args = ["run", "--model", DEPLOY, "--weights", data["weights"], "--input",
            data["folder"], "--output", str(out), "--transform", SCALE, "--batch-size", "4"]
    assert cli.main(args) == 0
    h5py = pytest.importorskip("h5py")
    with h5py.File(out, "r") as f:
        first = f["prob"][()]
        assert [k.decode() for k in f["keys"][()]] == [f"d{i:02d}.png" for i in range(COUNT)]
    assert not os.path.exists(str(out) + ".parts")
    with pytest.raises(CaffeLiteError, match="the output exists"):
        run_dataset(DEPLOY, data["weights"], data["folder"], output=str(out))
    assert cli.main(args + ["--overwrite"]) == 0
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["prob"][()], first)
    folder = tmp_path / "shards"
    run_dataset(DEPLOY, data["weights"], data["folder"], output=str(folder),
                transform=SCALE, batch_size=4, shard_size=4)
    assert sorted(os.listdir(folder)) == ["manifest.json", "shard-00000.npz",
                                          "shard-00001.npz", "shard-00002.npz"]
    with pytest.raises(CaffeLiteError, match="the output exists"):
        run_dataset(DEPLOY, data["weights"], data["folder"], output=str(folder))
    (folder / "manifest.json").write_text('{"run": {"items": 3}, "complete": false}')
    with pytest.raises(CaffeLiteError, match="shards of another run"):
        run_dataset(DEPLOY, data["weights"], data["folder"], output=str(folder))


def test_bad_runs_are_named(data, tmp_path):
    with pytest.raises(CaffeLiteError, match="the input does not exist"):
        run_dataset(DEPLOY, data["weights"], str(tmp_path / "nothing"))
    with pytest.raises(CaffeLiteError, match="no blob 'nope'"):
        run_dataset(DEPLOY, data["weights"], data["folder"], blobs="nope")
    with pytest.raises(CaffeLiteError, match="transform_param text"):
        run_dataset(DEPLOY, data["weights"], data["folder"], transform="scael: 2")


def test_an_unreachable_scheduler_is_named_within_the_timeout(data):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    start = time.monotonic()
    with pytest.raises(DistributedError, match=r"scheduler at tcp://127.0.0.1:9 did not "
                                               r"answer within 2 s"):
        run_dataset(DEPLOY, data["weights"], data["folder"], scheduler="tcp://127.0.0.1:9",
                    timeout=2)
    assert time.monotonic() - start < 20


def test_dask_workers_give_bit_identical_results(data, tmp_path, capsys):
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    pytest.importorskip("tqdm")
    with threadpool_limits(1):                 # as dask's workers: one BLAS thread each
        alone = run_dataset(DEPLOY, data["weights"], data["list"], batch_size=2,
                            shard_size=2, transform=SCALE)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        out = tmp_path / "dask.h5"
        run_dataset(DEPLOY, data["weights"], data["list"], batch_size=2, shard_size=2,
                    transform=SCALE, scheduler=cluster.scheduler_address,
                    output=str(out), progress=True)
        with distributed.Client(cluster) as client:        # each worker built the net
            built = client.run(lambda: len(__import__(
                "caffe_lite.distributed.dataset", fromlist=["_NETS"])._NETS))
            pids = list(client.run(os.getpid).values())
        # a worker process killed mid-run: its shards are run again elsewhere
        many = tmp_path / "many.txt"
        many.write_text(pathlib.Path(data["list"]).read_text().replace(
            "images/", f"{data['root']}/images/") * 40)
        folder = tmp_path / "with_a_kill"
        result = {}
        runner = threading.Thread(target=lambda: result.update(done=run_dataset(
            DEPLOY, data["weights"], str(many), batch_size=1, shard_size=2,
            transform=SCALE, scheduler=cluster.scheduler_address, output=str(folder))))
        runner.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (folder / "shard-00004.npz").exists():
            time.sleep(0.002)
        os.kill(pids[0], signal.SIGKILL)
        written_at_kill = len(list(folder.glob("shard-*.npz")))
        runner.join(120)
        assert "done" in result and written_at_kill < 220
    assert "6/6" in capsys.readouterr().err                      # the tqdm bar
    assert sorted(built.values()) == [1, 1]
    h5py = pytest.importorskip("h5py")
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["prob"][()], alone.arrays["prob"])
        assert [k.decode() for k in f["keys"][()]] == alone.keys
    # --workers N starts its own cluster
    folder = tmp_path / "local"
    assert cli.main(["run", "--model", DEPLOY, "--weights", data["weights"], "--input",
                     data["list"], "--output", str(folder), "--transform", SCALE,
                     "--batch-size", "2", "--shard-size", "2", "--workers", "2"]) == 0
    rows = np.concatenate([np.load(folder / f"shard-{i:05d}.npz")["prob"] for i in range(6)])
    np.testing.assert_array_equal(rows, alone.arrays["prob"])
    killed = np.concatenate([np.load(tmp_path / "with_a_kill" / f"shard-{i:05d}.npz")["prob"]
                             for i in range(220)])
    one_by_one = run_dataset(DEPLOY, data["weights"], data["list"], batch_size=1,
                             transform=SCALE)
    np.testing.assert_array_equal(killed, np.concatenate([one_by_one.arrays["prob"]] * 40))


def _run_command(data, output, items):
    return [sys.executable, "-m", "caffe_lite", "run", "--model", DEPLOY, "--weights",
            data["weights"], "--input", items, "--output", str(output), "--transform",
            SCALE, "--batch-size", "1", "--shard-size", "3"]


def test_a_run_killed_mid_way_resumes_to_the_uninterrupted_result(data, tmp_path):
    many = tmp_path / "many.txt"
    lines = data["root"].joinpath("list.txt").read_text().splitlines()
    many.write_text("".join(f"{data['root']}/{line}\n" for line in lines * 60))
    shards = -(-len(lines) * 60 // 3)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / "killed"
    proc = subprocess.Popen(_run_command(data, out, str(many)), env=env, cwd=ROOT,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "shard-00003.npz").exists():
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    written = sorted(p.name for p in out.glob("shard-*.npz"))
    assert 4 <= len(written) < shards, "the run was not killed mid-way"
    stamp = (out / "shard-00000.npz").stat().st_mtime_ns
    subprocess.run(_run_command(data, out, str(many)), env=env, cwd=ROOT, check=True,
                   timeout=120, capture_output=True)
    assert (out / "shard-00000.npz").stat().st_mtime_ns == stamp         # not redone
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    whole = run_dataset(DEPLOY, data["weights"], str(many), transform=SCALE, batch_size=1,
                        shard_size=3)
    resumed = [np.load(out / f"shard-{i:05d}.npz") for i in range(shards)]
    np.testing.assert_array_equal(np.concatenate([r["prob"] for r in resumed]),
                                  whole.arrays["prob"])
    assert [str(k) for r in resumed for k in r["keys"]] == whole.keys


def test_resuming_removes_the_temporary_files_a_killed_writer_left(tmp_path):
    """A run killed while a shard was being written leaves atomic_write's temporary
    file behind; the resumed run removes it, and keeps the finished shards."""
    from caffe_lite.distributed.shards import ShardStore
    out = tmp_path / "out"
    store = ShardStore(out, {"model": "m"})
    store.write(0, ["a"], {"prob": np.zeros((1, 2), np.float32)})
    (out / ".x1y2shard-00001.npz.tmp").write_bytes(b"half")
    (out / ".x1y2manifest.json.tmp").write_text("{")
    ShardStore(out, {"model": "m"})
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shard-00000.npz"]
