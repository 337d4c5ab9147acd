"""DetectionEvaluate and the mAP of ops/detection_eval.py against the naive loops of
ref_detection_eval.py, and cases worked out by hand from the SSD fork's rules."""
import numpy as np
import pytest
from layer_case import forward, proto, setup_layer
from ref_detection_eval import ref_ap, ref_mark

from caffe_lite.errors import LayerError
from caffe_lite.ops.detection_eval import average_precision, mean_average_precision


def evaluate_text(params="num_classes: 3"):
    return proto("DetectionEvaluate", f"detection_evaluate_param {{ {params} }}",
                 bottoms=("det", "gt"))


def blob(rows, width):
    return np.array(rows, np.float32).reshape(1, 1, -1, width)


# image 0: class 1 has A and a difficult B, class 2 has C; image 1 has no ground truth
GT = [[0, 1, 0, 0.0, 0.0, 0.5, 0.5, 0],
      [0, 1, 1, 0.5, 0.5, 1.0, 1.0, 1],
      [0, 2, 0, 0.1, 0.1, 0.3, 0.3, 0]]
DET = [[0, 1, 0.8, 0.0, 0.0, 0.5, 0.5],      # A again: a duplicate
       [0, 1, 0.9, 0.01, 0.0, 0.5, 0.5],     # A: true positive
       [0, 1, 0.7, 0.5, 0.5, 1.0, 1.0],      # B (difficult)
       [0, 1, 0.6, 0.0, 0.6, 0.2, 0.9],      # nothing there
       [1, 2, 0.5, 0.1, 0.1, 0.3, 0.3],      # an image without ground truth
       [2, -1, -1, -1, -1, -1, -1]]          # "nothing found" in image 2


@pytest.mark.parametrize("difficult, npos, b_marks", [(True, 2, (1, 0)), (False, 1, (0, 0))])
def test_hand_case(difficult, npos, b_marks):
    text = evaluate_text(f"num_classes: 3 evaluate_difficult_gt: {str(difficult).lower()}")
    (out,) = forward(text, [blob(DET, 7), blob(GT, 8)])
    expected = [(-1, 1, npos, -1, -1), (-1, 2, 1, -1, -1),
                (0, 1, 0.9, 1, 0), (0, 1, 0.8, 0, 1), (0, 1, 0.7) + b_marks,
                (0, 1, 0.6, 0, 1), (1, 2, 0.5, 0, 1)]
    np.testing.assert_allclose(out[0, 0], np.array(expected, np.float32))


def random_case(seed, images=4, classes=4):
    r = np.random.default_rng(seed)
    gts, dets = [], []
    for image in range(images):
        for _ in range(r.integers(0, 5)):
            x, y = r.uniform(0, 0.7, 2)
            w, h = r.uniform(0.1, 0.3, 2)
            gts.append([image, r.integers(1, classes), 0, x, y, x + w, y + h, r.random() < 0.2])
            for _ in range(r.integers(0, 3)):            # detections near it
                jx, jy = r.normal(0, 0.05, 2)
                dets.append([image, gts[-1][1], 0, x + jx, y + jy, x + w + jx, y + h + jy])
        for _ in range(r.integers(0, 3)):                # and anywhere
            x, y = r.uniform(0, 0.8, 2)
            dets.append([image, r.integers(1, classes), 0, x, y, x + 0.2, y + 0.2])
    scores = r.permutation(len(dets)) / len(dets) + 0.01  # distinct
    for d, s in zip(dets, scores):
        d[2] = s
    return np.array(dets, np.float32).reshape(-1, 7), np.array(gts, np.float32).reshape(-1, 8)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("difficult", [True, False])
def test_random_against_reference(seed, difficult):
    dets, gts = random_case(seed)
    text = evaluate_text(f"num_classes: 4 overlap_threshold: 0.4 "
                         f"evaluate_difficult_gt: {str(difficult).lower()}")
    (out,) = forward(text, [blob(dets, 7), blob(gts, 8)])
    expected = ref_mark(dets.astype(np.float64), gts.astype(np.float64), 4, 0, 0.4,
                        difficult)
    np.testing.assert_allclose(out[0, 0], np.array(expected, np.float32).reshape(-1, 5),
                               rtol=1e-6)


