"""ops/jit.py, the compiled kernels of the extra ``fast`` (numba): each must give
what its numpy path gives. The depthwise kernel sums every output's taps in Caffe's
order, the padding's zeros included, then adds the bias, with no fused
multiply-add: a float32 loop in that order must match it bit for bit."""
import numpy as np
import pytest

from caffe_lite.ops import jit
from caffe_lite.ops.depthwise import depthwise_backward, depthwise_forward
from caffe_lite.ops.geometry import Workspace, conv_geometry

pytest.importorskip("numba", reason="numba (the extra fast) missing")
pytestmark = pytest.mark.skipif(not jit.available(), reason="compiled kernels switched off")

GEOMETRIES = [  # kernel, stride, pad, dilation
    ((3, 3), (1, 1), (1, 1), (1, 1)),       # MobileNet's
    ((3, 3), (2, 2), (1, 1), (1, 1)),
    ((5, 5), (1, 1), (2, 2), (1, 1)),
    ((3, 2), (2, 1), (0, 1), (1, 2)),
    ((1, 1), (1, 1), (0, 0), (1, 1)),
    ((3, 3), (3, 2), (2, 0), (2, 1)),
]


def sequential_taps(x, w, b, stride, pad, dilation):
    """The Caffe-order float sum as whole-array float32 steps: first tap's product,
    then + each tap's product in row-major kernel order, then + bias."""
    N, C, H, W = x.shape
    kernel, stride, pad, dilation, (OH, OW) = conv_geometry((H, W), w.shape[2:], stride, pad,
                                                            dilation)
    xp = np.zeros((N, C, H + 2 * pad[0], W + 2 * pad[1]), x.dtype)
    xp[:, :, pad[0]:pad[0] + H, pad[1]:pad[1] + W] = x
    acc = None
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            rows = slice(i * dilation[0], i * dilation[0] + (OH - 1) * stride[0] + 1, stride[0])
            cols = slice(j * dilation[1], j * dilation[1] + (OW - 1) * stride[1] + 1, stride[1])
            term = w[:, 0, i, j].reshape(1, C, 1, 1) * xp[:, :, rows, cols]
            acc = term if acc is None else acc + term
    return acc if b is None else acc + b.reshape(1, C, 1, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kernel, stride, pad, dilation", GEOMETRIES)
def test_depthwise_sums_in_caffe_order_bit_for_bit(monkeypatch, kernel, stride, pad, dilation,
                                                  bias, dtype):
    rng = np.random.default_rng(sum(kernel) + 7 * sum(stride))
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    w = rng.standard_normal((3, 1) + kernel).astype(dtype)
    b = rng.standard_normal(3).astype(dtype) if bias else None
    got = depthwise_forward(x, w, b, stride, pad, dilation, workspace=Workspace())
    np.testing.assert_array_equal(got, sequential_taps(x, w, b, stride, pad, dilation))
    monkeypatch.setattr(jit, "enabled", False)                  # and the numpy kernels agree
    np.testing.assert_allclose(got, depthwise_forward(x, w, b, stride, pad, dilation),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_non_finite_values_stay_where_caffe_puts_them():
    """inf and NaN reach only the windows that read them; a NaN weight reaches every
    output of its channel (it multiplies the padding's zeros too, as in Caffe's GEMM)."""
    x = np.ones((1, 2, 5, 5), np.float32)
    x[0, 0, 0, 0] = np.inf
    w = np.ones((2, 1, 3, 3), np.float32)
    w[1, 0, 2, 2] = np.nan
    y = depthwise_forward(x, w, None, 1, 1)
    assert np.isinf(y[0, 0, :2, :2]).all() and np.isfinite(y[0, 0, 2:]).all()
    assert np.isnan(y[0, 1]).all()


def test_switched_off_runs_numpy(monkeypatch):
    monkeypatch.setattr(jit, "enabled", False)
    assert not jit.available()


def test_backward_still_matches_the_forward():
    """The backward stays numpy: its dx is the adjoint of the compiled forward."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((4, 1, 3, 3))
    y = depthwise_forward(x, w, None, 1, 1)
    dy = rng.standard_normal(y.shape)
    dx, dw = depthwise_backward(x, w, dy, 1, 1)
    np.testing.assert_allclose(np.vdot(y, dy), np.vdot(x, dx), rtol=1e-10)
    np.testing.assert_allclose(np.vdot(y, dy), np.vdot(w, dw), rtol=1e-10)


def test_compiles_in_memory_where_numba_cannot_cache(monkeypatch):
    """With nowhere to write its cache numba refuses cache=True: the kernels then
    compile in memory instead of failing."""
    import numba
    real = numba.njit

    def no_cache(*args, **kwargs):
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return real(*args, **kwargs)
    monkeypatch.setattr(numba, "njit", no_cache)

    def double(a):                                       # pragma: no cover (compiled)
        return a * 2
    assert jit._compiled(double)(3) == 6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,size", [((2, 7, 5, 6), 5), ((1, 3, 4, 4), 5), ((3, 10, 3, 2), 3),
                                        ((1, 1, 2, 3), 5), ((2, 64, 40, 40), 5)])
@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.filterwarnings("ignore:invalid value")
def test_lrn_window_sums_match_numpy_bit_for_bit(monkeypatch, dtype, shape, size, fast):
    """The compiled running channel sum gives the numpy steps' scale, power and output,
    non-finite inputs included (the largest shape takes numpy's ring of squares); only
    a NaN's sign bit may differ (inf - inf)."""
    from caffe_lite.ops.lrn import lrn_across_forward
    rng = np.random.default_rng(sum(shape) + size)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    x.reshape(-1)[::97] = np.nan
    x.reshape(-1)[5::101] = np.inf
    results = []
    for compiled in (False, True):
        monkeypatch.setattr(jit, "enabled", compiled)
        out, scale, power = np.empty_like(x), np.empty_like(x), np.empty_like(x)
        lrn_across_forward(x, size, 1e-4, 0.75, 1.0, out, scale, power, fast=fast)
        results.append((out, scale, power))
    for numpy_values, compiled_values in zip(*results):
        np.testing.assert_array_equal(numpy_values, compiled_values)     # NaN where NaN
        numbers = ~np.isnan(numpy_values)
        np.testing.assert_array_equal(numpy_values[numbers].view(np.uint8),
                                      compiled_values[numbers].view(np.uint8))


@pytest.mark.parametrize("layout", ["image", "channel"])
@pytest.mark.parametrize("kernel,stride,pad,dilation", GEOMETRIES + [((11, 11), (4, 4), (0, 0), (1, 1)),
                                                                  ((7, 7), (2, 2), (3, 3), (1, 1))])
def test_im2col_copies_the_numpy_columns_bit_for_bit(monkeypatch, layout, kernel, stride, pad,
                                                     dilation):
    """The compiled im2col writes the numpy loop's columns, padding zeros, -0, NaN and
    infinities included, for float32 and float64 and a batch of 3."""
    from caffe_lite.ops.im2col import im2col
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((3, 4, 23, 19)).astype(dtype)
        x.reshape(-1)[::13] = -0.0
        x.reshape(-1)[5::17] = np.nan
        x.reshape(-1)[7::19] = -np.inf
        results = []
        for compiled in (False, True):
            monkeypatch.setattr(jit, "enabled", compiled)
            results.append(im2col(x, kernel, stride, pad, dilation, layout=layout))
        np.testing.assert_array_equal(results[0].view(np.uint8), results[1].view(np.uint8))


def test_im2col_of_a_strided_view_takes_numpy(monkeypatch):
    """A view that is not C-contiguous is left to numpy's loop (same columns)."""
    from caffe_lite.ops.im2col import im2col
    x = np.random.default_rng(8).standard_normal((2, 3, 10, 12)).astype(np.float32)[:, :, ::2]
    from caffe_lite.ops import jit_columns
    called = []
    monkeypatch.setattr(jit_columns, "im2col_2d", lambda *a, **k: called.append(1))
    cols = im2col(x, 3, 1, 1)
    assert not called
    monkeypatch.setattr(jit, "enabled", False)
    np.testing.assert_array_equal(cols, im2col(x, 3, 1, 1))


def test_forward_folds_only_small_gemms_when_im2col_is_compiled(monkeypatch):
    """With compiled im2col a forward keeps one GEMM per image unless that GEMM is
    small (LeNet's conv2 still folds); without it the numpy rule folds both."""
    from caffe_lite.ops import conv_gemm
    lenet = (np.zeros((64, 20, 12, 12), np.float32), np.zeros((50, 20, 5, 5), np.float32), (8, 8))
    caffenet = (np.zeros((4, 256, 13, 13), np.float32), np.zeros((384, 256, 3, 3), np.float32),
                (13, 13))
    layout = {name: conv_gemm._forward_layout(x, w, 1, 0 if name == "lenet" else 1, osz)
              for name, (x, w, osz) in (("lenet", lenet), ("caffenet", caffenet))}
    assert layout == {"lenet": "batch_last", "caffenet": None}
    monkeypatch.setattr(jit, "enabled", False)
    x, w, osz = caffenet
    assert conv_gemm._forward_layout(x, w, 1, 1, osz) == "batch_last"


@pytest.mark.parametrize("layout", ["image", "channel", "batch_last"])
@pytest.mark.parametrize("kernel,stride,pad,dilation", GEOMETRIES + [((5, 5), (1, 1), (0, 0), (1, 1))])
def test_col2im_sums_as_numpy_bit_for_bit(monkeypatch, layout, kernel, stride, pad, dilation):
    """The compiled col2im sums each cell's kernel offsets in numpy's (row-major)
    order: the same float32 sums, overlapping windows and non-finite values included."""
    from caffe_lite.ops.geometry import conv_geometry
    from caffe_lite.ops.im2col import col2im, column_shape
    rng = np.random.default_rng(9)
    shape = (3, 4, 13, 11)
    *_, osz = conv_geometry(shape[2:], kernel, stride, pad, dilation)
    cols = rng.standard_normal(column_shape(layout, 3, 4 * kernel[0] * kernel[1],
                                            osz[0] * osz[1])).astype(np.float32) * 1e3
    cols.reshape(-1)[::23] = np.inf
    cols.reshape(-1)[11::29] = np.nan
    results = []
    for compiled in (False, True):
        monkeypatch.setattr(jit, "enabled", compiled)
        results.append(col2im(cols, shape, kernel, stride, pad, dilation,
                              workspace=Workspace(), layout=layout))
    np.testing.assert_array_equal(results[0], results[1])
    numbers = ~np.isnan(results[0])
    np.testing.assert_array_equal(results[0][numbers].view(np.uint32),
                                  results[1][numbers].view(np.uint32))
