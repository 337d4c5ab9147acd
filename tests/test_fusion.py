"""Chains of per-channel layers run with the convolution before them (net/fusion.py):
in the default mode, compiled, the very bits of the layers one by one; in the fast
mode, folded, the exact mode's blobs up to rounding; the chain's layers skipped, and
every case where folding must not happen left alone."""
import numpy as np
import pytest

import caffe_lite
from caffe_lite.layers.normalization import BatchNormLayer
from caffe_lite.net import fusion, parallel
from caffe_lite.ops import jit

needs_jit = pytest.mark.skipif(not jit.available(), reason="numba (the extra fast) missing")

CHAIN = '''
layer {{ name: "data" type: "Input" top: "data"
        input_param {{ shape {{ dim: {n} dim: 3 dim: 9 dim: 8 }} }} }}
layer {{ name: "conv" type: "{conv}" bottom: "data" top: "conv"
        convolution_param {{ num_output: {cout} kernel_size: 3 pad: 1 {group}
          weight_filler {{ type: "gaussian" std: 0.5 }}
          bias_filler {{ type: "uniform" min: -1 max: 1 }} }} }}
layer {{ name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" {bn} }}
{scale}
layer {{ name: "relu" type: "ReLU" bottom: "conv" top: "conv" }}
layer {{ name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
{tail}
'''
SCALE = ('layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" '
         'scale_param { bias_term: true } }')


def make_net(tmp_path, n=2, conv="Convolution", cout=4, group="", bn="", scale=SCALE, tail=""):
    path = tmp_path / "net.prototxt"
    path.write_text(CHAIN.format(n=n, conv=conv, cout=cout, group=group, bn=bn, scale=scale,
                                 tail=tail))
    net = caffe_lite.Net(str(path), caffe_lite.TEST)
    rng = np.random.default_rng(0)
    for name, blobs in net.params.items():
        layer = net.layer_dict[name]
        if layer.type == "BatchNorm":
            blobs[0].data[...] = rng.standard_normal(blobs[0].shape) * 3      # mean sum
            blobs[1].data[...] = rng.random(blobs[1].shape) * 4 + 0.1       # var sum
            blobs[2].data[...] = 2                                         # factor
        elif layer.type == "Scale":
            for blob in blobs:
                blob.data[...] = rng.standard_normal(blob.shape)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    return net


@pytest.fixture
def fast():
    caffe_lite.set_conv_algorithm("winograd")
    yield
    caffe_lite.set_conv_algorithm("exact")


@pytest.fixture
def bn_calls(monkeypatch):
    calls = []
    real = BatchNormLayer.forward
    monkeypatch.setattr(BatchNormLayer, "forward",
                        lambda self, b, t: calls.append(self.name) or real(self, b, t))
    return calls


def exact_blobs(net):
    caffe_lite.set_conv_algorithm("exact")
    try:
        net.forward()
        return {name: blob.data.copy() for name, blob in net.blobs.items()}
    finally:
        caffe_lite.set_conv_algorithm("winograd")


@pytest.mark.parametrize("kwargs", [
    {},                                                      # Conv -> BN -> Scale -> ReLU
    {"scale": ""},                                           # no Scale
    {"conv": "ConvolutionDepthwise", "cout": 3},             # the MobileNet forks' layer
    {"group": "group: 3", "cout": 6},
])
def test_folded_chain_gives_the_exact_blobs(tmp_path, fast, bn_calls, kwargs):
    net = make_net(tmp_path, **kwargs)
    want = exact_blobs(net)
    bn_calls.clear()
    net.forward()
    assert not bn_calls, "the BatchNorm ran instead of being folded"
    for name, value in want.items():
        np.testing.assert_allclose(net.blobs[name].data, value, rtol=1e-5, atol=1e-5)


def test_new_statistics_are_folded_again(tmp_path, fast):
    net = make_net(tmp_path)
    net.forward()
    for layer, i, change in (("bn", 0, lambda v: v + 1),       # e.g. copy_from
                             ("scale", 1, lambda v: -v),
                             ("conv", 1, lambda v: v + 0.5)):
        values = net.params[layer][i].data
        values[...] = change(values)                         # in place
        want = exact_blobs(net)["pool"]
        net.forward()
        np.testing.assert_allclose(net.blobs["pool"].data, want, rtol=1e-5, atol=1e-5)


