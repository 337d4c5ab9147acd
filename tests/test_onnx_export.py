"""ONNX export: every mapping is run in onnxruntime on a small random net and must
match caffe_lite's forward (itself tested against naive references); the refusals;
the CLI; real zoo models."""
import os

import numpy as np
import pytest
from google.protobuf import text_format

import caffe_lite as caffe
from caffe_lite.cli import main
from caffe_lite.errors import ExportError, VerificationError
from caffe_lite.proto import caffe_pb2

pytest.importorskip("onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

from caffe_lite.onnx import build_model, export, seeded_weights, verify  # noqa: E402


def make_net(inputs, layers, phase=caffe.TEST, **kwargs):
    text = "name: 'case' " + " ".join(
        f"layer {{ name: '{n}' type: 'Input' top: '{n}' input_param {{ shape {{ "
        f"{' '.join(f'dim: {d}' for d in shape)} }} }} }}" for n, shape in inputs.items())
    param = text_format.Parse(text + " " + layers, caffe_pb2.NetParameter())
    return caffe.Net(param, phase, **kwargs)


def exported(tmp_path, inputs, layers, seed=0, **kwargs):
    net = make_net(inputs, layers)
    seeded_weights(net, seed)
    result = export(net, tmp_path / "model.onnx", **kwargs)
    assert result.ok and result.rows, result.format()
    assert {r.output for r in result.rows} == set(net.outputs)
    import onnx
    model = onnx.load(tmp_path / "model.onnx")
    consumed = {name for node in model.graph.node for name in node.input}
    assert not [i.name for i in model.graph.initializer if i.name not in consumed]
    return net, result


def conv(name, bottom, params, top=None, kind="Convolution"):
    return (f"layer {{ name: '{name}' type: '{kind}' bottom: '{bottom}' "
            f"top: '{top or name}' convolution_param {{ {params} }} }}")


def layer(name, kind, bottoms, tops=None, params=""):
    bottoms = [bottoms] if isinstance(bottoms, str) else bottoms
    tops = [tops or name] if not isinstance(tops, list) else tops
    return (f"layer {{ name: '{name}' type: '{kind}' "
            + " ".join(f"bottom: '{b}'" for b in bottoms) + " "
            + " ".join(f"top: '{t}'" for t in tops) + f" {params} }}")


X4 = {"data": (2, 4, 9, 11)}

CASES = {
    # convolution / deconvolution: group, dilation, pads, strides
    "conv_group_dilation": (X4, conv("c", "data", "num_output: 6 kernel_size: 3 group: 2 "
                                     "dilation: 2 pad: 2 stride: 2")),
    "conv_hw_no_bias": (X4, conv("c", "data", "num_output: 3 kernel_h: 3 kernel_w: 2 "
                                 "pad_h: 1 pad_w: 0 stride_h: 1 stride_w: 2 bias_term: false")),
    "deconv_group_dilation": (X4, conv("d", "data", "num_output: 6 kernel_size: 4 group: 2 "
                                       "stride: 2 pad: 1 dilation: 2", kind="Deconvolution")),
    "deconv_plain": (X4, conv("d", "data", "num_output: 3 kernel_size: 2 stride: 2",
                              kind="Deconvolution")),
    "depthwise": (X4, conv("c", "data", "num_output: 4 kernel_size: 3 pad: 1",
                           kind="ConvolutionDepthwise")),
    "inner_product": (X4, layer("ip", "InnerProduct", "data",
                                params="inner_product_param { num_output: 5 }")),
    "inner_product_axis2": (X4, layer("ip", "InnerProduct", "data", params=(
        "inner_product_param { num_output: 5 axis: 2 }"))),
    "inner_product_transpose": (X4, layer("ip", "InnerProduct", "data", params=(
        "inner_product_param { num_output: 5 transpose: true bias_term: false }"))),
    # normalization
    "lrn_across": (X4, layer("n", "LRN", "data", params="lrn_param { local_size: 3 "
                             "alpha: 0.5 beta: 0.75 k: 2 }")),
    "lrn_within": (X4, layer("n", "LRN", "data", params="lrn_param { local_size: 3 "
                             "alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL }")),
    "batch_norm": (X4, layer("bn", "BatchNorm", "data")),
    "batch_norm_2d": ({"data": (3, 5)}, layer("bn", "BatchNorm", "data")),
    "batch_norm_batch_stats": (X4, layer("bn", "BatchNorm", "data", params=(
        "batch_norm_param { use_global_stats: false }"))),
    "mvn": (X4, layer("m", "MVN", "data")),
    "mvn_across_no_variance": (X4, layer("m", "MVN", "data", params=(
        "mvn_param { across_channels: true normalize_variance: false }"))),
    "scale_bias_term": (X4, layer("s", "Scale", "data", params="scale_param { "
                                  "bias_term: true }")),
    "scale_two_bottoms": ({"data": (2, 4, 9, 11), "f": (2, 4)},
                          layer("s", "Scale", ["data", "f"], params="scale_param { axis: 0 }")),
    "bias": (X4, layer("b", "Bias", "data", params="bias_param { axis: 1 num_axes: 2 }")),
    "eltwise_sum_coeff": (X4, layer("a", "ReLU", "data") + layer("e", "Eltwise", [
        "data", "a"], params="eltwise_param { operation: SUM coeff: 0.5 coeff: -2 }")),
    "eltwise_prod_max": (X4, layer("a", "TanH", "data") + layer("b", "Sigmoid", "data")
                         + layer("p", "Eltwise", ["data", "a", "b"],
                                 params="eltwise_param { operation: PROD }")
                         + layer("m", "Eltwise", ["data", "a", "b"],
                                 params="eltwise_param { operation: MAX }")),
    # shapes
    "concat_slice": (X4, layer("a", "AbsVal", "data")
                     + layer("c", "Concat", ["data", "a"], params="concat_param { axis: 2 }")
                     + layer("s", "Slice", "c", ["s1", "s2", "s3"],
                             params="slice_param { axis: 1 slice_point: 1 slice_point: 3 }")),
    "flatten_reshape_permute": (X4, layer("f", "Flatten", "data", params=(
        "flatten_param { axis: 2 }"))
        + layer("r", "Reshape", "data", params="reshape_param { shape { dim: 0 dim: -1 "
                "dim: 11 } }")
        + layer("p", "Permute", "data", params="permute_param { order: 0 order: 2 "
                "order: 3 order: 1 }")),
    "crop": ({"data": (2, 4, 9, 11), "ref": (2, 4, 5, 6)},
             layer("c", "Crop", ["data", "ref"], params="crop_param { axis: 2 offset: 3 "
                   "offset: 1 }")),
    "crop_axis1": ({"data": (2, 4, 9, 11), "ref": (2, 2, 5, 6)},
                   layer("c", "Crop", ["data", "ref"], params="crop_param { axis: 1 "
                         "offset: 1 }")),
    "tile_shuffle": ({"data": (2, 4, 3, 5)}, layer("t", "Tile", "data", params=(
        "tile_param { axis: 2 tiles: 3 }"))
        + layer("s", "ShuffleChannel", "data", params="shuffle_channel_param { group: 2 }")),
    "softmax_axes": (X4, layer("s1", "Softmax", "data")
                     + layer("s2", "Softmax", "data", params="softmax_param { axis: 2 }")),
    "argmax_reduction": (X4, layer("am", "ArgMax", "data", params="argmax_param { axis: 1 }")
                         + layer("r", "Reduction", "data", params="reduction_param { "
                                 "operation: SUMSQ axis: 2 coeff: 0.5 }")
                         + layer("r2", "Reduction", "data", params="reduction_param { "
                                 "operation: ASUM axis: 1 }")),
    # neurons (in place, as nets use them)
    "neurons": (X4, conv("c", "data", "num_output: 4 kernel_size: 1")
                + layer("r", "ReLU", "c", "c", "relu_param { negative_slope: 0.1 }")
                + layer("d", "Dropout", "c", "c")
                + layer("p", "PReLU", "c", "p")
                + layer("ps", "PReLU", "c", "ps", "prelu_param { channel_shared: true }")
                + layer("s", "Sigmoid", "c", "s") + layer("t", "TanH", "c", "t")
                + layer("e", "ELU", "c", "e", "elu_param { alpha: 0.7 }")
                + layer("a", "AbsVal", "c", "a") + layer("bn", "BNLL", "c", "bnll")
                + layer("th", "Threshold", "c", "th", "threshold_param { threshold: 0.3 }")
                + layer("cl", "Clip", "c", "cl", "clip_param { min: -0.2 max: 0.5 }")
                + layer("sw", "Swish", "c", "sw", "swish_param { beta: 1.5 }")),
    "power_exp_log": (X4, layer("a", "AbsVal", "data", "a")
                      + layer("pw", "Power", "a", "pw", "power_param { power: 1.5 "
                              "scale: 2 shift: 1 }")
                      + layer("sq", "Power", "data", "sq", "power_param { power: 2 }")
                      + layer("ex", "Exp", "data", "ex", "exp_param { base: 2 scale: 0.5 "
                              "shift: 1 }")
                      + layer("lg", "Log", "pw", "lg", "log_param { base: 10 scale: 3 "
                              "shift: 0.5 }")
                      + layer("ln", "Log", "pw", "ln")
                      + layer("dr", "Dropout", "data", "dr",
                              "dropout_param { dropout_ratio: 0.3 scale_train: false }")),
    # the forks' layers
    "interp": ({"data": (1, 3, 6, 7)},
               layer("z", "Interp", "data", params="interp_param { zoom_factor: 3 }")
               + layer("s", "Interp", "data", params="interp_param { shrink_factor: 2 }")
               + layer("h", "Interp", "data", params="interp_param { height: 4 width: 13 }")
               + layer("c", "Interp", "data", params="interp_param { pad_beg: -1 "
                       "pad_end: -1 zoom_factor: 2 }")
               + layer("o", "Interp", "data", params="interp_param { height: 1 width: 5 }")
               + layer("id", "Interp", "data", params="interp_param { pad_beg: -1 "
                       "pad_end: 0 zoom_factor: 1 }")),
    "bn_segnet_inference": (X4, layer("bn", "BN", "data", params="bn_param { "
                                      "bn_mode: INFERENCE }")),
    "bn_segnet_learn": (X4, layer("bn", "BN", "data", params="bn_param { "
                                  "scale_filler { type: 'constant' value: 1 } }")),
    "bn_pspnet": (X4, layer("bn", "BN", "data", params="bn_param { frozen: true "
                            "eps: 1e-5 }")),
    "normalize_priorbox": ({"data": (2, 4, 5, 6), "image": (2, 3, 40, 48)},
                           layer("n", "Normalize", "data", params="norm_param { "
                                 "across_spatial: false }")
                           + layer("ns", "Normalize", "data", params="norm_param { "
                                   "across_spatial: true channel_shared: true }")
                           + layer("pb", "PriorBox", ["data", "image"], params=(
                               "prior_box_param { min_size: 8 max_size: 16 aspect_ratio: 2 "
                               "flip: true clip: true variance: 0.1 variance: 0.2 "
                               "variance: 0.1 variance: 0.2 }"))
                           + layer("sil", "Silence", "image", [])),
    "parameter": ({"data": (2, 3)}, layer("p", "Parameter", [], params="parameter_param { "
                                         "shape { dim: 2 dim: 3 } }")
                  + layer("e", "Eltwise", ["data", "p"])),
    "axpy": ({"a": (2, 4, 1, 1), "x": (2, 4, 3, 5), "y": (2, 4, 3, 5)},
             layer("ax", "Axpy", ["a", "x", "y"])),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mapping_matches_onnxruntime(tmp_path, case):
    inputs, layers = CASES[case]
    exported(tmp_path, inputs, layers)


POOLS = [  # (H, W), kernel, stride, pad, round: ceil windows that overhang, pads, both
    ((7, 7), 3, 2, 0, "CEIL"), ((6, 6), 3, 2, 0, "CEIL"), ((6, 8), 3, 2, 1, "CEIL"),
    ((5, 5), 2, 2, 1, "CEIL"), ((9, 10), 3, 3, 1, "CEIL"), ((6, 6), 3, 2, 1, "FLOOR"),
    ((8, 5), 4, 3, 2, "CEIL"), ((5, 7), 2, 1, 1, "CEIL"), ((4, 4), 4, 4, 0, "CEIL")]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("hw,k,s,p,mode", POOLS)
def test_pooling_caffe_rounding(tmp_path, method, hw, k, s, p, mode):
    params = (f"pooling_param {{ pool: {method} kernel_size: {k} stride: {s} pad: {p} "
              f"round_mode: {mode} }}")
    exported(tmp_path, {"data": (2, 3) + hw}, layer("pool", "Pooling", "data", params=params))


def test_pooling_rectangular_and_global(tmp_path):
    exported(tmp_path, X4, layer("p", "Pooling", "data", params="pooling_param { pool: AVE "
                                 "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 "
                                 "pad_w: 1 }")
             + layer("g", "Pooling", "data", params="pooling_param { pool: MAX "
                     "global_pooling: true }")
             + layer("ga", "Pooling", "data", params="pooling_param { pool: AVE "
                     "global_pooling: true }"))


@pytest.mark.parametrize("hw", [(6, 8), (7, 9)])
def test_max_pooling_mask_upsample_and_unpooling(tmp_path, hw):
    H, W = hw
    pool = layer("pool", "Pooling", "data", ["pooled", "mask"],
                 "pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
    up = layer("up", "Upsample", ["pooled", "mask"], params=(
        f"upsample_param {{ upsample_h: {H} upsample_w: {W} }}"))
    unpool = layer("unpool", "Unpooling", ["pooled", "mask"], params=(
        f"unpooling_param {{ unpool: MAX kernel_size: 2 stride: 2 unpool_h: {H} "
        f"unpool_w: {W} }}"))
    _, result = exported(tmp_path, {"data": (2, 3, H, W)}, pool + up + unpool)
    assert {r.output for r in result.rows} == {"up", "unpool"}


def test_mask_is_a_caffe_plane_index(tmp_path):
    """The mask top itself, as an output: h*W + w per plane, as Caffe writes it."""
    exported(tmp_path, {"data": (2, 3, 7, 7)}, layer(
        "pool", "Pooling", "data", ["pooled", "mask"],
        "pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }"))


def test_upsample_scale_and_unpooling_without_mask(tmp_path):
    exported(tmp_path, {"data": (2, 3, 6, 6)},
             layer("pool", "Pooling", "data", ["pooled", "mask"],
                   "pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
             + layer("up", "Upsample", ["pooled", "mask"], params="upsample_param { "
                     "scale: 2 }")
             + layer("u0", "Unpooling", "data", params="unpooling_param { unpool: MAX "
                     "kernel_size: 2 stride: 2 unpool_size: 11 }")
             + layer("ua", "Unpooling", "data", params="unpooling_param { unpool: AVE "
                     "kernel_size: 3 stride: 2 unpool_size: 12 }")
             + layer("ut", "Unpooling", "data", params="unpooling_param { unpool: TILE "
                     "kernel_size: 2 stride: 2 unpool_h: 11 unpool_w: 14 }"))


def test_embed_gets_index_inputs(tmp_path):
    net, result = exported(tmp_path, {"data": (2, 5)}, layer("s", "Sigmoid", "data") + layer(
        "e", "Embed", "data", params="embed_param { num_output: 4 input_dim: 7 }"))
    assert result.max_rel < 1e-6


def test_names_survive(tmp_path):
    import onnx
    net = make_net({"data": (1, 3, 8, 8)},
                   conv("conv1", "data", "num_output: 4 kernel_size: 3")
                   + layer("relu1", "ReLU", "conv1", "conv1")
                   + layer("fc7", "InnerProduct", "conv1", params="inner_product_param { "
                           "num_output: 3 }")
                   + layer("drop", "Dropout", "fc7", "fc7"))
    seeded_weights(net)
    export(net, tmp_path / "m.onnx")
    model = onnx.load(tmp_path / "m.onnx")
    assert [i.name for i in model.graph.input] == ["data"]
    assert [o.name for o in model.graph.output] == ["fc7"]
    inits = {i.name for i in model.graph.initializer}
    assert {"conv1.weight", "conv1.bias", "fc7.weight", "fc7.bias"} <= inits
    nodes = {n.name for n in model.graph.node}
    assert {"conv1", "relu1", "fc7"} <= nodes
    values = {o for n in model.graph.node for o in n.output}
    assert {"conv1@conv1", "conv1"} <= values                # one value per write
    assert model.opset_import[0].version == 17


def test_user_inputs_are_verified_too(tmp_path):
    net = make_net({"data": (1, 3, 5, 5)}, conv("c", "data", "num_output: 2 kernel_size: 3"))
    seeded_weights(net)
    mine = {"data": np.full((1, 3, 5, 5), 7, np.float32)}
    result = export(net, tmp_path / "m.onnx", inputs=[mine])
    assert [r.inputs for r in result.rows] == ["seeded", "input 1"]
    assert [r.inputs for r in verify(net, tmp_path / "m.onnx", inputs=mine).rows] == \
        ["seeded", "input 1"]
    with pytest.raises(ExportError, match="shape"):
        verify(net, tmp_path / "m.onnx", inputs=[{"data": np.zeros((1, 3, 4, 4))}])


# ---- refusals ------------------------------------------------------------------

def test_every_unmappable_layer_listed_and_nothing_written(tmp_path):
    net = make_net({"data": (1, 2, 6, 6)},
                   layer("sto", "Pooling", "data", params="pooling_param { pool: STOCHASTIC "
                         "kernel_size: 2 stride: 2 }")
                   + layer("i2c", "Im2col", "data", params="convolution_param { "
                           "kernel_size: 2 }")
                   + layer("ok", "ReLU", "data"))
    path = tmp_path / "m.onnx"
    with pytest.raises(ExportError) as info:
        export(net, path)
    message = str(info.value)
    assert "2 layer(s)" in message and "'sto'" in message and "'i2c'" in message
    assert "STOCHASTIC" in message and "'ok'" not in message
    assert not os.listdir(tmp_path)


def test_train_phase_refused():
    net = make_net({"data": (1, 2, 4, 4)}, layer("r", "ReLU", "data"), phase=caffe.TRAIN)
    with pytest.raises(ExportError, match="deploy.*phase TEST"):
        build_model(net)


def test_python_layers_refused_by_name(tmp_path, monkeypatch):
    (tmp_path / "onnx_pylayer_mod.py").write_text(
        "import caffe_lite as caffe\n"
        "class Twice(caffe.Layer):\n"
        "    def setup(self, bottom, top): pass\n"
        "    def reshape(self, bottom, top): top[0].reshape(*bottom[0].shape)\n"
        "    def forward(self, bottom, top): top[0].data[...] = 2 * bottom[0].data\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    net = make_net({"data": (1, 2)}, layer("twice", "Python", "data", params=(
        "python_param { module: 'onnx_pylayer_mod' layer: 'Twice' }")),
        allow_python_layers=True)
    with pytest.raises(ExportError, match="Python layers.*'twice'.*onnx_pylayer_mod"):
        build_model(net)


def test_mismatch_renames_to_unverified(tmp_path):
    net = make_net({"data": (1, 2, 5, 5)}, conv("c", "data", "num_output: 2 kernel_size: 3"))
    seeded_weights(net)
    with pytest.raises(VerificationError) as info:
        export(net, tmp_path / "m.onnx", rtol=-1)      # no difference is small enough
    assert not info.value.verification.ok
    assert sorted(os.listdir(tmp_path)) == ["m.unverified.onnx"]


# ---- the command ---------------------------------------------------------------

DEPLOY = """name: 'tiny'
layer { name: 'data' type: 'Input' top: 'data' input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1'
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: 'xavier' } } }
layer { name: 'pool1' type: 'Pooling' bottom: 'conv1' top: 'pool1'
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: 'prob' type: 'Softmax' bottom: 'pool1' top: 'prob' }
"""


def test_cli_export_and_check_only(tmp_path, capsys):
    proto = tmp_path / "deploy.prototxt"
    proto.write_text(DEPLOY)
    weights = tmp_path / "w.caffemodel"
    net = caffe.Net(str(proto), caffe.TEST)
    seeded_weights(net)
    net.save(str(weights))
    out = tmp_path / "model.onnx"
    np.save(tmp_path / "x.npy", np.ones((1, 3, 8, 8), np.float32))
    assert main(["export", "--onnx", str(proto), "--weights", str(weights), "-o", str(out),
                 "--input", f"data:{tmp_path / 'x.npy'}"]) == 0
    text = capsys.readouterr().out
    assert "max abs diff" in text and "prob" in text and "input 1" in text
    assert out.exists()
    assert main(["export", str(proto), "--weights", str(weights), "-o", str(out),
                 "--check-only"]) == 0
    assert "verified" in capsys.readouterr().out
    assert main(["export", str(proto), "--weights", str(weights), "-o", str(out),
                 "--rtol", "-1"]) == 1
    assert (tmp_path / "model.unverified.onnx").exists() and not out.exists()
    assert "max rel diff" in capsys.readouterr().out


def test_cli_input_shape_and_bad_inputs(tmp_path, capsys):
    proto = tmp_path / "two.prototxt"
    proto.write_text("name: 'two' input: 'a' input: 'b' "
                     "layer { name: 'e' type: 'Eltwise' bottom: 'a' bottom: 'b' top: 'e' }")
    assert main(["export", str(proto), "-o", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "a, b have no shape" in err and "--input a:1,3,224,224" in err
    assert main(["export", str(proto), "-o", str(tmp_path / "m.onnx"),
                 "--input", "a:1,2,3", "--input", "b:1,2,3"]) == 0
    assert main(["export", str(proto), "--input", "a:1,2", "--input", "b:1,2",
                 "--input", "c:1,2"]) == 1
    assert "the net's inputs are ['a', 'b']" in capsys.readouterr().err


def test_cli_training_prototxt_refused(tmp_path, capsys):
    proto = tmp_path / "train.prototxt"
    proto.write_text(DEPLOY.replace(
        "layer { name: 'data' type: 'Input' top: 'data' input_param { shape { dim: 1 dim: 3 "
        "dim: 8 dim: 8 } } }",
        "layer { name: 'data' type: 'Data' top: 'data' top: 'label' "
        "data_param { source: 'db' batch_size: 2 } }"))
    assert main(["export", str(proto)]) == 1
    assert "deploy prototxt" in capsys.readouterr().err
    assert main(["export", str(proto), "--phase", "TRAIN"]) == 1
    assert "--phase TEST" in capsys.readouterr().err


# ---- real models -----------------------------------------------------------------

ZOO_WITH_WEIGHTS = [
    ("lenet_mnist/lenet.prototxt", "lenet_mnist/lenet_iter_10000.caffemodel"),
    ("bvlc_examples/cifar10/cifar10_quick.prototxt",
     "cifar10_quick/cifar10_quick_iter_5000.caffemodel"),
    ("mtcnn_kpzhang93/det1.prototxt", "mtcnn_kpzhang93/det1.caffemodel"),
    ("mtcnn_kpzhang93/det2.prototxt", "mtcnn_kpzhang93/det2.caffemodel"),
    ("mtcnn_kpzhang93/det3.prototxt", "mtcnn_kpzhang93/det3.caffemodel"),
]


@pytest.mark.parametrize("proto,weights", ZOO_WITH_WEIGHTS,
                         ids=[p.split("/")[0] + "/" + p.split("/")[-1] for p, _ in
                              ZOO_WITH_WEIGHTS])
def test_zoo_models_with_real_weights(tmp_path, zoo_path, proto, weights):
    net = caffe.Net(str(zoo_path(proto)), caffe.TEST, weights=str(zoo_path(weights)))
    result = export(net, tmp_path / "m.onnx")
    assert result.ok, result.format()


@pytest.mark.parametrize("opset", [18, 21])
def test_newer_opsets(tmp_path, opset):
    """Reduce* take their axes as an input from opset 18 on."""
    exported(tmp_path, X4, layer("m", "MVN", "data")
             + layer("n", "Normalize", "data", params="norm_param { across_spatial: false }")
             + layer("bn", "BN", "data")
             + layer("s", "Slice", "data", ["s1", "s2"], params="slice_param { axis: 1 }")
             + layer("i", "Interp", "data", params="interp_param { zoom_factor: 2 }"),
             opset=opset)


def test_in_place_layer_on_an_input(tmp_path):
    import onnx
    exported(tmp_path, {"data": (1, 2, 3, 3)},
             layer("scale", "Power", "data", "data", "power_param { scale: 2 }")
             + layer("r", "ReLU", "data", "out"))
    model = onnx.load(tmp_path / "model.onnx")
    assert [i.name for i in model.graph.input] == ["data"]


# ---- against real Caffe: the golden cases' recorded outputs ------------------------

def _golden_test_cases():
    """The TEST-phase golden cases (a TRAIN net is refused before any mapping)."""
    from conformance import load_case
    from conftest import CONFORMANCE
    return sorted(p for p in CONFORMANCE.glob("*/*")
                  if p.parent.name != "solvers" and (p / "case.json").is_file()
                  and load_case(p)[0]["phase"] == "TEST")


@pytest.mark.parametrize("case_dir", _golden_test_cases(),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_export_reproduces_caffe_golden_outputs(case_dir):
    """The exported graph, run in onnxruntime on a case's recorded inputs, gives the
    outputs real Caffe (or the fork) recorded. A case with layer types that have no
    converter (losses, data layers, NMS, recurrent layers, ...) must be refused,
    naming each of those layers."""
    import onnxruntime as ort
    from conformance import assert_close, build_net, load_case, tolerance

    from caffe_lite.onnx.layers import CONVERTERS
    meta, z = load_case(case_dir)
    net = build_net(case_dir, meta)
    feeds = {name: z["input/" + name] for name in meta["inputs"]}
    for name, value in feeds.items():
        net.blobs[name].reshape(value.shape)
    net.reshape()
    unmapped = [layer.param.name for layer in net.layers
                if layer.param.type not in CONVERTERS and layer.param.type != "Input"]
    if unmapped:
        with pytest.raises(ExportError) as info:
            build_model(net)
        assert all(f"'{name}'" in str(info.value) for name in unmapped)
        return
    model = build_model(net)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    rtol, atol = tolerance(meta)
    names = [o.name for o in session.get_outputs()]
    for name, value in zip(names, session.run(names, feeds)):
        expected = z["blob/" + name]
        assert_close(value, expected, max(rtol, 1e-4), max(atol, 1e-5), name)
