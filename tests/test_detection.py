"""SSD's layers against the naive loops of ref_detection.py: PriorBox, Permute,
Normalize (forward, the fork's backward, gradient checks) and DetectionOutput, plus the
box kernels of ops/boxes.py."""
import numpy as np
import pytest
from layer_case import LayerCase, proto, rand, setup_layer
from ref_detection import (
    ref_detection_output,
    ref_normalize,
    ref_normalize_backward_fork,
    ref_permute,
    ref_prior_box,
)

from caffe_lite.errors import LayerError
from caffe_lite.ops.boxes import nms_fast

# ==== Permute ================================================================


@pytest.mark.parametrize("order, shape", [((0, 2, 3, 1), (2, 3, 4, 5)), ((0, 3), (2, 3, 4, 2)),
                                          ((3, 2, 1, 0), (2, 1, 3, 2)), ((), (2, 3)),
                                          ((1, 0, 2), (3, 2, 4))])
def test_permute(order, shape):
    params = "permute_param { " + " ".join(f"order: {a}" for a in order) + " }"
    case = LayerCase(proto("Permute", params), [shape], forward_rtol=0, forward_atol=0,
                     reference=lambda x: ref_permute(x, order))
    case.check_forward()
    case.check_gradient()


@pytest.mark.parametrize("order, message", [((0, 4), "beyond"), ((1, 1), "repeats")])
def test_permute_errors(order, message):
    params = "permute_param { " + " ".join(f"order: {a}" for a in order) + " }"
    with pytest.raises(LayerError, match=message):
        setup_layer(proto("Permute", params), [np.zeros((1, 2, 3, 4))])


# ==== Normalize ==============================================================

def norm_text(across, shared, extra=""):
    return proto("Normalize", f"norm_param {{ across_spatial: {str(across).lower()} "
                              f"channel_shared: {str(shared).lower()} {extra} }}")


