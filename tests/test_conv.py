"""Convolution, Deconvolution and Im2col layers: against the loop references in
ref_conv.py, float64 numerical gradients, adjointness, the bilinear fast path, errors."""
import numpy as np
import pytest
from google.protobuf import text_format
from layer_case import LayerCase, proto, rand, setup_layer
from ref_conv import ref_conv, ref_deconv, ref_im2col

from caffe_lite import CaffeLiteError
from caffe_lite.formats import upgrade_net
from caffe_lite.ops import deconv_fast
from caffe_lite.proto import caffe_pb2

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "uniform" min: -1 max: 1 }'


def conv(kind, params, n_bottoms=1):
    """Layer 'L' of ``kind`` over bottoms x0, x1, ..."""
    return proto(kind, f"convolution_param {{ {params} }}",
                 bottoms=[f"x{i}" for i in range(n_bottoms)],
                 tops=[f"y{i}" for i in range(n_bottoms)])


# (params, input shape, reference keyword arguments)
CONV_CASES = [
    ("num_output: 3 kernel_size: 3", (2, 2, 4, 5), {}),
    ("num_output: 4 kernel_size: 3 pad: 1 stride: 2", (2, 3, 5, 6), dict(stride=2, pad=1)),
    ("num_output: 4 kernel_size: 3 group: 2 pad: 1", (1, 4, 5, 5), dict(group=2, pad=1)),
    ("num_output: 4 kernel_size: 3 group: 4", (2, 4, 5, 4), dict(group=4)),
    ("num_output: 2 kernel_size: 3 dilation: 2 pad: 2", (1, 2, 7, 8), dict(dilation=2, pad=2)),
    ("num_output: 3 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0",
     (2, 2, 7, 5), dict(stride=(2, 1), pad=(1, 0))),
    ("num_output: 2 kernel_size: 2 kernel_size: 3 dilation: 1 dilation: 2 pad: 0 pad: 2",
     (1, 3, 5, 6), dict(dilation=(1, 2), pad=(0, 2))),
    ("num_output: 3 kernel_size: 1", (2, 4, 3, 5), {}),
    ("num_output: 2 kernel_size: 2 stride: 3 pad: 3", (1, 2, 5, 4), dict(stride=3, pad=3)),
    ("num_output: 2 kernel_size: 2 stride: 1 stride: 2 stride: 1 pad: 1", (1, 2, 3, 4, 3),
     dict(stride=(1, 2, 1), pad=1)),
    # depthwise (group == channels == num_output): ops/depthwise.py's multiply-adds
    ("num_output: 3 kernel_size: 3 group: 3 stride: 2 pad: 1", (2, 3, 6, 5),
     dict(group=3, stride=2, pad=1)),
    ("num_output: 2 kernel_size: 3 group: 2 dilation: 2 pad: 3", (1, 2, 5, 6),
     dict(group=2, dilation=2, pad=3)),
    ("num_output: 2 kernel_size: 2 group: 2 stride: 2 pad: 1", (1, 2, 3, 4, 3),
     dict(group=2, stride=2, pad=1)),
]


@pytest.mark.parametrize("params,shape,kw", CONV_CASES)
def test_convolution(params, shape, kw):
    case = LayerCase(conv("Convolution", f"{params} {FILL}"), [shape], forward_atol=1e-5,
                     reference=lambda x, w, b: ref_conv(x, w, b, **kw))
    case.check_forward()
    case.check_gradient()


