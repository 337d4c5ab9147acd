"""Weights into a built net: every check before any value is written, values read
straight into the params (every encoding Caffe writes), declared sizes checked
against the file before anything is allocated, and fillers that run only when a
param is first read."""
import struct
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
from protowire import field, varint

import caffe_lite as caffe
from caffe_lite.errors import MemoryLimitError, ModelFileError, WeightsError
from caffe_lite.formats import caffemodel, parse_net_param, read_weights

NET = """layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "y"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "ip" type: "InnerProduct" bottom: "y" top: "z"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
"""


# -- hand-made files: protowire.py encodes them ------------------------------------
def shape(*dims):
    return field(7, field(1, b"".join(varint(d) for d in dims)))


def layer(name, *blobs):
    return field(100, field(1, name.encode()) + b"".join(field(7, b) for b in blobs))


def packed(values, fmt="<f"):
    return b"".join(struct.pack(fmt, v) for v in values)


def net(dtype=np.float32):
    return caffe.Net(parse_net_param(NET), caffe.TEST, dtype=dtype)


@pytest.fixture
def saved(tmp_path):
    """A caffemodel written by caffe_lite, and the values in it."""
    source = net()
    rng = np.random.default_rng(0)
    for blob in (b for layer in source.layers for b in layer.blobs):
        blob.data[...] = rng.standard_normal(blob.shape)
    path = tmp_path / "w.caffemodel"
    source.save(path)
    return path, {name: [b.data.copy() for b in blobs]
                  for name, blobs in source.params.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copy_from_reads_every_value_into_the_params(saved, dtype, monkeypatch):
    monkeypatch.setattr(caffemodel, "READ_CHUNK", 5)   # float64: several reads per blob
    path, values = saved
    target = net(dtype)
    target.copy_from(path)
    for name, arrays in values.items():
        for blob, want in zip(target.params[name], arrays):
            assert blob.data.dtype == dtype
            np.testing.assert_array_equal(blob.data, want)


def test_legacy_unpacked_and_double_blobs_load_into_a_net(tmp_path):
    """The encodings not read in place (V1 legacy dims, unpacked floats,
    double_data) go through the general decoder into the same params."""
    weight = np.arange(2 * 3 * 3 * 3, dtype=np.float32)
    unpacked = b"".join(varint(5 << 3 | 5) + struct.pack("<f", v) for v in range(2))
    legacy = b"".join(varint(k << 3) + varint(d) for k, d in zip((1, 2, 3, 4), (2, 3, 3, 3)))
    conv = layer("conv", legacy + field(5, packed(weight)), unpacked + shape(2))
    ip = layer("ip", field(5, packed([9] * 24)) + field(8, packed(range(24), "<d")) +
               shape(3, 8), shape(3) + field(8, packed([1, 2, 3], "<d")))
    path = tmp_path / "mixed.caffemodel"
    path.write_bytes(conv + ip)
    target = net()
    target.copy_from(path)
    np.testing.assert_array_equal(target.params["conv"][0].data.ravel(), weight)
    np.testing.assert_array_equal(target.params["conv"][1].data, [0, 1])
    np.testing.assert_array_equal(target.params["ip"][0].data.ravel(), np.arange(24))
    np.testing.assert_array_equal(target.params["ip"][1].data, [1, 2, 3])


def test_a_bad_shape_anywhere_leaves_every_param_untouched(saved):
    path, _ = saved
    target = net()
    before = {name: [b.data.copy() for b in blobs] for name, blobs in target.params.items()}
    raw = path.read_bytes()
    bad = raw + layer("ip", field(5, packed([1] * 6)) + shape(3, 2),
                      field(5, packed([0] * 3)) + shape(3))
    path.write_bytes(bad)            # the later "ip" entry does not fit the net
    with pytest.raises(WeightsError, match=r"w.caffemodel.*layer 'ip'.*blob 'ip\[0\]'"):
        target.copy_from(path)
    for name, blobs in target.params.items():
        for blob, want in zip(blobs, before[name]):
            np.testing.assert_array_equal(blob.data, want)


def test_a_tiny_file_declaring_a_100_gb_blob_is_refused_without_allocating(tmp_path):
    path = tmp_path / "huge.caffemodel"
    path.write_bytes(layer("ip", field(5, packed([1.0])) + shape(25 << 30)))
    target = net()
    tracemalloc.start()
    start = time.perf_counter()
    for load in (read_weights, target.copy_from):
        with pytest.raises(ModelFileError) as info:
            load(path)
        message = str(info.value)
        assert "huge.caffemodel" in message and "layer 'ip'" in message
        assert "blob 'ip[0]'" in message and "more than the" in message
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20 and time.perf_counter() - start < 5
    # a payload length past the end of the file: truncated, nothing read
    path.write_bytes(field(100, field(1, b"ip") + varint(7 << 3 | 2) + varint(100 << 30)))
    with pytest.raises(ModelFileError, match="truncated.*huge.caffemodel|huge.caffemodel.*truncated"):
        read_weights(path)


def test_an_hdf5_file_declaring_more_than_it_holds_is_refused(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as handle:            # storage allocated late: never written
        handle.create_group("data/ip").create_dataset("0", shape=(25 << 30,), dtype="f4")
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    for load in (read_weights, net().copy_from):
        with pytest.raises(ModelFileError, match=r"huge.h5.*layer 'ip'.*blob 'ip\[0\]'.*"
                                                 r"more than the"):
            load(path)
    assert tracemalloc.get_traced_memory()[1] < 1 << 20
    tracemalloc.stop()


def test_reading_weights_over_the_memory_limit_is_refused_first(saved):
    path, _ = saved
    caffe.set_memory_limit(100)
    try:
        with pytest.raises(MemoryLimitError, match=r"w.caffemodel.*layer 'conv'.*"
                                                   r"blob 'conv\[0\]'.*memory limit of 100"):
            read_weights(path)
    finally:
        caffe.set_memory_limit(None)


def test_hdf5_weights_load_into_a_net(saved, tmp_path):
    pytest.importorskip("h5py")
    path, values = saved
    net_with_values = net()
    net_with_values.copy_from(path)
    net_with_values.save(tmp_path / "w.h5")
    target = net()
    target.copy_from(tmp_path / "w.h5")
    for name, arrays in values.items():
        for blob, want in zip(target.params[name], arrays):
            np.testing.assert_array_equal(blob.data, want)


# -- lazy fillers -----------------------------------------------------------------
def test_fills_do_not_depend_on_when_params_are_first_read():
    caffe.set_random_seed(5)
    first = net()
    forward = [b.data.copy() for layer in first.layers for b in layer.blobs]
    caffe.set_random_seed(5)
    second = net()
    blobs = [b for layer in second.layers for b in layer.blobs]
    backward = [b.data.copy() for b in reversed(blobs)]           # read last first
    assert len(forward) == len(backward) == 4
    for a, b in zip(forward, reversed(backward)):
        np.testing.assert_array_equal(a, b)
    assert forward[0].std() > 0 and forward[2].std() > 0.5       # really filled


def test_a_fill_replaced_by_weights_never_runs(saved, monkeypatch):
    path, values = saved
    target = net()
    ran = []
    for blob in target.params["ip"]:
        pending = blob._pending
        blob.fill_later(lambda pending=pending: ran.append(1) or pending())
    target.copy_from(path)
    np.testing.assert_array_equal(target.params["ip"][0].data, values["ip"][0])
    assert ran == []


def test_a_blob_waiting_for_its_fill_pickles_with_its_values():
    import pickle
    caffe.set_random_seed(3)
    blob = net().params["ip"][0]
    copy = pickle.loads(pickle.dumps(blob))
    assert copy.shape == blob.shape and copy.data.std() > 0.5
    np.testing.assert_array_equal(copy.data, blob.data)


def test_building_a_big_net_touches_none_of_its_memory():
    """1 GB of parameters with a random filler: built without computing a value
    or making a page resident (the fill waits for a first read). Measured in a
    fresh process, where no thread of another test allocates meanwhile."""
    text = NET.replace("num_output: 3", "num_output: 8192").replace(
        "dim: 4 dim: 4", "dim: 130 dim: 130")                     # 8192 x 32768 weights
    script = f"""
import caffe_lite as caffe
from caffe_lite.formats import parse_net_param
def resident():
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) << 10 for line in handle if line.startswith("VmRSS"))
text = {text!r}
parse_net_param(text)                       # the parser's own first use, before measuring
before = resident()
caffe.set_memory_limit("1T")                # the machine's free memory does not matter
big = caffe.Net(parse_net_param(text), caffe.TEST)
assert big.params["ip"][0].shape == (8192, 32768)
assert big.params["ip"][0]._pending is not None     # filled when first read
print(resident() - before)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 64 << 20
