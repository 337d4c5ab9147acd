"""LRN, MVN and BatchNorm (normalization.py): forward against the naive references
in ref_neuron.py, float64 gradient checks, BatchNorm's statistics blobs, in place,
and errors for bad input."""
import numpy as np
import pytest
import ref_neuron as ref
from layer_case import TEST, TRAIN, LayerCase, forward, make_layer, proto, rand

from caffe_lite.blob import Blob
from caffe_lite.errors import CaffeLiteError
from caffe_lite.layers.normalization import channel_window_sums
from caffe_lite.ops import lrn as lrn_ops
from caffe_lite.ops.libm import powf, powf_positive


def text(layer_type, params=""):
    return proto(layer_type, params, name="n")


# ---- LRN ------------------------------------------------------------------------

@pytest.mark.parametrize("size,channels", [(1, 4), (3, 6), (5, 7), (5, 3), (7, 2)])
def test_channel_window_sums_are_zero_padded_window_sums(size, channels):
    v = rand(2, channels, 3, seed=0)
    got = channel_window_sums(v, size, start=0.5)
    half = (size - 1) // 2
    for c in range(channels):
        lo, hi = max(0, c - half), min(channels, c + half + 1)
        np.testing.assert_allclose(got[:, c], 0.5 + v[:, lo:hi].sum(axis=1), rtol=1e-12)


def caffe_order_lrn(x, size, alpha, beta, k):
    """Caffe's CPU CrossChannelForward step by step, per image and channel plane, in
    float32 (zero-padded squares, the running scale by axpy adds and subtracts), the
    power rounded once from float64."""
    f = np.float32
    N, C = x.shape[:2]
    pre, a = (size - 1) // 2, f(alpha) / f(size)
    scale = np.empty_like(x)
    for n in range(N):
        padded = np.zeros((C + size - 1,) + x.shape[2:], f)
        padded[pre:pre + C] = x[n] * x[n]
        scale[n, 0] = f(k)
        for c in range(size):
            scale[n, 0] += a * padded[c]
        for c in range(1, C):
            scale[n, c] = scale[n, c - 1] + a * padded[c + size - 1]
            scale[n, c] = scale[n, c] + -a * padded[c - 1]
    power = np.power(scale, -float(f(beta)), dtype=np.float64).astype(f)
    return power * x, scale, power


@pytest.mark.parametrize("shape,size,block", [((2, 9, 5, 7), 5, 200), ((2, 9, 5, 7), 3, 1),
                                              ((1, 4, 3, 3), 7, 1 << 15),
                                              ((3, 1, 2, 2), 1, 1 << 15)])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("all_squares", [0, 1 << 20])                 # a ring of squares / all
def test_lrn_across_kernel_is_bit_identical_to_caffe_order(monkeypatch, shape, size, block,
                                                           train, all_squares):
    monkeypatch.setattr(lrn_ops, "_BLOCK", block)       # one channel, several, all per block
    monkeypatch.setattr(lrn_ops, "_ALL_SQUARES", all_squares)
    x = (rand(*shape, seed=3) * 40).astype(np.float32)
    want_y, want_scale, want_pow = caffe_order_lrn(x, size, 1e-3, 0.75, 2.0)
    y, scale = np.empty_like(x), np.empty_like(x)
    power = np.empty_like(x) if train else None
    lrn_ops.lrn_across_forward(x, size, np.float32(1e-3), np.float32(0.75), np.float32(2),
                               y, scale, power)
    np.testing.assert_array_equal(scale, want_scale)
    np.testing.assert_array_equal(y, want_y)
    if train:
        np.testing.assert_array_equal(power, want_pow)


def test_powf_positive_rounds_like_powf():
    x = np.exp(np.random.default_rng(0).uniform(-3, 8, 200_000)).astype(np.float32)
    x[:4] = [np.inf, np.nan, 1, np.finfo(np.float32).tiny]
    for p in (-0.75, -0.5, 0.8):
        np.testing.assert_array_equal(powf_positive(x, p, np.empty_like(x)), powf(x, p))
    signed = np.float32([0, -2, -0.0, 3, np.inf, -np.inf])
    with np.errstate(invalid="ignore", divide="ignore"):
        for p in (-0.75, 2.0, 0.0):
            got = powf_positive(signed, p, np.empty_like(signed), positive=False)
            np.testing.assert_array_equal(got, powf(signed, p))
    wide = x.astype(np.float64)
    np.testing.assert_array_equal(powf_positive(wide, -0.75, np.empty_like(wide)),
                                  np.power(wide, -0.75))


LRN_CASES = [
    ("lrn_param { }", dict()),
    ("lrn_param { local_size: 3 alpha: 0.3 beta: 0.8 k: 1.5 }",
     dict(size=3, alpha=0.3, beta=0.8, k=1.5)),
    ("lrn_param { local_size: 7 alpha: 2 beta: 0.5 k: 2 }",
     dict(size=7, alpha=2, beta=0.5, k=2)),
]


