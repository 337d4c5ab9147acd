"""Softmax, the loss layers and Accuracy: naive loop references, float64
gradient checks (labels excluded), normalisation modes, ignore_label, errors."""
import numpy as np
import pytest
from layer_case import LayerCase, forward, proto, rand, setup_layer
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

LOSS_WEIGHT = [1.0]       # the top diff Caffe's Net gives a loss top: its loss weight


def layer_text(kind, params="", bottoms=("x", "label"), tops=("loss",)):
    return proto(kind, params, name="l", bottoms=bottoms, tops=tops)


def first_only(n):
    """propagate_down for a loss: the prediction, never the labels."""
    return [True] + [False] * (n - 1)


def labels_for(shape, classes, ignore=None, ignore_fraction=0.3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, shape).astype(np.float32)
    if ignore is not None:
        labels[rng.random(shape) < ignore_fraction] = ignore
    return labels


# ==== Softmax =================================================================================

@pytest.mark.parametrize("shape, axis", [((2, 5, 3, 2), 1), ((2, 3, 4), 2), ((4, 6), -1),
                                         ((3, 4), 0)])
def test_softmax_against_reference(shape, axis):
    LayerCase(layer_text("Softmax", f"softmax_param {{ axis: {axis} }}", ("x",), ("y",)),
              [rand(*shape) * 30], forward_atol=1e-7,       # large: max subtraction
              reference=lambda x: ref_softmax(x, axis)).check_forward()


def test_softmax_gradient_and_in_place():
    LayerCase(layer_text("Softmax", "softmax_param { axis: 2 }", ("x",), ("y",)),
              [(2, 3, 4)]).check_gradient()
    layer, bottom, _ = setup_layer(layer_text("Softmax", "", ("x",), ("x",)), [rand(2, 3)])
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
    labels = labels_for(label_shape, shape[axis], ignore)
    case = LayerCase(layer_text("SoftmaxWithLoss", params), [shape, labels], check_bottoms=[0],
                     forward_atol=0,
                     reference=lambda x, t: ref_softmax_loss(x, t, axis, ignore, mode)[0])
    case.check_forward()
    x = case.bottoms[0].astype(np.float32)
    _, (dx, dlabel), _ = case.run(LOSS_WEIGHT, propagate_down=first_only(2))
    np.testing.assert_allclose(dx, ref_softmax_loss(x, labels, axis, ignore, mode)[1],
                               rtol=1e-5, atol=1e-7)
    assert not dlabel.any()
    case.check_gradient()


def test_softmax_loss_all_ignored_and_prob_top():
    x = rand(2, 3).astype(np.float32)
    (loss,), (dx, _), _ = LayerCase(
        layer_text("SoftmaxWithLoss", "loss_param { ignore_label: 0 }"),
        [x, np.zeros(2)]).run(LOSS_WEIGHT, propagate_down=first_only(2))
    assert loss == 0 and not dx.any()
    case = LayerCase(layer_text("SoftmaxWithLoss", "", tops=("loss", "prob")), [x, np.ones(2)])
    (_, prob), _, _ = case.run(LOSS_WEIGHT + [np.zeros((2, 3))], propagate_down=first_only(2))
    np.testing.assert_allclose(prob, ref_softmax(x), rtol=1e-6)
    assert case.layer.loss_weights == [1.0, 0.0]


def test_label_errors_name_the_label_blob():
    with pytest.raises(LayerError, match=r"blob 'label': label 3 is out of range \[0, 3\)"):
        forward(layer_text("SoftmaxWithLoss"), [np.zeros((2, 3)), [0, 3]])
    with pytest.raises(LayerError, match="2 labels for 4 predictions"):
        forward(layer_text("SoftmaxWithLoss"), [np.zeros((2, 3, 2)), np.zeros((2, 1))])


# ==== InfogainLoss ==============================================================================