@pytest.mark.parametrize("geometry,kw,shape", [
    ("kernel_size: 3 pad: 1", dict(pad=1), (3, 5, 4, 4)),   # output = input: runs of x
    ("kernel_size: 3 pad: 1", dict(pad=1), (2, 5, 1, 2)),   # runs start past a plane
    ("kernel_size: 3 pad: 2 dilation: 2", dict(pad=2, dilation=2), (2, 5, 5, 4)),
    ("kernel_size: 3 pad: 1 stride: 2", dict(pad=1, stride=2), (3, 5, 5, 6)),  # phases
    ("kernel_h: 3 kernel_w: 2 pad: 2 dilation: 2", dict(pad=2, dilation=2), (2, 5, 5, 4)),
])
@pytest.mark.parametrize("block_bytes", [8, 400, 1 << 20])
def test_depthwise_blocks(monkeypatch, block_bytes, geometry, kw, shape):
    """The depthwise kernel walks planes in blocks (one plane, a few, or all; the first
    and last blocks' shifted reads overhang x's ends); every blocking gives the
    reference's values and gradients."""
    from caffe_lite.ops import depthwise, jit
    monkeypatch.setattr(jit, "enabled", False)          # the numpy kernels' blocks
    monkeypatch.setattr(depthwise, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(depthwise, "COLUMN_BLOCK_BYTES", block_bytes)
    case = LayerCase(conv("Convolution", f"num_output: 5 {geometry} group: 5 {FILL}"),
                     [shape], forward_atol=1e-5,
                     reference=lambda x, w, b: ref_conv(x, w, b, group=5, **kw))
    case.check_forward()
    case.check_gradient()


FOLDABLE = [CONV_CASES[i] for i in (0, 1, 2, 4, 5, 6, 8, 9)]


@pytest.mark.parametrize("layout", [None, "channel", "batch_last"])
@pytest.mark.parametrize("params,shape,kw", FOLDABLE)
def test_batch_folding_every_layout(monkeypatch, layout, params, shape, kw):
    """Per-image GEMMs and one GEMM over the batch, in either folded column layout,
    agree with the reference, values and gradients (strides, pads, dilations, groups,
    1-D..3-D included, whichever layout the cost rule would pick)."""
    from caffe_lite.ops import conv_gemm
    monkeypatch.setattr(conv_gemm, "_fold_layout", lambda *args: layout)
    shape = (3,) + shape[1:]
    case = LayerCase(conv("Convolution", f"{params} {FILL}"), [shape], forward_atol=1e-5,
                     reference=lambda x, w, b: ref_conv(x, w, b, **kw))
    case.check_forward()
    case.check_gradient()


def test_fold_layout_follows_the_cost_rule():
    """LeNet's conv2 (8 wide, 20 channels) folds batch-last, its conv1 (one channel)
    and strided layers channel-major; large maps, pointwise layers and one image
    do not fold."""
    from caffe_lite.ops.conv_gemm import _fold_layout
    x = np.zeros((64, 20, 12, 12), np.float32)
    assert _fold_layout(x, np.zeros((50, 20, 5, 5)), 1, 0, (8, 8)) == "batch_last"
    assert _fold_layout(np.zeros((64, 1, 28, 28)), np.zeros((20, 1, 5, 5)), 1, 0,
                        (24, 24)) == "channel"
    assert _fold_layout(x, np.zeros((50, 20, 3, 3)), 2, 0, (5, 5)) == "channel"
    assert _fold_layout(x[:1], np.zeros((50, 20, 5, 5)), 1, 0, (8, 8)) is None
    assert _fold_layout(x, np.zeros((50, 20, 1, 1)), 1, 0, (12, 12)) is None
    big = np.zeros((2, 20, 40, 40), np.float32)
    assert _fold_layout(big, np.zeros((50, 20, 3, 3)), 1, 1, (40, 40)) is None


def test_convolution_axis_multiple_bottoms_and_no_bias():
    """axis 2: leading axes fold into the batch; every bottom uses the same weights."""
    def reference(x0, x1, w):
        return [ref_conv(x.reshape(4, 2, 4, 3), w).reshape(2, 2, 3, 3, 2) for x in (x0, x1)]

    case = LayerCase(conv("Convolution", f"num_output: 3 kernel_size: 2 axis: 2 "
                                         f"bias_term: false {FILL}", 2),
                     [(2, 2, 2, 4, 3)] * 2, reference=reference, forward_atol=1e-5)
    case.check_forward()
    case.check_gradient()


DECONV_CASES = [
    ("num_output: 3 kernel_size: 4 stride: 2 pad: 1", (2, 2, 3, 4), dict(stride=2, pad=1)),
    ("num_output: 4 kernel_size: 3 stride: 2 group: 2", (1, 4, 3, 3), dict(stride=2, group=2)),
    ("num_output: 2 kernel_size: 3 dilation: 2 pad: 1", (1, 3, 4, 3), dict(dilation=2, pad=1)),
    ("num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 3 pad_w: 1", (2, 2, 3, 3),
     dict(stride=(1, 3), pad=(0, 1))),
    ("num_output: 2 kernel_size: 2 stride: 2", (1, 2, 2, 3, 2), dict(stride=2)),
    ("num_output: 3 kernel_size: 1", (2, 2, 3, 3), {}),
]


@pytest.mark.parametrize("params,shape,kw", DECONV_CASES)
def test_deconvolution(params, shape, kw):
    case = LayerCase(conv("Deconvolution", f"{params} {FILL}"), [shape], forward_atol=1e-5,
                     reference=lambda x, w, b: ref_deconv(x, w, b, **kw))
    case.check_forward()
    case.check_gradient()


@pytest.mark.parametrize("cout,params,shape", [
    (3, "kernel_size: 3 stride: 2 pad: 1", (2, 2, 5, 7)),
    (4, "kernel_size: 2 kernel_size: 3 stride: 2 dilation: 2 group: 2", (1, 4, 7, 9)),
    (2, "kernel_size: 2 stride: 2 pad: 1", (1, 2, 4, 6, 6)),
])
def test_adjointness(cout, params, shape):
    """<conv(x), y> == <x, deconv(y)> when both read the same weights without bias."""
    x = rand(*shape, seed=3)
    layer, bottom, top = setup_layer(
        conv("Convolution", f"num_output: {cout} {params} bias_term: false {FILL}"), [x])
    layer.run_forward(bottom, top)
    cy, w = top[0].data.copy(), layer.blobs[0].data.copy()
    y = rand(*cy.shape, seed=4)
    (dy,) = LayerCase(conv("Deconvolution", f"num_output: {shape[1]} {params} bias_term: false"),
                      [y], params=[w]).forward(np.float64)
    assert dy.shape == x.shape
    np.testing.assert_allclose(np.vdot(cy, y), np.vdot(x, dy), rtol=1e-12)


@pytest.mark.parametrize("params,shape,kw", [
    ("kernel_size: 3", (2, 2, 4, 5), dict(kernel=3)),
    ("kernel_size: 3 dilation: 2 pad: 1 stride: 2", (1, 2, 8, 9),
     dict(kernel=3, dilation=2, pad=1, stride=2)),
    ("kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1 pad_w: 1", (1, 3, 5, 4),
     dict(kernel=(2, 3), stride=(2, 1), pad=(0, 1))),
    ("kernel_size: 2 stride: 2 pad: 1", (1, 2, 3, 4, 3), dict(kernel=2, stride=2, pad=1)),
])
def test_im2col(params, shape, kw):
    case = LayerCase(conv("Im2col", params), [shape], forward_rtol=0, forward_atol=0,
                     reference=lambda x: ref_im2col(x, **kw))
    case.check_forward()
    case.check_gradient()


def test_param_diffs_accumulate_and_propagate_down():
    x = rand(1, 2, 4, 4)
    layer, bottom, top = setup_layer(conv("Convolution", f"num_output: 2 kernel_size: 3 {FILL}"),
                                     [x])
    layer.run_forward(bottom, top)
    top[0].diff[...] = rand(*top[0].shape, seed=5)
    bottom[0].diff[...] = 7.0
    layer.backward(top, [False], bottom)
    once = [b.diff.copy() for b in layer.blobs]
    assert (bottom[0].diff == 7.0).all()                 # propagate_down false: untouched
    layer.param_propagate_down = [True, False]
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once[0])
    np.testing.assert_allclose(layer.blobs[1].diff, once[1])   # bias frozen
    assert not (bottom[0].diff == 7.0).any()


