"""Reduction and ArgMax: naive loop references, float64 gradient checks, shapes,
ties and errors."""
import numpy as np
import pytest
from layer_case import LayerCase, forward, proto, setup_layer
from ref_shape import ref_argmax, ref_reduction

from caffe_lite.errors import LayerError


def reduction_text(op, axis=None, coeff=None):
    extra = (f" axis: {axis}" if axis is not None else "") + \
        (f" coeff: {coeff}" if coeff is not None else "")
    return proto("Reduction", f"reduction_param {{ operation: {op}{extra} }}", name="r")


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("axis, coeff", [(None, None), (1, 0.5), (-1, 2.0), (2, -1.5)])
def test_reduction_against_reference(op, axis, coeff):
    LayerCase(reduction_text(op, axis, coeff), [(2, 3, 4)], seed=11, forward_atol=1e-5,
              reference=lambda x: ref_reduction(x, op, 0 if axis is None else axis,
                                                1.0 if coeff is None else coeff)).check_forward()


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
def test_reduction_gradient(op):
    # ASUM has a kink at 0, as ReLU
    LayerCase(reduction_text(op, 1, 0.7), [(2, 3, 2)], seed=12, kink=0,
              kink_range=1e-3).check_gradient()
    LayerCase(reduction_text(op), [(3, 2)], seed=13, kink=0, kink_range=1e-3).check_gradient()


def test_reduction_axis_out_of_range():
    with pytest.raises(LayerError, match="axis 3 is out of range"):
        forward(reduction_text("SUM", 3), [np.zeros((2, 3), np.float32)])


def argmax_text(top_k=1, out_max_val=False, axis=None):
    extra = f" axis: {axis}" if axis is not None else ""
    return proto("ArgMax", f"argmax_param {{ top_k: {top_k} "
                           f"out_max_val: {str(out_max_val).lower()}{extra} }}", name="a")


@pytest.mark.parametrize("shape, top_k, out_max_val, axis, out_shape", [
    ((3, 4, 2, 2), 1, False, None, (3, 1, 1, 1)),
    ((3, 4, 2, 2), 3, True, None, (3, 2, 3, 1)),
    ((3, 5), 2, False, None, (3, 1, 2)),
    ((3, 5), 2, True, None, (3, 2, 2)),
    ((2, 4, 3, 2), 2, False, 1, (2, 2, 3, 2)),
    ((2, 4, 3, 2), 1, True, 1, (2, 1, 3, 2)),
    ((2, 3, 5), 3, True, -1, (2, 3, 3)),
    ((4, 3), 2, False, 0, (2, 3))])
@pytest.mark.parametrize("integers", [False, True])
def test_argmax_against_reference(shape, top_k, out_max_val, axis, out_shape, integers):
    rng = np.random.default_rng(14)
    x = (rng.integers(0, 3, shape) if integers else rng.standard_normal(shape)
         ).astype(np.float32)
    (y,) = LayerCase(argmax_text(top_k, out_max_val, axis), [x], forward_rtol=0, forward_atol=0,
                     reference=lambda x: ref_argmax(x, top_k, out_max_val, axis)).check_forward()
    assert y.shape == out_shape


def test_argmax_ties_prefer_the_larger_index():
    x = np.array([[1, 3, 3, 0, 3]], np.float32)
    y, = forward(argmax_text(top_k=3, out_max_val=True), [x])
    np.testing.assert_array_equal(y[0], [[4, 2, 1], [3, 3, 3]])


def test_argmax_has_no_backward_and_checks_top_k():
    layer, _, _ = setup_layer(argmax_text(), [np.zeros((2, 3))])
    assert not layer.has_backward
    with pytest.raises(LayerError, match="top_k 4 is larger"):
        forward(argmax_text(top_k=4, axis=1), [np.zeros((2, 3), np.float32)])
