"""models/ssd_tiny end to end, briefly: tools/make_ssd_shapes.py writes a small data
set, tools/train_ssd_tiny.py trains a few iterations and scores the test net as the
SSD fork's solver does (eval_type detection); the mAP it reports is checked
against the naive AP of ref_detection_eval.py over the test net's own marks.
The full run (600 iterations) is the README's command."""
import importlib.util
import pathlib

import numpy as np
import pytest
from ref_detection_eval import ref_ap

import caffe_lite as caffe
from caffe_lite.errors import SolverError

pytest.importorskip("lmdb")
TOOLS = pathlib.Path(__file__).resolve().parent.parent / "tools"


def tool(name):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ssd_shapes")
    tool("make_ssd_shapes").main(["--out", str(out), "--train", "32", "--test", "20"])
    return out


def ref_map(rows, version):
    """Per class: positives from the (-1, c, n) rows, detections' (score, tp) from
    the rest (rows marked neither skipped); the mean over the classes."""
    positives = {int(r[1]): int(r[2]) for r in rows if r[0] == -1}
    aps = []
    for c, n in sorted(positives.items()):
        marks = [(r[2], int(r[3])) for r in rows if r[0] != -1 and r[1] == c and r[3] + r[4]]
        aps.append(ref_ap([m[0] for m in marks], [m[1] for m in marks], n, version)
                   if marks else 0.0)
    return sum(aps) / len(aps)


def test_trains_and_reports_map(data_dir):
    trainer = tool("train_ssd_tiny")
    param = trainer.solver_param(str(data_dir), max_iter=12, test_batches=1)
    lines = []
    before, after, solver = trainer.train(param, log=lines.append)
    assert solver.iter == 12 and "test mAP (11point)" in lines[0]
    assert 0 <= before <= 1 and 0 <= after <= 1
    net = solver.test_nets[0]
    net.forward()                                   # the same 20 test images again
    rows = net.blobs["detection_eval"].data[0, 0]
    assert rows.shape[1] == 5 and list(rows[:2, 1]) == [1, 2] and rows[:2, 2].sum() > 20
    assert after == pytest.approx(ref_map(rows, "11point"), abs=1e-5)


@pytest.mark.parametrize("field, value, message", [("eval_type", "regression", "eval_type"),
                                                   ("ap_version", "VOC", "ap_version")])
def test_bad_eval_settings(data_dir, field, value, message):
    param = tool("train_ssd_tiny").solver_param(str(data_dir), max_iter=1)
    setattr(param, field, value)
    with pytest.raises(SolverError, match=message):
        caffe.get_solver(param)


def test_deploy_net_detects(data_dir):
    """The deploy prototxt runs an image to (1, 1, N, 7) detections."""
    net = caffe.Net(str(TOOLS.parent / "models" / "ssd_tiny" / "deploy.prototxt"), caffe.TEST)
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(0, 1, (1, 3, 48, 48))
    out = net.forward()["detection_out"]
    assert out.shape[:2] == (1, 1) and out.shape[3] == 7
