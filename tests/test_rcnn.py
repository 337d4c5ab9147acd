"""The Faster R-CNN fork's layers (ROIPooling, SmoothL1Loss, Proposal) against the
naive loops of ref_rcnn.py, float64 gradient checks, the swap of py-faster-rcnn's
Python proposal layer for the built-in, and the zoo's ZF test net end to end."""
import warnings

import numpy as np
import pytest
import ref_rcnn as ref
from layer_case import LayerCase, assert_registered, proto

import caffe_lite as caffe
from caffe_lite.net.passes import builtin_for_python_layers
from caffe_lite.proto import caffe_pb2

assert_registered(["ROIPooling", "SmoothL1Loss", "Proposal"])

ROIS = np.array([[0, 1, 1, 7, 5], [1, 0, 2, 9, 7], [0, 3.2, 0.4, 4.6, 6.9],
                 [1, -3, -2, 20, 11], [0, 5, 5, 5, 5]])


def spaced(shape, seed):
    """Distinct values 0.01 apart, shuffled: no argmax tie within a gradient step."""
    r = np.random.default_rng(seed)
    return r.permutation(np.arange(np.prod(shape)) * 0.01 - 1).reshape(shape)


@pytest.mark.parametrize("scale,pooled", [(1.0, (2, 3)), (0.5, (3, 3))])
def test_roi_pooling_forward_and_gradient(scale, pooled):
    text = proto("ROIPooling", f"roi_pooling_param {{ pooled_h: {pooled[0]} "
                 f"pooled_w: {pooled[1]} spatial_scale: {scale} }}",
                 bottoms=("data", "rois"))
    case = LayerCase(text, [spaced((2, 3, 8, 10), 1), ROIS], check_bottoms=[0],
                     reference=lambda d, r: ref.roi_pool(d, r, scale, *pooled)[0])
    case.check_forward()
    case.check_gradient()


def test_roi_pooling_rois_get_no_gradient_and_bad_batch_index_fails():
    text = proto("ROIPooling", "roi_pooling_param { pooled_h: 2 pooled_w: 2 }",
                 bottoms=("data", "rois"))
    _, diffs, _ = LayerCase(text, [spaced((2, 3, 8, 10), 2), ROIS]).run()
    assert not diffs[1].any()
    with pytest.raises(caffe.LayerError if hasattr(caffe, "LayerError") else Exception,
                       match="batch index"):
        LayerCase(text, [spaced((2, 3, 8, 10), 2), np.array([[2, 0, 0, 3, 3.]])]).forward()


@pytest.mark.parametrize("sigma,weights", [(1.0, False), (3.0, True), (0.5, True)])
def test_smooth_l1_loss(sigma, weights):
    r = np.random.default_rng(3)
    shape = (3, 4, 2, 2)
    pred = r.uniform(-2, 2, shape)
    target = r.uniform(-2, 2, shape)
    bottoms = [pred, target]
    if weights:
        bottoms += [r.choice([0.0, 0.5, 1.0, 2.0], shape), r.uniform(0.1, 2, shape)]
    names = ("pred", "target", "in", "out")[:len(bottoms)]
    text = proto("SmoothL1Loss", f"smooth_l1_loss_param {{ sigma: {sigma} }}",
                 bottoms=names)

    def reference(*b):
        return np.array(ref.smooth_l1_loss(*b, sigma=sigma))

    d = (pred - target) * (bottoms[2] if weights else 1)
    assert np.all(np.abs(np.abs(d) - 1 / sigma ** 2) > 1e-3)   # no point on the kink
    case = LayerCase(text, bottoms, reference=reference, check_bottoms=[0, 1],
                     forward_rtol=1e-5)
    case.check_forward()
    case.check_gradient()


def proposal_inputs(height=6, width=8, seed=4, im_info=(90, 120, 1.0)):
    r = np.random.default_rng(seed)
    scores = r.uniform(0, 1, (1, 18, height, width)).astype(np.float32)
    deltas = (0.3 * r.standard_normal((1, 36, height, width))).astype(np.float32)
    return scores, deltas, np.array([im_info], np.float32)


def assert_proposals_match(rois, scores, expected):
    assert rois.shape == (len(expected), 5), (rois.shape, len(expected))
    assert not rois[:, 0].any()
    np.testing.assert_allclose(rois[:, 1:], [row[1:] for row in expected], rtol=1e-5,
                               atol=1e-3)
    if scores is not None:
        np.testing.assert_allclose(scores.reshape(-1), [row[0] for row in expected])


