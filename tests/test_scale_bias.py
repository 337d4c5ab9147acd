"""Scale and Bias (scale_bias.py): learned and two-bottom operands over every
axis/num_axes form, against the naive references in ref_neuron.py; float64
gradient checks for bottoms and params; in place; shape errors."""
import numpy as np
import pytest
import ref_neuron as ref
from layer_case import LayerCase, make_layer, proto, rand

from caffe_lite.blob import Blob
from caffe_lite.errors import CaffeLiteError

X_SHAPE = (2, 3, 4, 2)


def learned(layer_type, params):
    return proto(layer_type, params, name="n")


def two_bottom(layer_type, params):
    return proto(layer_type, params, name="n", bottoms=("x", "s"))


# (params, axis used by the reference, operand shape)
FORMS = [
    ("", 1, (3,)),
    ("axis: 0 num_axes: 2", 0, (2, 3)),
    ("axis: 1 num_axes: 2", 1, (3, 4)),
    ("axis: -1", 3, (2,)),
    ("axis: 1 num_axes: -1", 1, (3, 4, 2)),
    ("num_axes: 0", 0, ()),
    ("axis: 2 num_axes: 0", 0, ()),
]


@pytest.mark.parametrize("params,axis,shape", FORMS)
def test_learned_scale_with_bias(params, axis, shape):
    p = f"scale_param {{ {params} bias_term: true }}"
    case = LayerCase(learned("Scale", p), [X_SHAPE],
                     params=[rand(*shape, seed=1), rand(*shape, seed=2)],
                     reference=lambda x, s, b: ref.scale(x, s, axis, b), forward_rtol=1e-6)
    case.check_forward()
    assert [blob.shape for blob in case.layer.blobs] == [shape, shape]
    case.check_gradient()


@pytest.mark.parametrize("params,axis,shape", FORMS)
def test_learned_bias(params, axis, shape):
    p = f"bias_param {{ {params} }}"
    case = LayerCase(learned("Bias", p), [X_SHAPE], seed=3, params=[rand(*shape, seed=4)],
                     reference=lambda x, b: ref.bias(x, b, axis), forward_rtol=1e-6)
    case.check_forward()
    case.check_gradient()


@pytest.mark.parametrize("axis,shape", [(1, (3,)), (0, (2, 3)), (2, (4, 2)), (1, ())])
@pytest.mark.parametrize("layer_type", ["Scale", "Bias"])
def test_two_bottom_form(layer_type, axis, shape):
    p = f"{layer_type.lower()}_param {{ axis: {axis} }}"
    fn = ref.scale if layer_type == "Scale" else ref.bias
    case = LayerCase(two_bottom(layer_type, p), [X_SHAPE, shape], seed=5,
                     reference=lambda x, s: fn(x, s, axis), forward_rtol=1e-6)
    case.check_forward()
    case.check_gradient()


def test_two_bottom_scale_with_learned_bias_and_gradients():
    p = "scale_param { bias_term: true bias_filler { type: 'constant' value: 0.5 } }"
    layer = make_layer(two_bottom("Scale", p))
    layer.set_up([Blob(X_SHAPE), Blob((3,))], [Blob()])
    assert len(layer.blobs) == 1 and np.all(layer.blobs[0].data == 0.5)
    x, s, b = rand(*X_SHAPE, seed=7), rand(3, seed=8), rand(3, seed=9)
    dy = rand(*X_SHAPE, seed=10)
    case = LayerCase(two_bottom("Scale", p), [x, s], params=[b])
    case.check_gradient()
    dx, ds, db = ref.scale_grads(x, s, dy)
    layer, bottom, top = case.setup(np.float64)
    layer.run_forward(bottom, top)
    top[0].diff[...] = dy
    bottom[1].diff[...] = 99                        # bottom diffs are overwritten ...
    layer.blobs[0].diff[...] = 1                    # ... param diffs accumulate
    layer.param_propagate_down = [True]
    layer.backward(top, [True, True], bottom)
    np.testing.assert_allclose(bottom[0].diff, dx, rtol=1e-12)
    np.testing.assert_allclose(bottom[1].diff, ds, rtol=1e-12)
    np.testing.assert_allclose(layer.blobs[0].diff, db + 1, rtol=1e-12)


def test_default_fillers():
    scale = make_layer(learned("Scale", "scale_param { bias_term: true }"))
    scale.set_up([Blob(X_SHAPE)], [Blob()])
    assert np.all(scale.blobs[0].data == 1) and np.all(scale.blobs[1].data == 0)
    bias = make_layer(learned("Bias", ""))
    bias.set_up([Blob(X_SHAPE)], [Blob()])
    assert np.all(bias.blobs[0].data == 0)


@pytest.mark.parametrize("layer_text,params", [
    (learned("Scale", "scale_param { bias_term: true }"), [rand(3, seed=12), rand(3, seed=13)]),
    (learned("Scale", "scale_param { num_axes: -1 }"), [rand(3, 4, 2, seed=14)]),
    (learned("Bias", ""), [rand(3, seed=15)]),
])
def test_in_place_equals_separate_blobs(layer_text, params):
    case = LayerCase(layer_text, [X_SHAPE], seed=16, params=params)
    dy = [rand(*X_SHAPE, seed=11)]
    for a, b in zip(case.run(dy, in_place=False), case.run(dy, in_place=True)):
        for a_i, b_i in zip(a, b):
            np.testing.assert_array_equal(a_i, b_i)


@pytest.mark.parametrize("layer_text,shapes", [
    (two_bottom("Scale", ""), [X_SHAPE, (4,)]),
    (two_bottom("Bias", "bias_param { axis: 2 }"), [X_SHAPE, (3, 4)]),
    (learned("Scale", "scale_param { axis: 2 num_axes: 3 }"), [X_SHAPE]),
    (learned("Bias", "bias_param { axis: 4 }"), [X_SHAPE]),
    (learned("Scale", "scale_param { num_axes: -2 }"), [X_SHAPE]),
])
def test_shape_errors_name_the_layer(layer_text, shapes):
    with pytest.raises(CaffeLiteError, match="layer 'n'"):
        make_layer(layer_text).set_up([Blob(s) for s in shapes], [Blob()])