def test_fork_hole_is_dilation():
    """Loading upgrades the fork's hole to dilation (every Net runs upgrade_net); the layer
    itself refuses a param that skipped the upgrade."""
    text = conv("Convolution", f"num_output: 1 kernel_size: 3 hole: 2 {FILL}")
    net = text_format.Parse(f"layer {{ {text} }}", caffe_pb2.NetParameter())
    upgrade_net(net)
    LayerCase(text_format.MessageToString(net.layer[0]), [(1, 1, 9, 9)],
              reference=lambda x, w, b: ref_conv(x, w, b, dilation=2),
              forward_atol=1e-5).check_forward()
    with pytest.raises(CaffeLiteError, match="hole"):
        setup_layer(text, [rand(1, 1, 9, 9)])


def test_reshape_to_new_spatial_size():
    layer, bottom, top = setup_layer(conv("Convolution", f"num_output: 2 kernel_size: 3 {FILL}"),
                                     [rand(1, 2, 5, 5)])
    bottom[0].reshape(3, 2, 8, 6)
    bottom[0].data[...] = x = rand(3, 2, 8, 6)
    layer.run_forward(bottom, top)
    w, b = (blob.data for blob in layer.blobs)
    np.testing.assert_allclose(top[0].data, ref_conv(x, w, b), rtol=1e-10)


