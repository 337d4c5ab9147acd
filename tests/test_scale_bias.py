"""Scale and Bias (scale_bias.py): learned and two-bottom operands over every
axis/num_axes form, against the naive references in ref_neuron.py; float64
gradient checks for bottoms and params; in place; shape errors."""
import numpy as np
import pytest
import ref_neuron as ref
from gradcheck import check_gradient, forward, make_layer

from caffe_lite.blob import Blob
from caffe_lite.errors import CaffeLiteError

X_SHAPE = (2, 3, 4, 2)


def learned(layer_type, params):
    return f'name: "n" type: "{layer_type}" bottom: "x" top: "y" {params}'


def two_bottom(layer_type, params):
    return f'name: "n" type: "{layer_type}" bottom: "x" bottom: "s" top: "y" {params}'


def randn(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


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
    x, s, b = randn(0, *X_SHAPE), randn(1, *shape), randn(2, *shape)
    layer = make_layer(learned("Scale", p))
    layer.set_up([Blob(X_SHAPE)], [Blob()])
    assert [blob.shape for blob in layer.blobs] == [shape, shape]
    y = forward(learned("Scale", p), [x.astype(np.float32)], params=[s, b])[0]
    f32 = lambda a: np.asarray(a, np.float32)
    np.testing.assert_allclose(y, ref.scale(f32(x), f32(s), axis, f32(b)), rtol=1e-6,
                               atol=1e-6)
    check_gradient(learned("Scale", p), [x], params=[s, b])


@pytest.mark.parametrize("params,axis,shape", FORMS)
def test_learned_bias(params, axis, shape):
    p = f"bias_param {{ {params} }}"
    x, b = randn(3, *X_SHAPE), randn(4, *shape)
    y = forward(learned("Bias", p), [x.astype(np.float32)], params=[b])[0]
    np.testing.assert_allclose(y, ref.bias(x.astype(np.float32), b.astype(np.float32), axis),
                               rtol=1e-6, atol=1e-6)
    check_gradient(learned("Bias", p), [x], params=[b])


@pytest.mark.parametrize("axis,shape", [(1, (3,)), (0, (2, 3)), (2, (4, 2)), (1, ())])
@pytest.mark.parametrize("layer_type", ["Scale", "Bias"])
def test_two_bottom_form(layer_type, axis, shape):
    p = f"{layer_type.lower()}_param {{ axis: {axis} }}"
    x, s = randn(5, *X_SHAPE), randn(6, *shape)
    y = forward(two_bottom(layer_type, p), [x.astype(np.float32), s.astype(np.float32)])[0]
    f32 = lambda a: np.asarray(a, np.float32)
    expected = ref.scale(f32(x), f32(s), axis) if layer_type == "Scale" else \
        ref.bias(f32(x), f32(s), axis)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    check_gradient(two_bottom(layer_type, p), [x, s])


def test_two_bottom_scale_with_learned_bias_and_gradients():
    p = "scale_param { bias_term: true bias_filler { type: 'constant' value: 0.5 } }"
    layer = make_layer(two_bottom("Scale", p))
    layer.set_up([Blob(X_SHAPE), Blob((3,))], [Blob()])
    assert len(layer.blobs) == 1 and np.all(layer.blobs[0].data == 0.5)
    x, s, b, dy = randn(7, *X_SHAPE), randn(8, 3), randn(9, 3), randn(10, *X_SHAPE)
    check_gradient(two_bottom("Scale", p), [x, s], params=[b])
    dx, ds, db = ref.scale_grads(x, s, dy)
    bottom = [Blob(X_SHAPE, np.float64), Blob((3,), np.float64)]
    layer = make_layer(two_bottom("Scale", p))
    top = [Blob(dtype=np.float64)]
    layer.set_up(bottom, top)
    bottom[0].data[...], bottom[1].data[...], layer.blobs[0].data[...] = x, s, b
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


def run_in_place(layer_text, x, params, in_place):
    layer = make_layer(layer_text)
    bottom = Blob(x.shape)
    bottom.data[...] = x
    top = bottom if in_place else Blob()
    layer.set_up([bottom], [top])
    for blob, value in zip(layer.blobs, params):
        blob.data[...] = value
    layer.param_propagate_down = [True] * len(layer.blobs)
    layer.run_forward([bottom], [top])
    y = top.data.copy()
    top.diff[...] = randn(11, *x.shape)
    layer.backward([top], [True], [bottom])
    return [y, bottom.diff.copy()] + [b.diff.copy() for b in layer.blobs]


@pytest.mark.parametrize("layer_text,params", [
    (learned("Scale", "scale_param { bias_term: true }"), [randn(12, 3), randn(13, 3)]),
    (learned("Scale", "scale_param { num_axes: -1 }"), [randn(14, 3, 4, 2)]),
    (learned("Bias", ""), [randn(15, 3)]),
])
def test_in_place_equals_separate_blobs(layer_text, params):
    x = randn(16, *X_SHAPE)
    for a, b in zip(run_in_place(layer_text, x, params, False),
                    run_in_place(layer_text, x, params, True)):
        np.testing.assert_array_equal(a, b)


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