def test_infogain_with_bottom_h():
    labels, H = labels_for((3, 2), 4, 1), rand(4, 4, seed=1, low=0, high=1)
    text = layer_text("InfogainLoss", "loss_param { ignore_label: 1 }", ("x", "label", "H"))
    case = LayerCase(text, [(3, 4, 2), labels, H], check_bottoms=[0],
                     forward_atol=0, reference=lambda x, t, H: ref_infogain_loss(x, t, H, 1, 1)[0])
    case.check_forward()
    x, H32 = case.bottoms[0].astype(np.float32), H.astype(np.float32)
    _, (dx, _, _), _ = case.run(LOSS_WEIGHT, propagate_down=first_only(3))
    np.testing.assert_allclose(dx, ref_infogain_loss(x, labels, H32, 1, 1)[1], rtol=1e-5,
                               atol=1e-7)
    assert [case.layer.allow_force_backward(i) for i in range(3)] == [True, False, False]
    case.check_gradient()


def test_infogain_reads_h_relative_to_the_net_file(tmp_path):
    H = rand(3, 3, seed=2, low=0, high=1).astype(np.float32)
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
    x = rand(2, 3, seed=3).astype(np.float32)
    out = net.forward(x=x, t=np.array([2, 0], np.float32))
    np.testing.assert_allclose(out["loss"], ref_infogain_loss(x, [2, 0], H)[0], rtol=1e-5)
    np.testing.assert_allclose(out["prob"], ref_softmax(x), rtol=1e-6)
    with pytest.raises(LayerError, match="not found"):
        forward(layer_text("InfogainLoss", 'infogain_loss_param { source: "nope.bp" }'),
                [x, [0, 0]])


# ==== MultinomialLogistic / SigmoidCrossEntropy / Euclidean / Hinge / Contrastive ===============

def test_multinomial_logistic_against_reference():
    p = rand(4, 3, seed=4, low=0.05, high=1).astype(np.float32)
    labels = np.array([0, 2, 1, 2], np.float32)
    p[1, 2] = 1e-30                                   # clamped to 1e-20
    (loss,), (dx, _), _ = LayerCase(layer_text("MultinomialLogisticLoss"), [p, labels]).run(
        LOSS_WEIGHT, propagate_down=first_only(2))
    ref_loss, grad = ref_multinomial_logistic_loss(p, labels)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    np.testing.assert_allclose(dx, grad, rtol=1e-6)
    LayerCase(layer_text("MultinomialLogisticLoss"), [(4, 3), labels], fill=(0.1, 1),
              check_bottoms=[0]).check_gradient()


@pytest.mark.parametrize("params, ignore, mode", [
    ("", None, "BATCH_SIZE"), ("loss_param { normalization: FULL }", None, "FULL"),
    ("loss_param { ignore_label: -1 normalization: VALID }", -1, "VALID"),
    ("loss_param { normalize: true }", None, "VALID")])
def test_sigmoid_cross_entropy_against_reference(params, ignore, mode):
    x = (rand(3, 4, seed=5) * 10).astype(np.float32)
    t = rand(3, 4, seed=6, low=0, high=1).astype(np.float32)
    if ignore is not None:
        t = np.round(t)
        t[0, :2] = ignore
    text = layer_text("SigmoidCrossEntropyLoss", params)
    case = LayerCase(text, [x, t], forward_rtol=1e-5, forward_atol=0,
                     reference=lambda x, t: ref_sigmoid_cross_entropy(x, t, ignore, mode)[0])
    case.check_forward()
    _, (dx, _), _ = case.run(LOSS_WEIGHT, propagate_down=first_only(2))
    np.testing.assert_allclose(dx, ref_sigmoid_cross_entropy(x, t, ignore, mode)[1],
                               rtol=1e-5, atol=1e-7)
    LayerCase(text, [(3, 4), t], seed=7, check_bottoms=[0]).check_gradient()


