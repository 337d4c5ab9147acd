"""The transform_param pipeline and the DummyData, MemoryData, HDF5Data and
HDF5Output layers, on small files made here (Data / ImageData and the image
tools are in test_data_db.py)."""
import numpy as np
import pytest
from layer_case import layer_param
from ref_data import ref_epoch_order, ref_transform

import caffe_lite as caffe
from caffe_lite.data.transform import DataTransformer
from caffe_lite.errors import LayerError
from caffe_lite.formats import parse_net_param
from caffe_lite.proto import caffe_pb2


def net(text, phase=caffe.TRAIN):
    return caffe.Net(parse_net_param(text), phase)


def transformer(text, phase=caffe_pb2.TRAIN, seed=0, mean_path=None):
    param = layer_param(f"name: 't' transform_param {{ {text} }}").transform_param
    return DataTransformer(param, phase, lambda m, blob=None: LayerError(m),
                           np.random.default_rng(seed), mean_path)


def write_mean(path, mean):
    blob = caffe_pb2.BlobProto(num=1, channels=mean.shape[0], height=mean.shape[1],
                               width=mean.shape[2])
    blob.data.extend(mean.ravel().tolist())
    path.write_bytes(blob.SerializeToString())


# ---- transform_param ----------------------------------------------------------
RECORDS = np.random.default_rng(1).integers(0, 256, (6, 3, 7, 8)).astype(np.uint8)


def test_test_phase_centre_crop_mean_file_and_scale(tmp_path):
    mean = np.random.default_rng(2).uniform(0, 255, (3, 7, 8)).astype(np.float32)
    write_mean(tmp_path / "mean.binaryproto", mean)
    t = transformer("crop_size: 4 scale: 0.25 mean_file: 'mean.binaryproto'",
                    caffe_pb2.TEST, mean_path=str(tmp_path / "mean.binaryproto"))
    out = t(RECORDS)
    assert out.shape == (6, 3, 4, 4) and out.dtype == np.float32
    for n in range(6):     # crop, then subtract the mean at the source position, scale
        np.testing.assert_array_equal(out[n], ref_transform(
            RECORDS[n], crop=4, h_off=1, w_off=2, mean=mean, scale=0.25))


def test_mean_values_per_channel_and_single():
    for values in ([10.0, 20.5, 30.0], [7.0]):
        text = " ".join(f"mean_value: {v}" for v in values) + " scale: 2"
        out = transformer(text, caffe_pb2.TEST)(RECORDS)
        for n in range(6):
            np.testing.assert_array_equal(out[n], ref_transform(
                RECORDS[n], mean_values=values, scale=2.0))


def test_train_random_crop_and_mirror_match_some_placement():
    t = transformer("crop_size: 5 mirror: true", caffe_pb2.TRAIN, seed=3)
    placements = set()
    for _ in range(5):
        out = t(RECORDS)
        for n in range(6):
            found = [(h, w, m) for h in range(3) for w in range(4) for m in (False, True)
                     if np.array_equal(out[n], ref_transform(RECORDS[n], 5, h, w, m))]
            assert found, "output is no crop/mirror of its record"
            placements.update(found)
    assert len({p[:2] for p in placements}) > 3 and {p[2] for p in placements} == {0, 1}


def test_transform_errors():
    with pytest.raises(LayerError, match="crop_size 9"):
        transformer("crop_size: 9")(RECORDS)
    with pytest.raises(LayerError, match="mean_value"):
        transformer("mean_value: 1 mean_value: 2")(RECORDS)
    with pytest.raises(LayerError, match="does not exist"):
        transformer("mean_file: 'no_such_mean.binaryproto'")


def test_mean_file_of_the_wrong_shape(tmp_path):
    write_mean(tmp_path / "m.binaryproto", np.zeros((3, 5, 5), np.float32))
    t = transformer("mean_file: 'm'", mean_path=str(tmp_path / "m.binaryproto"))
    with pytest.raises(LayerError, match=r"m.binaryproto holds a \(3, 5, 5\) mean"):
        t(RECORDS)


# ---- DummyData, MemoryData ----------------------------------------------------
def test_dummy_data_constant_once_random_every_forward():
    n = net("layer { name: 'd' type: 'DummyData' top: 'a' top: 'b' top: 'c' "
            "dummy_data_param { num: 2 channels: 3 height: 1 width: 1 "
            "data_filler { type: 'constant' value: 0.5 } "
            "data_filler { type: 'gaussian' } data_filler { type: 'constant' } } }")
    assert n.blobs["a"].shape == (2, 3, 1, 1)
    n.blobs["a"].data[...] = 9                     # constant tops are not refilled
    first = n.forward(["b"])["b"].copy()
    second = n.forward(["b"])["b"]
    assert np.all(n.blobs["a"].data == 9) and not np.array_equal(first, second)
    assert not n.blobs["c"].data.any()


def test_dummy_data_errors():
    with pytest.raises(LayerError, match="data_filler"):
        net("layer { name: 'd' type: 'DummyData' top: 'a' top: 'b' top: 'c' "
            "dummy_data_param { shape { dim: 1 } data_filler {} data_filler {} } }")


