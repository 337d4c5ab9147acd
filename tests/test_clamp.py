"""ops.clamp: max/min against a constant in rows must equal numpy's scalar ufunc
bit for bit, at every size (whole rows, a remainder, below one row), for NaN,
signed zeros and infinities, in place and not, and on views numpy must handle."""
import numpy as np
import pytest

from caffe_lite.ops import clamp
from caffe_lite.ops.clamp import ROW


def awkward(n, dtype, seed):
    x = (np.random.default_rng(seed).standard_normal(n) * 4).astype(dtype)
    x[: min(n, 6)] = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 6.0])[: min(n, 6)]
    return x


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("n", [1, 7, ROW - 1, ROW, 3 * ROW, 3 * ROW + 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, value", [("maximum", 0), ("minimum", 0), ("maximum", -1.5),
                                         ("minimum", 6), ("maximum", 0.1)])
def test_equals_numpy_bit_for_bit(n, dtype, name, value):
    x = awkward(n, dtype, n)
    ours, theirs = getattr(clamp, name), getattr(np, name)
    assert same_bits(ours(x, value), theirs(x, value))
    out = np.empty_like(x)
    assert ours(x, value, out=out) is out and same_bits(out, theirs(x, value))
    inplace = x.copy()
    ours(inplace, value, out=inplace)
    assert same_bits(inplace, theirs(x, value))


def test_shapes_and_views():
    x = awkward(4 * 3 * ROW // 8 + 11, np.float32, 1)[: 4 * 3 * ROW // 8].reshape(4, 3, -1)
    assert same_bits(clamp.maximum(x, 0), np.maximum(x, 0))
    strided = x[:, ::2]                                   # not contiguous: numpy's own loop
    assert same_bits(clamp.minimum(strided, 0), np.minimum(strided, 0))
    ints = np.arange(-ROW, ROW, dtype=np.int32)
    assert same_bits(clamp.maximum(ints, 0), np.maximum(ints, 0))


def test_the_constant_row_is_never_written():
    x = awkward(2 * ROW, np.float32, 2)
    clamp.maximum(x, 0, out=x)
    assert not clamp._constant_row(0.0, np.dtype(np.float32)).any()
