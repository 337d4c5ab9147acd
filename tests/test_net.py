"""The Net: pycaffe surface, wiring rules and the errors a user can meet."""
import numpy as np
import pytest

import caffe_lite as caffe
from caffe_lite.errors import (
    CaffeLiteError,
    ModelFileError,
    NetError,
    UnknownLayerError,
    WeightsError,
)
from caffe_lite.formats import parse_net_param

MLP = '''
name: "mlp"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
'''


def make_net(text=MLP, phase=caffe.TRAIN, **kw):
    return caffe.Net(parse_net_param(text), phase, **kw)


def test_pycaffe_views():
    net = make_net()
    assert list(net.blobs) == ["data", "label", "ip1", "ip2", "loss"]
    assert net.inputs == ["data", "label"] and net.outputs == ["loss"]
    assert list(net.params) == ["ip1", "ip2"]
    assert [b.shape for b in net.params["ip1"]] == [(5, 3), (5,)]
    assert net._layer_names == ["data", "ip1", "relu1", "ip2", "loss"]
    assert net._blob_names == list(net.blobs)
    assert net.layer_dict["ip2"].type == "InnerProduct"
    assert net.top_names["relu1"] == ["ip1"] and net.bottom_names["loss"] == ["ip2", "label"]
    assert net.blob_loss_weights["loss"] == 1 and net.blob_loss_weights["ip2"] == 0


def test_forward_backward_with_keyword_inputs():
    caffe.set_random_seed(3)
    net = make_net()
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    label = np.array([0, 1, 2, 1], np.float32)
    out = net.forward(data=x, label=label)
    assert set(out) == {"loss"} and out["loss"].shape == ()
    # an independent computation of the same loss
    w1, b1 = (p.data for p in net.params["ip1"])
    w2, b2 = net.params["ip2"][0].data, 0
    h = np.maximum(x @ w1.T + b1, 0)
    s = h @ w2.T + b2
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(4), label.astype(int)]))
    assert abs(float(out["loss"]) - expected) < 1e-5
    grads = net.backward()
    assert set(grads) == {"data", "label"}
    assert net.params["ip1"][0].diff.any()


def test_wrong_inputs_are_refused():
    net = make_net()
    with pytest.raises(NetError, match="do not match the net inputs"):
        net.forward(data=np.zeros((4, 3)))
    with pytest.raises(NetError, match="shape"):
        net.forward(data=np.zeros((2, 3)), label=np.zeros(4))


def test_legacy_constructor_and_phase_strings(tmp_path):
    net = make_net()
    net.save(str(tmp_path / "w.caffemodel"))
    proto = tmp_path / "net.prototxt"
    proto.write_text(MLP)
    legacy = caffe.Net(str(proto), str(tmp_path / "w.caffemodel"), caffe.TEST)
    np.testing.assert_array_equal(legacy.params["ip1"][0].data, net.params["ip1"][0].data)
    modern = caffe.Net(str(proto), "TEST", weights=str(tmp_path / "w.caffemodel"))
    np.testing.assert_array_equal(modern.params["ip2"][0].data, net.params["ip2"][0].data)
    with pytest.raises(CaffeLiteError, match="phase"):
        caffe.Net(str(proto))


def test_copy_from_shape_mismatch_names_layer(tmp_path):
    make_net().save(str(tmp_path / "w.caffemodel"))
    other = make_net(MLP.replace("num_output: 5", "num_output: 6"))
    with pytest.raises(WeightsError) as info:
        other.copy_from(str(tmp_path / "w.caffemodel"))
    assert info.value.layer == "ip1" and "w.caffemodel" in str(info.value)


def test_truncated_or_foreign_weights(tmp_path):
    net = make_net()
    path = tmp_path / "w.caffemodel"
    net.save(str(path))
    data = path.read_bytes()
    (tmp_path / "cut.caffemodel").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="cut.caffemodel"):
        net.copy_from(str(tmp_path / "cut.caffemodel"))
    (tmp_path / "text.caffemodel").write_bytes(b"this is not a caffemodel\n" * 10)
    with pytest.raises(ModelFileError):
        net.copy_from(str(tmp_path / "text.caffemodel"))


def test_unknown_types_are_listed_together():
    text = MLP + '''
layer { name: "a" type: "NoSuchLayer" bottom: "ip2" top: "a" }
layer { name: "b" type: "AlsoMissing" bottom: "a" top: "b" }
layer { name: "py" type: "Python" bottom: "b" top: "c" python_param { module: "evil" layer: "X" } }'''
    with pytest.raises(UnknownLayerError) as info:
        make_net(text)
    message = str(info.value)
    assert "NoSuchLayer" in message and "AlsoMissing" in message and "'evil'" in message
    assert "Convolution" in message            # the known types are listed


