"""The example segmentation nets in models/ (fcn8s_tiny, deconvnet_tiny, segnet_tiny)
train on synthetic discs and squares: the model's own solver.prototxt and
train_val.prototxt, with the HDF5Data sources pointed at data written here.

Chance level is the majority-class (background) pixel fraction of the held-out
images: a net that has learned nothing predicts background everywhere and scores
exactly that.
"""
import importlib.util
import re

import numpy as np
import pytest
from conftest import ROOT
from synthetic_shapes import (
    CLASS_NAMES,
    NUM_CLASSES,
    majority_fraction,
    make_shapes,
    pixel_accuracy,
)

import caffe_lite as caffe
from caffe_lite.formats import read_net_param, read_solver_param

MODELS = ROOT / "models"
# Iterations per net: all leave the all-background plateau by ~40 (checked with four
# random seeds); FCN's pad-100 first stage makes it the slow one (~0.1 s/iteration).
TRAIN_ITERS = {"fcn8s_tiny": 60, "deconvnet_tiny": 60, "segnet_tiny": 60}
NUM_TRAIN, NUM_TEST = 200, 40


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    """HDF5Data source lists for a training and a held-out set; the test labels."""
    h5py = pytest.importorskip("h5py", reason="h5py (the 'hdf5' extra) missing")
    folder = tmp_path_factory.mktemp("shapes")
    test_labels = None
    for split, num, seed in (("train", NUM_TRAIN, 11), ("test", NUM_TEST, 12)):
        images, labels = make_shapes(num, 32, seed=seed)
        with h5py.File(folder / f"{split}.h5", "w") as f:
            f.create_dataset("data", data=images)
            f.create_dataset("label", data=labels)
        (folder / f"{split}.txt").write_text(f"{folder / split}.h5\n")
        test_labels = labels
    return folder, test_labels


def solver_param(model, data_dir, iters):
    """models/<model>/solver.prototxt with its train_val inlined, the data sources
    moved to ``data_dir`` (the whole test set in one batch) and no snapshots."""
    param = read_solver_param(str(MODELS / model / "solver.prototxt"))
    net = read_net_param(str(MODELS / model / "train_val.prototxt"))
    for layer in net.layer:
        if layer.type == "HDF5Data":
            test = layer.include[0].phase == caffe.TEST
            layer.hdf5_data_param.source = str(data_dir / ("test.txt" if test else
                                                           "train.txt"))
            if test:
                layer.hdf5_data_param.batch_size = NUM_TEST
    param.ClearField("net")
    param.net_param.CopyFrom(net)
    param.test_iter[:] = [1]
    param.max_iter = iters
    param.test_interval = 10 ** 6
    param.test_initialization = False
    param.display = 0
    param.snapshot = 0
    param.snapshot_after_train = False
    return param


