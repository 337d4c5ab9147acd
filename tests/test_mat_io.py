"""DeepLab's MatWrite and MatRead against files written and read by scipy.io
directly: MATLAB's (W, H, C, N) single-precision 'data' whose column-major memory
is the blob's buffer; names from the source list (strip), period, wrap-around."""
import numpy as np
import pytest

import caffe_lite as caffe
from caffe_lite.errors import LayerError
from caffe_lite.formats import parse_net_param

sio = pytest.importorskip("scipy.io")


def write_net(shape, params, bottoms=1):
    inputs = "".join(f"layer {{ name: 'in{i}' type: 'Input' top: 'x{i}' input_param "
                     f"{{ shape {{ {' '.join(f'dim: {d}' for d in shape)} }} }} }} "
                     for i in range(bottoms))
    tops = " ".join(f"bottom: 'x{i}'" for i in range(bottoms))
    return caffe.Net(parse_net_param(
        f"{inputs} layer {{ name: 'w' type: 'MatWrite' {tops} mat_write_param {{ {params} }} }}"),
        caffe.TEST)


def read_net(params, tops=1):
    names = " ".join(f"top: 'y{i}'" for i in range(tops))
    return caffe.Net(parse_net_param(
        f"layer {{ name: 'r' type: 'MatRead' {names} mat_read_param {{ {params} }} }}"),
        caffe.TEST)


def test_mat_write_layout_names_and_period(tmp_path):
    listing = tmp_path / "ids.txt"
    listing.write_text("img_a.png 7\nimg_b.png\nimg_c.png\n")
    net = write_net((2, 3, 4, 5), f'prefix: "{tmp_path}/out_" source: "{listing}" '
                                  f'strip: 4 period: 2', bottoms=2)
    values = []
    for k in range(3):
        x = np.random.default_rng(k).standard_normal((2, 3, 4, 5)).astype(np.float32)
        net.blobs["x0"].data[...], net.blobs["x1"].data[...] = x, -x
        values.append(x)
        net.forward()
    written = sorted(p.name for p in tmp_path.glob("*.mat"))
    assert written == ["out_img_a_blob_0.mat", "out_img_a_blob_1.mat",
                       "out_img_c_blob_0.mat", "out_img_c_blob_1.mat"]
    data = sio.loadmat(tmp_path / "out_img_c_blob_1.mat")["data"]
    assert data.dtype == np.float32 and data.shape == (5, 4, 3, 2)
    np.testing.assert_array_equal(data.ravel(order="F"), -values[2].ravel())
    with pytest.raises(LayerError, match="names only 3"):
        for _ in range(3):
            net.forward()


def test_mat_write_without_source_and_legacy_axes(tmp_path):
    net = write_net((2, 3), f'prefix: "{tmp_path}/"')
    net.blobs["x0"].data[...] = np.arange(6).reshape(2, 3)
    net.forward()
    net.forward()
    data = sio.loadmat(tmp_path / "iter_1_blob_0.mat")["data"]
    assert data.shape == (1, 1, 3, 2)                   # width, height 1 as in Caffe
    np.testing.assert_array_equal(data.ravel(order="F"), np.arange(6))


def test_mat_read_batches_wrap_and_round_trip(tmp_path):
    r = np.random.default_rng(0)
    items = [r.standard_normal((1, 2, 3, 4)).astype(np.float32) for _ in range(3)]
    for name, item in zip("abc", items):
        sio.savemat(tmp_path / f"p_{name}_blob_0.mat", {"data": item.transpose(3, 2, 1, 0)})
        sio.savemat(tmp_path / f"p_{name}_blob_1.mat",    # MATLAB drops a trailing 1
                    {"data": (item[0, :1] * 2).transpose(2, 1, 0)})
    (tmp_path / "list.txt").write_text("a.x\nb.x\nc.x\n")
    net = read_net(f'prefix: "{tmp_path}/p_" source: "{tmp_path}/list.txt" strip: 2 '
                   f'batch_size: 2', tops=2)
    assert net.blobs["y0"].shape == (2, 2, 3, 4) and net.blobs["y1"].shape == (2, 1, 3, 4)
    got = []
    for _ in range(2):
        net.forward()
        got += list(net.blobs["y0"].data.copy())
    for k, order in enumerate([0, 1, 2, 0]):
        np.testing.assert_array_equal(got[k], items[order][0])
    np.testing.assert_array_equal(net.blobs["y1"].data[1], items[0][0, :1] * 2)
    # MatWrite's files read back by MatRead
    writer = write_net((1, 2, 3, 4), f'prefix: "{tmp_path}/rt_"')
    writer.blobs["x0"].data[...] = items[1]
    writer.forward()
    reader = read_net(f'prefix: "{tmp_path}/rt_"')
    reader.forward()
    np.testing.assert_array_equal(reader.blobs["y0"].data, items[1])


def test_mat_read_errors(tmp_path):
    sio.savemat(tmp_path / "d_iter_0_blob_0.mat", {"data": np.zeros((2, 2), np.float64)})
    with pytest.raises(LayerError, match="single precision"):
        read_net(f'prefix: "{tmp_path}/d_"')
    sio.savemat(tmp_path / "n_iter_0_blob_0.mat", {"other": np.zeros((2, 2), np.float32)})
    with pytest.raises(LayerError, match="no variable 'data'"):
        read_net(f'prefix: "{tmp_path}/n_"')
    sio.savemat(tmp_path / "m_iter_0_blob_0.mat", {"data": np.zeros((2, 2, 1, 3), np.float32)})
    with pytest.raises(LayerError, match="3 items"):
        read_net(f'prefix: "{tmp_path}/m_"')
    with pytest.raises(LayerError, match="does not exist"):
        read_net(f'prefix: "{tmp_path}/missing_"')
    (tmp_path / "short.txt").write_text("ab\n")
    with pytest.raises(LayerError, match="strip"):
        read_net(f'prefix: "{tmp_path}/" source: "{tmp_path}/short.txt" strip: 2')
    with pytest.raises(LayerError, match="period"):
        write_net((1, 1), f'prefix: "{tmp_path}/" period: 0')


def test_without_scipy_the_error_names_the_extra(tmp_path, monkeypatch):
    import sys
    net = write_net((1, 1), f'prefix: "{tmp_path}/"')
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(LayerError, match=r"caffe-lite\[mat\]"):
        net.forward()