MEMORY = """layer { name: 'data' type: 'MemoryData' top: 'data' top: 'label'
  memory_data_param { batch_size: 2 channels: 1 height: 2 width: 3 } }"""


def test_memory_data_serves_batches_in_order_and_wraps():
    n = net(MEMORY)
    data = np.arange(6 * 6, dtype=np.float32).reshape(6, 1, 2, 3)
    labels = np.arange(6, dtype=np.float32)
    n.set_input_arrays(data, labels)
    for batch in (0, 1, 2, 0):
        out = n.forward()
        np.testing.assert_array_equal(out["data"], data[2 * batch:2 * batch + 2])
        assert out["label"].shape == (2, 1, 1, 1)
        np.testing.assert_array_equal(out["label"].ravel(), labels[2 * batch:2 * batch + 2])


def test_memory_data_errors():
    n = net(MEMORY)
    with pytest.raises(LayerError, match="set_input_arrays"):
        n.forward()
    with pytest.raises(LayerError, match="multiple of batch_size"):
        n.set_input_arrays(np.zeros((3, 1, 2, 3)), np.zeros(3))
    with pytest.raises(LayerError, match=r"\(M, 1, 2, 3\)"):
        n.set_input_arrays(np.zeros((2, 1, 3, 2)), np.zeros(2))
    with pytest.raises(LayerError, match="one value per data item"):
        n.set_input_arrays(np.zeros((2, 1, 2, 3)), np.zeros(4))


# ---- HDF5 -----------------------------------------------------------------------
def hdf5_files(tmp_path, sizes=(3, 4)):
    h5py = pytest.importorskip("h5py")
    names, start = [], 0
    for i, rows in enumerate(sizes):
        with h5py.File(tmp_path / f"part{i}.h5", "w") as f:
            f["data"] = np.arange(start, start + rows, dtype=np.float64)[:, None] * [1, 10]
            f["label"] = np.arange(start, start + rows, dtype=np.int32)
        names.append(f"part{i}.h5")
        start += rows
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    return str(tmp_path / "list.txt")


def hdf5_net(source, batch=2, shuffle=False):
    return net(f"layer {{ name: 'h' type: 'HDF5Data' top: 'data' top: 'label' "
               f"hdf5_data_param {{ source: '{source}' batch_size: {batch} "
               f"shuffle: {str(shuffle).lower()} }} }}")


def test_hdf5_rows_concatenate_across_files_and_wrap(tmp_path):
    n = hdf5_net(hdf5_files(tmp_path), batch=3)      # list entries relative to the list
    assert n.blobs["data"].shape == (3, 2) and n.blobs["label"].shape == (3,)
    seen = [n.forward()["label"].copy() for _ in range(4)]
    np.testing.assert_array_equal(np.concatenate(seen), ref_epoch_order(7, 3, 4))
    np.testing.assert_array_equal(n.blobs["data"].data[:, 1], n.blobs["label"].data * 10)


def test_hdf5_shuffle_yields_every_row_once_per_epoch(tmp_path):
    caffe.set_random_seed(5)
    n = hdf5_net(hdf5_files(tmp_path, (5, 5, 2)), batch=4, shuffle=True)
    epochs = np.concatenate([n.forward()["label"].copy() for _ in range(6)]).reshape(2, 12)
    for epoch in epochs:
        assert sorted(epoch) == list(range(12))
    assert list(epochs[0]) != list(range(12))


def test_hdf5_errors(tmp_path):
    source = hdf5_files(tmp_path)
    with pytest.raises(LayerError, match="cannot read the HDF5 list"):
        hdf5_net(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(LayerError, match="names no files"):
        hdf5_net(str(tmp_path / "empty.txt"))
    with pytest.raises(LayerError, match="no dataset 'other'") as info:
        net(f"layer {{ name: 'h' type: 'HDF5Data' top: 'data' top: 'other' "
            f"hdf5_data_param {{ source: '{source}' batch_size: 2 }} }}")
    assert info.value.layer == "h"
    with pytest.raises(LayerError, match="does not transform"):
        net(f"layer {{ name: 'h' type: 'HDF5Data' top: 'data' transform_param "
            f"{{ scale: 2 }} hdf5_data_param {{ source: '{source}' batch_size: 2 }} }}")


def test_hdf5_output_writes_data_and_label(tmp_path):
    h5py = pytest.importorskip("h5py")
    out = tmp_path / "out.h5"
    n = net(MEMORY + f" layer {{ name: 'o' type: 'HDF5Output' bottom: 'data' "
                     f"bottom: 'label' hdf5_output_param {{ file_name: '{out}' }} }}")
    data = np.random.default_rng(0).normal(size=(2, 1, 2, 3)).astype(np.float32)
    n.set_input_arrays(data, np.array([3, 4], np.float32))
    n.forward()
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["data"][()], data)
        np.testing.assert_array_equal(f["label"][()], np.array([3, 4]).reshape(2, 1, 1, 1))
