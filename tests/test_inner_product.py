"""InnerProduct: against the loop reference in ref_conv.py, float64 numerical
gradients (axis, transpose, no bias), accumulation, errors."""
import numpy as np
import pytest
from gradcheck import check_gradient, setup_layer
from ref_conv import ref_inner_product

from caffe_lite import CaffeLiteError, set_random_seed

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "uniform" min: -1 max: 1 }'


def proto(params):
    return (f'name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
            f'inner_product_param {{ {params} {FILL} }}')


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


CASES = [
    ("num_output: 4", (3, 2, 2, 3), {}),
    ("num_output: 3 axis: 2", (2, 3, 4, 2), dict(axis=2)),
    ("num_output: 5 transpose: true", (3, 6), dict(transpose=True)),
    ("num_output: 3 axis: -1 bias_term: false", (2, 3, 6), dict(axis=2)),
    ("num_output: 2 axis: 0 transpose: true", (2, 3), dict(axis=0, transpose=True)),
]


@pytest.mark.parametrize("params,shape,kw", CASES)
def test_matches_loops(params, shape, kw):
    set_random_seed(0)
    x = rand(*shape).astype(np.float32)
    layer, bottom, top = setup_layer(proto(params), [x], dtype=np.float32)
    layer.run_forward(bottom, top)
    w = layer.blobs[0].data
    b = layer.blobs[1].data if len(layer.blobs) > 1 else None
    K, N = int(np.prod(shape[kw.get("axis", 1):])), top[0].shape[-1]
    assert w.shape == ((K, N) if kw.get("transpose") else (N, K))
    np.testing.assert_allclose(top[0].data, ref_inner_product(x, w, b, **kw), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("params,shape,kw", CASES)
def test_gradient(params, shape, kw):
    check_gradient(proto(params), [rand(*shape)])


def test_weight_shapes_and_accumulation():
    layer, bottom, top = setup_layer(proto("num_output: 4 transpose: true"), [rand(2, 3, 5)])
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
        setup_layer(proto(""), [rand(2, 3)])
    layer, bottom, top = setup_layer(proto("num_output: 2"), [rand(2, 3, 4)])
    bottom[0].reshape(5, 12)
    layer.reshape(bottom, top)                   # same K: a new batch size is fine
    assert top[0].shape == (5, 2)
    bottom[0].reshape(2, 3, 5)
    with pytest.raises(CaffeLiteError, match="layer 'ip'.*made for 12"):
        layer.reshape(bottom, top)