def test_euclidean_against_reference():
    case = LayerCase(layer_text("EuclideanLoss", "", ("a", "b")), [(3, 2, 2), (3, 4)],
                     seed=8, forward_rtol=1e-6, forward_atol=0, reference=ref_euclidean_loss)
    case.check_forward()
    assert case.layer.allow_force_backward(1)
    LayerCase(layer_text("EuclideanLoss", "", ("a", "b")), [(3, 2), (3, 2)],
              seed=9).check_gradient()


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge_against_reference(norm):
    labels = np.array([0, 2, 1, 1, 0], np.float32)
    text = layer_text("HingeLoss", f"hinge_loss_param {{ norm: {norm} }}")
    case = LayerCase(text, [(5, 3), labels], seed=10, check_bottoms=[0], forward_rtol=1e-6,
                     forward_atol=0, reference=lambda x, t: ref_hinge_loss(x, t, norm)[0])
    case.check_forward()
    x = case.bottoms[0].astype(np.float32)
    _, (dx, _), _ = case.run(LOSS_WEIGHT, propagate_down=first_only(2))
    np.testing.assert_allclose(dx, ref_hinge_loss(x, labels, norm)[1], rtol=1e-6)
    case.check_gradient()


@pytest.mark.parametrize("legacy, margin", [(False, 1.3), (True, 2.0)])
def test_contrastive_against_reference(legacy, margin):
    sim = np.array([1, 0, 0, 1, 0, 0], np.float32).reshape(6, 1, 1, 1)
    text = layer_text("ContrastiveLoss", f"contrastive_loss_param {{ margin: {margin} "
                      f"legacy_version: {str(legacy).lower()} }}", ("a", "b", "sim"))
    # Caffe's gradient divides by d + 1e-4, hence the looser tolerance without legacy
    case = LayerCase(text, [(6, 3, 1, 1), (6, 3, 1, 1), sim], seed=11, check_bottoms=[0, 1],
                     rtol=1e-5 if legacy else 1e-3, forward_atol=0,
                     reference=lambda a, b, s: ref_contrastive_loss(a, b, s, margin, legacy)[0])
    case.check_forward()
    a, b = (x.astype(np.float32) for x in case.bottoms[:2])
    _, (da, db, _), _ = case.run(LOSS_WEIGHT, propagate_down=[True, True, False])
    grad = ref_contrastive_loss(a, b, sim, margin, legacy)[1]
    np.testing.assert_allclose(da, grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(db, -grad, rtol=1e-5, atol=1e-7)
    assert [case.layer.allow_force_backward(i) for i in range(3)] == [True, True, False]
    case.check_gradient()


# ==== Accuracy ==============================================================================

@pytest.mark.parametrize("params, shape, label_shape, top_k, axis, ignore", [
    ("", (6, 4), (6,), 1, 1, None),
    ("accuracy_param { top_k: 3 }", (6, 5), (6,), 3, 1, None),
    ("accuracy_param { axis: 2 top_k: 2 }", (2, 3, 4), (2, 3), 2, 2, None),
    ("accuracy_param { ignore_label: 255 }", (2, 3, 2, 2), (2, 1, 2, 2), 1, 1, 255)])
@pytest.mark.parametrize("integers", [False, True])
def test_accuracy_against_reference(params, shape, label_shape, top_k, axis, ignore,
                                    integers):
    rng = np.random.default_rng(12)
    x = (rng.integers(0, 3, shape) if integers else rng.standard_normal(shape)
         ).astype(np.float32)
    labels = labels_for(label_shape, shape[axis], ignore, seed=13)
    LayerCase(layer_text("Accuracy", params, tops=("acc", "per_class")), [x, labels],
              forward_rtol=1e-6, forward_atol=0,
              reference=lambda x, t: ref_accuracy(x, t, top_k, axis, ignore)).check_forward()


def test_accuracy_is_a_metric_without_backward():
    layer, _, _ = setup_layer(layer_text("Accuracy", tops=("acc",)), [np.zeros((2, 3)),
                                                                      np.zeros(2)])
    assert not layer.has_backward and layer.loss_weights == [0.0]
    with pytest.raises(LayerError, match="top_k 4 is more than the number of classes"):
        forward(layer_text("Accuracy", "accuracy_param { top_k: 4 }"),
                [np.zeros((2, 3)), np.zeros(2)])