@pytest.mark.parametrize("model", sorted(TRAIN_ITERS))
def test_model_learns_the_shapes(model, shapes_data, tmp_path):
    data_dir, test_labels = shapes_data
    caffe.set_random_seed(1701)
    param = solver_param(model, data_dir, TRAIN_ITERS[model])
    solver = caffe.get_solver(param)
    assert type(solver).__name__ == f"{param.type}Solver"
    losses = []
    for _ in range(TRAIN_ITERS[model]):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    first, last = np.mean(losses[:5]), np.mean(losses[-10:])
    assert last < 0.7 * first, f"{model}: loss {first:.3f} -> {last:.3f}"

    net = solver.test_nets[0]
    net.share_with(solver.net)
    net.forward()
    assert np.array_equal(net.blobs["label"].data, test_labels)
    chance = majority_fraction(test_labels)           # background, ~0.7
    accuracy = pixel_accuracy(net.blobs["score"].data, test_labels)
    assert accuracy == pytest.approx(float(net.blobs["accuracy"].data), abs=1e-6)
    assert accuracy > chance + 0.03, \
        f"{model}: pixel accuracy {accuracy:.3f}, chance {chance:.3f}"

    # deploy.prototxt runs the trained weights on one image like the test net does
    weights = tmp_path / f"{model}.caffemodel"
    solver.net.save(str(weights))
    deploy = caffe.Net(str(MODELS / model / "deploy.prototxt"), caffe.TEST,
                       weights=str(weights))
    image = net.blobs["data"].data[:1]
    prob = deploy.forward(data=image)["prob"]                  # (1, K, 32, 32)
    score = net.blobs["score"].data[:1]
    expected = np.exp(score - score.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(prob, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", sorted(TRAIN_ITERS))
def test_model_files_are_consistent(model, shapes_data):
    """Train and test phases build; scores are (N, classes, 32, 32) like the labels."""
    data_dir, _ = shapes_data
    param = solver_param(model, data_dir, 1)
    assert param.random_seed >= 0                  # reproducible from the CLI too
    solver = caffe.get_solver(param)
    for built, batch in ((solver.net, None), (solver.test_nets[0], NUM_TEST)):
        shape = built.blobs["score"].shape
        assert shape[1:] == (NUM_CLASSES, 32, 32)
        assert built.blobs["label"].shape == (shape[0], 1, 32, 32)
        if batch:
            assert shape[0] == batch
    deploy = caffe.Net(str(MODELS / model / "deploy.prototxt"), caffe.TEST)
    assert deploy.blobs["prob"].shape == (1, NUM_CLASSES, 32, 32)


def load_tool():
    spec = importlib.util.spec_from_file_location(
        "make_shapes_dataset", ROOT / "tools" / "make_shapes_dataset.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_make_shapes_dataset_writes_hdf5data_sources(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py (the 'hdf5' extra) missing")
    load_tool().main(["--out", str(tmp_path), "--train", "6", "--test", "3"])
    listed = (tmp_path / "train.txt").read_text().split()
    assert listed == [str(tmp_path / "shapes_train.h5")]
    with h5py.File(listed[0], "r") as f:
        assert f["data"].shape == (6, 3, 32, 32) and f["label"].shape == (6, 1, 32, 32)


@pytest.mark.parametrize("model", sorted(TRAIN_ITERS))
def test_cli_trains_from_the_model_files(model, tmp_path, monkeypatch, capsys):
    """``caffe-lite train --solver models/<model>/solver.prototxt`` from a checkout
    whose data the tool wrote; max_iter cut to 2."""
    pytest.importorskip("h5py", reason="h5py (the 'hdf5' extra) missing")
    from caffe_lite import cli
    folder = tmp_path / "models" / model
    folder.mkdir(parents=True)
    for name in ("train_val.prototxt", "deploy.prototxt"):
        (folder / name).write_text((MODELS / model / name).read_text())
    solver = (MODELS / model / "solver.prototxt").read_text()
    assert "max_iter: " in solver
    (folder / "solver.prototxt").write_text(
        re.sub(r"max_iter: \d+", "max_iter: 2", solver))
    load_tool().main(["--out", str(folder / "data"), "--train", "8", "--test", "100"])
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--solver", f"models/{model}/solver.prototxt",
                     "--quiet"]) == 0
    assert "for 2 iterations" in capsys.readouterr().out
    assert (folder / f"{model}_iter_2.caffemodel").exists()


def test_synthetic_shapes():
    images, labels = make_shapes(12, 32, seed=3)
    assert images.shape == (12, 3, 32, 32) and images.dtype == np.float32
    assert labels.shape == (12, 1, 32, 32) and labels.dtype == np.float32
    assert set(np.unique(labels)) <= set(range(NUM_CLASSES))
    assert len(CLASS_NAMES) == NUM_CLASSES
    again, _ = make_shapes(12, 32, seed=3)
    assert np.array_equal(images, again)
    inside = np.repeat(labels > 0, 3, axis=1)
    assert images[inside].mean() > 0.6 > 0.1 > abs(images[~inside].mean())
    assert 0.5 < majority_fraction(labels) < 0.9
    perfect = np.eye(NUM_CLASSES, dtype=np.float32)[labels[:, 0].astype(int)]
    assert pixel_accuracy(perfect.transpose(0, 3, 1, 2), labels) == 1.0
