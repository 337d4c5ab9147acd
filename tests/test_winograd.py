"""Winograd F(4x4, 3x3) and F(6x6, 3x3) (ops/winograd.py), the opt-in fast path for
3x3 stride-1 convolutions: their matrices, against the loop reference ref_conv.py
(float32 within 1e-4, and the float64 numerical gradient of the Winograd forward
against the exact backward), the error at a realistic size, blocks over threads, the
switch, the weight cache, and the CLI's --fast."""
import numpy as np
import pytest
from layer_case import LayerCase, proto
from ref_conv import ref_conv

import caffe_lite
from caffe_lite.ops import conv_gemm, jit, threads, winograd
from caffe_lite.ops.geometry import Workspace

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "uniform" min: -1 max: 1 }'


@pytest.fixture(params=["F4", "F6"])
def tiling(request, monkeypatch):
    """Each test with either tiling (F(6x6) made to apply to the small test maps)."""
    monkeypatch.setattr(winograd, "F6_MIN_WIDTH", 10 ** 6 if request.param == "F4" else 1)
    return getattr(winograd, request.param)


@pytest.mark.parametrize("tile", ["F4", "F6"])
def test_matrices_compute_a_correlation(tile):
    t = getattr(winograd, tile)
    rng = np.random.default_rng(1)
    d, g = rng.standard_normal((t.span, t.span)), rng.standard_normal((3, 3))
    y = t.at @ ((t.g @ g @ t.g.T) * (t.bt @ d @ t.bt.T)) @ t.at.T
    want = [[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(t.m)] for i in range(t.m)]
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-12)
    if tile == "F4":                                  # Lavin & Gray's published B^T
        assert winograd.F4.bt.tolist()[0] == [4, 0, -5, 0, 1, 0]


@pytest.fixture(params=["numpy", "compiled"])
def transforms(request, monkeypatch):
    """Each test with numpy's tile transforms and with the compiled ones (where numba
    is installed)."""
    if request.param == "numpy":
        monkeypatch.setattr(jit, "enabled", False)
    elif not jit.available():
        pytest.skip("numba (the extra 'fast') is not installed")
    return request.param


@pytest.fixture
def fast(monkeypatch, tiling, transforms):
    """Winograd on for one test; count the calls so a test knows the path ran."""
    calls = []
    real = winograd.winograd_forward

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)
    monkeypatch.setattr(winograd, "winograd_forward", counted)
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)        # small test layers too
    monkeypatch.setattr(winograd, "MIN_POSITIONS", 1)
    monkeypatch.setattr(winograd, "MIN_MACS_OFF_A_WORKER", 0)
    caffe_lite.set_conv_algorithm("winograd")
    yield calls
    caffe_lite.set_conv_algorithm("exact")


def layer(params):
    return proto("Convolution", f"convolution_param {{ {params} {FILL} }}")


@pytest.mark.parametrize("params,shape,pad", [
    ("num_output: 3 kernel_size: 3 pad: 1", (2, 2, 5, 6), 1),      # odd rows: a half tile
    ("num_output: 2 kernel_size: 3", (1, 3, 6, 7), 0),
    ("num_output: 2 kernel_size: 3 pad: 2 bias_term: false", (2, 2, 4, 3), 2),
    ("num_output: 4 kernel_size: 3 pad_h: 1 pad_w: 0", (1, 2, 7, 5), (1, 0)),
    ("num_output: 6 kernel_size: 3 pad: 1 group: 3", (2, 9, 6, 5), 1),   # each group
])
def test_winograd_matches_reference(fast, params, shape, pad):
    bias = "bias_term: false" not in params
    group = int(params.split("group: ")[1]) if "group: " in params else 1
    reference = (lambda x, w, b: ref_conv(x, w, b, pad=pad, group=group)) if bias else \
        (lambda x, w: ref_conv(x, w, pad=pad, group=group))
    case = LayerCase(layer(params), [shape], forward_atol=1e-4, reference=reference)
    case.check_forward()
    case.check_gradient()
    assert fast, "the Winograd path did not run"


