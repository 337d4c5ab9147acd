"""``caffe-lite classify`` (BVLC's classify.py): the preprocessing options, each
step printed, the probability output chosen (never a box regression), scores
saved; checked on a tiny net against a hand computation and on real zoo models."""
import re

import numpy as np
import pytest

import caffe_lite as caffe
from caffe_lite import cli
from caffe_lite.errors import CaffeLiteError, PreprocessError

DEPLOY = """name: "tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 } }
layer { name: "box" type: "InnerProduct" bottom: "data" top: "box"
        inner_product_param { num_output: 4 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.fixture
def tiny(tmp_path):
    model = tmp_path / "deploy.prototxt"
    model.write_text(DEPLOY)
    net = caffe.Net(str(model), caffe.TEST)
    rng = np.random.default_rng(0)
    for name in ("ip", "box"):
        net.params[name][0].data[...] = rng.normal(size=net.params[name][0].data.shape)
        net.params[name][1].data[...] = 0
    net.save(str(tmp_path / "w.caffemodel"))
    image = rng.uniform(0, 1, (4, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", image[:, :, None])
    gray = np.round(image * 255).astype(np.uint8)
    (tmp_path / "x.pgm").write_bytes(b"P5\n# comment\n4 4\n255\n" + gray.tobytes())
    return tmp_path, net, gray / np.float32(255)


def _classify(folder, *extra):
    return cli.main(["classify", *extra, "--model", str(folder / "deploy.prototxt"),
                     "--weights", str(folder / "w.caffemodel"), "--center-only",
                     "--top", "3"])


def _top(out):
    return [line.split()[1] for line in out.splitlines()
            if re.match(r"^\d\.\d{4}  \S+$", line)]


@pytest.mark.parametrize("name", ["x.npy", "x.pgm"])
@pytest.mark.parametrize("invert", [False, True])
def test_scores_follow_the_preprocessing_asked_for(tiny, capsys, name, invert):
    folder, net, image = tiny
    if name.endswith(".npy"):
        image = np.load(folder / name)[:, :, 0]
    x = (1 - image if invert else image) * 2.0 - 0.5        # raw scale 2, mean 0.5
    logits = net.params["ip"][0].data @ x.ravel()
    args = [str(folder / name), "--raw-scale", "2", "--mean-values", "0.5"]
    assert _classify(folder, *args, *(["--invert"] if invert else [])) == 0
    out = capsys.readouterr().out
    assert _top(out) == [str(k) for k in np.argsort(-logits)]
    assert ("inverted: x -> 1 - x" in out) == invert
    assert "multiplied by 2 (raw scale)" in out and "mean [0.5] subtracted" in out
    assert "Scores from 'prob'" in out                  # not the 'box' output


def test_scores_are_saved_and_another_blob_can_be_named(tiny, capsys):
    folder, net, image = tiny
    assert _classify(folder, str(folder / "x.npy"), "--raw-scale", "1", "--output-blob",
                     "box", "--output", str(folder / "s.npy")) == 0
    saved = np.load(folder / "s.npy")
    x = np.load(folder / "x.npy").ravel()
    np.testing.assert_allclose(saved[0], net.params["box"][0].data @ x, rtol=1e-5)


def test_a_net_without_one_softmax_output_needs_output_blob(tiny, capsys):
    folder, _, _ = tiny
    (folder / "deploy.prototxt").write_text(DEPLOY.replace('type: "Softmax"', 'type: "ReLU"'))
    assert _classify(folder, str(folder / "x.npy")) == 1
    assert "--output-blob" in capsys.readouterr().err


def test_classifier_predict_names_a_two_dimensional_image(tiny):
    folder, _, image = tiny
    net = caffe.Classifier(str(folder / "deploy.prototxt"), str(folder / "w.caffemodel"))
    with pytest.raises(PreprocessError, match=r"H x W x 1") as info:
        net.predict([image])
    assert isinstance(info.value, CaffeLiteError)


def test_cifar10_quick_colour_images_get_their_classes(zoo_path, capsys):
    zoo = zoo_path("cifar10_quick")
    for image, label in (("cat10", "3"), ("dog10", "5"), ("truck10", "9")):
        assert cli.main(["classify", str(zoo / f"{image}.png"), "--center-only",
                         "--model", str(zoo_path("bvlc_examples/cifar10/cifar10_quick.prototxt")),
                         "--weights", str(zoo / "cifar10_quick_iter_5000.caffemodel"),
                         "--mean-file", str(zoo_path("cifar10_quick_hdf5/mean.binaryproto"))]) == 0
        out = capsys.readouterr().out
        assert _top(out)[0] == label, out
        assert "RGB -> BGR" in out


def test_mtcnn_det2_reads_the_face_probability_not_the_boxes(zoo_path, capsys):
    zoo = zoo_path("mtcnn_kpzhang93")
    assert cli.main(["classify", str(zoo / "test1.jpg"), "--model", str(zoo / "det2.prototxt"),
                     "--weights", str(zoo / "det2.caffemodel")]) == 0
    out = capsys.readouterr().out
    assert "Scores from 'prob1' (2 values per image)" in out
