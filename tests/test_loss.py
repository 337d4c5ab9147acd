"""Softmax, the loss layers and Accuracy: naive loop references, float64
gradient checks (labels excluded), normalisation modes, ignore_label, errors."""
import numpy as np
import pytest
from gradcheck import check_gradient, forward, setup_layer
from ref_loss import (
    ref_accuracy,
    ref_contrastive_loss,
    ref_euclidean_loss,
    ref_hinge_loss,
    ref_infogain_loss,
    ref_multinomial_logistic_loss,
    ref_sigmoid_cross_entropy,
    ref_softmax,
    ref_softmax_loss,
)

import caffe_lite as caffe
from caffe_lite.errors import LayerError
from caffe_lite.proto import caffe_pb2

rng = np.random.default_rng(5)


def layer_text(kind, params="", bottoms=("x", "label"), tops=("loss",)):
    b = " ".join(f'bottom: "{n}"' for n in bottoms)
    t = " ".join(f'top: "{n}"' for n in tops)
    return f'name: "l" type: "{kind}" {b} {t} {params}'


def run(text, arrays, num_top=None):
    """Forward + backward (top diff = the loss weight) in float32."""
    layer, bottom, top = setup_layer(text, arrays, num_top=num_top, dtype=np.float32)
    layer.run_forward(bottom, top)
    layer.backward(top, [True] + [False] * (len(bottom) - 1), bottom)
    return layer, bottom, top


def labels_for(shape, classes, ignore=None, ignore_fraction=0.3):
    labels = rng.integers(0, classes, shape).astype(np.float32)
    if ignore is not None:
        labels[rng.random(shape) < ignore_fraction] = ignore
    return labels


# ==== Softmax =================================================================================

@pytest.mark.parametrize("shape, axis", [((2, 5, 3, 2), 1), ((2, 3, 4), 2), ((4, 6), -1),
                                         ((3, 4), 0)])
def test_softmax_against_reference(shape, axis):
    x = (rng.standard_normal(shape) * 30).astype(np.float32)   # large: max subtraction
    y, = forward(layer_text("Softmax", f"softmax_param {{ axis: {axis} }}", ("x",), ("y",)),
                 [x])
    np.testing.assert_allclose(y, ref_softmax(x, axis), rtol=1e-5, atol=1e-7)


def test_softmax_gradient_and_in_place():
    check_gradient(layer_text("Softmax", "softmax_param { axis: 2 }", ("x",), ("y",)),
                   [rng.standard_normal((2, 3, 4))])
    layer, bottom, _ = setup_layer(layer_text("Softmax", "", ("x",), ("x",)),
                                   [rng.standard_normal((2, 3))])
    x = bottom[0].data.copy()
    layer.run_forward(bottom, bottom)
    np.testing.assert_allclose(bottom[0].data, ref_softmax(x), rtol=1e-12)


# ==== SoftmaxWithLoss ============================================================================

SOFTMAX_LOSS = [  # params, scores shape, labels shape, axis, ignore, mode
    ("", (4, 5), (4,), 1, None, "VALID"),
    ("loss_param { ignore_label: 2 normalization: FULL }", (2, 3, 4, 2), (2, 1, 4, 2), 1, 2,
     "FULL"),
    ("loss_param { ignore_label: 255 }", (2, 3, 4, 2), (2, 4, 2), 1, 255, "VALID"),
    ("loss_param { normalization: BATCH_SIZE }", (2, 4, 3), (2, 3), 1, None, "BATCH_SIZE"),
    ("loss_param { normalization: NONE }", (3, 4), (3,), 1, None, "NONE"),
    ("loss_param { normalize: false ignore_label: 1 }", (3, 4), (3,), 1, 1, "BATCH_SIZE"),
    ("loss_param { normalize: true }", (3, 4), (3,), 1, None, "VALID"),
    ("softmax_param { axis: 2 }", (2, 3, 5), (2, 3), 2, None, "VALID")]


@pytest.mark.parametrize("params, shape, label_shape, axis, ignore, mode", SOFTMAX_LOSS)
def test_softmax_loss_against_reference(params, shape, label_shape, axis, ignore, mode):
    x = rng.standard_normal(shape).astype(np.float32)
    labels = labels_for(label_shape, shape[axis], ignore)
    _, bottom, top = run(layer_text("SoftmaxWithLoss", params), [x, labels])
    loss, grad = ref_softmax_loss(x, labels, axis, ignore, mode)
    np.testing.assert_allclose(top[0].data, loss, rtol=1e-5)
    np.testing.assert_allclose(bottom[0].diff, grad, rtol=1e-5, atol=1e-7)
    assert not bottom[1].diff.any()
    check_gradient(layer_text("SoftmaxWithLoss", params),
                   [rng.standard_normal(shape), labels], check_bottoms=[0])


