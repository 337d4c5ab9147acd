"""Data (LMDB / LevelDB) and ImageData layers, Caffe-style image reading, and the
convert-imageset / compute-image-mean tools, on small files made here."""
import numpy as np
import pytest
from ref_data import ref_bilinear_resize, ref_epoch_order, ref_transform

import caffe_lite as caffe
from caffe_lite.cli import main as cli
from caffe_lite.data.db import RecordReader, RecordWriter
from caffe_lite.data.image import read_image, resize_linear
from caffe_lite.errors import CaffeLiteError, LayerError
from caffe_lite.formats import parse_net_param, read_blobproto
from caffe_lite.io import array_to_datum
from caffe_lite.proto import caffe_pb2

RECORDS = np.random.default_rng(7).integers(0, 256, (5, 3, 6, 6)).astype(np.uint8)


def net(text, phase=caffe.TRAIN):
    return caffe.Net(parse_net_param(text), phase)


def make_db(path, backend="lmdb", records=RECORDS):
    pytest.importorskip("lmdb" if backend == "lmdb" else "plyvel")
    with RecordWriter(path, backend) as db:
        for i, record in enumerate(records):
            db.put(f"{i:08d}_r{i}", array_to_datum(record, label=i).SerializeToString())
    return str(path)


def data_net(source, backend="LMDB", batch=2, transform="", phase=caffe.TRAIN):
    return net(f"layer {{ name: 'd' type: 'Data' top: 'data' top: 'label' "
               f"transform_param {{ {transform} }} data_param {{ source: '{source}' "
               f"backend: {backend} batch_size: {batch} }} }}", phase)


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_data_layer_reads_records_in_key_order_and_wraps(tmp_path, backend):
    source = make_db(tmp_path / "db", backend)
    n = data_net(source, backend.upper(), batch=3, transform="scale: 0.5")
    assert n.blobs["data"].shape == (3, 3, 6, 6)
    labels = []
    for _ in range(4):
        out = n.forward()
        labels += list(out["label"])
        for item, label in zip(out["data"], out["label"]):
            np.testing.assert_array_equal(item, ref_transform(RECORDS[int(label)],
                                                              scale=0.5))
    assert labels == ref_epoch_order(5, 3, 4)


def test_data_layer_centre_crop_in_test_phase(tmp_path):
    n = data_net(make_db(tmp_path / "db"), transform="crop_size: 4", phase=caffe.TEST)
    out = n.forward()
    np.testing.assert_array_equal(out["data"][1], ref_transform(RECORDS[1], 4, 1, 1))


