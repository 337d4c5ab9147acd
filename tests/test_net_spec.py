"""NetSpec (caffe.NetSpec, caffe.layers, caffe.params) gives the NetParameter
that pycaffe gives for the same script.

The expected layers below are what BVLC pycaffe's own net_spec.py printed for
these exact scripts (run once against this schema), one layer per line.
"""
import pytest
from google.protobuf import text_format

import caffe_lite as caffe
from caffe_lite import layers as L
from caffe_lite import params as P
from caffe_lite.errors import CaffeLiteError
from caffe_lite.formats import read_net_param
from caffe_lite.proto import caffe_pb2


def _net(text):
    net = caffe_pb2.NetParameter()
    for line in text.strip().splitlines():
        text_format.Parse(line, net.layer.add())
    return net


def lenet(lmdb, batch_size):
    """The LeNet of the "Learning LeNet" notebook."""
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=batch_size, backend=P.Data.LMDB, source=lmdb,
                             transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50,
                            weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


LENET = r'''
name: "data" type: "Data" top: "data" top: "label" transform_param { scale: 0.003921569 } data_param { source: "lmdb" batch_size: 64 backend: LMDB }
name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } }
name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 }
name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: "xavier" } }
name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 }
name: "fc1" type: "InnerProduct" bottom: "pool2" top: "fc1" inner_product_param { num_output: 500 weight_filler { type: "xavier" } }
name: "relu1" type: "ReLU" bottom: "fc1" top: "fc1"
name: "score" type: "InnerProduct" bottom: "fc1" top: "score" inner_product_param { num_output: 10 weight_filler { type: "xavier" } }
name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
'''


