"""File formats: prototxt parsing and errors, caffemodel read/write (hand-encoded
wire data, the zoo's files, Caffe-written files byte for byte), HDF5, mean
binaryprotos, atomic writes."""
import csv
import os
import struct
from collections import defaultdict

import numpy as np
import pytest
from conftest import CONFORMANCE, ZOO, zoo_file
from protowire import field, varint

from caffe_lite.errors import CaffeLiteError, ModelFileError, PrototxtError
from caffe_lite.formats import (
    atomic_write,
    blob_from_proto,
    blob_to_proto,
    parse_net_param,
    read_blobproto,
    read_caffemodel_param,
    read_net_param,
    read_weights,
    write_blobproto,
    write_prototxt,
    write_weights,
)
from caffe_lite.formats.upgrade import V1_TYPE_NAMES
from caffe_lite.proto import caffe_pb2


# -- hand-made files: protowire.py encodes them ------------------------------------
def int_field(number, value):
    return varint(number << 3) + varint(value)


def floats(values, fmt="<f"):
    return b"".join(struct.pack(fmt, v) for v in values)


# -- prototxt --------------------------------------------------------------------------
def test_parse_error_has_file_line_column_and_quote():
    text = 'name: "n"\nlayer {\n  name: "a"\n  typo: 3\n}\n'
    with pytest.raises(PrototxtError) as info:
        parse_net_param(text, "bad.prototxt")
    err = info.value
    assert (err.file, err.line, err.column) == ("bad.prototxt", 4, 3)
    message = str(err)
    assert message.startswith("bad.prototxt:4:3: ") and "typo" in message
    assert "\n      typo: 3\n      ^" in message


def test_parse_error_in_zoo_file_with_missing_quote():
    path = zoo_file("modelzoo_archive/poolmean/poolmean.prototxt")
    with pytest.raises(PrototxtError, match=r"poolmean\.prototxt:57:13: "):
        read_net_param(path)


def test_missing_file_and_directory_named(tmp_path):
    with pytest.raises(CaffeLiteError, match="nope.prototxt"):
        read_net_param(tmp_path / "nope.prototxt")
    with pytest.raises(CaffeLiteError, match="does not exist"):
        write_prototxt(caffe_pb2.NetParameter(), tmp_path / "no_dir" / "x.prototxt")


KNOWN_INVALID = {"deeplab_v1_largefov/test.prototxt", "deeplab_v1_largefov/train.prototxt",
                 "mobilenet_ssd/create_lmdb_code_labelmap.prototxt",
                 "modelzoo_archive/mixture_dcnn/base_model.prototxt",
                 "modelzoo_archive/poolmean/poolmean.prototxt",
                 "modelzoo_archive/yearbook/deploy.prototxt",
                 "modelzoo_archive/yearbook/train_val.prototxt"}


def test_every_zoo_prototxt_loads():
    """All eras and forks parse and upgrade; only the known-invalid files fail."""
    from caffe_lite.formats import read_solver_param
    zoo_file("MANIFEST.tsv")
    failed = set()
    for path in sorted(ZOO.rglob("*.prototxt")):
        relative = path.relative_to(ZOO).as_posix()
        try:
            if "solver" in path.name.lower():
                read_solver_param(path)
            else:
                assert not len(read_net_param(path).layers)
        except PrototxtError:
            failed.add(relative)
    assert failed == KNOWN_INVALID


def test_text_round_trip(tmp_path):
    net = read_net_param(zoo_file("bvlc_v1_format/bvlc_googlenet_deploy.prototxt"))
    write_prototxt(net, tmp_path / "g.prototxt")
    assert read_net_param(tmp_path / "g.prototxt") == net


# -- caffemodel: hand-encoded files ----------------------------------------------------
def test_fork_fields_with_clashing_numbers_are_ignored(tmp_path):
    """SegNet upsample_param (137), PSPNet interp_param (143), SegNet bn_param (45)
    and PSPNet bn_param (152) hold other messages than master's fields there."""
    garbage = bytes([0xFF, 0x07, 0x00, 0x80, 0x12, 0x34]) * 3
    weights = np.arange(6, dtype=np.float32).reshape(2, 3)
    blob = field(5, floats(weights.ravel())) + field(7, field(1, varint(2) + varint(3)))
    layer = (field(1, b"up") + field(2, b"Upsample") + field(137, garbage) +
             field(143, garbage) + field(45, garbage) + field(152, garbage) + field(7, blob))
    path = tmp_path / "fork.caffemodel"
    path.write_bytes(field(1, b"net") + field(100, layer))
    (saved,) = read_weights(path)
    assert (saved.name, saved.type) == ("up", "Upsample")
    np.testing.assert_array_equal(saved.blobs[0].data, weights)
    assert saved.blobs[0].legacy is False


