import numpy as np
import pytest
from google.protobuf import text_format

from caffe_lite import Blob, CaffeLiteError, set_random_seed
from caffe_lite.fillers import fill
from caffe_lite.proto import caffe_pb2


def filled(shape, text):
    blob = Blob(shape)
    fill(blob, text_format.Parse(text, caffe_pb2.FillerParameter()))
    return blob.data


def test_constant_and_uniform():
    assert (filled((2, 3), 'type: "constant" value: 2.5') == 2.5).all()
    u = filled((1000,), 'type: "uniform" min: -2 max: 3')
    assert u.min() >= -2 and u.max() <= 3 and u.std() > 1


def test_gaussian_moments_and_sparse():
    set_random_seed(1)
    g = filled((200, 100), 'type: "gaussian" mean: 1 std: 2')
    assert abs(g.mean() - 1) < 0.05 and abs(g.std() - 2) < 0.05
    s = filled((100, 400), 'type: "gaussian" std: 1 sparse: 10')
    # sparse = expected non-zeros per output; probability = sparse / num_outputs
    assert abs(np.count_nonzero(s) / s.size - 10 / 100) < 0.01


def test_xavier_and_msra_scale_from_fan_in():
    set_random_seed(2)
    x = filled((64, 32, 3, 3), 'type: "xavier"')
    fan_in = 32 * 9
    assert np.abs(x).max() <= np.sqrt(3 / fan_in) + 1e-7
    m = filled((64, 32, 3, 3), 'type: "msra" variance_norm: FAN_OUT')
    assert abs(m.std() - np.sqrt(2 / (64 * 9))) < 0.01


def test_positive_unitball_rows_sum_to_one():
    p = filled((5, 7), 'type: "positive_unitball"')
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    assert (p >= 0).all()


def test_bilinear_matches_hand_computed_kernel():
    k4 = filled((1, 1, 4, 4), 'type: "bilinear"')[0, 0]
    taps = np.array([0.25, 0.75, 0.75, 0.25])      # f = 2, c = 0.75
    np.testing.assert_allclose(k4, np.outer(taps, taps))
    k3 = filled((2, 1, 3, 3), 'type: "bilinear"')[1, 0]
    taps3 = np.array([0.5, 1.0, 0.5])              # f = 2, c = 0.5
    np.testing.assert_allclose(k3, np.outer(taps3, taps3))


def test_unknown_filler_and_bad_bilinear():
    with pytest.raises(CaffeLiteError, match="unknown filler"):
        filled((2,), 'type: "nope"')
    with pytest.raises(CaffeLiteError, match="square"):
        filled((1, 1, 3, 4), 'type: "bilinear"')
    with pytest.raises(CaffeLiteError, match="sparse"):
        filled((2, 2), 'type: "uniform" sparse: 3')
    with pytest.raises(CaffeLiteError, match="not finite"):    # refused before a read
        fill(Blob((2,)), text_format.Parse('type: "uniform" max: inf', caffe_pb2.FillerParameter()))
