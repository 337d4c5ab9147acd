"""Input and Split: the layers the net itself inserts or relies on."""
import numpy as np
import pytest
from layer_case import LayerCase, proto, rand, setup_layer

from caffe_lite.errors import LayerError


def test_split_copies_forward_and_sums_backward():
    x = rand(2, 3, 4)
    split = proto("Split", bottoms=("x",), tops=("a", "b", "c"))
    case = LayerCase(split, [x], reference=lambda x: [x, x, x], forward_rtol=0, forward_atol=0)
    case.check_forward()
    diffs = [np.full(x.shape, k + 1.0) for k in range(3)]
    _, (dx,), _ = case.run(diffs)
    expected = np.zeros_like(x)
    for d in diffs:                    # loop reference: elementwise sum of the tops
        expected = expected + d
    np.testing.assert_array_equal(dx, expected)


def test_split_gradient():
    LayerCase(proto("Split", tops=("a", "b")), [(3, 5)], seed=1).check_gradient()


def test_input_shapes_one_per_top_or_shared():
    def inputs(shapes, tops=("a", "b")):
        return proto("Input", f"input_param {{ {shapes} }}", name="in", bottoms=(), tops=tops)

    _, _, top = setup_layer(inputs("shape { dim: 2 dim: 3 } shape { dim: 4 }"), [])
    assert [t.shape for t in top] == [(2, 3), (4,)]
    _, _, top = setup_layer(inputs("shape { dim: 5 }"), [])
    assert [t.shape for t in top] == [(5,), (5,)]
    with pytest.raises(LayerError, match="shapes"):
        setup_layer(inputs("shape { dim: 1 } shape { dim: 2 }", ("a", "b", "c")), [])
