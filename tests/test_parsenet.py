"""ParseNet's ParseOutput and ParseEvaluate against plain loops, and the fork's
solver scores (eval_type "segmentation") worked out by hand."""
import numpy as np
import pytest
from layer_case import forward, proto

import caffe_lite as caffe
from caffe_lite.errors import LayerError
from caffe_lite.formats import parse_net_param
from caffe_lite.solver.testing import segmentation_scores


def ref_parse_output(x):
    N, C, H, W = x.shape
    label, best = np.zeros((N, 1, H, W)), np.zeros((N, 1, H, W))
    for n in range(N):
        for h in range(H):
            for w in range(W):
                k = 0
                for c in range(1, C):
                    if x[n, c, h, w] > x[n, k, h, w]:       # the first maximum stays
                        k = c
                label[n, 0, h, w], best[n, 0, h, w] = k, x[n, k, h, w]
    return label, best


def ref_parse_evaluate(pred, gt, num_labels, ignore):
    out = np.zeros((num_labels, 3))
    for p, g in zip(pred.ravel().astype(int), gt.ravel().astype(int)):
        if g in ignore:
            continue
        out[g, 0] += p == g
        out[g, 1] += 1
        out[p, 2] += 1
    return out.reshape(1, num_labels, 1, 3)


def test_parse_output_with_ties():
    x = np.random.default_rng(0).integers(0, 3, (2, 4, 3, 5)).astype(np.float32)
    label, best = forward(proto("ParseOutput", tops=("label", "max")), [x], num_top=2)
    ref_label, ref_best = ref_parse_output(x)
    np.testing.assert_array_equal(label, ref_label)
    np.testing.assert_array_equal(best, ref_best)
    (only,) = forward(proto("ParseOutput"), [x])
    np.testing.assert_array_equal(only, ref_label)


def test_parse_evaluate_counts():
    r = np.random.default_rng(1)
    pred = r.integers(0, 4, (2, 1, 3, 4)).astype(np.float32)
    gt = r.integers(0, 4, (2, 1, 3, 4)).astype(np.float32)
    gt[0, 0, 0] = 255
    text = proto("ParseEvaluate", "parse_evaluate_param { num_labels: 4 ignore_label: 255 }",
                 bottoms=("pred", "gt"))
    (out,) = forward(text, [pred, gt])
    np.testing.assert_array_equal(out, ref_parse_evaluate(pred, gt, 4, {255}))


@pytest.mark.parametrize("pred_value, gt_value, message", [(4, 0, "predicted"),
                                                           (0, 7, "ground-truth")])
def test_parse_evaluate_rejects_labels_out_of_range(pred_value, gt_value, message):
    text = proto("ParseEvaluate", "parse_evaluate_param { num_labels: 4 }",
                 bottoms=("pred", "gt"))
    with pytest.raises(LayerError, match=message):
        forward(text, [np.full((1, 1, 2, 2), pred_value, np.float32),
                       np.full((1, 1, 2, 2), gt_value, np.float32)])


def test_segmentation_scores_by_hand():
    """Label 2 is only predicted: its IoU (0) is summed, but the mean divides by
    the 2 labels that occur in the ground truth, as the fork does."""
    stats = [[3, 4, 5], [1, 2, 1], [0, 0, 2]]
    pixel, label, iou, weighted = segmentation_scores(stats)
    assert pixel == pytest.approx(4 / 6)
    assert label == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert iou == pytest.approx((3 / 6 + 1 / 2 + 0) / 2)
    assert weighted == pytest.approx(0.5 * 4 / 6 + 0.5 * 2 / 6)
    assert segmentation_scores([[0, 0, 3]]) is None


def test_solver_eval_type_segmentation_sums_batches():
    net = """
      layer { name: "p" type: "DummyData" top: "pred" top: "gt" dummy_data_param {
        shape { dim: 1 dim: 1 dim: 2 dim: 3 } shape { dim: 1 dim: 1 dim: 2 dim: 3 }
        data_filler { type: "uniform" min: 0 max: 2.99 } } }
      layer { name: "e" type: "ParseEvaluate" bottom: "pred" bottom: "gt" top: "eval"
        parse_evaluate_param { num_labels: 3 } include { phase: TEST } }
      layer { name: "s" type: "Silence" bottom: "pred" bottom: "gt" include { phase: TRAIN } }
    """
    solver = caffe.get_solver(_solver(net))
    test_net = solver.test_nets[0]
    sums = 0
    caffe.set_random_seed(3)
    scores = solver.test(0)
    caffe.set_random_seed(3)
    for _ in range(3):
        test_net.forward()
        sums = sums + test_net.blobs["eval"].data
    expected = segmentation_scores(sums)
    assert list(scores) == [f"eval {k}" for k in ("per_pixel_acc", "per_label_acc",
                                                   "iou_acc", "weighted_iou_acc")]
    np.testing.assert_allclose([v[0] for v in scores.values()], expected)