@pytest.mark.parametrize("params,kw", [
    ("", {}),
    ("min_size: 8 pre_nms_topn: 100 post_nms_topn: 20 nms_thresh: 0.5",
     dict(min_size=8, pre_nms=100, post_nms=20, nms_thresh=0.5))])
def test_proposal_matches_naive_steps(params, kw):
    bottoms = proposal_inputs()
    text = proto("Proposal", f"proposal_param {{ feat_stride: 16 {params} }}",
                 bottoms=("scores", "deltas", "im_info"), tops=("rois", "roi_scores"))
    rois, scores = LayerCase(text, list(bottoms)).forward()
    assert_proposals_match(rois, scores, ref.proposals(*bottoms[:2], bottoms[2][0], **kw))


def test_python_proposal_layer_runs_as_the_builtin():
    net = caffe_pb2.NetParameter()
    layer = net.layer.add(name="proposal", type="Python", bottom=["s", "d", "im_info"],
                          top=["rois"])
    layer.python_param.module = "rpn.proposal_layer"
    layer.python_param.layer = "ProposalLayer"
    layer.python_param.param_str = "'feat_stride': 8, 'scales': (4, 8)"
    with pytest.warns(UserWarning, match="built-in Proposal"):
        out = builtin_for_python_layers(net, caffe_pb2.TEST)
    assert net.layer[0].type == "Python"                    # the argument is untouched
    p = out.layer[0].proposal_param
    assert out.layer[0].type == "Proposal" and not out.layer[0].HasField("python_param")
    assert (p.feat_stride, list(p.scale), p.pre_nms_topn, p.post_nms_topn) == \
        (8, [4.0, 8.0], 6000, 300)
    layer.python_param.param_str = "feat_stride = 8"
    with pytest.raises(caffe.CaffeLiteError if hasattr(caffe, "CaffeLiteError")
                       else Exception, match="dict literal"):
        builtin_for_python_layers(net, caffe_pb2.TEST)


def test_zf_faster_rcnn_end_to_end(zoo_path):
    """The zoo's ZF test net, seeded random weights, a photo: the proposals equal the
    naive proposal steps applied to the net's own RPN outputs."""
    from PIL import Image
    model = zoo_path("faster_rcnn/pascal_voc_ZF_faster_rcnn_end2end_test.prototxt")
    photo = zoo_path("mobilenet_ssd/000001.jpg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = caffe.Net(str(model), caffe.TEST)
    assert any("built-in Proposal" in str(w.message) for w in caught)
    r = np.random.default_rng(0)
    for blobs in net.params.values():
        fan_in = np.prod(blobs[0].shape[1:])
        weights = r.standard_normal(blobs[0].shape, dtype=np.float32)
        weights *= np.float32(np.sqrt(2 / fan_in))
        blobs[0].data[...] = weights
        if len(blobs) > 1:
            blobs[1].data[...] = 0
    image = Image.open(photo).convert("RGB").resize((256, 192))
    scale = 192 / 375
    data = np.asarray(image, np.float32)[:, :, ::-1].transpose(2, 0, 1) - \
        np.array([102.9801, 115.9465, 122.7717], np.float32)[:, None, None]
    net.blobs["data"].reshape((1,) + data.shape)
    net.blobs["data"].data[...] = data
    net.blobs["im_info"].data[...] = [[192, 256, scale]]
    # Calibrate the RPN heads so scores spread over (0, 1) and deltas stay small,
    # as a trained RPN's do (saturated scores would tie, and ties sort arbitrarily).
    net.forward(end="rpn_relu/3x3")
    spread = float(np.sqrt(np.mean(net.blobs["rpn/output"].data ** 2)))
    for name, gain in (("rpn_cls_score", 1.0), ("rpn_bbox_pred", 0.2)):
        weights = net.params[name][0]
        weights.data[...] *= gain / (spread * np.sqrt(2))
    out = net.forward()
    rois = net.blobs["rois"].data
    expected = ref.proposals(net.blobs["rpn_cls_prob_reshape"].data,
                             net.blobs["rpn_bbox_pred"].data, (192, 256, scale))
    assert 10 < len(expected) <= 300
    assert_proposals_match(rois, None, expected)
    assert out["cls_prob"].shape == (len(rois), 21)
    assert out["bbox_pred"].shape == (len(rois), 84)
    np.testing.assert_allclose(out["cls_prob"].sum(axis=1), 1, rtol=1e-5)
