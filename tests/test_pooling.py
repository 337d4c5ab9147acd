"""Pooling and SPP layers: naive loop references, float64 gradient checks, errors."""
import numpy as np
import pytest
from conformance import load_case, replay
from conftest import SHARED_CONFORMANCE, zoo_file
from layer_case import TEST, TRAIN, LayerCase, proto, rand, setup_layer
from ref_pooling import ref_spp, ref_spp_ave_backward, ref_stochastic_test
from reference import ref_ave_pool, ref_ave_pool_backward, ref_max_pool, ref_max_pool_backward

from caffe_lite.errors import LayerError


def pool_text(params, tops=1, name="pool"):
    return proto("Pooling", f"pooling_param {{ {params} }}", name=name,
                 tops=[f"t{i}" for i in range(tops)])


def distinct(shape, seed=0):
    """Values at least 0.1 apart: no ties, so MAX is smooth for the gradient check."""
    r = np.random.default_rng(seed)
    return (r.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0)


CASES = [  # params, (kernel, stride, pad) for the reference, ceil
    ("kernel_size: 3 stride: 2", (3, 2, 0), True),
    ("kernel_size: 3 stride: 2 pad: 1", (3, 2, 1), True),
    ("kernel_size: 2 stride: 3 pad: 1", (2, 3, 1), True),
    ("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0",
     ((3, 2), (2, 1), (1, 0)), True),
    ("kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR", (3, 2, 1), False),
    ("kernel_size: 2 stride: 2 ceil_mode: false", (2, 2, 0), False),
]