def test_partial_forwards_run_the_chain_layer_by_layer(tmp_path, fast, bn_calls):
    net = make_net(tmp_path)
    caffe_lite.set_conv_algorithm("exact")
    net.forward(end="conv")
    raw = net.blobs["conv"].data.copy()
    caffe_lite.set_conv_algorithm("winograd")
    net.forward(end="conv")                                  # stops before the BatchNorm
    np.testing.assert_allclose(net.blobs["conv"].data, raw, rtol=1e-6, atol=1e-6)
    net.forward(start="bn", end="relu")                      # the convolution did not run
    assert bn_calls == ["bn"]


def test_no_folding_where_a_backward_may_run(tmp_path, fast, bn_calls):
    tail = ('layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 2 '
            'dim: 4 dim: 5 dim: 4 } } }\n'
            'layer { name: "loss" type: "EuclideanLoss" bottom: "pool" bottom: "label" '
            'top: "loss" }')
    net = make_net(tmp_path, tail=tail)
    net.forward()
    assert bn_calls == ["bn"]
    assert not fusion.chains_of(net.graph)


def test_no_folding_on_batch_statistics_or_in_the_exact_mode_numpy(tmp_path, bn_calls,
                                                                   monkeypatch):
    net = make_net(tmp_path, bn="batch_norm_param { use_global_stats: false }")
    assert not fusion.chains_of(net.graph)
    monkeypatch.setattr(jit, "enabled", False)
    net = make_net(tmp_path)
    net.forward()                                  # exact mode, numpy: the layers run
    assert bn_calls == ["bn"]


