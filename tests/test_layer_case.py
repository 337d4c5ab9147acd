"""The test base itself: a gradient checker that never fails checks nothing, so it
must catch a wrong bottom or parameter gradient and a wrong forward, and its kink
rule must be what makes a corner pass."""
import numpy as np
import pytest
from layer_case import LayerCase, proto

import caffe_lite as caffe


class WrongBottomGradient(caffe.Layer):
    """y = 2x, but backward says 2.001."""

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 2.001 * top[0].diff


class WrongParamGradient(caffe.Layer):
    """y = w * x with a scalar w, whose gradient forgets one element of x."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 1.5

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff
        self.blobs[0].diff[0] += (top[0].diff * bottom[0].data).ravel()[1:].sum()


def python_layer(cls):
    return proto("Python", f"python_param {{ module: 'test_layer_case' layer: '{cls}' }}")


def test_catches_a_wrong_bottom_gradient():
    with pytest.raises(AssertionError, match=r"gradient of bottom\[0\]"):
        LayerCase(python_layer("WrongBottomGradient"), [(2, 3)]).check_gradient()


def test_catches_a_wrong_param_gradient():
    case = LayerCase(python_layer("WrongParamGradient"), [(2, 3)])
    with pytest.raises(AssertionError, match=r"gradient of param\[0\]"):
        case.check_gradient()
    LayerCase(python_layer("WrongParamGradient"), [(2, 3)], check_params=False).check_gradient()


def test_catches_a_wrong_forward():
    case = LayerCase(proto("ReLU"), [(2, 3)], reference=lambda x: np.maximum(x, 0) * 1.001)
    with pytest.raises(AssertionError):
        case.check_forward()


def test_kink_points_are_skipped_as_in_caffe():
    """|x| at x = 1e-6: the central difference straddles the corner (0.1, not 1)."""
    x = np.array([[1e-6, -0.5, 0.7, 1.2]])
    with pytest.raises(AssertionError, match=r"at \(0, 0\)"):
        LayerCase(proto("AbsVal"), [x]).check_gradient()
    LayerCase(proto("AbsVal"), [x], kink=0, kink_range=1e-3).check_gradient()


def test_shapes_are_filled_from_the_seed():
    a = LayerCase(proto("ReLU"), [(2, 3)], seed=4).bottoms[0]
    b = LayerCase(proto("ReLU"), [(2, 3)], seed=4).bottoms[0]
    np.testing.assert_array_equal(a, b)
    assert LayerCase(proto("ReLU"), [(5,)], fill=(1, 2)).bottoms[0].min() >= 1