@pytest.mark.parametrize("params, geometry, ceil", CASES)
def test_max_forward_backward_against_reference(params, geometry, ceil):
    x = np.random.default_rng(1).integers(-3, 4, (2, 3, 7, 9)).astype(np.float32)  # ties
    LayerCase(pool_text("pool: MAX " + params, tops=2), [x], forward_rtol=0, forward_atol=0,
              reference=lambda x: ref_max_pool(x, *geometry, ceil=ceil)).check_forward()
    _, ref_mask = ref_max_pool(x, *geometry, ceil=ceil)
    for tops in (1, 2):                         # mask from the top, or kept internally
        case = LayerCase(pool_text("pool: MAX " + params, tops), [x])
        dy = rand(*ref_mask.shape, seed=2).astype(np.float32)
        _, (dx,), _ = case.run([dy] * tops)
        np.testing.assert_allclose(dx, ref_max_pool_backward(dy, ref_mask, x.shape),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("params, geometry, ceil", CASES)
def test_ave_forward_backward_against_reference(params, geometry, ceil):
    case = LayerCase(pool_text("pool: AVE " + params), [(2, 2, 8, 7)], seed=3,
                     reference=lambda x: ref_ave_pool(x, *geometry, ceil=ceil),
                     forward_rtol=1e-6)
    (y,) = case.check_forward()
    dy = rand(*y.shape, seed=4).astype(np.float32)
    _, (dx,), _ = case.run([dy])
    np.testing.assert_allclose(dx, ref_ave_pool_backward(dy, *geometry, (2, 2, 8, 7)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_global_pooling(pool):
    def reference(x):
        return (x.max(axis=(2, 3)) if pool == "MAX" else x.mean(axis=(2, 3)))[:, :, None, None]

    LayerCase(pool_text(f"pool: {pool} global_pooling: true"), [(2, 3, 4, 5)], seed=5,
              reference=reference, forward_rtol=1e-6, forward_atol=0).check_forward()


@pytest.mark.parametrize("params", [p for p, _, _ in CASES] + ["global_pooling: true"])
@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_gradient(pool, params):
    LayerCase(pool_text(f"pool: {pool} {params}"), [distinct((2, 2, 5, 6))]).check_gradient()


def test_max_gradient_with_mask_top():
    LayerCase(pool_text("pool: MAX kernel_size: 3 stride: 2", tops=2),
              [distinct((1, 2, 5, 5))]).check_gradient()


# ==== STOCHASTIC ============================================================

def test_stochastic_test_phase_against_reference():
    x = rand(2, 3, 7, 6, seed=6, low=-0.2, high=1)
    x[0, 0, :3, :3] = -1                        # a window with sum <= 0 gives 0
    (y,) = LayerCase(pool_text("pool: STOCHASTIC kernel_size: 3 stride: 2"), [x], phase=TEST,
                     reference=lambda x: ref_stochastic_test(x, 3, 2)).check_forward()
    assert y[0, 0, 0, 0] == 0


def test_stochastic_test_phase_gradient():
    LayerCase(pool_text("pool: STOCHASTIC kernel_size: 2 stride: 2"), [(1, 2, 5, 5)], seed=7,
              fill=(0.5, 2), phase=TEST).check_gradient()


def test_stochastic_train_samples_window_values():
    x = np.random.default_rng(8).uniform(0, 1, (2, 2, 6, 6)).astype(np.float32)
    x[0, 0, :2, :2] = [[0, 0], [5, 0]]          # only one cell can be picked
    layer, bottom, top = setup_layer(pool_text("pool: STOCHASTIC kernel_size: 2 stride: 2"),
                                     [x], phase=TRAIN, dtype=np.float32)
    layer.run_forward(bottom, top)
    y = top[0].data
    assert y[0, 0, 0, 0] == 5
    windows = x.reshape(2, 2, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 2, 3, 3, 4)
    assert np.all((windows == y[..., None]).any(axis=-1))     # every output is a window cell
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    dx = bottom[0].diff
    assert dx[0, 0, 1, 0] == 1 and dx.sum() == y.size         # one cell per window


# ==== SPP ===================================================================

def spp_text(height, pool):
    return proto("SPP", f"spp_param {{ pyramid_height: {height} pool: {pool} }}", name="spp")


@pytest.mark.parametrize("height, shape", [(1, (2, 3, 5, 7)), (3, (2, 3, 7, 9)),
                                           (2, (1, 2, 4, 4))])
@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_spp_against_reference(height, shape, pool):
    case = LayerCase(spp_text(height, pool), [shape], seed=9, forward_rtol=1e-6,
                     reference=lambda x: ref_spp(x, height, pool))
    (y,) = case.check_forward()
    if pool == "AVE":
        dy = rand(*y.shape, seed=10).astype(np.float32)
        _, (dx,), _ = case.run([dy])
        np.testing.assert_allclose(dx, ref_spp_ave_backward(dy, shape, height),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_spp_gradient(pool):
    LayerCase(spp_text(3, pool), [distinct((1, 2, 6, 7))]).check_gradient()


def test_spp_reshapes_with_input():
    layer, bottom, top = setup_layer(spp_text(2, "MAX"), [np.zeros((1, 2, 4, 4))])
    assert top[0].shape == (1, 2 * (1 + 4))
    bottom[0].reshape(3, 2, 9, 5)
    layer.reshape(bottom, top)
    assert top[0].shape == (3, 2 * (1 + 4))


# ==== errors ================================================================

@pytest.mark.parametrize("params, tops, message", [
    ("pool: MAX kernel_size: 2 pad: 2", 1, "smaller than the kernel"),
    ("pool: AVE kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 2", 1, "smaller than the kernel"),
    ("pool: MAX global_pooling: true pad: 1", 1, "global_pooling needs pad 0"),
    ("pool: AVE global_pooling: true stride: 2", 1, "global_pooling needs pad 0"),
    ("pool: MAX global_pooling: true kernel_size: 2", 1, "kernel from the input"),
    ("pool: MAX stride: 2", 1, "kernel_size"),
    ("pool: MAX kernel_size: 2 kernel_h: 2 kernel_w: 2", 1, "kernel_size"),
    ("pool: MAX kernel_h: 2", 1, "kernel_size"),
    ("pool: MAX kernel_size: 2 stride: 0", 1, "positive"),
    ("pool: AVE kernel_size: 2", 2, "only MAX pooling"),
    ("pool: STOCHASTIC kernel_size: 3 pad: 1", 1, "only for MAX and AVE"),
    ("pool: MAX kernel_size: 9 pad: 1", 1, "does not fit"),
])
def test_bad_parameters(params, tops, message):
    with pytest.raises(LayerError, match=message) as info:
        setup_layer(pool_text(params, tops, name="p1"), [np.zeros((1, 1, 4, 4))])
    assert info.value.layer == "p1" and info.value.layer_type == "Pooling"


def test_bad_input_axes():
    with pytest.raises(LayerError, match="4 axes"):
        setup_layer(pool_text("pool: MAX kernel_size: 2"), [np.zeros((2, 3, 4))])


def test_spp_too_tall_pyramid():
    with pytest.raises(LayerError, match="too small"):
        setup_layer(spp_text(4, "MAX"), [np.zeros((1, 1, 3, 3))])


def test_max_gradient_train_phase_keeps_mask():
    text = pool_text("pool: MAX kernel_size: 3 stride: 2 pad: 1")
    LayerCase(text, [distinct((1, 2, 5, 5))], phase=TRAIN).check_gradient()


@pytest.mark.parametrize("case", ["opencv_layer_pooling_ave", "opencv_layer_pooling_max"])
def test_zoo_case(case):
    """OpenCV's pooling layer tests (real Caffe outputs), used where they sit."""
    case_dir = SHARED_CONFORMANCE / "zoo" / case
    if not case_dir.exists():
        pytest.skip(f"zoo case {case} not available (../shared is absent)")
    meta, _ = load_case(case_dir)
    replay(case_dir, model=zoo_file(meta["model"]))


@pytest.mark.parametrize("method", ["ave", "max"])
def test_global_window_fast_path_is_bit_identical(monkeypatch, method):
    """One window over the whole plane takes a reduction instead of the per-offset loop;
    the bits are the loop's (row-major float32 sums; NaN never wins, all -inf gives
    -FLT_MAX), also for kernels larger than the plane."""
    from caffe_lite.ops import max_pool as ops_max_pool
    from caffe_lite.ops import pooling as ops_pooling
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 5, 6, 7)) * 100).astype(np.float32)
    x[0, 0] = np.nan
    x[0, 1] = -np.inf
    x[1, 2, 3, 4] = np.nan
    run = (lambda: ops_pooling.ave_pool_forward(x, (6, 8), 1, 0, (1, 1))) if method == "ave" \
        else (lambda: ops_max_pool.max_pool_forward(x, (6, 8), 1, 0, (1, 1))[0])
    fast = run()
    monkeypatch.setattr(ops_pooling if method == "ave" else ops_max_pool, "is_global",
                        lambda *args: False)
    np.testing.assert_array_equal(fast, run())


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("kernel,stride,pad", [(3, 2, 0), ((3, 4), (2, 1), (1, 2)), (5, 3, 2),
                                               (3, 1, 1), (2, 2, 0), (3, 3, 2)])
def test_separable_max_is_bit_identical(monkeypatch, kernel, stride, pad, compiled):
    """MAX without a mask runs one axis at a time (numpy) or compiled, the windows a
    border clips apart (numba); the bits equal the joint window loop's, with NaN (never
    wins) and all -inf windows (-FLT_MAX) included; compiled, ties of -0 and +0 keep
    Caffe's first one too."""
    from caffe_lite.ops import jit
    from caffe_lite.ops import max_pool as ops_max_pool
    from caffe_lite.ops import pooling as ops_pooling
    if compiled and not jit.available():
        pytest.skip("numba (the extra fast) missing")
    monkeypatch.setattr(jit, "enabled", compiled)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    x[0, 0, :3, :3] = np.nan
    x[0, 1, :4, :5] = -np.inf
    x[1, 2, 4, 4] = np.nan
    x[1, 0] = np.where(rng.random((9, 11)) < 0.5, np.float32(-0.0), np.float32(0.0))
    out = tuple(ops_pooling.pool_out_size(s, k, st, p) for s, k, st, p in
                zip(x.shape[2:], *(np.broadcast_to(v, 2) for v in (kernel, stride, pad))))
    separable, _ = ops_max_pool.max_pool_forward(x, kernel, stride, pad, out)
    calls = []
    monkeypatch.setattr(ops_max_pool, "_separable_max", lambda *a: calls.append(1))
    joint, _ = ops_max_pool.max_pool_forward(x, kernel, stride, pad, out, need_mask=True)
    assert not calls                               # the mask path is the joint loop
    np.testing.assert_array_equal(separable, joint)
    ref, _ = ref_max_pool(x.astype(np.float64), kernel, stride, pad)
    ref = ref.astype(np.float32)
    np.testing.assert_array_equal(separable, ref)
    if compiled:      # numpy's fmax may keep either zero of a tie: only the values agree
        np.testing.assert_array_equal(separable.view(np.int32), ref.view(np.int32))


@pytest.mark.parametrize("kernel,stride,pad", [(3, 2, 0), ((3, 4), (2, 1), (1, 2)), (2, 2, 0),
                                               (3, 1, 1), (5, 3, 2)])
def test_compiled_mask_and_backward_match_numpy(monkeypatch, kernel, stride, pad):
    """The compiled MAX pooling with a mask gives numpy's values and masks (the first
    strict maximum's flat index, -1 where none wins), and its backward numpy's
    gradients bit for bit, overlapping windows summing in output order."""
    from caffe_lite.ops import jit
    from caffe_lite.ops import max_pool as ops_max_pool
    from caffe_lite.ops import pooling as ops_pooling
    if not jit.available():
        pytest.skip("numba (the extra fast) missing")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    x[0, 0, :3, :3] = np.nan
    x[0, 1, :4, :5] = -np.inf
    x[1, 1] = np.round(x[1, 1])                    # ties: the first one wins
    out = tuple(ops_pooling.pool_out_size(s, k, st, p) for s, k, st, p in
                zip(x.shape[2:], *(np.broadcast_to(v, 2) for v in (kernel, stride, pad))))
    dy = rng.standard_normal((2, 3) + out).astype(np.float32)
    results = []
    for compiled in (False, True):
        monkeypatch.setattr(jit, "enabled", compiled)
        y, mask = ops_max_pool.max_pool_forward(x, kernel, stride, pad, out, need_mask=True)
        dx = ops_max_pool.max_pool_backward(dy, mask, x.shape)
        results.append((y, mask, dx))
    for numpy_result, compiled_result in zip(*results):
        np.testing.assert_array_equal(numpy_result, compiled_result)
    ref_y, ref_mask = ref_max_pool(x.astype(np.float64), kernel, stride, pad)
    np.testing.assert_array_equal(results[1][1], ref_mask)
    assert (results[1][1] == -1).any()             # the all-NaN / -inf windows