def test_v1_v0_legacy_unpacked_and_double_blobs(tmp_path):
    legacy = int_field(1, 1) + int_field(2, 1) + int_field(3, 2) + int_field(4, 3)
    unpacked = b"".join(varint(5 << 3 | 5) + struct.pack("<f", v) for v in range(6))
    double = (field(5, floats([9] * 6)) + field(8, floats(range(6), "<d")) +
              field(7, field(1, varint(6))))
    v1 = field(4, b"ip") + int_field(5, 14) + field(6, legacy + unpacked) + field(6, double)
    v0_blob = int_field(1, 1) + int_field(2, 1) + int_field(3, 1) + int_field(4, 1)
    v0 = field(1, field(1, b"conv") + field(2, b"conv") +
               field(50, v0_blob + field(5, floats([7]))))
    path = tmp_path / "old.caffemodel"
    path.write_bytes(field(2, v1) + field(2, v0))
    ip, conv = read_weights(path)
    assert (ip.name, ip.type, conv.name, conv.type) == ("ip", "InnerProduct", "conv",
                                                        "Convolution")
    assert ip.blobs[0].legacy and ip.blobs[0].data.shape == (1, 1, 2, 3)
    np.testing.assert_array_equal(ip.blobs[0].data.ravel(), np.arange(6))
    assert ip.blobs[1].data.dtype == np.float64 and not ip.blobs[1].legacy
    np.testing.assert_array_equal(ip.blobs[1].data, np.arange(6))
    assert conv.blobs[0].legacy and conv.blobs[0].data.tolist() == [[[[7]]]]


def test_count_mismatch_names_file_layer_and_blob(tmp_path):
    blob = field(5, floats([1, 2, 3])) + field(7, field(1, varint(2) + varint(2)))
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(field(100, field(1, b"fc") + field(2, b"InnerProduct") + field(7, blob)))
    with pytest.raises(ModelFileError) as info:
        read_weights(path)
    message = str(info.value)
    assert "bad.caffemodel" in message and "layer 'fc'" in message and "fc[0]" in message
    # As in Caffe, absent legacy dims are 0: height alone makes a 0-value 4-D blob.
    path.write_bytes(field(100, field(1, b"c") + field(7, int_field(3, 1) + field(5, floats([7])))))
    with pytest.raises(ModelFileError, match=r"shape \(0, 0, 1, 0\)"):
        read_weights(path)


