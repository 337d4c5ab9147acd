"""caffe.io: the Transformer's order of operations, oversample crops, the
BlobProto / Datum round trips, and image loading through Pillow."""
import numpy as np
import pytest
import ref_pycaffe as ref
from conftest import zoo_file

import caffe_lite as caffe
from caffe_lite.errors import CaffeLiteError
from caffe_lite.proto import caffe_pb2

rng = np.random.default_rng(5)


def _transformer(shape=(1, 3, 4, 5)):
    t = caffe.io.Transformer({'data': shape})
    t.set_transpose('data', (2, 0, 1))
    t.set_channel_swap('data', (2, 1, 0))
    t.set_raw_scale('data', 255.0)
    t.set_input_scale('data', 0.017)
    return t


@pytest.mark.parametrize("mean_kind", ["channel", "full"])
def test_preprocess_matches_loop_reference(mean_kind):
    t = _transformer()
    mean = (rng.random(3) * 100 if mean_kind == "channel"
            else rng.random((3, 4, 5)) * 100).astype(np.float32)
    t.set_mean('data', mean)
    image = rng.random((4, 5, 3)).astype(np.float32)
    kept = image.copy()
    out = t.preprocess('data', image)
    expected = ref.preprocess(image, (2, 0, 1), (2, 1, 0), 255.0, mean, 0.017)
    assert out.dtype == np.float32 and out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(image, kept)            # the input is left alone
    np.testing.assert_allclose(t.deprocess('data', out), image, rtol=1e-5, atol=1e-6)


def test_preprocess_resizes_before_transpose():
    t = _transformer((1, 3, 6, 8))
    image = rng.random((3, 4, 3)).astype(np.float32)
    out = t.preprocess('data', image)
    assert out.shape == (3, 6, 8)
    resized = caffe.io.resize_image(image, (6, 8))
    np.testing.assert_array_equal(out, ref.preprocess(resized, (2, 0, 1), (2, 1, 0),
                                                      255.0, np.zeros(3), 0.017))


def test_set_mean_resizes_a_mean_image_and_deprocess_squeezes():
    t = caffe.io.Transformer({'data': (2, 3, 8, 8)})
    t.set_transpose('data', (2, 0, 1))
    mean = np.full((3, 16, 16), 7.0)
    t.set_mean('data', mean)
    assert t.mean['data'].shape == (3, 8, 8)
    np.testing.assert_allclose(t.mean['data'], 7.0)
    out = t.preprocess('data', np.ones((8, 8, 3), np.float32))
    np.testing.assert_allclose(out, -6.0)
    assert t.deprocess('data', out[np.newaxis]).shape == (8, 8, 3)


def test_transformer_errors_name_the_input():
    t = caffe.io.Transformer({'data': (1, 3, 4, 5)})
    with pytest.raises(CaffeLiteError, match="'label' is not one of the net inputs"):
        t.set_raw_scale('label', 1)
    with pytest.raises(CaffeLiteError, match="blob 'data'.*3 axes"):
        t.set_transpose('data', (1, 0))
    with pytest.raises(CaffeLiteError, match="3 channels"):
        t.set_channel_swap('data', (1, 0))
    with pytest.raises(ValueError, match="mean has 4 channels"):
        t.set_mean('data', np.zeros(4))
    t.set_transpose('data', (2, 0, 1))
    with pytest.raises(CaffeLiteError, match="does not fit the transpose"):
        t.preprocess('data', np.zeros((4, 5)))


def test_oversample_crops_and_shapes():
    images = [rng.random((9, 11, 3)).astype(np.float32) for _ in range(2)]
    crops = caffe.io.oversample(images, (4, 6))
    assert crops.shape == (20, 4, 6, 3) and crops.dtype == np.float32
    np.testing.assert_array_equal(crops, ref.oversample(images, (4, 6)))
    assert caffe.io.oversample(np.zeros((3, 256, 256, 3)), (227, 227)).shape == \
        (30, 227, 227, 3)
    with pytest.raises(CaffeLiteError, match="does not fit"):
        caffe.io.oversample(images, (10, 6))