@pytest.mark.parametrize("budget,tiles", [(1, 1), (200, 1), (1, 6), (1 << 23, 1)])
def test_winograd_blocks(fast, monkeypatch, budget, tiles):
    """Tile-row ranges of one image, image slices, the whole batch: same values."""
    monkeypatch.setattr(winograd, "TILE_BUDGET", budget)
    monkeypatch.setattr(winograd, "MIN_BLOCK_TILES", tiles)
    case = LayerCase(layer("num_output: 3 kernel_size: 3 pad: 1"), [(3, 2, 9, 8)],
                     forward_atol=1e-4, reference=lambda x, w, b: ref_conv(x, w, b, pad=1))
    case.check_forward()
    assert fast


def test_other_convolutions_stay_exact(fast):
    """Strided, dilated and non-3x3 convolutions keep im2col + GEMM."""
    for params, shape in [("num_output: 2 kernel_size: 3 stride: 2", (1, 2, 7, 7)),
                          ("num_output: 2 kernel_size: 3 dilation: 2", (1, 2, 7, 7)),
                          ("num_output: 2 kernel_size: 5", (1, 2, 7, 7))]:
        LayerCase(layer(params), [shape]).forward_blobs()
    assert not fast


def test_the_tiling_follows_the_map_width():
    assert winograd.tiling_for(56) is winograd.F6 and winograd.tiling_for(55) is winograd.F4
    cache = winograd.WinogradWeights()
    w = np.ones((2, 2, 3, 3), np.float32)
    assert cache.get(w, winograd.F4).shape[0] == 36
    assert cache.get(w, winograd.F6).shape[0] == 64        # a new tiling: transformed again


def test_weight_cache_sees_in_place_updates():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    cache = winograd.WinogradWeights()
    first = winograd.winograd_forward(x, w, pad=1, cache=cache)
    w[1, 0, 2, 2] += 1                                   # e.g. a solver step
    np.testing.assert_allclose(winograd.winograd_forward(x, w, pad=1, cache=cache),
                               ref_conv(x.astype(np.float64), w.astype(np.float64), pad=1),
                               atol=1e-4)
    assert not np.allclose(first, winograd.winograd_forward(x, w, pad=1, cache=cache))


def test_switch_rejects_unknown_names():
    with pytest.raises(ValueError, match="winograd"):
        caffe_lite.set_conv_algorithm("fft")
    assert caffe_lite.get_conv_algorithm() == "exact"


def test_time_command_fast_flag(tmp_path, monkeypatch):
    from caffe_lite import cli
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 '
        'dim: 2 dim: 6 dim: 6 } } }\n'
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
        'convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }\n')
    seen = []
    real = winograd.winograd_forward
    monkeypatch.setattr(winograd, "winograd_forward",
                        lambda *a, **k: seen.append(1) or real(*a, **k))
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    monkeypatch.setattr(winograd, "MIN_POSITIONS", 1)
    monkeypatch.setattr(winograd, "MIN_MACS_OFF_A_WORKER", 0)
    try:
        assert cli.main(["time", "-model", "net.prototxt", "-iterations", "1", "--fast"]) == 0
        assert seen
    finally:
        caffe_lite.set_conv_algorithm("exact")
    seen.clear()
    assert cli.main(["time", "-model", "net.prototxt", "-iterations", "1"]) == 0
    assert not seen


def test_winograd_leaves_layers_with_few_channels_or_small_maps_to_the_exact_path():
    caffe_lite.set_conv_algorithm("winograd")
    w = np.zeros((256, 256, 3, 3), np.float32)
    on_worker = threads._as_worker
    try:
        x = np.zeros((1, 3, 28, 28), np.float32)
        assert not winograd.winograd_applies(x, np.zeros((64, 3, 3, 3), np.float32), 1, 1, 1)
        big = np.zeros((1, 256, 56, 56), np.float32)              # 1.85 G multiply-adds
        assert winograd.winograd_applies(big, w, 1, 1, 1)
        small = np.zeros((1, 256, 28, 28), np.float32)            # 0.46 G
        assert not winograd.winograd_applies(small, w, 1, 1, 1)
        # on a worker thread (one BLAS thread) 13x13 pays, 7x7 does not
        assert on_worker(lambda: winograd.winograd_applies(small[:, :, :13, :13], w, 1, 1, 1))
        assert not on_worker(lambda: winograd.winograd_applies(small[:, :, :12, :12], w, 1, 1, 1))
        grouped = np.zeros((256, 128, 3, 3), np.float32)          # 2 groups of 128 -> 128
        assert on_worker(lambda: winograd.winograd_applies(small[:, :, :13, :13], grouped, 1, 1, 2))
        assert not on_worker(lambda: winograd.winograd_applies(small[:, :, :13, :13], grouped,
                                                               1, 1, 8))   # 32 outputs a group
        assert not on_worker(lambda: winograd.winograd_applies(small[:, :, :7, :7], w, 1, 1, 1))
    finally:
        caffe_lite.set_conv_algorithm("exact")


