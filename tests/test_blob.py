import numpy as np
import pytest

from caffe_lite import Blob, CaffeLiteError


def test_shape_and_legacy_accessors():
    b = Blob((2, 3, 4, 5))
    assert b.shape == (2, 3, 4, 5) and b.count == 120 and b.num_axes == 4
    assert (b.num, b.channels, b.height, b.width) == (2, 3, 4, 5)
    ip = Blob((10, 20))
    assert (ip.num, ip.channels, ip.height, ip.width) == (10, 20, 1, 1)
    assert ip.legacy_shape(-4) == 1 and ip.legacy_shape(-1) == 20
    assert Blob(()).count == 1


def test_data_and_diff_are_views_into_the_blob():
    b = Blob((2, 3))
    b.data[...] = np.arange(6).reshape(2, 3)
    b.diff[0, 1] = 7
    assert b.data[1, 2] == 5 and b.diff[0, 1] == 7
    assert b.data.dtype == np.float32


def test_reshape_keeps_memory_when_not_growing_and_zeroes_when_growing():
    b = Blob((2, 3))
    b.data[...] = np.arange(6).reshape(2, 3)
    b.reshape(3, 2)                       # same count: values reinterpreted
    np.testing.assert_array_equal(b.data.ravel(), np.arange(6))
    b.reshape([1, 2])                     # smaller: first values kept
    np.testing.assert_array_equal(b.data.ravel(), [0, 1])
    b.reshape((4, 4))                     # larger: fresh zeros, as Caffe
    assert b.count == 16 and not b.data.any()


def test_assign_checks_shape():
    b = Blob((2, 2))
    b.data = np.ones((2, 2))
    assert b.data.sum() == 4
    with pytest.raises(CaffeLiteError, match="shape"):
        b.data = np.ones((3, 2))


def test_bad_shapes_are_refused():
    with pytest.raises(CaffeLiteError):
        Blob((2, -1))
    with pytest.raises(CaffeLiteError):
        Blob((1,) * 33)


def test_canonical_axis():
    b = Blob((2, 3, 4))
    assert b.canonical_axis(-1) == 2 and b.canonical_axis(1) == 1
    with pytest.raises(CaffeLiteError):
        b.canonical_axis(3)


def test_share_data():
    a, b = Blob((2, 2)), Blob((4,))
    b.share_data(a)
    a.data[...] = 3
    assert (b.data == 3).all()
    with pytest.raises(CaffeLiteError):
        Blob((3,)).share_data(a)