@pytest.mark.parametrize("kind,params,shape,message", [
    ("Convolution", "num_output: 4 kernel_size: 3 group: 2", (1, 3, 5, 5), "group 2 must divide"),
    ("Convolution", "num_output: 3 kernel_size: 3 group: 2", (1, 4, 5, 5), "group 2 must divide"),
    ("Convolution", "num_output: 3", (1, 4, 5, 5), "kernel size is required"),
    ("Convolution", "num_output: 0 kernel_size: 1", (1, 4, 5, 5), "num_output"),
    ("Convolution", "num_output: 2 kernel_h: 3 kernel_w: 3", (1, 2, 5, 5, 5), "2-D"),
    ("Convolution", "num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 2, 5, 5),
     "not both"),
    ("Convolution", "num_output: 2 kernel_size: 3 kernel_size: 3", (1, 2, 5, 5, 5),
     "once per spatial axis"),
    ("Convolution", "num_output: 2 kernel_size: 3 stride: 0", (1, 2, 5, 5), "stride must be > 0"),
    ("Convolution", "num_output: 2 kernel_size: 3 stride_h: 2", (1, 2, 5, 5), "stride must be > 0"),
    ("Convolution", "num_output: 2 kernel_size: 7", (1, 2, 5, 5), "empty output"),
    ("Deconvolution", "num_output: 2 kernel_size: 2 pad: 3", (1, 2, 2, 2), "empty output"),
    ("Im2col", "kernel_size: 3", (4, 5), "spatial axis"),
])
def test_errors_name_the_layer(kind, params, shape, message):
    with pytest.raises(CaffeLiteError, match=message) as info:
        setup_layer(conv(kind, params), [np.zeros(shape)], dtype=np.float32)
    assert "layer 'L'" in str(info.value)


def test_input_changes_are_rejected():
    layer, bottom, top = setup_layer(
        conv("Convolution", "num_output: 2 kernel_size: 1", 2),
        [np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 4, 4))])
    bottom[1].reshape(1, 3, 4, 5)
    with pytest.raises(CaffeLiteError, match="shape of bottom 0"):
        layer.reshape(bottom, top)
    bottom[1].reshape(1, 3, 4, 4)
    bottom[0].reshape(1, 2, 4, 4)
    bottom[1].reshape(1, 2, 4, 4)
    with pytest.raises(CaffeLiteError, match="channels"):
        layer.reshape(bottom, top)
    bottom[0].reshape(1, 3, 4)
    with pytest.raises(CaffeLiteError, match="number of axes"):
        layer.reshape(bottom, top)


# ==== the bilinear fast path ===================================================

def upscore(x, k, s, channels, group, dtype=np.float32, bias=False):
    """A Deconvolution with bilinear weights; returns (layer, bottom, top)."""
    params = (f"num_output: {channels} kernel_size: {k} stride: {s} group: {group} "
              f"bias_term: {str(bias).lower()} weight_filler {{ type: \"bilinear\" }} "
              f"bias_filler {{ type: \"uniform\" min: -1 max: 1 }}")
    return setup_layer(conv("Deconvolution", params), [x], dtype=dtype)


def generic_forward(layer, bottom, top):
    """The same layer forced onto the generic path."""
    saved = deconv_fast.BilinearDetector.plan
    deconv_fast.BilinearDetector.plan = lambda self, *a: None
    try:
        layer.run_forward(bottom, top)
        return top[0].data.copy()
    finally:
        deconv_fast.BilinearDetector.plan = saved