def test_softmax_loss_all_ignored_and_prob_top():
    x = rng.standard_normal((2, 3)).astype(np.float32)
    _, bottom, top = run(layer_text("SoftmaxWithLoss", "loss_param { ignore_label: 0 }"),
                         [x, np.zeros(2, np.float32)])
    assert top[0].data == 0 and not bottom[0].diff.any()
    layer, _, top = run(layer_text("SoftmaxWithLoss", "", tops=("loss", "prob")),
                        [x, np.ones(2, np.float32)])
    np.testing.assert_allclose(top[1].data, ref_softmax(x), rtol=1e-6)
    assert layer.loss_weights == [1.0, 0.0]


def test_label_errors_name_the_label_blob():
    with pytest.raises(LayerError, match=r"blob 'label': label 3 is out of range \[0, 3\)"):
        forward(layer_text("SoftmaxWithLoss"), [np.zeros((2, 3)), [0, 3]])
    with pytest.raises(LayerError, match="2 labels for 4 predictions"):
        forward(layer_text("SoftmaxWithLoss"), [np.zeros((2, 3, 2)), np.zeros((2, 1))])


# ==== InfogainLoss ==============================================================================

def test_infogain_with_bottom_h():
    x, labels = rng.standard_normal((3, 4, 2)).astype(np.float32), labels_for((3, 2), 4, 1)
    H = rng.uniform(0, 1, (4, 4)).astype(np.float32)
    text = layer_text("InfogainLoss", "loss_param { ignore_label: 1 }", ("x", "label", "H"))
    layer, bottom, top = run(text, [x, labels, H])
    loss, grad = ref_infogain_loss(x, labels, H, 1, 1)
    np.testing.assert_allclose(top[0].data, loss, rtol=1e-5)
    np.testing.assert_allclose(bottom[0].diff, grad, rtol=1e-5, atol=1e-7)
    assert [layer.allow_force_backward(i) for i in range(3)] == [True, False, False]
    check_gradient(text, [rng.standard_normal((3, 4, 2)), labels, H], check_bottoms=[0])


def test_infogain_reads_h_relative_to_the_net_file(tmp_path):
    H = rng.uniform(0, 1, (3, 3)).astype(np.float32)
    proto = caffe_pb2.BlobProto(num=1, channels=1, height=3, width=3)
    proto.data.extend(H.ravel())
    (tmp_path / "H.binaryproto").write_bytes(proto.SerializeToString())
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
        'layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 } } }\n'
        'layer { name: "loss" type: "InfogainLoss" bottom: "x" bottom: "t" top: "loss" '
        'top: "prob" loss_weight: 1 loss_weight: 0 '
        'infogain_loss_param { source: "H.binaryproto" } }\n')
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    out = net.forward(x=x, t=np.array([2, 0], np.float32))
    np.testing.assert_allclose(out["loss"], ref_infogain_loss(x, [2, 0], H)[0], rtol=1e-5)
    np.testing.assert_allclose(out["prob"], ref_softmax(x), rtol=1e-6)
    with pytest.raises(LayerError, match="not found"):
        forward(layer_text("InfogainLoss", 'infogain_loss_param { source: "nope.bp" }'),
                [x, [0, 0]])


# ==== MultinomialLogistic / SigmoidCrossEntropy / Euclidean / Hinge / Contrastive ===============

def test_multinomial_logistic_against_reference():
    p = rng.uniform(0.05, 1, (4, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 2], np.float32)
    p[1, 2] = 1e-30                                   # clamped to 1e-20
    _, bottom, top = run(layer_text("MultinomialLogisticLoss"), [p, labels])
    loss, grad = ref_multinomial_logistic_loss(p, labels)
    np.testing.assert_allclose(top[0].data, loss, rtol=1e-6)
    np.testing.assert_allclose(bottom[0].diff, grad, rtol=1e-6)
    check_gradient(layer_text("MultinomialLogisticLoss"),
                   [rng.uniform(0.1, 1, (4, 3)), labels], check_bottoms=[0])


@pytest.mark.parametrize("params, ignore, mode", [
    ("", None, "BATCH_SIZE"), ("loss_param { normalization: FULL }", None, "FULL"),
    ("loss_param { ignore_label: -1 normalization: VALID }", -1, "VALID"),
    ("loss_param { normalize: true }", None, "VALID")])
def test_sigmoid_cross_entropy_against_reference(params, ignore, mode):
    x = (rng.standard_normal((3, 4)) * 10).astype(np.float32)
    t = rng.uniform(0, 1, (3, 4)).astype(np.float32)
    if ignore is not None:
        t = np.round(t)
        t[0, :2] = ignore
    _, bottom, top = run(layer_text("SigmoidCrossEntropyLoss", params), [x, t])
    loss, grad = ref_sigmoid_cross_entropy(x, t, ignore, mode)
    np.testing.assert_allclose(top[0].data, loss, rtol=1e-5)
    np.testing.assert_allclose(bottom[0].diff, grad, rtol=1e-5, atol=1e-7)
    check_gradient(layer_text("SigmoidCrossEntropyLoss", params),
                   [rng.standard_normal((3, 4)), t], check_bottoms=[0])