def test_data_layer_encoded_records(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    import io
    rgb = RECORDS[0].transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    pytest.importorskip("lmdb")
    with RecordWriter(tmp_path / "db", "lmdb") as db:
        datum = caffe_pb2.Datum(data=buffer.getvalue(), encoded=True, label=4)
        db.put("00000000_a.png", datum.SerializeToString())
    out = data_net(str(tmp_path / "db"), batch=1).forward()
    np.testing.assert_array_equal(out["data"][0], RECORDS[0][::-1])     # BGR
    assert out["label"][0] == 4


def test_data_layer_errors(tmp_path):
    pytest.importorskip("lmdb")
    with pytest.raises(LayerError, match="does not exist") as info:
        data_net(str(tmp_path / "missing_db"))
    assert info.value.layer == "d" and "missing_db" in str(info.value)
    make_db(tmp_path / "empty", records=[])
    with pytest.raises(LayerError, match="holds no records"):
        data_net(str(tmp_path / "empty"))


def write_images(tmp_path, count=5, size=(6, 6)):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(8)
    images, lines = [], []
    for i in range(count):
        rgb = rng.integers(0, 256, size + (3,)).astype(np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"img {i}.png")     # a space in the name
        images.append(rgb)
        lines.append(f"img {i}.png {i + 10}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return images


def image_net(tmp_path, extra="", batch=2):
    return net(f"layer {{ name: 'i' type: 'ImageData' top: 'data' top: 'label' "
               f"image_data_param {{ source: '{tmp_path / 'list.txt'}' "
               f"root_folder: '{tmp_path}/' batch_size: {batch} {extra} }} }}")


def test_image_data_reads_bgr_with_labels(tmp_path):
    images = write_images(tmp_path)
    out = image_net(tmp_path).forward()
    np.testing.assert_array_equal(out["data"][1], images[1][:, :, ::-1].transpose(2, 0, 1))
    assert list(out["label"]) == [10, 11]


def test_image_data_shuffle_epochs_and_gray_resize(tmp_path):
    write_images(tmp_path)
    caffe.set_random_seed(1)
    n = image_net(tmp_path, "shuffle: true", batch=5)
    epochs = [sorted(n.forward()["label"]) for _ in range(3)]
    assert all(e == list(range(10, 15)) for e in epochs)
    n = image_net(tmp_path, "is_color: false new_height: 3 new_width: 4")
    assert n.forward()["data"].shape == (2, 1, 3, 4)


def test_resize_matches_a_bilinear_reference():
    image = np.random.default_rng(9).integers(0, 256, (7, 9, 3)).astype(np.uint8)
    for shape in ((13, 5), (4, 4), (7, 20)):
        ours = resize_linear(image, *shape).astype(int)
        ref = ref_bilinear_resize(image, *shape).astype(int)
        assert np.abs(ours - ref).max() <= 1
    np.testing.assert_array_equal(resize_linear(image[:6, :8], 3, 4),
                                  ref_bilinear_resize(image[:6, :8], 3, 4))


def test_read_image_errors(tmp_path):
    with pytest.raises(CaffeLiteError, match="cannot read"):
        read_image(tmp_path / "nope.png")


def test_convert_imageset_and_compute_image_mean(tmp_path, capsys):
    images = write_images(tmp_path, count=4)
    db = tmp_path / "out_lmdb"
    pytest.importorskip("lmdb")
    assert cli(["convert-imageset", f"{tmp_path}/", str(tmp_path / "list.txt"),
                str(db), "-resize_height", "4", "-resize_width", "4"]) == 0
    reader = RecordReader(db, "lmdb")
    keys = [key for key, _ in reader.records()]
    reader.close()
    assert keys == [f"{i:08d}_img {i}.png".encode() for i in range(4)]
    mean_file = tmp_path / "mean.binaryproto"
    assert cli(["compute-image-mean", str(db), str(mean_file)]) == 0
    mean = read_blobproto(mean_file)
    expected = sum(resize_linear(img[:, :, ::-1], 4, 4).astype(np.float32)
                   for img in images) / np.float32(4)
    np.testing.assert_array_equal(mean, expected.transpose(2, 0, 1)[None])
    out = data_net(str(db), batch=4, transform=f"mean_file: '{mean_file}'").forward()
    np.testing.assert_allclose(out["data"].mean(axis=0), 0, atol=1e-4)
    assert cli(["convert-imageset", f"{tmp_path}/", str(tmp_path / "list.txt"),
                str(db)]) == 1                              # refuses an existing db
    assert "already exists" in capsys.readouterr().err


def window_net(tmp_path, extra="", transform="crop_size: 4", box5="4 2 7 5"):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(11)
    images = [rng.integers(0, 256, (10, 12, 3)).astype(np.uint8) for _ in range(2)]
    for i, rgb in enumerate(images):
        Image.fromarray(rgb).save(tmp_path / f"w{i}.png")
    (tmp_path / "windows.txt").write_text(
        "# 0\nw0.png\n3\n10\n12\n2\n3 0.9 2 1 5 4\n7 0.1 0 0 11 9\n"
        f"# 1\nw1.png\n3\n10\n12\n1\n5 0.8 {box5}\n")
    layer = net(f"layer {{ name: 'w' type: 'WindowData' top: 'data' top: 'label' "
                f"transform_param {{ {transform} }} window_data_param {{ source: "
                f"'{tmp_path / 'windows.txt'}' root_folder: '{tmp_path}/' "
                f"batch_size: 4 fg_fraction: 0.5 scale: 0.5 {extra} }} }}")
    return layer, images


def test_window_data_samples_fg_and_bg_windows(tmp_path):
    n, images = window_net(tmp_path)
    out = n.forward()
    assert out["data"].shape == (4, 3, 4, 4)
    assert list(out["label"][:2]) == [0, 0] and set(out["label"][2:]) <= {3, 5}
    bgr = [img[:, :, ::-1] for img in images]
    expected = {3: bgr[0][1:5, 2:6], 5: bgr[1][2:6, 4:8], 0: None}
    for item, label in zip(out["data"], out["label"]):
        if label:             # 4 x 4 windows: no resampling, just BGR * scale
            np.testing.assert_array_equal(item, expected[int(label)].transpose(2, 0, 1) * 0.5)
        else:
            ref = ref_bilinear_resize(bgr[0], 4, 4).transpose(2, 0, 1) * 0.5
            assert np.abs(item - ref).max() <= 0.5


def test_window_data_context_pad_places_the_window(tmp_path):
    """A window at the corner grown by the context leaves the image: the part
    outside stays 0 (a row on top, a column on the left, or the right if mirrored)."""
    caffe.set_random_seed(0)
    n, _ = window_net(tmp_path, "context_pad: 1", "crop_size: 6 mirror: true",
                      box5="0 0 3 3")
    sides = set()
    for _ in range(4):
        out = n.forward()
        for item in out["data"][out["label"] == 5]:
            assert not item[:, 0].any() and item[:, 1:].any()
            sides.add("left" if not item[:, :, 0].any() else "right")
            assert not item[:, :, 0].any() or not item[:, :, 5].any()
    assert sides


def test_window_data_errors(tmp_path):
    with pytest.raises(LayerError, match="crop_size"):
        window_net(tmp_path, transform="")
    (tmp_path / "windows.txt").write_text("# 0\nw0.png\n3\n10\n12\n1\n3 0.9 2 1 5 4\n")
    with pytest.raises(LayerError, match="background"):
        net(f"layer {{ name: 'w' type: 'WindowData' top: 'data' top: 'label' "
            f"transform_param {{ crop_size: 4 }} window_data_param {{ source: "
            f"'{tmp_path / 'windows.txt'}' batch_size: 2 }} }}")


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_two_nets_read_one_database(tmp_path, backend):
    """A train and a test net open the same database in one process."""
    source = make_db(tmp_path / "db", backend)
    first = data_net(source, backend.upper())
    second = data_net(source, backend.upper(), phase=caffe.TEST)
    assert list(first.forward()["label"]) == list(second.forward()["label"]) == [0, 1]
