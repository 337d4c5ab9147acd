"""Crop layer: naive loop reference, float64 gradient check, errors."""
import numpy as np
import pytest
from layer_case import LayerCase, proto, setup_layer
from ref_pooling import ref_crop

from caffe_lite.errors import LayerError


def crop_text(params=""):
    return proto("Crop", f"crop_param {{ {params} }}" if params else "", name="crop",
                 bottoms=("x", "ref"))


CASES = [  # params, data shape, reference shape, axis, offsets
    ("", (2, 3, 8, 9), (1, 1, 5, 6), 2, ()),
    ("axis: 2 offset: 2", (2, 3, 8, 9), (5, 7, 5, 6), 2, (2,)),
    ("axis: 1 offset: 1 offset: 2 offset: 3", (2, 4, 8, 9), (2, 2, 5, 6), 1, (1, 2, 3)),
    ("axis: 0 offset: 1 offset: 0 offset: 2 offset: 3", (3, 2, 7, 8), (2, 2, 4, 5), 0,
     (1, 0, 2, 3)),
    ("axis: -1 offset: 4", (2, 3, 5, 9), (1, 1, 1, 4), -1, (4,)),
    ("axis: 1 offset: 1", (2, 4, 6), (2, 2, 3), 1, (1,)),            # 3-D blobs
]


@pytest.mark.parametrize("params, shape, ref_shape, axis, offsets", CASES)
def test_forward_backward_against_reference(params, shape, ref_shape, axis, offsets):
    case = LayerCase(crop_text(params), [shape, np.zeros(ref_shape)], forward_rtol=0,
                     forward_atol=0, reference=lambda x, _: ref_crop(x, ref_shape, axis, offsets))
    (y,) = case.check_forward()
    layer, bottom, top = case.setup(np.float32)
    layer.run_forward(bottom, top)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    top[0].diff[...] = dy
    bottom[0].diff[...] = 7                       # stale values must be cleared
    layer.backward(top, [True, False], bottom)
    dx = np.zeros(shape)
    np.add.at(dx, tuple(np.ix_(*[np.arange(s) + o for s, o in zip(
        y.shape, _offsets(len(shape), axis, offsets))])), dy)
    np.testing.assert_array_equal(bottom[0].diff, dx)
    assert not bottom[1].diff.any()


def _offsets(ndim, axis, offsets):
    axis %= ndim
    return [0 if i < axis or not offsets else offsets[0] if len(offsets) == 1
            else offsets[i - axis] for i in range(ndim)]


def test_gradient():
    LayerCase(crop_text("axis: 1 offset: 1 offset: 2 offset: 0"),
              [(2, 4, 6, 5), np.zeros((2, 2, 3, 5))], check_bottoms=[0]).check_gradient()


def test_reference_gets_no_forced_gradient():
    layer, _, _ = setup_layer(crop_text(), [np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 2, 2))])
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)


@pytest.mark.parametrize("params, shape, ref_shape, message", [
    ("axis: 2 offset: 3", (1, 1, 6, 6), (1, 1, 4, 4), "runs past the input"),
    ("", (1, 1, 3, 6), (1, 1, 4, 4), "runs past the input"),
    ("axis: 1 offset: 1 offset: 1", (1, 3, 6, 6), (1, 1, 4, 4), "offsets given"),
    ("axis: 4", (1, 1, 6, 6), (1, 1, 4, 4), "out of range"),
    ("", (1, 1, 6, 6), (1, 4, 4), "axes"),
])
def test_errors(params, shape, ref_shape, message):
    with pytest.raises(LayerError, match=message) as info:
        setup_layer(crop_text(params), [np.zeros(shape), np.zeros(ref_shape)])
    assert info.value.layer == "crop"