def test_blobproto_round_trip_and_legacy_dims():
    arr = rng.standard_normal((2, 3, 4)).astype(np.float32)
    diff = rng.standard_normal((2, 3, 4)).astype(np.float32)
    blob = caffe.io.array_to_blobproto(arr, diff)
    assert list(blob.shape.dim) == [2, 3, 4]
    blob = caffe_pb2.BlobProto.FromString(blob.SerializeToString())
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), arr)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob, return_diff=True), diff)
    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3,
                                 data=[1, 2, 3, 4, 5, 6])
    assert caffe.io.blobproto_to_array(legacy).shape == (1, 2, 1, 3)
    double = caffe_pb2.BlobProto(double_data=[0.1, 0.2])
    double.shape.dim.append(2)
    assert caffe.io.blobproto_to_array(double).tolist() == [0.1, 0.2]
    vec = caffe.io.arraylist_to_blobprotovector_str([arr, arr[0]])
    back = caffe.io.blobprotovector_str_to_arraylist(vec)
    assert [a.shape for a in back] == [(2, 3, 4), (3, 4)]


def test_datum_round_trip():
    pixels = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    datum = caffe.io.array_to_datum(pixels, label=7)
    assert datum.data == pixels.tobytes() and datum.label == 7
    np.testing.assert_array_equal(caffe.io.datum_to_array(datum), pixels)
    floats = rng.standard_normal((2, 3, 3)).astype(np.float32)
    datum = caffe.io.array_to_datum(floats)
    assert not datum.data and len(datum.float_data) == 18
    np.testing.assert_array_equal(caffe.io.datum_to_array(datum), floats)
    with pytest.raises(ValueError, match="C x H x W"):
        caffe.io.array_to_datum(np.zeros((2, 2)))


@pytest.fixture
def Image():
    return pytest.importorskip("PIL.Image", reason="Pillow (the 'image' extra) missing")


def test_load_image_modes(Image, tmp_path):
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    img = caffe.io.load_image(str(tmp_path / "rgb.png"))
    assert img.dtype == np.float32 and img.shape == (5, 7, 3)
    np.testing.assert_array_equal(img, (rgb / 255.0).astype(np.float32))
    gray = caffe.io.load_image(str(tmp_path / "rgb.png"), color=False)
    expected = ((rgb / 255.0) @ [0.2125, 0.7154, 0.0721]).astype(np.float32)
    np.testing.assert_allclose(gray[:, :, 0], expected, rtol=1e-6)
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "l.png")
    assert caffe.io.load_image(str(tmp_path / "l.png")).shape == (5, 7, 3)
    assert caffe.io.load_image(str(tmp_path / "l.png"), color=False).shape == (5, 7, 1)
    rgba = np.dstack([rgb, np.full((5, 7), 9, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(caffe.io.load_image(str(tmp_path / "rgba.png")), img)


def test_undecodable_image_names_the_file(Image, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(caffe.io.ImageError, match="broken.jpg"):
        caffe.io.load_image(str(bad))
    with pytest.raises(OSError, match="missing.png"):
        caffe.io.load_image(str(tmp_path / "missing.png"))


def test_resize_image(Image):
    im = rng.random((4, 6, 5)).astype(np.float32)           # any channel count
    out = caffe.io.resize_image(im, (8, 12))
    assert out.shape == (8, 12, 5) and out.dtype == np.float32
    near = caffe.io.resize_image(im, (8, 12), interp_order=0)
    np.testing.assert_array_equal(near, im.repeat(2, axis=0).repeat(2, axis=1))
    np.testing.assert_array_equal(caffe.io.resize_image(np.full((3, 3, 1), 0.25), (5, 2)),
                                  np.full((5, 2, 1), 0.25, np.float32))
    assert caffe.io.resize_image(im, (4, 6)).shape == (4, 6, 5)
    np.testing.assert_allclose(caffe.io.resize_image(im, (4, 6)), im, atol=1e-6)


def test_encoded_datum_decodes_to_bgr(Image, tmp_path):
    rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    datum = caffe_pb2.Datum(encoded=True, data=(tmp_path / "x.png").read_bytes())
    np.testing.assert_array_equal(caffe.io.datum_to_array(datum),
                                  rgb[:, :, ::-1].transpose(2, 0, 1))


def test_load_binaryproto(tmp_path):
    mean = rng.random((1, 3, 4, 4)).astype(np.float32)
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(caffe.io.array_to_blobproto(mean).SerializeToString())
    np.testing.assert_array_equal(caffe.io.load_binaryproto(str(path)), mean)
    (tmp_path / "bad.binaryproto").write_bytes(b"\x0a\xff\xff")
    with pytest.raises(CaffeLiteError, match="bad.binaryproto"):
        caffe.io.load_binaryproto(str(tmp_path / "bad.binaryproto"))


def test_zoo_mean_file():
    mean = caffe.io.load_binaryproto(zoo_file("cifar10_quick_hdf5/mean.binaryproto"))
    assert mean.shape == (1, 3, 32, 32) and 0 < mean.mean() < 255