def test_missing_bottom_and_bad_in_place():
    with pytest.raises(NetError, match="unknown bottom") as info:
        make_net(MLP.replace('bottom: "ip1" top: "ip2"', 'bottom: "nope" top: "ip2"'))
    assert info.value.blob == "nope" and info.value.layer == "ip2"
    with pytest.raises(NetError, match="in place") as info:
        make_net(before_loss('layer { name: "ipx" type: "InnerProduct" bottom: "ip2" '
                             'top: "ip2" inner_product_param { num_output: 3 } }'))
    assert info.value.layer == "ipx"


def before_loss(extra):
    head, tail = MLP.split('layer { name: "loss"')
    return head + extra + '\nlayer { name: "loss"' + tail


def test_duplicate_producer():
    with pytest.raises(NetError, match="more than one layer"):
        make_net(before_loss('layer { name: "dup" type: "InnerProduct" bottom: "ip2" '
                             'top: "data" inner_product_param { num_output: 3 } }'))


def test_shared_params_sum_their_gradients():
    text = '''
layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "f" type: "InnerProduct" bottom: "a" top: "fa" param { name: "w" }
        inner_product_param { num_output: 2 bias_term: false weight_filler { type: "gaussian" } } }
layer { name: "g" type: "InnerProduct" bottom: "b" top: "gb" param { name: "w" }
        inner_product_param { num_output: 2 bias_term: false weight_filler { type: "gaussian" } } }
force_backward: true'''
    net = make_net(text)
    assert net.params["f"][0] is net.params["g"][0]
    assert len(net.learnable_params) == 1
    a, b = np.ones((2, 3)), np.full((2, 3), 2.0)
    net.forward(a=a, b=b)
    net.clear_param_diffs()
    net.backward(fa=np.ones((2, 2)), gb=np.ones((2, 2)))
    np.testing.assert_allclose(net.params["f"][0].diff, np.full((2, 3), 2 + 4))


def test_backward_is_skipped_for_layers_not_under_a_loss():
    net = make_net(MLP.replace('top: "loss" }', 'top: "loss" }\n'
                   'layer { name: "side" type: "InnerProduct" bottom: "data" top: "side" '
                   'inner_product_param { num_output: 2 } }'))
    need = dict(zip(net._layer_names, net.layer_need_backward))
    assert need["ip1"] and need["loss"] and not need["side"]


def test_gpu_mode_is_refused_clearly():
    caffe.set_mode_cpu()
    with pytest.raises(CaffeLiteError, match="CPU only"):
        caffe.set_mode_gpu()
    caffe.set_device(0)


def test_forward_all_batches_and_trims():
    net = make_net(MLP.split('layer { name: "loss"')[0].replace(
        'top: "data" top: "label"', 'top: "data"').replace(
        'shape { dim: 4 dim: 3 } shape { dim: 4 }', 'shape { dim: 4 dim: 3 }'), caffe.TEST)
    x = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    out = net.forward_all(data=x)["ip2"]
    assert out.shape == (10, 3)
    single = net.forward(data=x[4:8])["ip2"]
    np.testing.assert_allclose(out[4:8], single, rtol=1e-6)


def test_save_round_trip_and_reshape(tmp_path):
    net = make_net()
    net.save(str(tmp_path / "a.caffemodel"))
    net2 = make_net()
    net2.copy_from(str(tmp_path / "a.caffemodel"))
    for name in net.params:
        for p, q in zip(net.params[name], net2.params[name]):
            np.testing.assert_array_equal(p.data, q.data)
    net.blobs["data"].reshape(7, 3)
    net.blobs["label"].reshape(7)
    net.reshape()
    assert net.blobs["ip2"].shape == (7, 3)


def test_a_loss_layer_without_top_still_trains():
    net = make_net(MLP.replace('bottom: "label" top: "loss" }', 'bottom: "label" }'))
    assert net.outputs == [] and net.layer_need_backward[-1]
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    assert net.forward_range() == net.forward_range()
    net.blobs["data"].data[...] = x
    net.forward_backward()
    assert net.params["ip1"][0].diff.any()


def test_wrong_number_of_bottoms_names_the_layer():
    from caffe_lite.errors import LayerError
    with pytest.raises(LayerError, match="exactly 2 bottom") as info:
        make_net(MLP.replace('bottom: "ip2" bottom: "label" top: "loss"',
                             'bottom: "ip2" top: "loss"'))
    assert info.value.layer == "loss" and info.value.layer_type == "SoftmaxWithLoss"