def layer_by_layer(net, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(fusion, "active_chains", lambda graph, start, end: ({}, set()))
        net.forward()
        return {name: blob.data.copy() for name, blob in net.blobs.items()}


@needs_jit
@pytest.mark.parametrize("kwargs", [
    {},                                                      # Conv -> BN -> Scale -> ReLU
    {"scale": ""},                                           # no Scale
    {"scale": SCALE.replace("bias_term: true", "bias_term: false")},
    {"conv": "ConvolutionDepthwise", "cout": 3},
    {"group": "group: 3", "cout": 6},
])
def test_compiled_chain_gives_the_layers_bits_in_the_exact_mode(tmp_path, bn_calls, monkeypatch,
                                                               kwargs):
    """In the default mode the compiled pass does the layers' own float steps: every
    blob bit for bit as layer by layer, NaN and infinities included."""
    net = make_net(tmp_path, **kwargs)
    net.blobs["data"].data[0, 0, :2, :2] = [[np.nan, np.inf], [-np.inf, 0.0]]
    want = layer_by_layer(net, monkeypatch)
    bn_calls.clear()
    net.forward()
    assert not bn_calls, "the BatchNorm ran as a layer"
    for name, value in want.items():
        np.testing.assert_array_equal(net.blobs[name].data, value, err_msg=name)


CONV_RELU = '''
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 1 }
          bias_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "leaky" type: "Convolution" bottom: "conv" top: "leaky"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "relu2" type: "ReLU" bottom: "leaky" top: "leaky" relu_param { negative_slope: 0.1 } }
'''


@needs_jit
def test_a_convolution_and_its_relu_run_as_one(tmp_path, monkeypatch):
    """Conv -> ReLU (CaffeNet, VGG, GoogLeNet): bias and ReLU in one compiled pass,
    the same bits; a leaky ReLU is left to its layer."""
    path = tmp_path / "net.prototxt"
    path.write_text(CONV_RELU)
    net = caffe_lite.Net(str(path), caffe_lite.TEST)
    net.blobs["data"].data[...] = np.random.default_rng(1).standard_normal((2, 3, 6, 5))
    chains = fusion.chains_of(net.graph)
    assert [(c.bn, c.scale, c.relu is not None) for c in chains.values()] == [(None, None, True)]
    want = layer_by_layer(net, monkeypatch)
    net.forward()
    for name, value in want.items():
        np.testing.assert_array_equal(net.blobs[name].data, value, err_msg=name)


@needs_jit
def test_a_forward_ending_inside_a_chain_runs_its_part(tmp_path, bn_calls, monkeypatch):
    net = make_net(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(fusion, "active_chains", lambda graph, start, end: ({}, set()))
        net.forward(end="bn")
        want = net.blobs["conv"].data.copy()
    bn_calls.clear()
    net.blobs["conv"].data[...] = 0
    net.forward(end="bn")                               # conv + BatchNorm, compiled
    assert not bn_calls
    np.testing.assert_array_equal(net.blobs["conv"].data, want)


def test_folding_in_the_batch_parallel_shadows(tmp_path, fast, bn_calls, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_VALUES", 0)
    monkeypatch.setattr(caffe_lite.ops.threads, "threads", lambda: 2)
    net = make_net(tmp_path, n=4)
    want = exact_blobs(net)["pool"]
    bn_calls.clear()
    net.forward()
    assert not bn_calls
    np.testing.assert_allclose(net.blobs["pool"].data, want, rtol=1e-5, atol=1e-5)


def _random_weights(net, seed=0):
    """He-scaled weights; BatchNorm statistics and Scale factors away from trivial."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if layer.type == "BatchNorm":
            c = layer.blobs[0].shape[0]
            layer.blobs[0].data[...] = rng.standard_normal(c) * 0.1
            layer.blobs[1].data[...] = rng.random(c) + 0.5
            layer.blobs[2].data[...] = 1
        elif layer.type == "Scale":
            for blob in layer.blobs:
                blob.data[...] = rng.standard_normal(blob.shape) * 0.1 + (blob is layer.blobs[0])
        elif layer.blobs:
            w = layer.blobs[0].data
            w[...] = rng.standard_normal(w.shape) * np.sqrt(2.0 / (w.size // w.shape[0]))
            for blob in layer.blobs[1:]:
                blob.data[...] = 0.01


@pytest.mark.parametrize("path,blob", [("resnet/ResNet-50-deploy.prototxt", "fc1000"),
                                       ("mobilenet_ssd/deploy.prototxt", "mbox_conf")])
def test_zoo_nets_fold_every_batchnorm_and_agree(zoo_path, fast, path, blob):
    """The zoo's ResNet-50 and MobileNet-SSD: every BatchNorm (with its Scale) folds
    into the convolution before it, and the fast forward agrees with the exact one."""
    net = caffe_lite.Net(str(zoo_path(path)), caffe_lite.TEST)
    _random_weights(net)
    chains = fusion.chains_of(net.graph).values()
    assert sum(c.bn is not None for c in chains) == sum(l.type == "BatchNorm" for l in net.layers)
    assert sum(c.eltwise for c in chains) == sum(l.type == "Eltwise" for l in net.layers)
    net.blobs["data"].data[...] = np.random.default_rng(1).standard_normal(net.blobs["data"].shape)
    want = exact_blobs(net)[blob]
    net.forward()
    got = net.blobs[blob].data
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


@needs_jit
def test_zoo_resnet_compiled_chains_give_the_layers_bits(zoo_path, monkeypatch):
    """ResNet-50 in the default mode: every Conv/BatchNorm/Scale/ReLU chain and every
    shortcut Eltwise + ReLU runs compiled, and every blob keeps the layers' bits."""
    net = caffe_lite.Net(str(zoo_path("resnet/ResNet-50-deploy.prototxt")), caffe_lite.TEST)
    _random_weights(net)
    net.blobs["data"].reshape(1, 3, 224, 224)
    net.reshape()
    net.blobs["data"].data[...] = np.random.default_rng(2).standard_normal((1, 3, 224, 224))
    want = layer_by_layer(net, monkeypatch)
    net.forward()
    for name, value in want.items():
        np.testing.assert_array_equal(net.blobs[name].data, value, err_msg=name)
