"""InnerProduct: against the loop reference in ref_conv.py, float64 numerical
gradients (axis, transpose, no bias), accumulation, errors."""
import numpy as np
import pytest
from layer_case import LayerCase, proto, rand, setup_layer
from ref_conv import ref_inner_product

from caffe_lite import CaffeLiteError

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "uniform" min: -1 max: 1 }'


def ip(params):
    return proto("InnerProduct", f"inner_product_param {{ {params} {FILL} }}", name="ip")


CASES = [
    ("num_output: 4", (3, 2, 2, 3), {}),
    ("num_output: 3 axis: 2", (2, 3, 4, 2), dict(axis=2)),
    ("num_output: 5 transpose: true", (3, 6), dict(transpose=True)),
    ("num_output: 3 axis: -1 bias_term: false", (2, 3, 6), dict(axis=2)),
    ("num_output: 2 axis: 0 transpose: true", (2, 3), dict(axis=0, transpose=True)),
]


@pytest.mark.parametrize("params,shape,kw", CASES)
def test_matches_loops_and_gradient(params, shape, kw):
    def reference(x, w, b=None):
        K = int(np.prod(shape[kw.get("axis", 1):]))
        N = w.shape[1] if kw.get("transpose") else w.shape[0]
        assert w.shape == ((K, N) if kw.get("transpose") else (N, K))
        return ref_inner_product(x, w, b, **kw)

    case = LayerCase(ip(params), [shape], reference=reference, forward_atol=1e-5)
    case.check_forward()
    case.check_gradient()


def test_weight_shapes_and_accumulation():
    layer, bottom, top = setup_layer(ip("num_output: 4 transpose: true"), [rand(2, 3, 5)])
    assert [b.shape for b in layer.blobs] == [(15, 4), (4,)]
    layer.run_forward(bottom, top)
    top[0].diff[...] = rand(2, 4, seed=1)
    layer.backward(top, [False], bottom)
    once = [b.diff.copy() for b in layer.blobs]
    layer.backward(top, [False], bottom)
    for blob, first in zip(layer.blobs, once):
        np.testing.assert_allclose(blob.diff, 2 * first)
    assert (bottom[0].diff == 0).all()


def test_errors():
    with pytest.raises(CaffeLiteError, match="num_output"):
        setup_layer(ip(""), [rand(2, 3)])
    layer, bottom, top = setup_layer(ip("num_output: 2"), [rand(2, 3, 4)])
    bottom[0].reshape(5, 12)
    layer.reshape(bottom, top)                   # same K: a new batch size is fine
    assert top[0].shape == (5, 2)
    bottom[0].reshape(2, 3, 5)
    with pytest.raises(CaffeLiteError, match="layer 'ip'.*made for 12"):
        layer.reshape(bottom, top)
