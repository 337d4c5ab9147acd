"""Python layers: user classes in a module of their own, built only when allowed
(in the spirit of Caffe's python/caffe/test/test_python_layer.py)."""
import textwrap

import numpy as np
import pytest
from layer_case import LayerCase, proto

import caffe_lite as caffe
from caffe_lite.errors import CaffeLiteError, LayerError, UnknownLayerError
from caffe_lite.formats import parse_net_param

MODULE = textwrap.dedent('''
    import caffe_lite as caffe


    class TimesTen(caffe.Layer):
        """Multiplies by ten."""

        def setup(self, bottom, top):
            self.seen_param_str = self.param_str

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            top[0].data[...] = 10 * bottom[0].data

        def backward(self, top, propagate_down, bottom):
            bottom[0].diff[...] = 10 * top[0].diff


    class WithParam(caffe.Layer):
        def setup(self, bottom, top):
            self.blobs.add_blob(1)
            self.blobs[0].data[0] = 0

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            top[0].data[...] = bottom[0].data + self.blobs[0].data[0]

        def backward(self, top, propagate_down, bottom):
            self.blobs[0].diff[0] += top[0].diff.sum()
            if propagate_down[0]:
                bottom[0].diff[...] = top[0].diff


    class Phase(caffe.Layer):
        has_backward = False

        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            top[0].reshape()

        def forward(self, bottom, top):
            top[0].data[()] = self.phase


    class Failing(caffe.Layer):
        def setup(self, bottom, top):
            raise RuntimeError("setup failed on purpose")


    NotALayer = object
''')


def layer(name, cls, bottom="data", top=None, extra=""):
    top = top or name
    return (f"layer {{ type: 'Python' name: '{name}' bottom: '{bottom}' top: '{top}' "
            f"python_param {{ module: 'pylayers_under_test' layer: '{cls}' {extra} }} }}")


def net_text(*layers):
    return ("name: 'pythonnet' force_backward: true "
            "input: 'data' input_shape { dim: 10 dim: 9 dim: 8 } " + " ".join(layers))


@pytest.fixture(autouse=True)
def user_module(tmp_path, monkeypatch):
    (tmp_path / "pylayers_under_test.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    import sys
    sys.modules.pop("pylayers_under_test", None)


def build(text, phase=caffe.TRAIN, allow=True):
    return caffe.Net(parse_net_param(text), phase, allow_python_layers=allow)


def three_layer_net():
    return build(net_text(layer("one", "TimesTen"), layer("two", "TimesTen", "one"),
                          layer("three", "TimesTen", "two",
                                extra="param_str: 'hello'")))


def test_forward_backward_through_three_layers():
    net = three_layer_net()
    net.blobs["data"].data[...] = 8
    net.forward()
    assert np.all(net.blobs["three"].data == 8000)
    net.blobs["three"].diff[...] = 7
    net.backward()
    assert np.all(net.blobs["data"].diff == 7000)
    assert net.layer_dict["three"].seen_param_str == "hello"
    assert net.layer_dict["one"].type == "Python"


def test_reshape_follows_the_input():
    net = three_layer_net()
    net.blobs["data"].reshape(4, 4, 4, 4)
    net.forward()
    assert all(blob.shape == (4, 4, 4, 4) for blob in net.blobs.values())


def test_refused_unless_allowed_naming_the_module():
    with pytest.raises(UnknownLayerError, match="pylayers_under_test"):
        build(net_text(layer("one", "TimesTen")), allow=False)


def test_in_place():
    net = build(net_text(layer("one", "TimesTen", "data", "data")))
    net.blobs["data"].data[...] = 2
    net.forward()
    assert np.all(net.blobs["data"].data == 20)


def test_parameter_blobs_save_load_and_share(tmp_path):
    text = net_text(layer("layer", "WithParam"))
    net = build(text)
    net.forward()
    net.backward()
    blob = net.params["layer"][0]
    assert blob.data[0] == 0 and blob.diff[0] == 0      # no loss: zero top diff
    net.blobs["layer"].diff[...] = 1
    net.backward()
    assert blob.diff[0] == 10 * 9 * 8
    blob.data[0] = 1
    path = tmp_path / "w.caffemodel"
    net.save(str(path))
    blob.data[0] = -1
    net.copy_from(str(path))
    assert blob.data[0] == 1
    other = build(text)
    other.share_with(net)
    assert other.params["layer"][0].data[0] == 1


def test_phase_and_no_backward():
    text = "name: 'p' layer { type: 'Python' name: 'layer' top: 'phase' " \
           "python_param { module: 'pylayers_under_test' layer: 'Phase' } }"
    for phase in (caffe.TRAIN, caffe.TEST):
        net = build(text, phase)
        assert net.forward()["phase"] == phase
        assert not net.layer_need_backward[0]


def test_exceptions_from_user_code_propagate():
    with pytest.raises(RuntimeError, match="on purpose"):
        build(net_text(layer("layer", "Failing")))


@pytest.mark.parametrize("module, cls, message", [
    ("no_such_module_xyz", "TimesTen", "cannot import .*no_such_module_xyz"),
    ("pylayers_under_test", "Missing", "no attribute 'Missing'"),
    ("pylayers_under_test", "NotALayer", "derived from caffe_lite.Layer"),
])
def test_bad_module_or_class_is_a_clear_error(module, cls, message):
    text = net_text(f"layer {{ type: 'Python' name: 'bad' bottom: 'data' top: 'out' "
                    f"python_param {{ module: '{module}' layer: '{cls}' }} }}")
    with pytest.raises(LayerError, match=message) as info:
        build(text)
    assert info.value.layer == "bad"
    assert isinstance(info.value, CaffeLiteError)


def test_gradient_check_and_forward():
    """A user layer goes through the same test base as the built-in ones."""
    for cls, reference in (("WithParam", None), ("TimesTen", lambda x: 10 * x)):
        case = LayerCase(proto("Python", f"python_param {{ module: 'pylayers_under_test' "
                                         f"layer: '{cls}' }}", name="p"), [(2, 3, 4)],
                         reference=reference)
        if reference:
            case.check_forward()
        case.check_gradient()
