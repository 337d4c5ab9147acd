"""The zoo's SSD training and test prototxts (MobileNet-SSD, yufacedetectnet v1/v2),
every layer as the files have it, with their AnnotatedData sources redirected to a
small synthetic LMDB and the resize made smaller to keep the test short: the train
nets take solver steps (augmentation, MultiBoxLoss, backward), the test net scores
DetectionOutput with DetectionEvaluate and the solver's eval_type detection."""
import sys

import numpy as np
import pytest

import caffe_lite
from caffe_lite.data.annotated import make_annotated
from caffe_lite.data.db import RecordWriter
from caffe_lite.formats import parse_net_param
from caffe_lite.proto import caffe_pb2

pytest.importorskip("lmdb")


@pytest.fixture(scope="module")
def lmdb_source(tmp_path_factory):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from synthetic_shapes import make_detection_shapes
    images, boxes = make_detection_shapes(4, size=64, seed=3)
    for rows in boxes:
        rows[:, 0] = 1                          # yufacedetectnet knows one class (face)
    path = tmp_path_factory.mktemp("zoo_ssd") / "lmdb"
    with RecordWriter(path, "lmdb") as db:
        for i, (image, rows) in enumerate(zip(images, boxes)):
            db.put(f"{i:08d}", make_annotated(image, rows).SerializeToString())
    return str(path)


def redirect(param, source, size, batch=2):
    for lp in param.layer:
        if lp.type == "AnnotatedData":
            lp.data_param.source, lp.data_param.batch_size = source, batch
            lp.transform_param.resize_param.height = size[0]
            lp.transform_param.resize_param.width = size[1]
    return param


def solver_for(param, test=False):
    solver = caffe_pb2.SolverParameter(base_lr=1e-4, momentum=0.9, lr_policy="fixed",
                                       max_iter=2, display=0, snapshot=0,
                                       snapshot_after_train=False,
                                       test_initialization=False)
    if test:
        solver.eval_type, solver.ap_version = "detection", "11point"
    solver.net_param.CopyFrom(param)
    caffe_lite.set_random_seed(7)
    return caffe_lite.get_solver(solver)


@pytest.mark.filterwarnings("ignore:.*resized as LINEAR")
@pytest.mark.parametrize("relative, size", [
    ("yufacedetectnet/yufacedetectnet-open-v1.train.prototxt", (96, 128)),
    ("yufacedetectnet/yufacedetectnet-open-v2.train.prototxt", (96, 128)),
    ("mobilenet_ssd/voc_MobileNetSSD_train.prototxt", (96, 96)),
    ("mobilenet_ssd/train.prototxt", (96, 96)),
])
def test_zoo_ssd_train_nets_take_steps(zoo_path, lmdb_source, relative, size):
    param = parse_net_param(zoo_path(relative).read_text(), relative)
    solver = solver_for(redirect(param, lmdb_source, size))
    losses = []
    for _ in range(2):
        solver.step(1)
        losses.append(float(solver.net.blobs["mbox_loss"].data))
    assert solver.net.blobs["data"].shape == (2, 3) + size
    assert np.isfinite(losses).all() and losses[0] > 0


def test_zoo_mobilenet_ssd_test_net_reports_map(zoo_path, lmdb_source):
    relative = "mobilenet_ssd/voc_MobileNetSSD_test.prototxt"
    test = redirect(parse_net_param(zoo_path(relative).read_text(), relative), lmdb_source,
                    (96, 96))
    solver = caffe_pb2.SolverParameter(base_lr=0, lr_policy="fixed", max_iter=0, display=0,
                                       test_iter=[2], test_interval=1, eval_type="detection",
                                       ap_version="11point", snapshot_after_train=False)
    train = redirect(parse_net_param(zoo_path("mobilenet_ssd/voc_MobileNetSSD_train.prototxt")
                                     .read_text()), lmdb_source, (96, 96))
    solver.net_param.CopyFrom(train)
    solver.test_net_param.add().CopyFrom(test)
    caffe_lite.set_random_seed(7)
    with pytest.warns(UserWarning, match="resized as LINEAR"):
        s = caffe_lite.get_solver(solver)
    scores = s.test(0)
    assert list(scores) == ["detection_eval"] and 0 <= scores["detection_eval"][0] <= 1
    rows = s.test_nets[0].blobs["detection_eval"].data[0, 0]
    assert rows.shape[1] == 5 and list(rows[:20, 1]) == list(range(1, 21))