def test_euclidean_against_reference():
    a, b = rng.standard_normal((3, 2, 2)).astype(np.float32), rng.standard_normal((3, 4))
    loss, = forward(layer_text("EuclideanLoss", "", ("a", "b")), [a, b])
    np.testing.assert_allclose(loss, ref_euclidean_loss(a, b.astype(np.float32)), rtol=1e-6)
    layer, _, _ = setup_layer(layer_text("EuclideanLoss", "", ("a", "b")), [a, b])
    assert layer.allow_force_backward(1)
    check_gradient(layer_text("EuclideanLoss", "", ("a", "b")),
                   [rng.standard_normal((3, 2)), rng.standard_normal((3, 2))])


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge_against_reference(norm):
    x = rng.standard_normal((5, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 1, 0], np.float32)
    text = layer_text("HingeLoss", f"hinge_loss_param {{ norm: {norm} }}")
    _, bottom, top = run(text, [x, labels])
    loss, grad = ref_hinge_loss(x, labels, norm)
    np.testing.assert_allclose(top[0].data, loss, rtol=1e-6)
    np.testing.assert_allclose(bottom[0].diff, grad, rtol=1e-6)
    check_gradient(text, [rng.standard_normal((5, 3)), labels], check_bottoms=[0])


@pytest.mark.parametrize("legacy, margin", [(False, 1.3), (True, 2.0)])
def test_contrastive_against_reference(legacy, margin):
    a, b = rng.standard_normal((6, 3, 1, 1)), rng.standard_normal((6, 3, 1, 1))
    sim = np.array([1, 0, 0, 1, 0, 0], np.float32).reshape(6, 1, 1, 1)
    text = layer_text("ContrastiveLoss", f"contrastive_loss_param {{ margin: {margin} "
                      f"legacy_version: {str(legacy).lower()} }}", ("a", "b", "sim"))
    layer, bottom, top = setup_layer(text, [a, b, sim], dtype=np.float32)
    layer.run_forward(bottom, top)
    layer.backward(top, [True, True, False], bottom)
    loss, grad = ref_contrastive_loss(a.astype(np.float32), b.astype(np.float32), sim,
                                      margin, legacy)
    np.testing.assert_allclose(top[0].data, loss, rtol=1e-5)
    np.testing.assert_allclose(bottom[0].diff, grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bottom[1].diff, -grad, rtol=1e-5, atol=1e-7)
    assert [layer.allow_force_backward(i) for i in range(3)] == [True, True, False]
    # Caffe's gradient divides by d + 1e-4, hence the looser tolerance without legacy
    check_gradient(text, [a, b, sim], check_bottoms=[0, 1], rtol=1e-5 if legacy else 1e-3)


# ==== Accuracy ==============================================================================

@pytest.mark.parametrize("params, shape, label_shape, top_k, axis, ignore", [
    ("", (6, 4), (6,), 1, 1, None),
    ("accuracy_param { top_k: 3 }", (6, 5), (6,), 3, 1, None),
    ("accuracy_param { axis: 2 top_k: 2 }", (2, 3, 4), (2, 3), 2, 2, None),
    ("accuracy_param { ignore_label: 255 }", (2, 3, 2, 2), (2, 1, 2, 2), 1, 1, 255)])
@pytest.mark.parametrize("integers", [False, True])
def test_accuracy_against_reference(params, shape, label_shape, top_k, axis, ignore,
                                    integers):
    x = (rng.integers(0, 3, shape) if integers else rng.standard_normal(shape)
         ).astype(np.float32)
    labels = labels_for(label_shape, shape[axis], ignore)
    acc, per_class = forward(layer_text("Accuracy", params, tops=("acc", "per_class")),
                             [x, labels])
    expect, expect_per_class = ref_accuracy(x, labels, top_k, axis, ignore)
    np.testing.assert_allclose(acc, expect, rtol=1e-6)
    np.testing.assert_allclose(per_class, expect_per_class, rtol=1e-6)


def test_accuracy_is_a_metric_without_backward():
    layer, _, _ = setup_layer(layer_text("Accuracy", tops=("acc",)), [np.zeros((2, 3)),
                                                                      np.zeros(2)])
    assert not layer.has_backward and layer.loss_weights == [0.0]
    with pytest.raises(LayerError, match="top_k 4 is more than the number of classes"):
        forward(layer_text("Accuracy", "accuracy_param { top_k: 4 }"),
                [np.zeros((2, 3)), np.zeros(2)])
