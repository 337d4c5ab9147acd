"""Eltwise (PROD, SUM with coeff, MAX with Caffe's tie rule): naive loop
reference, float64 gradient checks, errors."""
import numpy as np
import pytest
from layer_case import LayerCase, forward, proto, setup_layer
from ref_shape import ref_eltwise, ref_eltwise_backward

from caffe_lite.errors import LayerError


def eltwise_text(params="", n=3):
    return proto("Eltwise", f"eltwise_param {{ {params} }}", name="e",
                 bottoms=[f"x{i}" for i in range(n)])


CASES = [("operation: PROD", "PROD", None), ("operation: SUM", "SUM", None),
         ("operation: SUM coeff: 1 coeff: -0.5 coeff: 2", "SUM", [1, -0.5, 2]),
         ("operation: MAX", "MAX", None),
         ("operation: PROD stable_prod_grad: false", "PROD", None)]


@pytest.mark.parametrize("params, op, coeffs", CASES)
@pytest.mark.parametrize("integers", [False, True])
def test_forward_backward_against_reference(params, op, coeffs, integers):
    # integer data makes exact ties everywhere for MAX (and keeps PROD away from 0)
    shape, rng = (2, 3, 4), np.random.default_rng(3)
    xs = [(rng.integers(1, 4, shape) * rng.choice([-1, 1], shape) if integers
           else rng.standard_normal(shape)).astype(np.float32) for _ in range(3)]

    def reference(*xs):
        expect = ref_eltwise(op, xs, coeffs)
        return expect[0] if op == "MAX" else expect

    case = LayerCase(eltwise_text(params), xs, reference=reference, forward_rtol=1e-6)
    case.check_forward()
    layer, bottom, top = case.setup(np.float32)
    layer.run_forward(bottom, top)
    dy = rng.standard_normal(shape).astype(np.float32)
    top[0].diff[...] = dy
    for b in bottom:
        b.diff[...] = 7                       # stale diffs are overwritten
    layer.backward(top, [True] * 3, bottom)
    for b, g in zip(bottom, ref_eltwise_backward(op, xs, dy, coeffs)):
        np.testing.assert_allclose(b.diff, g, rtol=1e-5, atol=1e-6)


def test_max_tie_rule():
    a = np.array([1, 2, 3, 3], np.float32)
    b = np.array([1, 1, 3, 4], np.float32)
    c = np.array([1, 2, 3, 4], np.float32)
    layer, bottom, top = setup_layer(eltwise_text("operation: MAX"), [a, b, c],
                                     dtype=np.float32)
    layer.run_forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True] * 3, bottom)
    # a tie between bottoms 0 and 1 goes to 1; a later bottom needs to be strictly greater
    np.testing.assert_array_equal([b.diff for b in bottom],
                                  [[0, 1, 0, 0], [1, 0, 1, 1], [0, 0, 0, 0]])


@pytest.mark.parametrize("params", ["operation: PROD", "operation: PROD stable_prod_grad: false",
                                    "operation: SUM coeff: 0.3 coeff: -2 coeff: 1",
                                    "operation: MAX"])
def test_gradient(params):
    rng = np.random.default_rng(4)
    xs = [rng.uniform(0.5, 2, (2, 3)) * rng.choice([-1, 1], (2, 3)) for _ in range(3)]
    LayerCase(eltwise_text(params), xs).check_gradient()


def test_two_bottom_prod_gradient():
    LayerCase(eltwise_text("operation: PROD", 2), [(3, 2), (3, 2)], seed=5).check_gradient()


@pytest.mark.parametrize("params, shapes, match", [
    ("coeff: 1 coeff: 2", [(2,)] * 3, "one per bottom"),
    ("operation: PROD coeff: 1 coeff: 1 coeff: 1", [(2,)] * 3, "only allowed with"),
    ("", [(2,), (2,), (3,)], "bottom shapes differ")])
def test_errors(params, shapes, match):
    with pytest.raises(LayerError, match=match):
        forward(eltwise_text(params), [np.zeros(s, np.float32) for s in shapes])