def _solver(net_text):
    from caffe_lite.proto import caffe_pb2
    param = caffe_pb2.SolverParameter(base_lr=0, lr_policy="fixed", max_iter=0,
                                      test_iter=[3], test_interval=1, display=0,
                                      eval_type="segmentation", snapshot_after_train=False)
    param.net_param.CopyFrom(parse_net_param(net_text))
    return param


# ==== ParseNet's pooling bins ==================================================

@pytest.mark.parametrize("bins, shape, method", [((1, 1), (1, 2, 5, 7), "AVE"),
                                                 ((2, 3), (2, 2, 7, 9), "MAX"),
                                                 ((3, 2), (1, 3, 8, 6), "AVE")])
def test_pooling_bins(bins, shape, method):
    """kernel ceil(H / bins), stride the kernel (1 for the whole axis), pad
    int(((bins - 1) stride + kernel - H) / 2), by hand per axis."""
    import reference as ref
    from layer_case import LayerCase
    kernel = tuple(-(-s // b) for b, s in zip(bins, shape[2:]))
    stride = tuple(1 if k == s else k for k, s in zip(kernel, shape[2:]))
    pad = tuple(int(((b - 1) * t + k - s) / 2) for b, t, k, s in
                zip(bins, stride, kernel, shape[2:]))
    pool = ref.ref_max_pool if method == "MAX" else ref.ref_ave_pool
    params = f"pooling_param {{ pool: {method} bin_h: {bins[0]} bin_w: {bins[1]} }}"
    case = LayerCase(proto("Pooling", params), [shape],
                     reference=lambda x: pool(x, kernel, stride, pad)[0]
                     if method == "MAX" else pool(x, kernel, stride, pad))
    case.check_forward()
    if method == "AVE":
        case.check_gradient()
    out_hw = forward(proto("Pooling", params), [np.zeros(shape)])[0].shape[2:]
    assert out_hw == bins


def test_pooling_bins_errors():
    with pytest.raises(LayerError, match="half"):
        forward(proto("Pooling", "pooling_param { bin_size: 3 }"), [np.zeros((1, 1, 5, 5))])
    with pytest.raises(LayerError, match="bin_h and bin_w"):
        forward(proto("Pooling", "pooling_param { bin_h: 2 }"), [np.zeros((1, 1, 5, 5))])


# ==== the zoo's ParseNet =========================================================

def parsenet_data(tmp_path, size=48, count=2):
    pytest.importorskip("lmdb")
    from caffe_lite.data.db import RecordWriter
    from caffe_lite.io import array_to_datum
    r = np.random.default_rng(0)
    with RecordWriter(tmp_path / "img", "lmdb") as a, RecordWriter(tmp_path / "lab", "lmdb") as b:
        for i in range(count):
            image = r.integers(0, 256, (3, size, size)).astype(np.uint8)
            label = r.integers(0, 21, (1, size, size)).astype(np.uint8)
            label[0, :3] = 255
            a.put(f"{i:08d}", array_to_datum(image).SerializeToString())
            b.put(f"{i:08d}", array_to_datum(label).SerializeToString())
    return str(tmp_path / "img"), str(tmp_path / "lab")


def test_zoo_parsenet_runs(zoo_path, tmp_path):
    """ParseNet's VOC net as the zoo has it (bins pooling, Normalize, UnPooling REP
    by a second bottom, bilinear_upsampling Deconvolution, Crop, ParseOutput,
    ParseEvaluate) on 48 x 48 synthetic images: the TEST net's counts equal a count
    of its own predicted and true labels; the TRAIN net takes a solver step."""
    relative = "modelzoo_archive/parsenet/VGG_VOC2012ext.prototxt"
    param = parse_net_param(zoo_path(relative).read_text(), relative)
    images, labels = parsenet_data(tmp_path)
    for lp in param.layer:
        if lp.type == "Data":
            lp.data_param.source = images if lp.top[0] == "data" else labels
    net = caffe.Net(param, caffe.TEST)
    net.forward()
    pred, gt = net.blobs["predlabel"].data, net.blobs["label"].data
    np.testing.assert_array_equal(net.blobs["evaluation"].data,
                                  ref_parse_evaluate(pred, gt, 21, {255}))
    from caffe_lite.proto import caffe_pb2
    solver = caffe_pb2.SolverParameter(base_lr=1e-8, lr_policy="fixed", max_iter=1,
                                       display=0, snapshot_after_train=False)
    solver.net_param.CopyFrom(param)
    s = caffe.get_solver(solver)
    s.step(1)
    assert np.isfinite(float(s.net.blobs["loss"].data))
