"""Neuron layers (neuron.py, neuron_math.py, prelu.py): forward against the naive
references in ref_neuron.py, float64 gradient checks, Caffe's conventions at the
kinks, in-place use, Dropout's phases, and errors for bad parameters."""
import math

import numpy as np
import pytest
import ref_neuron as ref
from layer_case import LayerCase, forward, make_layer, proto, rand

from caffe_lite.blob import Blob
from caffe_lite.errors import CaffeLiteError
from caffe_lite.ops.libm import tanhf
from caffe_lite.proto import caffe_pb2

SHAPE = (2, 3, 3, 4)


def text(layer_type, params=""):
    return proto(layer_type, params, name="n")


def run_layer(layer_text, x, dy, in_place, phase=caffe_pb2.TEST, params=None, rng_seed=None):
    """(top data, bottom diff, param diffs) over separate blobs or one shared blob."""
    (y,), (dx,), dparams = LayerCase(layer_text, [x], phase=phase, params=params,
                                     rng_seed=rng_seed).run([dy], in_place=in_place)
    return y, dx, dparams


# (id, type, params, scalar reference, input range, kinks to avoid)
CASES = [
    ("relu", "ReLU", "", ref.relu, (-2, 2), (0,)),
    ("leaky", "ReLU", "relu_param { negative_slope: 0.1 }",
     lambda v: ref.relu(v, 0.1), (-2, 2), (0,)),
    ("sigmoid", "Sigmoid", "", ref.sigmoid, (-6, 6), ()),
    ("tanh", "TanH", "", math.tanh, (-3, 3), ()),
    ("absval", "AbsVal", "", abs, (-2, 2), (0,)),
    ("bnll", "BNLL", "", ref.bnll, (-4, 4), ()),
    ("clip", "Clip", "clip_param { min: -0.5 max: 0.8 }",
     lambda v: ref.clip(v, -0.5, 0.8), (-2, 2), (-0.5, 0.8)),
    ("elu", "ELU", "elu_param { alpha: 0.7 }", lambda v: ref.elu(v, 0.7), (-2, 2), (0,)),
    ("exp_e", "Exp", "exp_param { scale: 0.8 shift: 0.3 }",
     lambda v: ref.exp_layer(v, -1, 0.8, 0.3), (-2, 2), ()),
    ("exp_base", "Exp", "exp_param { base: 2 scale: 1.2 shift: -0.5 }",
     lambda v: ref.exp_layer(v, 2, 1.2, -0.5), (-2, 2), ()),
    ("log_e", "Log", "", math.log, (0.2, 3), ()),
    ("log_base", "Log", "log_param { base: 10 scale: 1.5 shift: 2 }",
     lambda v: ref.log_layer(v, 10, 1.5, 2), (-1, 2), ()),
    ("power_general", "Power", "power_param { power: 0.5 scale: 2 shift: 3 }",
     lambda v: ref.power(v, 0.5, 2, 3), (-1, 2), ()),
    ("power_no_shift", "Power", "power_param { power: 1.7 scale: 0.5 }",
     lambda v: ref.power(v, 1.7, 0.5), (0.2, 3), ()),
    ("power_square", "Power", "power_param { power: 2 scale: 0.5 shift: 1 }",
     lambda v: ref.power(v, 2, 0.5, 1), (-2, 2), ()),
    ("power_affine", "Power", "power_param { scale: -1.5 shift: 0.25 }",
     lambda v: ref.power(v, 1, -1.5, 0.25), (-2, 2), ()),
    ("power_zero", "Power", "power_param { power: 0 scale: 2 shift: 0.5 }",
     lambda v: 1.0, (-2, 2), ()),
    ("swish", "Swish", "", ref.swish, (-4, 4), ()),
    ("swish_beta", "Swish", "swish_param { beta: 1.7 }", lambda v: ref.swish(v, 1.7),
     (-4, 4), ()),
    ("threshold", "Threshold", "threshold_param { threshold: 0.3 }",
     lambda v: ref.threshold(v, 0.3), (-2, 2), (0.3,)),
    ("dropout_test", "Dropout", "dropout_param { dropout_ratio: 0.3 }", lambda v: v,
     (-2, 2), ()),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_gradient(case):
    """Uniform inputs over the whole range; the gradient check skips points next to
    the kinks as Caffe's GradientChecker does."""
    _, layer_type, params, fn, fill, kinks = case
    lc = LayerCase(text(layer_type, params), [SHAPE], fill=fill, seed=1, kink=kinks,
                   kink_range=0.05, reference=lambda x: ref.elementwise(fn, x),
                   forward_rtol=2e-6, forward_atol=1e-7)
    (y,) = lc.check_forward()
    assert y.dtype == np.float32 and y.shape == SHAPE
    if layer_type != "Threshold":                     # no backward, like Caffe
        lc.check_gradient()


IN_PLACE = [c for c in CASES if c[1] != "Threshold"] + [
    ("relu_negative_slope", "ReLU", "relu_param { negative_slope: -0.3 }", None,
     (-2, 2), (0,)),
    ("elu_negative_alpha", "ELU", "elu_param { alpha: -0.4 }", None, (-2, 2), (0,)),
    ("prelu", "PReLU", "prelu_param { filler { type: 'uniform' min: -1 max: 1 } }",
     None, (-2, 2), (0,)),
    ("prelu_shared", "PReLU", "prelu_param { channel_shared: true }", None, (-2, 2), (0,)),
]


@pytest.mark.parametrize("case", IN_PLACE, ids=[c[0] for c in IN_PLACE])
def test_in_place_equals_separate_blobs(case):
    _, layer_type, params, _, (low, high), avoid = case
    x = rand(*SHAPE, seed=3, low=low, high=high).astype(np.float32)
    dy = rand(*SHAPE, seed=4).astype(np.float32)
    layer_text = text(layer_type, params)
    slopes = None
    if layer_type == "PReLU":
        slopes = [np.random.default_rng(5).uniform(-1, 1, () if "shared" in params else 3)]
    apart = run_layer(layer_text, x, dy, False, params=slopes)
    same = run_layer(layer_text, x, dy, True, params=slopes)
    for a, b in zip(apart[:2], same[:2]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(apart[2], same[2]):
        np.testing.assert_array_equal(a, b)


# ---- Caffe's conventions where the function has a kink ------------------------

def backward_at(layer_type, params, values, dy=None):
    x = np.asarray(values, np.float32).reshape(1, -1)
    dy = np.ones_like(x) if dy is None else np.asarray(dy, np.float32).reshape(x.shape)
    return run_layer(text(layer_type, params), x, dy, False)[1].ravel()


def test_relu_gradient_at_zero_uses_the_slope():
    assert list(backward_at("ReLU", "", [-1, 0, 2])) == [0, 0, 1]
    np.testing.assert_allclose(
        backward_at("ReLU", "relu_param { negative_slope: 0.1 }", [-1, 0, 2]),
        [0.1, 0.1, 1])


def test_absval_gradient_is_zero_at_zero():
    assert list(backward_at("AbsVal", "", [-2, 0, 3], [5, 5, 5])) == [-5, 0, 5]


def test_clip_gradient_passes_at_both_bounds():
    grads = backward_at("Clip", "clip_param { min: -0.5 max: 0.8 }",
                        [-0.6, -0.5, 0, 0.8, 0.9], [2] * 5)
    assert list(grads) == [0, 2, 2, 2, 0]


def test_bnll_is_finite_for_large_inputs_and_clamps_its_gradient():
    x = np.array([[-200.0, -60.0, 0.0, 60.0, 200.0]], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = forward(text("BNLL"), [x])[0]
    # Caffe's log(1. + exp(x)) is 0 once exp(x) is below double precision
    np.testing.assert_allclose(y[0], [0, 0, math.log(2), 60, 200], rtol=1e-6)
    grads = backward_at("BNLL", "", x, [1] * 5)
    e50 = math.exp(50.0)
    np.testing.assert_allclose(grads, [0, math.exp(-60), 0.5, e50 / (e50 + 1),
                                       e50 / (e50 + 1)], rtol=1e-6, atol=1e-30)


def test_threshold_is_strict_and_has_no_backward():
    y = forward(text("Threshold", "threshold_param { threshold: 0.3 }"),
                [np.array([[0.29, 0.3, 0.31]], np.float32)])[0]
    assert list(y[0]) == [0, 0, 1]
    assert make_layer(text("Threshold")).has_backward is False


def test_power_special_cases():
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    # scale 0: a constant shift^power with zero gradient
    p = "power_param { power: 3 scale: 0 shift: 2 }"
    assert list(forward(text("Power", p), [x])[0][0]) == [8, 8, 8]
    assert list(backward_at("Power", p, x)) == [0, 0, 0]
    # power 1: affine, gradient = scale
    p = "power_param { scale: -1.5 shift: 0.25 }"
    np.testing.assert_allclose(backward_at("Power", p, x), [-1.5] * 3)


def test_tanh_rounds_like_glibc_tanhf():
    # values where tanhf (fdlibm) and the correctly rounded tanh differ by one ulp
    x = np.array([-0.9133196, 0.35487905, 2.0170906, -1.2386991], np.float32)
    expected = np.array([-0.7227218, 0.34069544, 0.9652153, -0.8450842], np.float32)
    np.testing.assert_array_equal(tanhf(x), expected)
    special = np.array([0, -0.0, np.inf, -np.inf, 30, 1e-30], np.float32)
    np.testing.assert_array_equal(tanhf(special), np.float32([0, -0.0, 1, -1, 1, 1e-30]))
    assert np.isnan(tanhf(np.float32([np.nan]))[0])


# ---- Dropout ------------------------------------------------------------------

def test_dropout_train_drops_and_rescales_with_a_repeatable_mask():
    x = np.ones((4, 50, 10), np.float32)
    dy = np.full(x.shape, 2, np.float32)
    layer_text = text("Dropout", "dropout_param { dropout_ratio: 0.25 }")
    y, dx, _ = run_layer(layer_text, x, dy, False, phase=caffe_pb2.TRAIN, rng_seed=7)
    kept = y != 0
    assert set(np.unique(y)) == {0, np.float32(1 / 0.75)}
    assert abs(kept.mean() - 0.75) < 0.03
    np.testing.assert_array_equal(dx, np.where(kept, np.float32(2 / 0.75), 0))
    again, _, _ = run_layer(layer_text, x, dy, True, phase=caffe_pb2.TRAIN, rng_seed=7)
    np.testing.assert_array_equal(again, y)


def test_dropout_fork_fields():
    x = np.ones((2, 100), np.float32)
    # Faster R-CNN's scale_train: false -> unscaled in TRAIN, times (1 - r) in TEST
    p = "dropout_param { dropout_ratio: 0.4 scale_train: false }"
    y, dx, _ = run_layer(text("Dropout", p), x, x, False, phase=caffe_pb2.TRAIN)
    assert set(np.unique(y)) == {0, 1} and set(np.unique(dx)) == {0, 1}
    y, dx, _ = run_layer(text("Dropout", p), x, x, False)
    np.testing.assert_allclose(y, 0.6, rtol=1e-6)
    np.testing.assert_allclose(dx, 0.6, rtol=1e-6)
    # Bayesian SegNet's sample_weights_test: dropout in TEST too
    p = "dropout_param { sample_weights_test: true }"
    y = run_layer(text("Dropout", p), x, x, False)[0]
    assert set(np.unique(y)) == {0, 2}


# ---- PReLU ----------------------------------------------------------------------

@pytest.mark.parametrize("shape,shared", [((2, 3, 2, 3), False), ((2, 3, 2, 3), True),
                                          ((4, 5), False)])
def test_prelu_against_reference(shape, shared):
    p = f"prelu_param {{ channel_shared: {str(shared).lower()} }}"
    slopes = rand(*(() if shared else shape[1:2]), seed=7, low=-1, high=1)
    case = LayerCase(text("PReLU", p), [shape], fill=(-2, 2), seed=6, params=[slopes], kink=0,
                     kink_range=0.05, reference=ref.prelu, forward_rtol=1e-6)
    case.check_forward()
    dy = rand(*shape, seed=8).astype(np.float32)
    _, (dx,), (da,) = case.run([dy])
    x32 = case.bottoms[0].astype(np.float32)
    ref_dx, ref_da = ref.prelu_grads(x32, slopes.astype(np.float32), dy)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-6)
    np.testing.assert_allclose(da, ref_da, rtol=1e-5)
    case.check_gradient()


def test_prelu_default_filler_and_blob_shapes():
    layer = make_layer(text("PReLU"))
    layer.set_up([Blob((2, 4, 3))], [Blob()])
    assert layer.blobs[0].shape == (4,) and np.all(layer.blobs[0].data == np.float32(0.25))
    shared = make_layer(text("PReLU", "prelu_param { channel_shared: true }"))
    shared.set_up([Blob((2, 4, 3))], [Blob()])
    assert shared.blobs[0].shape == ()


# ---- errors -----------------------------------------------------------------------

@pytest.mark.parametrize("layer_type,params,shape", [
    ("Exp", "exp_param { base: -2 }", SHAPE),
    ("Log", "log_param { base: 0 }", SHAPE),
    ("Log", "log_param { base: 1 }", SHAPE),
    ("Dropout", "dropout_param { dropout_ratio: 1 }", SHAPE),
    ("PReLU", "", (5,)),
])
def test_bad_parameters_raise_layer_errors(layer_type, params, shape):
    layer = make_layer(text(layer_type, params))
    with pytest.raises(CaffeLiteError, match="layer 'n'"):
        layer.set_up([Blob(shape)], [Blob()])


def test_every_neuron_layer_allows_in_place():
    for layer_type in ("ReLU", "Sigmoid", "TanH", "AbsVal", "BNLL", "Clip", "ELU", "Exp",
                       "Log", "Power", "Swish", "Threshold", "Dropout", "PReLU"):
        assert make_layer(text(layer_type)).allows_in_place, layer_type