def test_name_size_file_scores_in_pixels(tmp_path):
    """gt (0, 0, .1, .1) and a detection half its height: IoU .5 normalized, but in a
    10 x 10 image the boxes span pixels 0..1 and 0..0.5, (2 x 1.5) / (2 x 2) = .75."""
    gt = blob([[0, 1, 0, 0, 0, 0.1, 0.1, 0]], 8)
    det = blob([[0, 1, 0.9, 0, 0, 0.1, 0.05]], 7)
    (normalized,) = forward(evaluate_text("num_classes: 2 overlap_threshold: 0.6"),
                            [det, gt])
    assert tuple(normalized[0, 0, 1, 3:]) == (0, 1)
    sizes = tmp_path / "sizes.txt"
    sizes.write_text("a 10 10\nb 1000 1000\n")
    text = evaluate_text(f'num_classes: 2 overlap_threshold: 0.6 name_size_file: "{sizes}"')
    layer, bottom, top = setup_layer(text, [det, gt], dtype=np.float32)
    marks = []
    for _ in range(3):                                  # a, b, then a again
        layer.forward(bottom, top)
        marks.append(tuple(top[0].data[0, 0, 1, 3:]))
    assert marks == [(1, 0), (0, 1), (1, 0)]
    expected = ref_mark(det[0, 0].astype(np.float64), gt[0, 0].astype(np.float64), 2, 0,
                        0.6, True, sizes={0: (10, 10)})
    assert tuple(expected[1][3:]) == (1, 0)


@pytest.mark.parametrize("params, bottoms, message", [
    ("", [blob(DET, 7), blob(GT, 8)], "num_classes"),
    ("num_classes: 3 overlap_threshold: 0", [blob(DET, 7), blob(GT, 8)], "positive"),
    ("num_classes: 3", [blob(DET, 7), blob([r[:7] for r in GT], 7)], r"\(1, 1, rows, 8\)"),
    ("num_classes: 3", [blob([[0, 0, 0.5, 0, 0, 1, 1]], 7), blob(GT, 8)], "background"),
    ('num_classes: 3 name_size_file: "/nonexistent/sizes.txt"', [blob(DET, 7), blob(GT, 8)],
     "name_size_file"),
])
def test_errors(params, bottoms, message):
    text = proto("DetectionEvaluate", f"detection_evaluate_param {{ {params} }}",
                 bottoms=("det", "gt"))
    with pytest.raises(LayerError, match=message):
        forward(text, bottoms)


# ==== average precision ======================================================

@pytest.mark.parametrize("marks, npos, expected", [
    # tp, fp, tp of 2: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    ((1, 0, 1), 2, {"Integral": (1 + 2 / 3) / 2, "MaxIntegral": (1 + 2 / 3) / 2,
                    "11point": (6 * 1 + 5 * 2 / 3) / 11}),
    # fp, tp, tp of 2: precision 0, 1/2, 2/3; the envelope lifts the first step to 2/3
    ((0, 1, 1), 2, {"Integral": (1 / 2 + 2 / 3) / 2, "MaxIntegral": 2 / 3,
                    "11point": 2 / 3}),
    # 7 of 10 found, none wrong: float32(0.7) < 0.7, so recall 0.7 is not reached
    # in the fork's 11 points (VOC's float64 code would give 8 / 11)
    ((1,) * 7, 10, {"Integral": 0.7, "MaxIntegral": 0.7, "11point": 7 / 11}),
    ((), 3, {"Integral": 0, "MaxIntegral": 0, "11point": 0}),
    ((0, 0), 3, {"Integral": 0, "MaxIntegral": 0, "11point": 0}),
])
def test_ap_by_hand(marks, npos, expected):
    scores = np.linspace(0.9, 0.1, len(marks))
    for version, value in expected.items():
        assert average_precision(scores, marks, npos, version) == pytest.approx(value, abs=1e-6)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("version", ["11point", "MaxIntegral", "Integral"])
def test_ap_against_reference(seed, version):
    r = np.random.default_rng(seed)
    n = int(r.integers(1, 40))
    scores = r.integers(0, 10, n) / 10        # ties: the stable ranking decides
    tps = (r.random(n) < 0.5).astype(int)
    npos = int(tps.sum() + r.integers(0, 4))
    got = average_precision(scores.astype(np.float32), tps, npos, version)
    assert got == pytest.approx(ref_ap(list(scores), list(tps), npos, version), abs=2e-6)


def test_mean_average_precision_over_batches():
    batch1 = [(-1, 1, 2, -1, -1), (-1, 2, 1, -1, -1), (-1, 3, 0, -1, -1),
              (0, 1, 0.9, 1, 0), (0, 1, 0.5, 0, 0), (0, 3, 0.4, 0, 1)]
    batch2 = [(-1, 1, 1, -1, -1), (-1, 2, 0, -1, -1), (-1, 3, 0, -1, -1),
              (0, 1, 0.7, 0, 1), (0, 1, 0.6, 1, 0)]
    mean, aps = mean_average_precision([np.array(batch1), np.array(batch2)], "Integral")
    # class 1: tp .9, fp .7, tp .6 of 3 -> (1 + 2/3) / 3; class 2 found nothing (0,
    # still counted); class 3 has no positives -> 0
    assert aps[1] == pytest.approx((1 + 2 / 3) / 3)
    assert set(aps) == {1, 3} and aps[3] == 0
    assert mean == pytest.approx((1 + 2 / 3) / 3 / 3)


def test_unknown_ap_version():
    with pytest.raises(ValueError, match="11point"):
        average_precision([0.5], [1], 1, "VOC")