@pytest.mark.parametrize("params,kw", LRN_CASES)
def test_lrn_across_channels(params, kw):
    case = LayerCase(text("LRN", params), [(2, 5, 3, 4)], seed=1, forward_atol=1e-7,
                     reference=lambda x: ref.lrn_across(x, **kw))
    case.check_forward()
    case.check_gradient()


@pytest.mark.parametrize("size,alpha,beta", [(3, 0.5, 0.9), (5, 2.0, 0.75)])
def test_lrn_within_channel_ignores_k(size, alpha, beta):
    params = (f"lrn_param {{ norm_region: WITHIN_CHANNEL local_size: {size} "
              f"alpha: {alpha} beta: {beta} k: 7 }}")
    case = LayerCase(text("LRN", params), [(2, 2, 5, 6)], seed=2, forward_atol=1e-7,
                     reference=lambda x: ref.lrn_within(x, size, alpha, beta))
    case.check_forward()
    case.check_gradient()


@pytest.mark.parametrize("params,shape", [("lrn_param { local_size: 4 }", (1, 3, 2, 2)),
                                          ("", (2, 3, 4))])
def test_lrn_rejects_even_sizes_and_non_4d_input(params, shape):
    with pytest.raises(CaffeLiteError, match="layer 'n'"):
        make_layer(text("LRN", params)).set_up([Blob(shape)], [Blob()])


def test_lrn_does_not_run_in_place():
    assert not getattr(make_layer(text("LRN")), "allows_in_place", False)


# ---- MVN ------------------------------------------------------------------------

MVN_CASES = [(True, False, 1e-9), (True, True, 1e-9), (False, False, 1e-9),
             (False, True, 1e-9), (True, False, 0.1)]


@pytest.mark.parametrize("variance,across,eps", MVN_CASES)
def test_mvn(variance, across, eps):
    params = (f"mvn_param {{ normalize_variance: {str(variance).lower()} "
              f"across_channels: {str(across).lower()} eps: {eps} }}")
    x = rand(2, 3, 3, 4, seed=3) * 2 + 1
    case = LayerCase(text("MVN", params), [x],
                     reference=lambda x: ref.mvn(x, variance, across, eps))
    case.check_forward()
    if eps < 1e-6:              # Caffe's backward treats eps as 0 (see below)
        case.check_gradient()
    dy = rand(*x.shape, seed=4)
    apart, same = case.run([dy]), case.run([dy], in_place=True)
    for a, b in zip(apart[:2], same[:2]):           # tops, bottom diffs
        np.testing.assert_array_equal(a[0], b[0])


def test_mvn_backward_is_caffes_formula_which_ignores_eps():
    """dx = (dy - mean(dy) - mean(dy y) y) / (std + eps): exact only for eps -> 0."""
    x, dy = rand(2, 3, 4, 4, seed=15), rand(2, 3, 4, 4, seed=16)
    (y,), (dx,), _ = LayerCase(text("MVN", "mvn_param { eps: 0.5 }"), [x]).run([dy])
    rows = lambda a: a.reshape(6, 16)
    std = rows(x).std(axis=1, keepdims=True) + 0.5
    expected = (rows(dy) - rows(dy).mean(1, keepdims=True)
                - (rows(dy) * rows(y)).mean(1, keepdims=True) * rows(y)) / std
    np.testing.assert_allclose(rows(dx), expected, rtol=1e-4, atol=1e-6)


def test_mvn_top_takes_the_legacy_4d_shape():
    y = forward(text("MVN"), [rand(3, 4, seed=5).astype(np.float32)])[0]
    assert y.shape == (3, 4, 1, 1)
    with pytest.raises(CaffeLiteError, match="at most 4 axes"):
        make_layer(text("MVN")).set_up([Blob((1, 2, 3, 4, 5))], [Blob()])


# ---- BatchNorm ------------------------------------------------------------------

def stats(channels, seed=6, factor=2.5):
    r = np.random.default_rng(seed)
    return [r.standard_normal(channels) * factor, r.uniform(0.5, 2, channels) * factor,
            np.array([factor])]