@pytest.mark.parametrize("across", [True, False])
@pytest.mark.parametrize("shared", [True, False])
def test_normalize_forward_and_fork_backward(across, shared):
    C = 4
    scale = np.float32(3.5) if shared else np.linspace(2, 12, C).astype(np.float32)
    case = LayerCase(norm_text(across, shared), [(2, C, 3, 2)], params=[scale],
                     reference=lambda x, s: ref_normalize(x, s, across))
    case.check_forward()
    dy = rand(2, C, 3, 2, seed=5)
    _, (dx,), _ = case.run([dy])
    expected = ref_normalize_backward_fork(case.bottoms[0], scale, dy, across)
    np.testing.assert_allclose(dx, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("across", [True, False])
@pytest.mark.parametrize("shared", [True, False])
def test_normalize_gradient(across, shared):
    """Bottom and scale; with equal per-channel scales the fork's dx is exact."""
    C = 3
    scale = np.float64(2.5) if shared else np.full(C, 2.5)
    LayerCase(norm_text(across, shared), [(2, C, 2, 3)], params=[scale]).check_gradient()


def test_normalize_scale_gradient_with_unequal_scales():
    """d scale is exact whatever the scales (only dx leaves the scale out of <x, dy>)."""
    LayerCase(norm_text(False, False, 'scale_filler { type: "gaussian" mean: 5 std: 2 }'),
              [(2, 3, 2, 2)], check_bottoms=[]).check_gradient()


def test_normalize_default_scale_and_shapes():
    layer, _, _ = setup_layer(norm_text(True, True), [np.ones((2, 3, 2, 2))])
    assert layer.blobs[0].shape == () and layer.blobs[0].data == 1
    layer, _, _ = setup_layer(norm_text(True, False, 'scale_filler { type: "constant" '
                                                     'value: 20 }'), [np.ones((2, 3, 2, 2))])
    np.testing.assert_array_equal(layer.blobs[0].data, [20, 20, 20])


# ==== PriorBox ===============================================================

PRIORS = [  # params, feature (H, W), image (H, W), reference keywords
    ("min_size: 30", (3, 4), (60, 80), dict(min_sizes=[30])),
    ("min_size: 20 max_size: 45 aspect_ratio: 2 aspect_ratio: 3 aspect_ratio: 0.5 "
     "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2", (4, 4), (64, 64),
     dict(min_sizes=[20], max_sizes=[45], ratios=[2, 3, 0.5],
          variance=[0.1, 0.1, 0.2, 0.2])),
    ("min_size: 30.6 aspect_ratio: 2 flip: false clip: true", (3, 5), (50, 70),
     dict(min_sizes=[30.6], ratios=[2], flip=False, clip=True)),
    ("min_size: 10 min_size: 25 max_size: 20 max_size: 40 step: 12 offset: 0",
     (3, 3), (40, 40), dict(min_sizes=[10, 25], max_sizes=[20, 40], step_h=12, step_w=12,
                            offset=0)),
    ("min_size: 16 img_h: 90 img_w: 100 step_h: 30 step_w: 20", (3, 5), (40, 40),
     dict(min_sizes=[16], step_h=30, step_w=20, img=(90, 100))),
    ("min_size: 16 img_size: 96 aspect_ratio: 2", (2, 2), (40, 40),
     dict(min_sizes=[16], ratios=[2], img=(96, 96))),
]


@pytest.mark.parametrize("params, feature, image, kw", PRIORS)
def test_prior_box(params, feature, image, kw):
    kw = dict(kw)
    img_h, img_w = kw.pop("img", image)
    case = LayerCase(proto("PriorBox", f"prior_box_param {{ {params} }}",
                           bottoms=("feat", "data")),
                     [(1, 2) + feature, (1, 3) + image],
                     reference=lambda f, d: ref_prior_box(*feature, img_h, img_w, **kw))
    (top,) = case.check_forward()
    assert top.shape[1] == 2


@pytest.mark.parametrize("params, message", [
    ("", "needs min_size"), ("min_size: 30 max_size: 20", "greater"),
    ("min_size: 30 variance: 0.1 variance: 0.2", "1 or 4"),
    ("min_size: 30 step: 8 step_h: 8", "not both"), ("min_size: 30 img_h: 9", "both")])
def test_prior_box_errors(params, message):
    with pytest.raises(LayerError, match=message):
        setup_layer(proto("PriorBox", f"prior_box_param {{ {params} }}",
                          bottoms=("feat", "data")),
                    [np.zeros((1, 1, 2, 2)), np.zeros((1, 3, 8, 8))])


# ==== DetectionOutput ========================================================

def detection_inputs(N, P, C, L, seed):
    """Priors on a jittered grid, small loc offsets, distinct softmax scores."""
    r = np.random.default_rng(seed)
    centres = r.uniform(0.2, 0.8, (P, 2))
    sizes = r.uniform(0.1, 0.4, (P, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    prior = np.stack([boxes.ravel(), np.tile([0.1, 0.1, 0.2, 0.2], P)])[None]
    loc = r.normal(0, 1, (N, P * L * 4))
    logits = r.normal(0, 2, (N, P, C))
    conf = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    return [a.astype(np.float32) for a in (loc, conf.reshape(N, -1), prior)]


DETECTIONS = [  # detection_output_param text, reference keywords, N, P, C, shared
    ("code_type: CENTER_SIZE confidence_threshold: 0.1 nms_param { nms_threshold: 0.45 "
     "top_k: 12 } keep_top_k: 10", dict(code="CENTER_SIZE", threshold=0.1,
                                         nms_threshold=0.45, top_k=12, keep_top_k=10),
     2, 30, 4, True),
    ("code_type: CORNER share_location: false confidence_threshold: 0.05 "
     "nms_param { nms_threshold: 0.3 }", dict(code="CORNER", share_location=False,
                                              threshold=0.05), 1, 25, 3, False),
    ("code_type: CORNER_SIZE background_label_id: -1 share_location: false "
     "confidence_threshold: 0.2 nms_param { nms_threshold: 0.6 eta: 0.8 }",
     dict(code="CORNER_SIZE", background=-1, share_location=False, threshold=0.2,
          nms_threshold=0.6, eta=0.8), 2, 20, 3, False),
    ("code_type: CENTER_SIZE variance_encoded_in_target: true background_label_id: 2 "
     "confidence_threshold: 0.15", dict(code="CENTER_SIZE", variance_in_target=True,
                                        background=2, threshold=0.15), 1, 20, 3, True),
    ("confidence_threshold: 1", dict(threshold=1.0), 3, 10, 2, True),
]


@pytest.mark.parametrize("params, kw, N, P, C, shared", DETECTIONS)
def test_detection_output(params, kw, N, P, C, shared):
    loc, conf, prior = detection_inputs(N, P, C, 1 if shared else C, seed=P + C)
    if kw.get("variance_in_target"):
        loc *= 0.2
    case = LayerCase(proto("DetectionOutput", f"detection_output_param {{ num_classes: {C} "
                                              f"{params} }}", bottoms=("loc", "conf", "prior")),
                     [loc, conf, prior], forward_atol=1e-6,
                     reference=lambda lc, cf, pr: ref_detection_output(lc, cf, pr, C, **kw))
    (top,) = case.check_forward()
    if kw.get("threshold") == 1.0:
        np.testing.assert_array_equal(top[0, 0, :, 0], np.arange(N))
        assert (top[0, 0, :, 1:] == -1).all()
    else:
        assert len(top[0, 0]) > 1


def test_detection_output_ignores_save_output_param():
    loc, conf, prior = detection_inputs(1, 8, 2, 1, seed=3)
    text = proto("DetectionOutput", 'detection_output_param { num_classes: 2 '
                 'save_output_param { output_directory: "/nonexistent/dir" '
                 'output_format: "VOC" } visualize: true }', bottoms=("loc", "conf", "prior"))
    assert LayerCase(text, [loc, conf, prior]).forward()[0].shape[3] == 7


@pytest.mark.parametrize("params, shapes, message", [
    ("share_location: true background_label_id: -1", None, "share_location"),
    ("nms_param { eta: 1.5 }", None, "eta"),
    ("", [(1, 12), (1, 6), (1, 2, 16)], "loc"),
    ("", [(1, 16), (1, 7), (1, 2, 16)], "conf"),
])
def test_detection_output_errors(params, shapes, message):
    shapes = shapes or [(1, 16), (1, 8), (1, 2, 16)]
    with pytest.raises(LayerError, match=message):
        setup_layer(proto("DetectionOutput", f"detection_output_param {{ num_classes: 2 "
                                             f"{params} }}", bottoms=("loc", "conf", "prior")),
                    [np.zeros(s) for s in shapes])


def test_nms_adaptive_threshold_and_top_k():
    """Three boxes in a row overlapping their neighbour by IoU 1/3: with threshold 0.6
    all stay; eta 0.5 drops the threshold to 0.3 after the first, so the second goes."""
    boxes = np.array([[0, 0, 2, 1], [1, 0, 3, 1], [2, 0, 4, 1], [9, 9, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.1], np.float32)
    assert nms_fast(boxes, scores, 0.0, 0.6) == [0, 1, 2, 3]
    assert nms_fast(boxes, scores, 0.0, 0.6, eta=0.5) == [0, 2, 3]
    assert nms_fast(boxes, scores, 0.0, 0.6, top_k=2) == [0, 1]
    assert nms_fast(boxes, scores, 0.75, 0.6) == [0, 1]
