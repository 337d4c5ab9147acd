"""The forks' BN layer in both layouts (SegNet/ENet/DeconvNet and PSPNet): naive
references, float64 gradient checks, layout choice, errors."""
import numpy as np
import pytest
from layer_case import TEST, TRAIN, LayerCase, proto, setup_layer
from ref_pooling import ref_bn

from caffe_lite.errors import LayerError

SHAPE = (3, 2, 4, 5)


def bn_text(params="", tops=1, specs=0):
    return proto("BN", "param { lr_mult: 1 } " * specs + f"bn_param {{ {params} }}",
                 name="bn", tops=[f"t{i}" for i in range(tops)])


def data(seed=0, shape=SHAPE):
    r = np.random.default_rng(seed)
    return (r.standard_normal(shape) * 2 + 1).astype(np.float32)


def channel_params(seed, c=SHAPE[1]):
    r = np.random.default_rng(seed)
    return [r.uniform(0.5, 1.5, (1, c, 1, 1)), r.standard_normal((1, c, 1, 1))]


# ==== SegNet layout ==========================================================

@pytest.mark.parametrize("phase", [TRAIN, TEST])
def test_segnet_learn_uses_batch_statistics_in_any_phase(phase):
    x, (scale, shift) = data(), channel_params(1)
    layer, bottom, top = LayerCase(bn_text("bn_mode: LEARN", tops=3), [x], params=[scale, shift],
                                   phase=phase).forward_blobs()
    y, mean, var = ref_bn(x, scale.ravel(), shift.ravel())
    np.testing.assert_allclose(top[0].data, y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(top[1].data.ravel(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(top[2].data.ravel(), var, rtol=1e-5, atol=1e-6)  # no eps
    assert len(layer.blobs) == 2 and layer.blobs[0].shape == (1, 2, 1, 1)


def test_segnet_inference_is_affine():
    x, (scale, shift) = data(2), channel_params(3)
    LayerCase(bn_text("bn_mode: INFERENCE"), [x], params=[scale, shift], forward_rtol=1e-6,
              reference=lambda x, scale, shift: scale * x + shift).check_forward()


def test_segnet_default_fillers_are_zero_and_fillers_apply():
    (y,) = LayerCase(bn_text(), [data()]).forward()
    assert not y.any()                            # scale 0, shift 0
    layer, _, _ = LayerCase(bn_text("scale_filler { type: 'constant' value: 2 } "
                                    "shift_filler { type: 'constant' value: 0.5 }"),
                            [data()]).forward_blobs()
    assert (layer.blobs[0].data == 2).all() and (layer.blobs[1].data == 0.5).all()


@pytest.mark.parametrize("mode", ["LEARN", "INFERENCE"])
def test_segnet_gradient(mode):
    LayerCase(bn_text(f"bn_mode: {mode}"), [data(4, (2, 2, 3, 3))], params=channel_params(5),
              rtol=1e-4).check_gradient()


def test_segnet_learn_in_place_matches_out_of_place():
    case = LayerCase(bn_text("bn_mode: LEARN"), [data(6)], params=channel_params(7))
    dy = [np.random.default_rng(8).standard_normal(SHAPE).astype(np.float32)]
    for a, b in zip(case.run(dy), case.run(dy, in_place=True)):
        for a_i, b_i in zip(a, b):
            np.testing.assert_array_equal(a_i, b_i)


def test_param_diffs_accumulate():
    x = data(9)
    layer, bottom, top = LayerCase(bn_text("bn_mode: INFERENCE"), [x],
                                   params=channel_params(10)).forward_blobs()
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    once = layer.blobs[1].diff.copy()
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * once)
    np.testing.assert_allclose(once.ravel(), x.shape[0] * x.shape[2] * x.shape[3])


# ==== PSPNet layout ==========================================================

PSP = "slope_filler { type: 'constant' value: 1 } bias_filler { type: 'constant' value: 0 }"


def psp_params(seed):
    r = np.random.default_rng(seed)
    return channel_params(seed) + [r.standard_normal((1, 2, 1, 1)),
                                   r.uniform(0.5, 2, (1, 2, 1, 1))]


@pytest.mark.parametrize("extra, phase", [("", TEST), ("frozen: true", TRAIN),
                                          ("frozen: true", TEST)])
def test_pspnet_global_statistics(extra, phase):
    x, params = data(11), psp_params(12)
    layer, bottom, top = LayerCase(bn_text(f"{PSP} eps: 1e-4 {extra}"), [x], params=params,
                                   phase=phase).forward_blobs()
    y, _, _ = ref_bn(x, params[0].ravel(), params[1].ravel(), params[2].ravel(),
                     params[3].ravel(), eps=1e-4)
    np.testing.assert_allclose(top[0].data, y, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layer.blobs[2].data, params[2].astype(np.float32))


def test_pspnet_train_uses_batch_statistics_and_updates_running_ones():
    x, params = data(13), psp_params(14)
    layer, _, top = LayerCase(bn_text(f"{PSP} momentum: 0.9"), [x], params=params,
                              phase=TRAIN).forward_blobs()
    y, mean, var = ref_bn(x, params[0].ravel(), params[1].ravel(), eps=1e-5)
    np.testing.assert_allclose(top[0].data, y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.blobs[2].data.ravel(),
                               0.1 * mean + 0.9 * params[2].ravel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.blobs[3].data.ravel(),
                               0.1 * var + 0.9 * params[3].ravel(), rtol=1e-5, atol=1e-6)


def test_pspnet_blobs_and_param_specs():
    layer, _, _ = LayerCase(bn_text(PSP), [data()]).forward_blobs()
    assert len(layer.blobs) == 4 and not layer.blobs[3].data.any()
    assert [s.lr_mult for s in layer.param.param] == [1, 1, 0, 0]
    layer, _, _ = LayerCase(bn_text(PSP + " frozen: true"), [data()]).forward_blobs()
    assert (layer.blobs[3].data == 1).all()                 # frozen starts with var 1
    assert [s.lr_mult for s in layer.param.param] == [0, 0, 0, 0]


@pytest.mark.parametrize("extra, phase, check_params", [
    ("", TRAIN, True), ("", TEST, False), ("frozen: true", TRAIN, False)])
def test_pspnet_gradient(extra, phase, check_params):
    LayerCase(bn_text(f"{PSP} {extra}"), [data(15, (2, 2, 3, 3))], params=psp_params(16),
              phase=phase, check_params=check_params, rtol=1e-4).check_gradient()


def test_pspnet_test_phase_param_diffs():
    x, params = data(17), psp_params(18)
    layer, bottom, top = LayerCase(bn_text(PSP), [x], params=params).forward_blobs()
    dy = np.random.default_rng(19).standard_normal(x.shape).astype(np.float32)
    top[0].diff[...] = dy
    layer.param_propagate_down = [True] * 4
    layer.backward(top, [True], bottom)
    x_norm = (x - params[2]) / np.sqrt(params[3] + 1e-5)
    np.testing.assert_allclose(layer.blobs[0].diff, (dy * x_norm).sum((0, 2, 3), keepdims=True),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.blobs[1].diff, dy.sum((0, 2, 3), keepdims=True),
                               rtol=1e-5, atol=1e-4)
    assert not layer.blobs[2].diff.any() and not layer.blobs[3].diff.any()


# ==== layout choice and errors ===============================================

@pytest.mark.parametrize("text, blobs", [
    (bn_text(""), 2), (bn_text("bn_mode: INFERENCE"), 2), (bn_text("momentum: 0.95"), 4),
    (bn_text("", specs=4), 4), (bn_text("", specs=2), 2), (bn_text("frozen: true"), 4)])
def test_layout_choice(text, blobs):
    layer, _, _ = setup_layer(text, [data()])
    assert len(layer.blobs) == blobs


@pytest.mark.parametrize("text, shape, message", [
    (bn_text("bn_mode: LEARN frozen: true"), SHAPE, "mixes"),
    (bn_text(PSP, tops=2), SHAPE, "one top"),
    (bn_text(""), (2, 3, 4), "4 axes"),
])
def test_errors(text, shape, message):
    with pytest.raises(LayerError, match=message) as info:
        setup_layer(text, [np.zeros(shape)])
    assert info.value.layer == "bn"


def test_channel_count_change_is_an_error():
    layer, bottom, top = setup_layer(bn_text(""), [data()])
    bottom[0].reshape(3, 5, 4, 5)
    with pytest.raises(LayerError, match="channels"):
        layer.reshape(bottom, top)
