"""The zoo's SSD models agree with OpenCV's dnn module, an independent implementation of
the SSD fork's layers: yufacedetectnet v1/v2 (real weights) and both MobileNet-SSD
deploy nets (seeded random weights, one caffemodel for both runners).

OpenCV pads DetectionOutput to keep_top_k rows of zeros and orders the kept rows by
score; the fork groups them by label. Rows are compared after dropping the padding and
sorting both by (image, label, descending score).
"""
import numpy as np
import pytest
from google.protobuf import text_format

import caffe_lite as caffe
from caffe_lite.proto import caffe_pb2

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the test extra) is not "
                          "installed: no OpenCV dnn to compare the SSD nets with")

BOX_ATOL, SCORE_ATOL, BLOB_RTOL = 1e-3, 1e-4, 1e-4


def opencv_layer_names(prototxt, blobs):
    """The layer whose output OpenCV reports for each blob: the last layer writing it
    (in-place chains such as conv -> BatchNorm -> Scale -> ReLU end there)."""
    param = text_format.Parse(open(prototxt).read(), caffe_pb2.NetParameter())
    last = {top: lp.name for lp in param.layer for top in lp.top}
    return [last[b] for b in blobs]


def sorted_detections(rows):
    """Real rows (score > 0) by image, label, descending score."""
    rows = rows.reshape(-1, 7)
    rows = rows[rows[:, 2] > 0]
    return rows[np.lexsort((-rows[:, 2], rows[:, 1], rows[:, 0]))]


def compare_with_opencv(prototxt, weights, x, blobs, detections="detection_out"):
    """Run both; assert agreement; return the measured differences."""
    net = caffe.Net(str(prototxt), caffe.TEST, weights=str(weights))
    net.blobs["data"].reshape(x.shape)
    net.blobs["data"].data[...] = x
    net.reshape()
    net.forward()
    cv_net = cv2.dnn.readNetFromCaffe(str(prototxt), str(weights))
    cv_net.setInput(x)
    outs = cv_net.forward(opencv_layer_names(prototxt, [detections] + blobs))
    ours, theirs = sorted_detections(net.blobs[detections].data), sorted_detections(outs[0])
    assert len(ours) == len(theirs) > 0, (len(ours), len(theirs))
    np.testing.assert_array_equal(ours[:, :2], theirs[:, :2])
    stats = {"detections": len(ours),
             "box": float(np.abs(ours[:, 3:] - theirs[:, 3:]).max()),
             "score": float(np.abs(ours[:, 2] - theirs[:, 2]).max())}
    assert stats["box"] <= BOX_ATOL and stats["score"] <= SCORE_ATOL, stats
    for name, value in zip(blobs, outs[1:]):
        mine = net.blobs[name].data
        rel = float(np.abs(mine - value.reshape(mine.shape)).max() / np.abs(value).max())
        stats[name] = rel
        assert rel <= BLOB_RTOL, (name, rel)
    return stats


def zoo_image(zoo_path, size_hw):
    image = cv2.imread(str(zoo_path("mobilenet_ssd/000001.jpg")))
    return cv2.resize(image, size_hw[::-1]).astype(np.float32)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_yufacedetectnet_agrees_with_opencv(zoo_path, version):
    prototxt = zoo_path(f"yufacedetectnet/yufacedetectnet-open-{version}.prototxt")
    image = zoo_image(zoo_path, (240, 320))
    x = (image - np.float32([103.94, 116.78, 123.68])).transpose(2, 0, 1)[None].copy()
    compare_with_opencv(prototxt, prototxt.with_suffix(".caffemodel"), x,
                        ["conv3_3_norm", "conv6_3_norm", "mbox_loc", "mbox_conf_flatten",
                         "mbox_priorbox"])


def seeded_mobilenet_weights(prototxt, path, seed=0):
    """He-normal convolutions; BatchNorm statistics that keep activations O(1); the
    confidence heads scaled so that some classes pass the 0.25 threshold."""
    net = caffe.Net(str(prototxt), caffe.TEST)
    r = np.random.default_rng(seed)
    for name, blobs in net.params.items():
        layer_type = net.layer_dict[name].type
        if layer_type == "BatchNorm":
            blobs[0].data[...] = r.uniform(-0.1, 0.1, blobs[0].shape)
            blobs[1].data[...] = r.uniform(0.8, 1.2, blobs[1].shape)
            blobs[2].data[...] = 1
        elif layer_type == "Scale":
            for b in blobs:
                b.data[...] = r.uniform(0.8, 1.2, b.shape) if b is blobs[0] else \
                    r.uniform(-0.1, 0.1, b.shape)
        else:
            w = blobs[0]
            w.data[...] = r.normal(0, np.sqrt(2.0 / np.prod(w.shape[1:])), w.shape)
            w.data[...] *= 6 if name.endswith("mbox_conf") else \
                0.3 if name.endswith("mbox_loc") else 1
            for b in blobs[1:]:
                b.data[...] = r.uniform(-0.1, 0.1, b.shape)
    net.save(str(path))
    return path


@pytest.mark.parametrize("name", ["deploy", "voc_MobileNetSSD_deploy"])
def test_mobilenet_ssd_agrees_with_opencv(zoo_path, tmp_path, name):
    prototxt = zoo_path(f"mobilenet_ssd/{name}.prototxt")
    weights = seeded_mobilenet_weights(prototxt, tmp_path / "seeded.caffemodel")
    x = ((zoo_image(zoo_path, (128, 128)) - 127.5) * 0.007843).transpose(2, 0, 1)[None]
    compare_with_opencv(prototxt, weights, x.copy(),
                        ["conv11", "conv13", "mbox_loc", "mbox_conf_flatten",
                         "mbox_priorbox"])