@pytest.mark.parametrize("k,s,group,bias,shape", [
    (4, 2, 3, False, (2, 3, 5, 4)),      # FCN 2x, grouped
    (64, 32, 1, False, (1, 2, 3, 3)),    # FCN-32s, full weight, diagonal by filler below
    (16, 8, 2, True, (1, 2, 4, 3)),      # 8x with bias
    (3, 2, 2, False, (1, 2, 4, 4)),      # odd kernel
])
def test_bilinear_fast_path_matches_generic(k, s, group, bias, shape):
    x = rand(*shape, seed=7).astype(np.float32)
    layer, bottom, top = upscore(x, k, s, shape[1], group, bias=bias)
    if group == 1:                           # FCN's surgery: zero off-diagonal pairs
        w = layer.blobs[0].data
        w[...] = w * np.eye(shape[1], dtype=w.dtype)[:, :, None, None]
    assert layer.separable_plan() is not None
    layer.run_forward(bottom, top)
    fast = top[0].data.copy()
    np.testing.assert_allclose(fast, generic_forward(layer, bottom, top), rtol=1e-5, atol=1e-5)
    # backward-data takes the fast path too, and agrees with the loops
    dy = rand(*top[0].shape, seed=8).astype(np.float32)
    top[0].diff[...] = dy
    layer.param_propagate_down = [False] * len(layer.blobs)
    layer.backward(top, [True], bottom)
    w = layer.blobs[0].data.astype(np.float64)
    if shape[1] * k * k < 5000:                  # the loops are slow for k64
        ref_dx = ref_conv(dy.astype(np.float64), w, stride=s, group=group)
        np.testing.assert_allclose(bottom[0].diff, ref_dx, rtol=1e-4, atol=1e-4)


def test_bilinear_detection_is_exact():
    x = rand(1, 3, 4, 4, seed=9).astype(np.float32)
    layer, bottom, top = upscore(x, 4, 2, 3, 3)
    assert layer.separable_plan() is not None
    layer.blobs[0].data[1, 0, 2, 1] += np.float32(1e-7)        # one weight perturbed
    assert layer.separable_plan() is None
    layer.run_forward(bottom, top)
    w = layer.blobs[0].data.astype(np.float64)
    np.testing.assert_allclose(top[0].data, ref_deconv(x, w, stride=2, group=3), rtol=1e-5,
                               atol=1e-6)
    layer.blobs[0].data[1, 0, 2, 1] -= np.float32(1e-7)        # restored: fast again
    assert layer.separable_plan() is not None


@pytest.mark.parametrize("mutate", ["off_diagonal", "one_channel", "not_separable"])
def test_bilinear_detection_rejects(mutate):
    x = rand(1, 2, 4, 4).astype(np.float32)
    layer, bottom, top = upscore(x, 4, 2, 2, 1)
    w = layer.blobs[0].data
    w[...] = w * np.eye(2, dtype=w.dtype)[:, :, None, None]
    assert layer.separable_plan() is not None
    if mutate == "off_diagonal":
        w[0, 1, 0, 0] = 1e-30
    elif mutate == "one_channel":
        w[1, 1] *= 2
    else:
        w[:, :, 0, 0] += w[:, :, 0, 1]                         # still symmetric, not rank 1
    assert layer.separable_plan() is None
    layer.run_forward(bottom, top)
    ref = ref_deconv(x, w.astype(np.float64), stride=2)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-6)


def test_bilinear_taps_from_surgery_and_filler():
    k = 6                                   # taps are not dyadic: 1/6, 1/2, 5/6, ...
    f = (k + 1) // 2
    center = f - 0.5
    og = np.ogrid[:k, :k]
    surgery = ((1 - abs(og[0] - center) / f) * (1 - abs(og[1] - center) / f)).astype(np.float32)
    w = np.broadcast_to(surgery, (4, 1, k, k)).copy()
    assert deconv_fast.bilinear_taps(w, 4) is not None
    assert deconv_fast.bilinear_taps(w, 2) is None
    w[2, 0, 3, 3] = np.nextafter(w[2, 0, 3, 3], np.float32(1))
    assert deconv_fast.bilinear_taps(w, 4) is None