@pytest.mark.parametrize("phase,params,shape", [
    (TRAIN, "batch_norm_param { moving_average_fraction: 0.9 eps: 1e-4 }", (3, 4, 2, 3)),
    (TRAIN, "", (5, 3)),
    (TEST, "batch_norm_param { use_global_stats: false moving_average_fraction: 0.8 }",
     (2, 3, 4)),
    (TEST, "batch_norm_param { eps: 0.001 }", (2, 4, 3, 3)),
    (TRAIN, "batch_norm_param { use_global_stats: true }", (2, 4, 3)),
])
def test_batch_norm_forward_and_statistics(phase, params, shape):
    p = make_layer(text("BatchNorm", params), phase).param.batch_norm_param
    use_global = p.use_global_stats if p.HasField("use_global_stats") else phase == TEST
    x = (rand(*shape, seed=7) * 3 + 1).astype(np.float32)
    blobs = [b.astype(np.float32) for b in stats(shape[1])]
    case = LayerCase(text("BatchNorm", params), [x], phase=phase, params=blobs,
                     check_params=False, forward_atol=1e-5,
                     reference=lambda x, mean, var, factor: ref.batch_norm(
                         x, mean, var, float(factor[0]), use_global,
                         p.moving_average_fraction, p.eps)[0])
    case.check_forward()
    _, mean_sum, var_sum, factor = ref.batch_norm(
        x, *blobs[:2], float(blobs[2][0]), use_global, p.moving_average_fraction, p.eps)
    np.testing.assert_allclose(case.layer.blobs[0].data, mean_sum, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(case.layer.blobs[1].data, var_sum, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(case.layer.blobs[2].data, [factor], rtol=1e-6)
    case.check_gradient()


def test_batch_norm_zero_factor_uses_zero_statistics():
    x = rand(2, 3, 2, seed=8).astype(np.float32)
    blobs = [np.ones(3), np.ones(3), np.zeros(1)]
    y = forward(text("BatchNorm", "batch_norm_param { eps: 0.01 }"), [x], params=blobs)[0]
    np.testing.assert_allclose(y, x / np.sqrt(np.float32(0.01)), rtol=1e-6)


def test_batch_norm_never_learns_its_statistics():
    layer = make_layer(text("BatchNorm"), TRAIN)
    bottom, top = Blob((4, 3)), Blob()
    bottom.data[...] = rand(4, 3, seed=9)
    layer.set_up([bottom], [top])
    assert [s.lr_mult for s in layer.param.param] == [0, 0, 0]
    layer.run_forward([bottom], [top])
    top.diff[...] = rand(4, 3, seed=10)
    layer.param_propagate_down = [True] * 3          # as force_backward sets it
    layer.backward([top], [True], [bottom])
    assert bottom.diff.any()
    for blob in layer.blobs:
        assert not blob.diff.any()
    with pytest.raises(CaffeLiteError, match="lr_mult 0"):
        make_layer(text("BatchNorm", "param { lr_mult: 1 }")).set_up(
            [Blob((2, 3))], [Blob()])
    fixed = make_layer(text("BatchNorm", "param { lr_mult: 0 } param { lr_mult: 0 }"))
    fixed.set_up([Blob((2, 3))], [Blob()])
    assert len(fixed.param.param) == 3


@pytest.mark.parametrize("phase", [TRAIN, TEST])
def test_batch_norm_in_place_equals_separate_blobs(phase):
    x, dy = rand(3, 2, 4, seed=11) * 2, rand(3, 2, 4, seed=12)
    blobs = stats(2)
    case = LayerCase(text("BatchNorm"), [x], phase=phase, params=blobs)
    apart = case.run([dy])
    apart_stats = [b.data.copy() for b in case.layer.blobs]
    same = case.run([dy], in_place=True)
    for a, b in zip(apart[:2], same[:2]):           # tops, bottom diffs
        np.testing.assert_array_equal(a[0], b[0])
    for a, b in zip(apart_stats, case.layer.blobs):
        np.testing.assert_array_equal(a, b.data)


def test_batch_norm_backward_uses_its_own_copy_of_the_output():
    """A later in-place layer may overwrite the top; backward must not read it."""
    x, dy = rand(4, 3, 2, seed=13), rand(4, 3, 2, seed=14)
    layer = make_layer(text("BatchNorm"), TRAIN)
    bottom, top = Blob(x.shape), Blob()
    bottom.data[...] = x
    layer.set_up([bottom], [top])
    layer.run_forward([bottom], [top])
    expected_top = top.data.copy()
    top.diff[...] = dy
    layer.backward([top], [True], [bottom])
    expected = bottom.diff.copy()
    top.data[...] = 123                                   # clobbered, as by a Scale
    layer.backward([top], [True], [bottom])
    np.testing.assert_array_equal(bottom.diff, expected)
    assert expected_top.shape == x.shape


def test_lrn_power_in_the_fast_mode_is_within_an_ulp(monkeypatch):
    """The fast mode raises LRN's scale to -beta in float32 (not through the exact
    path's float64 power): within an ulp or two of its correctly rounded result."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 9, 5, 4)).astype(np.float32) * 3
    outs = []
    for fast in (False, True):
        if fast:
            monkeypatch.setattr(lrn_ops, "powf_positive", None)   # must not be called
        out, scale = np.empty_like(x), np.empty_like(x)
        lrn_ops.lrn_across_forward(x, 5, 0.5, 0.75, 1.0, out, scale, fast=fast)
        outs.append(out)
    np.testing.assert_allclose(outs[1], outs[0], rtol=3e-7, atol=0)
