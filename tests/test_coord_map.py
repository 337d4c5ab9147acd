"""caffe.coord_map: coordinate maps between NetSpec tops, and crop() checked
against what the built nets actually do (the crop makes the shapes agree, and a
feature at a known input position lands where the map says)."""
import numpy as np
import pytest

import caffe_lite as caffe
from caffe_lite import layers as L
from caffe_lite import params as P
from caffe_lite.coord_map import (
    AxisMismatchException,
    UndefinedMapException,
    compose,
    coord_map,
    coord_map_from_to,
    crop,
    inverse,
)
from caffe_lite.errors import CaffeLiteError


def _one(value):
    """A map's scale or shift, the same on every axis, as one float."""
    values = np.unique(np.asarray(value, float))
    assert values.size == 1, values
    return float(values[0])


def conv_pool_deconv(ks=3, stride=1, pad=0, pool=2, dstride=2, dpad=0, nested=False):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 60, 60]))
    conv = dict(num_output=2, kernel_size=ks, stride=stride, pad=pad)
    n.conv = (L.Convolution(n.data, convolution_param=conv) if nested
              else L.Convolution(n.data, **conv))
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool)
    n.deconv = L.Deconvolution(n.pool, num_output=2, kernel_size=2 * dstride,
                               stride=dstride, pad=dpad)
    return n


@pytest.mark.parametrize("nested", [False, True])
def test_map_through_conv_pool_deconv(nested):
    # by hand: conv x -> x - 1; pool x -> x/2 - 1/4; deconv x -> 2x + 3/2
    n = conv_pool_deconv(nested=nested)
    assert coord_map(n.conv.fn) == (1, 1, -1)
    axis, a, b = coord_map_from_to(n.deconv, n.data)
    assert (axis, _one(a), _one(b)) == (1, 1.0, 0.0)
    axis, a, b = coord_map_from_to(n.data, n.deconv)        # the other way round
    assert (axis, _one(a), _one(b)) == (1, 1.0, 0.0)
    n4 = conv_pool_deconv(pool=4, dstride=4)      # pool x -> x/4 - 3/8; deconv 4x + 7/2
    axis, a, b = coord_map_from_to(n4.deconv, n4.data)
    assert (axis, _one(a), _one(b)) == (1, 1.0, -1.0)


def test_padding_moves_the_offset_both_ways():
    _, _, b0 = coord_map_from_to(*_ends(conv_pool_deconv()))
    _, _, b_conv = coord_map_from_to(*_ends(conv_pool_deconv(pad=3)))
    _, _, b_deconv = coord_map_from_to(*_ends(conv_pool_deconv(dpad=3)))
    assert _one(b_conv) == _one(b0) - 3 and _one(b_deconv) == _one(b0) + 3


def _ends(n):
    return n.deconv, n.data


def test_anisotropic_kernels_map_per_axis():
    _, a, b = coord_map_from_to(*_ends(conv_pool_deconv(ks=[3, 5], stride=[1, 2],
                                                        pad=[0, 4])))
    _, a3, b3 = coord_map_from_to(*_ends(conv_pool_deconv(ks=3, stride=1, pad=0)))
    _, a5, b5 = coord_map_from_to(*_ends(conv_pool_deconv(ks=5, stride=2, pad=4)))
    assert list(a) == [_one(a3), _one(a5)] and list(b) == [_one(b3), _one(b5)]


@pytest.mark.parametrize("pad", [0, 2, 5])
def test_crop_aligns_a_feature_with_the_input_in_the_built_net(pad):
    """An impulse in the input must come out at the same position after the
    conv-pool-deconv-crop chain, when every weight is positive."""
    n = conv_pool_deconv(ks=3, pad=pad, pool=2, dstride=2)
    n.crop = crop(n.deconv, n.data)
    offset = list(n.crop.fn.params["crop_param"]["offset"])
    net = caffe.Net(n.to_proto(), caffe.TEST)
    assert net.blobs["crop"].shape[2:] == net.blobs["data"].shape[2:]
    for layer in ("conv", "deconv"):
        net.params[layer][0].data[...] = 1.0
        net.params[layer][1].data[...] = 0.0
    net.blobs["data"].data[...] = 0
    net.blobs["data"].data[0, 0, 30, 20] = 1
    out = net.forward()["crop"][0, 0]
    rows, cols = np.nonzero(out)
    assert rows.min() <= 30 <= rows.max() and cols.min() <= 20 <= cols.max()
    assert offset == [-int(b) for b in np.atleast_1d(
        coord_map_from_to(n.deconv, n.data)[2])]


def test_crop_of_a_crop_adds_its_offset():
    n = conv_pool_deconv()
    _, a, b = coord_map_from_to(n.deconv, n.data)
    n.crop = L.Crop(n.deconv, n.data, axis=2, offset=4)
    _, a_crop, b_crop = coord_map_from_to(n.crop, n.data)
    assert _one(a_crop) == _one(a) and _one(b_crop) == _one(b) + 4


def test_pointwise_layers_map_as_identity():
    n = conv_pool_deconv()
    n.relu = L.ReLU(n.deconv)
    assert coord_map_from_to(n.relu, n.data)[1:] == coord_map_from_to(n.deconv, n.data)[1:]


def test_compose_and_inverse():
    assert compose((None, 2, 1), (1, 3, 4)) == (1, 6, 9)
    assert inverse((1, 2.0, 4.0)) == (1, 0.5, -2.0)
    with pytest.raises(AxisMismatchException):
        compose((1, 1, 0), (2, 1, 0))


def test_errors_are_the_builtins_pycaffe_raises():
    n = conv_pool_deconv()
    n.ip = L.InnerProduct(n.deconv, num_output=3)
    with pytest.raises(RuntimeError, match="no chain of spatial layers"):
        coord_map_from_to(n.ip, n.data)
    with pytest.raises(UndefinedMapException):
        coord_map(n.ip.fn)
    with pytest.raises(AssertionError, match="scales differ"):
        crop(*_ends(conv_pool_deconv(pool=3, dstride=2)))
    with pytest.raises(AssertionError, match="negative"):
        crop(*_ends(conv_pool_deconv(dpad=10)))
    with pytest.raises(CaffeLiteError):
        crop(*_ends(conv_pool_deconv(dpad=10)))
