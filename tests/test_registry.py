"""The layer registry holds every layer type of upstream BVLC Caffe (the
REGISTER_LAYER_CLASS / REGISTER_LAYER_CREATOR uses in caffe/src/caffe/layers), plus
the fork types this project supports. Listed explicitly, so that a broken registry
(a module no longer imported, a renamed type) fails here even if every test that
needs the type were to be skipped."""
import pytest
from layer_case import assert_registered, make_layer, proto

from caffe_lite import Layer
from caffe_lite.errors import UnknownLayerError
from caffe_lite.layers.base import layer_class, layer_types

UPSTREAM = """
    AbsVal Accuracy ArgMax BatchNorm BatchReindex Bias BNLL Clip Concat ContrastiveLoss
    Convolution Crop Data Deconvolution Dropout DummyData Eltwise ELU Embed EuclideanLoss
    Exp Filter Flatten HDF5Data HDF5Output HingeLoss Im2col ImageData InfogainLoss
    InnerProduct Input Log LRN LSTM LSTMUnit MemoryData MultinomialLogisticLoss MVN
    Parameter Pooling Power PReLU Python Reduction ReLU Reshape RNN Scale Sigmoid
    SigmoidCrossEntropyLoss Silence Slice Softmax SoftmaxWithLoss Split SPP Swish TanH
    Threshold Tile WindowData""".split()
FORKS = ["BN", "Interp", "Unpooling", "Upsample",    # SegNet/ENet/DeconvNet, PSPNet/DeepLab
         "DetectionOutput", "Normalize", "Permute", "PriorBox",          # SSD
         "AnnotatedData", "DetectionEvaluate", "MultiBoxLoss",
         "MatWrite", "MatRead",                                          # DeepLab
         "ParseOutput", "ParseEvaluate", "UnPooling",                    # ParseNet
         "WindowSegData"]                                                # DeconvNet


def test_the_expected_list_is_whole():
    assert len(UPSTREAM) == len(set(UPSTREAM)) == 61


def test_every_upstream_caffe_type_is_registered():
    assert_registered(UPSTREAM)


def test_the_fork_types_are_registered():
    assert_registered(FORKS)


def test_every_type_builds_a_layer_that_reports_it():
    """Caffe's type() is the registered name; every class takes the common contract."""
    for layer_type in UPSTREAM + FORKS:
        assert issubclass(layer_class(layer_type), Layer), layer_type
        if layer_type != "Python":          # it loads its module when built
            assert make_layer(proto(layer_type)).type == layer_type


def test_unknown_type_raises_and_lists_the_known_ones():
    with pytest.raises(UnknownLayerError) as info:
        make_layer(proto("NoSuchLayer"))
    assert "NoSuchLayer" in str(info.value) and "Convolution" in str(info.value)


def test_assert_registered_names_what_is_missing():
    with pytest.raises(AssertionError, match=r"\['NoSuchLayer'\]"):
        assert_registered(["ReLU", "NoSuchLayer"])
    assert set(UPSTREAM + FORKS) <= set(layer_types())