def test_truncated_and_garbage_files(tmp_path):
    source = zoo_file("lenet_mnist/lenet_iter_10000.caffemodel").read_bytes()
    path = tmp_path / "t.caffemodel"
    for size in (len(source) - 1, len(source) // 2, 100, 3):
        path.write_bytes(source[:size])
        with pytest.raises(ModelFileError, match="t.caffemodel") as info:
            read_weights(path)
        assert "truncated" in str(info.value) or "not a valid" in str(info.value)
    path.write_bytes(source[:len(source) // 2])
    with pytest.raises(ModelFileError, match=r"layer 'ip1'|layer 'conv2'|layer 'ip2'"):
        read_weights(path)
    for junk in (b"", b'name: "LeNet"\nlayer {}\n', os.urandom(4096)):
        path.write_bytes(junk)
        with pytest.raises(ModelFileError, match="t.caffemodel"):
            read_weights(path)
    with pytest.raises(ModelFileError, match="missing.caffemodel"):
        read_weights(tmp_path / "missing.caffemodel")


# -- caffemodel: real files --------------------------------------------------------------
def _tsv_rows():
    rows = defaultdict(list)
    with open(zoo_file("_caffemodel_blobs.tsv")) as handle:
        for row in list(csv.reader(handle, delimiter="\t"))[1:]:
            rows[row[0]].append(row)
    return rows


def _describe(blob):
    kind = "legacy4d" if blob.legacy else "shape"
    return f"{'x'.join(map(str, blob.data.shape))}[{kind}] n={blob.data.size}"


def test_zoo_caffemodels_match_listing():
    for model, rows in _tsv_rows().items():
        layers = [layer for layer in read_weights(ZOO / model) if layer.blobs]
        got = [(l.name, l.type, " | ".join(map(_describe, l.blobs))) for l in layers]
        expected = [(r[2], V1_TYPE_NAMES[r[3]] if r[1] == "V1" else r[3], r[4])
                    for r in rows]
        assert got == expected, model


def test_caffe_written_files_rewrite_byte_for_byte(tmp_path):
    files = sorted(CONFORMANCE.glob("*/*/weights.caffemodel"))
    assert files
    for path in files:
        raw = path.read_bytes()
        net = caffe_pb2.NetParameter.FromString(raw)
        layers = [(lp, [blob_from_proto(b).data for b in lp.blobs]) for lp in net.layer]
        write_weights(tmp_path / "w.caffemodel", net.name, layers)
        assert (tmp_path / "w.caffemodel").read_bytes() == raw, path


def test_write_read_round_trip(tmp_path):
    rng = np.random.RandomState(0)
    arrays = [rng.randn(4, 3, 2, 2).astype(np.float32), np.float32(1.5) * np.ones(4),
              np.array(2.0, np.float32), np.zeros((0, 3), np.float32)]
    conv = caffe_pb2.LayerParameter(name="conv", type="Convolution", bottom=["x"])
    conv.convolution_param.num_output = 4
    conv.blobs.add().data.append(99)           # stale blobs in the param are replaced
    for name in ("w.caffemodel", "w.caffemodel.h5"):
        write_weights(tmp_path / name, "n", [(conv, arrays), (caffe_pb2.LayerParameter(
            name="relu", type="ReLU"), [])])
        conv_back, relu_back = read_weights(tmp_path / name)
        assert conv_back.name == "conv" and relu_back.blobs == []
        for got, want in zip(conv_back.blobs, arrays):
            np.testing.assert_array_equal(got.data, want)
            assert got.data.shape == want.shape and not got.legacy
    param = read_caffemodel_param(tmp_path / "w.caffemodel")
    assert param.name == "n" and param.layer[0].convolution_param.num_output == 4
    assert len(param.layer[0].blobs) == 4


def test_v1_caffemodel_param_is_upgraded():
    param = read_caffemodel_param(zoo_file("cifar10_quick/cifar10_quick_iter_5000.caffemodel"))
    assert not len(param.layers) and param.layer[1].type == "Convolution"


def test_blob_proto_helpers():
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    proto = blob_to_proto(data, diff=-data)
    assert list(proto.shape.dim) == [2, 3] and list(proto.diff) == list(-data.ravel())
    back = blob_from_proto(proto)
    np.testing.assert_array_equal(back.data, data)
    legacy = blob_from_proto(caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3,
                                                 data=range(6)))
    assert legacy.legacy and legacy.data.shape == (1, 2, 1, 3)
    scalar = blob_to_proto(np.float32(3))
    assert not scalar.HasField("shape") and blob_from_proto(scalar).data.shape == ()


# -- HDF5, mean files, atomic writes ----------------------------------------------------
def test_zoo_hdf5_weights_match_binary():
    h5 = {l.name: l for l in read_weights(zoo_file(
        "cifar10_quick_hdf5/cifar10_quick_iter_5000.caffemodel.h5"))}
    assert [b.data.shape for b in h5["ip1"].blobs] == [(64, 1024), (64,)]
    assert h5["relu1"].blobs == []


def test_hdf5_layer_name_with_slash_and_garbage(tmp_path):
    pytest.importorskip("h5py")
    write_weights(tmp_path / "w.h5", "n", [(caffe_pb2.LayerParameter(name="a/b"),
                                            [np.ones(3, np.float32)])])
    (layer,) = read_weights(tmp_path / "w.h5")
    assert layer.name == "a/b" and layer.blobs[0].data.tolist() == [1, 1, 1]
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ModelFileError, match="bad.h5"):
        read_weights(tmp_path / "bad.h5")


def test_mean_binaryprotos(tmp_path):
    mean = read_blobproto(zoo_file("cifar10_quick_hdf5/mean.binaryproto"))
    assert mean.shape == (1, 3, 32, 32) and mean.dtype == np.float32
    places = zoo_file("modelzoo_archive/places205-alexnet/places205CNN_mean.binaryproto")
    assert read_blobproto(places).shape == (1, 3, 256, 256)
    write_blobproto(tmp_path / "m.binaryproto", mean[0])
    np.testing.assert_array_equal(read_blobproto(tmp_path / "m.binaryproto"), mean[0])


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "w.caffemodel"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["w.caffemodel"]

    class Exploding:
        name = "boom"
        blobs = []

        def SerializeToString(self, deterministic=False):
            raise RuntimeError("serializer failed")

    written = [(caffe_pb2.LayerParameter(name="fc"), [np.ones((256, 256), np.float32)])]
    with pytest.raises(RuntimeError):         # fails after the first layer's bytes
        write_weights(tmp_path / "new.caffemodel", "n", written + [(Exploding(), [])])
    assert os.listdir(tmp_path) == ["w.caffemodel"]
