"""Input and Split: the layers the net itself inserts or relies on."""
import numpy as np
import pytest
from gradcheck import check_gradient, setup_layer

from caffe_lite.errors import LayerError


def test_split_copies_forward_and_sums_backward():
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    layer, bottom, top = setup_layer('name: "s" type: "Split"', [x], num_top=3)
    layer.run_forward(bottom, top)
    for t in top:
        np.testing.assert_array_equal(t.data, x)
    diffs = [np.full(x.shape, k + 1.0) for k in range(3)]
    for t, d in zip(top, diffs):
        t.diff[...] = d
    layer.backward(top, [True], bottom)
    expected = np.zeros_like(x)
    for d in diffs:                    # loop reference: elementwise sum of the tops
        expected = expected + d
    np.testing.assert_array_equal(bottom[0].diff, expected)


def test_split_gradient():
    x = np.random.default_rng(1).normal(size=(3, 5))
    check_gradient('name: "s" type: "Split"', [x], num_top=2)


def test_input_shapes_one_per_top_or_shared():
    _, _, top = setup_layer('name: "in" type: "Input" top: "a" top: "b" '
                            'input_param { shape { dim: 2 dim: 3 } shape { dim: 4 } }', [])
    assert [t.shape for t in top] == [(2, 3), (4,)]
    _, _, top = setup_layer('name: "in" type: "Input" top: "a" top: "b" '
                            'input_param { shape { dim: 5 } }', [])
    assert [t.shape for t in top] == [(5,), (5,)]
    with pytest.raises(LayerError, match="shapes"):
        setup_layer('name: "in" type: "Input" top: "a" top: "b" top: "c" '
                    'input_param { shape { dim: 1 } shape { dim: 2 } }', [])