def mixed():
    """Two-top Pooling, Deconvolution, Crop, Silence (ntop=0), include/exclude
    rules, anonymous in-place and multi-top layers."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=[dict(dim=[2, 3, 16, 16])])
    n.label = L.Input(shape=dict(dim=[2, 1, 16, 16]), include=dict(phase=caffe.TRAIN))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=3, pad=1,
                           param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)],
                           weight_filler=dict(type='gaussian', std=0.01),
                           bias_filler=dict(type='constant'))
    n.pool, n.mask = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=2, stride=2, ntop=2)
    up = L.Deconvolution(n.pool, convolution_param=dict(
        num_output=4, kernel_size=4, stride=2, bias_term=False,
        weight_filler=dict(type='bilinear')), param=[dict(lr_mult=0)])
    n.crop = L.Crop(up, n.data, axis=2, offset=[1])
    relu = L.ReLU(n.crop, in_place=True)
    n.score = L.Convolution(relu, num_output=2, kernel_size=1)
    n.silence = L.Silence(n.mask, ntop=0)
    n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(ignore_label=255, normalize=False),
                               include=[dict(phase=caffe.TRAIN)], loss_weight=2)
    n.acc = L.Accuracy(n.score, n.label, exclude={'phase': caffe.TRAIN, 'stage': ['a', 'b']},
                       top_k=1)
    s1, s2, s3 = L.Slice(n.score, ntop=3, slice_param=dict(axis=1, slice_point=[1, 2]))
    n.cat = L.Concat(s1, s3, s2, axis=1)
    n.sil2 = L.Silence(n.cat, ntop=0)
    return n.to_proto()


MIXED = r'''
name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 16 dim: 16 } }
name: "label" type: "Input" top: "label" include { phase: TRAIN } input_param { shape { dim: 2 dim: 1 dim: 16 dim: 16 } }
name: "conv" type: "Convolution" bottom: "data" top: "conv" param { lr_mult: 1.0 decay_mult: 1.0 } param { lr_mult: 2.0 decay_mult: 0.0 } convolution_param { num_output: 4 pad: 1 kernel_size: 3 weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" } }
name: "pool" type: "Pooling" bottom: "conv" top: "pool" top: "mask" pooling_param { pool: MAX kernel_size: 2 stride: 2 }
name: "Deconvolution1" type: "Deconvolution" bottom: "pool" top: "Deconvolution1" param { lr_mult: 0.0 } convolution_param { num_output: 4 bias_term: false kernel_size: 4 stride: 2 weight_filler { type: "bilinear" } }
name: "crop" type: "Crop" bottom: "Deconvolution1" bottom: "data" top: "crop" crop_param { axis: 2 offset: 1 }
name: "ReLU1" type: "ReLU" bottom: "crop" top: "crop"
name: "score" type: "Convolution" bottom: "crop" top: "score" convolution_param { num_output: 2 kernel_size: 1 }
name: "silence" type: "Silence" bottom: "mask"
name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" loss_weight: 2.0 include { phase: TRAIN } loss_param { ignore_label: 255 normalize: false }
name: "acc" type: "Accuracy" bottom: "score" bottom: "label" top: "acc" exclude { phase: TRAIN stage: "a" stage: "b" } accuracy_param { top_k: 1 }
name: "Slice1" type: "Slice" bottom: "score" top: "Slice1" top: "Slice2" top: "Slice3" slice_param { slice_point: 1 slice_point: 2 axis: 1 }
name: "cat" type: "Concat" bottom: "Slice1" bottom: "Slice3" bottom: "Slice2" top: "cat" concat_param { axis: 1 }
name: "sil2" type: "Silence" bottom: "cat"
'''


def anonymous():
    """to_proto(*tops) without a NetSpec: every name is automatic."""
    x = L.Input(shape=dict(dim=[1, 2, 3]))
    a = L.ReLU(x)
    b = L.ReLU(x, in_place=True)
    c = L.Eltwise(a, b, operation=P.Eltwise.SUM)
    s = L.Sigmoid(c, name='named')
    return caffe.to_proto(s, L.TanH(a))


ANONYMOUS = r'''
name: "Input1" type: "Input" top: "Input1" input_param { shape { dim: 1 dim: 2 dim: 3 } }
name: "ReLU1" type: "ReLU" bottom: "Input1" top: "ReLU1"
name: "ReLU2" type: "ReLU" bottom: "Input1" top: "Input1"
name: "Eltwise1" type: "Eltwise" bottom: "ReLU1" bottom: "Input1" top: "Eltwise1" eltwise_param { operation: SUM }
name: "named" type: "Sigmoid" bottom: "Eltwise1" top: "Sigmoid1"
name: "TanH1" type: "TanH" bottom: "ReLU1" top: "TanH1"
'''

CASES = [(lambda: lenet('lmdb', 64), LENET), (mixed, MIXED), (anonymous, ANONYMOUS)]


@pytest.mark.parametrize("build,expected", CASES, ids=["lenet", "mixed", "anonymous"])
def test_same_net_parameter_as_pycaffe(build, expected):
    assert build() == _net(expected)


@pytest.mark.parametrize("build,expected", CASES, ids=["lenet", "mixed", "anonymous"])
def test_prototxt_text_reads_back(build, expected, tmp_path):
    net = build()
    again = text_format.Parse(str(net), caffe_pb2.NetParameter())
    assert again == net
    path = tmp_path / "net.prototxt"
    path.write_text(str(net))
    assert read_net_param(str(path)) == net


def test_top_to_proto_and_net_from_spec():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3]))
    assert n.data.to_proto().layer[0].top == ["Input1"]     # automatic, as pycaffe
    assert n.to_proto().layer[0].top == ["data"]
    assert 'data' in n and n['data'] is n.data
    net = caffe.Net(n.to_proto(), caffe.TEST)
    assert net.blobs['data'].shape == (2, 3)


def test_enums_and_string_values():
    assert P.Pooling.AVE == caffe_pb2.PoolingParameter.AVE
    assert P.Eltwise.MAX == caffe_pb2.EltwiseParameter.MAX
    top = L.Pooling(L.Input(), pool='AVE', kernel_size=3)
    assert top.to_proto().layer[1].pooling_param.pool == caffe_pb2.PoolingParameter.AVE


def test_deep_chain_does_not_recurse():
    x = L.Input(shape=dict(dim=[1]))
    for _ in range(3000):
        x = L.ReLU(x)
    assert len(x.to_proto().layer) == 3001


def test_unknown_keyword_is_reported_at_to_proto_naming_layer_type_and_names():
    n = caffe.NetSpec()
    n.data = L.Input()
    n.conv = L.Convolution(n.data, kernel=3)       # kept as given, like pycaffe
    assert n.conv.fn.params == {"kernel": 3}
    with pytest.raises(CaffeLiteError) as info:
        n.to_proto()
    message = str(info.value)
    assert "layer 'conv'" in message and "Convolution" in message and "'kernel'" in message
    for name in ("kernel_size", "num_output", "weight_filler", "loss_weight", "include"):
        assert name in message
    assert isinstance(info.value, AttributeError)      # what pycaffe raises


def test_deconvolution_takes_convolution_keywords_either_way():
    flat = L.Deconvolution(L.Input(), num_output=10, kernel_size=4, stride=2)
    nested = L.Deconvolution(L.Input(), convolution_param=dict(
        num_output=10, kernel_size=4, stride=2))
    for top in (flat, nested):
        layer = top.to_proto().layer[-1]
        assert layer.convolution_param.num_output == 10
        assert list(layer.convolution_param.kernel_size) == [4]
        assert list(layer.convolution_param.stride) == [2]


def test_losses_take_loss_param_keywords_flat():
    layer = L.SoftmaxWithLoss(L.Input(), L.Input(), ignore_label=255,
                              axis=1).to_proto().layer[-1]
    assert layer.loss_param.ignore_label == 255 and layer.softmax_param.axis == 1


@pytest.mark.parametrize("call, pattern", [
    (lambda: L.Convolution(L.Input(), weight_filler=dict(typ='xavier')),
     r"FillerParameter has no field 'typ'"),
    (lambda: L.Convolution(L.Input(), num_output='many'), r"num_output"),
    (lambda: L.Convolution(L.Input(), weight_filler='xavier'), r"give it as a dict"),
])
def test_bad_nested_and_bad_values(call, pattern):
    top = call()
    with pytest.raises(CaffeLiteError, match=pattern):
        top.to_proto()


def test_bad_enum_value_names_the_valid_ones():
    with pytest.raises(CaffeLiteError, match=r"Pooling.*no value 'MAXX'.*MAX"):
        _ = P.Pooling.MAXX


def test_inputs_must_be_tops():
    with pytest.raises(CaffeLiteError, match=r"^ReLU input 0 is not a Top "
                       r"\(type is <class 'tuple'>\)$") as info:
        L.ReLU(L.Slice(L.Input(), ntop=2))
    assert isinstance(info.value, TypeError)           # what pycaffe raises
    with pytest.raises(AttributeError, match=r"no top named 'conv9'"):
        _ = caffe.NetSpec().conv9
