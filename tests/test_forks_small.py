"""The small fork layers OpenCV's Caffe importer runs (ReLU6, Mish, ShuffleChannel,
Axpy, ConvolutionDepthwise, PSROIPooling, Reorg, Region): naive loop references,
float64 gradient checks, and agreement with OpenCV dnn on the same prototxt and
caffemodel (skipped when cv2 is absent)."""
import numpy as np
import pytest
import ref_forks_small as ref
from layer_case import LayerCase, proto, rand, setup_layer
from ref_conv import ref_conv

import caffe_lite
from caffe_lite.errors import LayerError
from caffe_lite.proto import caffe_pb2

TEST = caffe_pb2.TEST


# ==== OpenCV: one tiny net, run by both ======================================

def run_both(tmp_path, layer_text, inputs, weights=None):
    """Build Input layers + ``layer_text`` (its top named "out"), give the layer's
    blobs ``weights`` (else its fillers' seeded values), save the caffemodel, and
    return (caffe_lite's out, OpenCV's out)."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless) is not installed")
    text = 'name: "tiny"\n'
    for name, array in inputs.items():
        dims = " ".join(f"dim: {d}" for d in array.shape)
        text += (f'layer {{ name: "{name}" type: "Input" top: "{name}" '
                 f'input_param {{ shape {{ {dims} }} }} }}\n')
    text += layer_text + "\n"
    prototxt, model = tmp_path / "tiny.prototxt", tmp_path / "tiny.caffemodel"
    prototxt.write_text(text)
    caffe_lite.set_random_seed(3)
    net = caffe_lite.Net(str(prototxt), TEST)
    layer = net.layers[-1]
    for blob, value in zip(layer.blobs, weights or []):
        blob.data[...] = value
    net.save(str(model))
    for name, array in inputs.items():
        net.blobs[name].data[...] = array
    net.forward()
    ours = net.blobs["out"].data.copy()
    cvnet = cv2.dnn.readNetFromCaffe(str(prototxt), str(model))
    for name, array in inputs.items():
        cvnet.setInput(np.ascontiguousarray(array, np.float32), name)
    theirs = cvnet.forward("L")
    return ours, theirs.reshape(ours.shape)


def layer(type_name, params="", bottoms=("x",)):
    blobs = " ".join(f'bottom: "{b}"' for b in bottoms)
    return f'layer {{ name: "L" type: "{type_name}" {blobs} top: "out" {params} }}'


# ==== ReLU6, Mish ============================================================

def test_relu6():
    x = rand(2, 3, 4, 5, seed=1) * 5
    x.flat[:4] = [0.0, 6.0, 7.5, -1.0]
    case = LayerCase(proto("ReLU6"), [x], reference=ref.relu6, kink=[0, 6], kink_range=1e-3)
    case.check_forward()
    case.check_gradient()
    _, (dx,), _ = case.run([np.ones(x.shape)])
    assert dx.flat[:4].tolist() == [0, 0, 0, 0]          # the corners pass nothing


def test_mish():
    x = rand(2, 3, 4, 5, seed=2) * 4
    x.flat[:3] = [40.0, -40.0, 0.0]
    case = LayerCase(proto("Mish"), [x], reference=ref.mish, forward_atol=1e-6)
    case.check_forward()
    case.check_gradient()


def test_relu6_and_mish_in_place_match_separate_blobs():
    for text in (proto("ReLU6"), proto("Mish")):
        case = LayerCase(text, [(2, 3, 4)], seed=4)
        separate = case.run(in_place=False)
        in_place = case.run(in_place=True)
        np.testing.assert_array_equal(separate[0][0], in_place[0][0])
        np.testing.assert_allclose(separate[1][0], in_place[1][0], rtol=1e-6)


@pytest.mark.parametrize("type_name", ["ReLU6", "Mish"])
def test_activation_agrees_with_opencv(tmp_path, type_name):
    x = (rand(2, 3, 5, 4, seed=5) * 4).astype(np.float32)
    ours, theirs = run_both(tmp_path, layer(type_name), {"x": x})
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


# ==== ShuffleChannel =========================================================

@pytest.mark.parametrize("shape, group", [((2, 6, 3, 2), 2), ((2, 6, 3, 2), 3), ((1, 8, 2), 4),
                                          ((1, 5, 2, 2), 1)])
def test_shuffle_channel(shape, group):
    case = LayerCase(proto("ShuffleChannel", f"shuffle_channel_param {{ group: {group} }}"),
                     [shape], reference=lambda x: ref.shuffle_channel(x, group),
                     forward_rtol=0, forward_atol=0)
    case.check_forward()
    case.check_gradient()


def test_shuffle_channel_group_must_divide():
    with pytest.raises(LayerError, match="must divide"):
        setup_layer(proto("ShuffleChannel", "shuffle_channel_param { group: 4 }"),
                    [np.zeros((1, 6, 2, 2))])


def test_shuffle_channel_agrees_with_opencv(tmp_path):
    x = rand(2, 12, 3, 4, seed=6).astype(np.float32)
    ours, theirs = run_both(tmp_path, layer("ShuffleChannel",
                                            "shuffle_channel_param { group: 3 }"), {"x": x})
    np.testing.assert_array_equal(ours, theirs)


# ==== Axpy ===================================================================

def test_axpy():
    shapes = [(2, 3, 1, 1), (2, 3, 4, 5), (2, 3, 4, 5)]
    case = LayerCase(proto("Axpy", bottoms=("a", "x", "y")), shapes, reference=ref.axpy)
    case.check_forward()
    case.check_gradient()


def test_axpy_in_place_on_y():
    case = LayerCase(proto("Axpy", bottoms=("a", "x", "y")), [(1, 2, 1, 1), (1, 2, 3, 3),
                                                              (1, 2, 3, 3)], seed=3)
    layer_, bottom, _ = case.setup(np.float64)
    top = [bottom[2]]
    expected = ref.axpy(*(b.data.copy() for b in bottom))
    layer_.run_forward(bottom, top)
    np.testing.assert_allclose(top[0].data, expected)


def test_axpy_shape_errors():
    with pytest.raises(LayerError, match="needs a"):
        setup_layer(proto("Axpy", bottoms=("a", "x", "y")),
                    [np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 3, 3))])


def test_axpy_agrees_with_opencv_up_to_its_operand_order(tmp_path):
    """The SENet fork's Axpy is a x + y for bottoms (a, x, y); OpenCV's importer
    scales bottom 2 and adds bottom 1 (a y + x), so a net with the last two bottoms
    swapped gives OpenCV our result."""
    a, x, y = (rand(*s, seed=k).astype(np.float32) for k, s in
               enumerate([(1, 4, 1, 1), (1, 4, 3, 5), (1, 4, 3, 5)]))  # OpenCV: N = 1 only
    inputs = {"a": a, "x": x, "y": y}
    ours, _ = run_both(tmp_path, layer("Axpy", bottoms=("a", "x", "y")), inputs)
    _, theirs = run_both(tmp_path, layer("Axpy", bottoms=("a", "y", "x")), inputs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


# ==== ConvolutionDepthwise ===================================================

DEPTHWISE = ("convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 2 "
             "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' } }")


def test_depthwise_is_grouped_convolution():
    case = LayerCase(proto("ConvolutionDepthwise", DEPTHWISE), [(2, 4, 7, 6)],
                     reference=lambda x, w, b: ref_conv(x, w, b, stride=2, pad=1, group=4))
    layer_, _, _ = case.setup()
    assert layer_.group == 4 and layer_.blobs[0].shape == (4, 1, 3, 3)
    case.check_forward()
    case.check_gradient()


def test_depthwise_ignores_a_stated_group_and_multiplies_channels():
    text = proto("ConvolutionDepthwise", "convolution_param { num_output: 6 kernel_size: 1 "
                 "group: 1 }")
    layer_, _, top = setup_layer(text, [np.zeros((1, 3, 2, 2))])
    assert layer_.blobs[0].shape == (6, 1, 1, 1) and top[0].shape == (1, 6, 2, 2)


def test_depthwise_agrees_with_opencv(tmp_path):
    x = rand(2, 4, 7, 6, seed=7).astype(np.float32)
    ours, theirs = run_both(tmp_path, layer("ConvolutionDepthwise", DEPTHWISE), {"x": x})
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


# ==== PSROIPooling ===========================================================

PSROI = "psroi_pooling_param { spatial_scale: 0.25 output_dim: 2 group_size: 3 }"
ROIS = np.array([[0, 0, 0, 20, 27], [1, 4.5, 6, 30, 15], [0, 9, 3, 9, 3],
                 [1, -8, -8, 50, 60], [0, 25.5, 20, 31, 31]], np.float64)


def test_psroi_pooling():
    maps = rand(2, 18, 8, 8, seed=8)
    case = LayerCase(proto("PSROIPooling", PSROI, bottoms=("maps", "rois")), [maps, ROIS],
                     reference=lambda x, r: ref.psroi_pool(x, r, 0.25, 2, 3),
                     check_bottoms=[0])
    (y,) = case.check_forward()
    assert y.shape == (5, 2, 3, 3)
    case.check_gradient()


def test_psroi_pooling_rejects_channel_mismatch():
    with pytest.raises(LayerError, match="output_dim"):
        setup_layer(proto("PSROIPooling", PSROI, bottoms=("maps", "rois")),
                    [np.zeros((1, 17, 4, 4)), np.zeros((1, 5))])


def test_psroi_pooling_agrees_with_opencv(tmp_path):
    maps = rand(2, 18, 8, 8, seed=9).astype(np.float32)
    rois = ROIS.astype(np.float32)
    ours, theirs = run_both(tmp_path, layer("PSROIPooling", PSROI, bottoms=("maps", "rois")),
                            {"maps": maps, "rois": rois})
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


# ==== Reorg ==================================================================

@pytest.mark.parametrize("shape, stride", [((2, 8, 4, 6), 2), ((1, 9, 3, 6), 3),
                                           ((1, 4, 2, 2), 2)])
def test_reorg_is_darknets(shape, stride):
    case = LayerCase(proto("Reorg", f"reorg_param {{ stride: {stride} }}"), [shape],
                     reference=lambda x: ref.darknet_reorg(x, stride),
                     forward_rtol=0, forward_atol=0)
    case.check_forward()
    case.check_gradient()


def test_reorg_reverse():
    case = LayerCase(proto("Reorg", "reorg_param { stride: 2 reverse: true }"), [(1, 8, 3, 2)],
                     reference=lambda x: ref.darknet_reorg(x, 2, reverse=True),
                     forward_rtol=0, forward_atol=0)
    (y,) = case.check_forward()
    assert y.shape == (1, 2, 6, 4)
    case.check_gradient()


def test_reorg_errors():
    with pytest.raises(LayerError, match="must divide"):
        setup_layer(proto("Reorg", "reorg_param { stride: 2 }"), [np.zeros((1, 4, 3, 4))])


@pytest.mark.parametrize("params", ["reorg_param { reorg_stride: 2 }",
                                    "reorg_param { reorg_stride: 3 }"])
def test_reorg_agrees_with_opencv(tmp_path, params):
    x = rand(2, 36, 6, 6, seed=10).astype(np.float32)
    ours, theirs = run_both(tmp_path, layer("Reorg", params), {"x": x})
    np.testing.assert_array_equal(ours, theirs)


# ==== Region =================================================================

ANCHORS = [1.08, 1.19, 3.42, 4.41]
REGION = ("region_param { classes: 3 coords: 4 anchors: 2 softmax: 1 thresh: 0.1 "
          "nms_threshold: 0 }")


def test_region_without_nms():
    x = rand(2, 3, 4, 16, seed=11) * 2
    case = LayerCase(proto("Region", REGION), [x], params=[ANCHORS],
                     reference=lambda x, b: ref.region(x, b, 3, 2, 0.1))
    (y,) = case.check_forward()
    assert y.shape == (2 * 3 * 4 * 2, 8)


def test_region_biases_from_params_and_nms_keeps_the_best():
    text = proto("Region", "region_param { classes: 1 anchors: 1 biases: [4, 4] logistic: true "
                 "thresh: 0.1 nms_threshold: 0.4 }")
    x = np.zeros((1, 1, 2, 6))
    x[0, 0, :, 4] = [3.0, 2.0]              # both cells confident, boxes overlap a lot
    x[0, 0, :, 5] = 5.0
    (y,) = LayerCase(text, [x]).forward()
    assert y[0, 5] > 0.1 and y[1, 5] == 0    # the lower-scoring box is suppressed


def test_region_rejects_channels_first_bottom():
    with pytest.raises(LayerError, match="channels-last"):
        setup_layer(proto("Region", REGION), [np.zeros((1, 16, 3, 4))])


@pytest.mark.parametrize("params", [REGION, REGION.replace("nms_threshold: 0", "nms_threshold: 0.3"),
                                    REGION.replace("softmax", "logistic")])
def test_region_agrees_with_opencv(tmp_path, params):
    x = (rand(2, 3, 4, 16, seed=12) * 2).astype(np.float32)
    ours, theirs = run_both(tmp_path, layer("Region", params), {"x": x}, weights=[ANCHORS])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
