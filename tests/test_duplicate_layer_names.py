"""Layers that share a name: Caffe runs such nets, and so do we, with a warning
naming them. Weights go to the first layer of a name (Caffe's
CopyTrainedLayersFrom), and pycaffe's name-keyed views follow pycaffe's own
construction (an OrderedDict built in layer order)."""
import warnings

import numpy as np
import pytest

import caffe_lite as caffe
from caffe_lite.errors import DuplicateLayerNameWarning, UnknownLayerError
from caffe_lite.formats import parse_net_param

NET = """name: "dup"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "a"
        inner_product_param { num_output: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "a" top: "b"
        inner_product_param { num_output: 4 } }
"""


def build():
    with pytest.warns(DuplicateLayerNameWarning, match=r"more than once: ip"):
        return caffe.Net(parse_net_param(NET), caffe.TEST)


def test_the_net_builds_runs_and_warns_once():
    net = build()
    assert net.forward(data=np.ones((1, 3)))["b"].shape == (1, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        caffe.Net(parse_net_param(NET.replace('name: "ip" type: "InnerProduct" bottom: "a"',
                                              'name: "ip2" type: "InnerProduct" bottom: "a"')),
                  caffe.TEST)
    assert not [w for w in caught if issubclass(w.category, DuplicateLayerNameWarning)]


def test_pycaffe_views_keep_the_first_position_and_the_last_layer():
    net = build()
    assert list(net.params) == ["ip"] and list(net.layer_dict) == ["data", "ip"]
    assert net.params["ip"][0].data.shape == (4, 2)           # the last 'ip'
    assert net.layer_dict["ip"] is net.layers[2]
    assert net._layer_names == ["data", "ip", "ip"]


def test_weights_go_to_the_first_layer_of_the_name(tmp_path):
    source = caffe.Net(parse_net_param(NET.replace(
        'name: "ip" type: "InnerProduct" bottom: "a"', 'name: "other" type: '
        '"InnerProduct" bottom: "a"')), caffe.TEST)
    source.params["ip"][0].data[...] = 7.0
    source.save(str(tmp_path / "w.caffemodel"))
    net = build()
    net.copy_from(str(tmp_path / "w.caffemodel"))
    assert (net.layers[1].blobs[0].data == 7.0).all()
    assert not (net.layers[2].blobs[0].data == 7.0).all()


def test_the_zoo_fcn_deploy_gets_as_far_as_its_geometric_crop(zoo_path):
    with pytest.raises(UnknownLayerError) as info:
        caffe.Net(str(zoo_path("deconvnet/FCN_fcn-8s-pascal-deploy.prototxt")), caffe.TEST)
    message = str(info.value)
    assert message.count("(type 'GeometricCrop')") == 3
    assert "computed its offsets from the net's geometry" in message
    assert "cannot build 3 layer(s)" in message