def test_winograd_error_at_a_realistic_size(tiling):
    """In float32 on 64 channels both stay within 2e-5 of the float64 truth (relative
    to the largest output), a few times the exact path's own rounding."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 64, 30, 30)).astype(np.float32)
    w = rng.standard_normal((32, 64, 3, 3)).astype(np.float32)
    truth = conv_gemm.conv_forward(x.astype(np.float64), w.astype(np.float64), None, 1, 1)
    got = winograd.winograd_forward(x, w, pad=1)
    assert np.abs(got - truth).max() / np.abs(truth).max() < 2e-5


@pytest.mark.parametrize("shape,cout,pad", [
    ((2, 11, 9, 13), 9, (1, 1)),           # channels not a multiple of 8, a partial tile
    ((1, 16, 14, 14), 16, (1, 0)),
    ((3, 5, 7, 6), 3, (2, 2)),             # padding wider than a tile's overlap
    ((1, 8, 3, 3), 8, (0, 0)),             # one output
])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_compiled_transforms_agree_with_numpys(monkeypatch, tiling, shape, cout, pad, dtype,
                                               tol):
    """The compiled transforms (channels-last, tile by tile) give numpy's values to
    rounding, with a scale and a bias, over tile-row blocks and image blocks."""
    if not jit.available():
        pytest.skip("numba (the extra 'fast') is not installed")
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((cout, shape[1], 3, 3)).astype(dtype)
    b, scale = rng.standard_normal(cout).astype(dtype), rng.standard_normal(cout).astype(dtype)
    for budget in (1, 1 << 30):                         # one tile row a block; one block
        monkeypatch.setattr(winograd, "TILE_BUDGET", budget)
        monkeypatch.setattr(winograd, "MIN_BLOCK_TILES", 1)
        compiled = winograd.winograd_forward(x, w, b, pad, workspace=Workspace(), scale=scale)
        with monkeypatch.context() as off:
            off.setattr(jit, "enabled", False)
            numpy = winograd.winograd_forward(x, w, b, pad, workspace=Workspace(), scale=scale)
        assert compiled.dtype == numpy.dtype == dtype
        np.testing.assert_allclose(compiled, numpy, rtol=0, atol=tol * np.abs(numpy).max())


def test_winograd_blocks_over_threads_equal_serial(monkeypatch, tiling, transforms):
    """Blocks shared out over the worker threads give the serial values."""
    monkeypatch.setattr(winograd, "MIN_BLOCK_TILES", 4)
    monkeypatch.setattr(winograd, "TILE_BUDGET", 1)
    monkeypatch.setattr(threads, "threads", lambda: 2)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 8, 21, 19)).astype(np.float32)
    w = rng.standard_normal((5, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    parted = winograd.winograd_forward(x, w, b, pad=1, workspace=Workspace())
    monkeypatch.setattr(threads, "threads", lambda: 1)
    serial = winograd.winograd_forward(x, w, b, pad=1, workspace=Workspace())
    np.testing.assert_allclose(parted, serial, rtol=0, atol=1e-5)


def test_a_shared_workspace_keeps_each_layers_transformed_weights(fast, monkeypatch):
    """Lean nets and the batch-parallel shadows give all layers one workspace: the
    transformed weights of each layer stay cached, not only the last layer's."""
    transforms = []
    real = winograd.transform_weights
    monkeypatch.setattr(winograd, "transform_weights",
                        lambda w, *key: transforms.append(w.shape) or real(w, *key))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    w1, w2 = (rng.standard_normal((4, 4, 3, 3)).astype(np.float32) for _ in range(2))
    shared = Workspace()
    for _ in range(3):
        for w in (w1, w2):
            conv_gemm.conv_forward(x, w, None, 1, 1, workspace=shared)
    assert len(fast) == 6 and len(transforms) == 2
    w1 *= 2                                            # changed in place: transformed again
    conv_gemm.conv_forward(x, w1, None, 1, 1, workspace=shared)
    assert len(transforms) == 3
