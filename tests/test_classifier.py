"""Classifier (predict with and without oversampling) and Detector
(detect_windows) with pycaffe's constructor arguments.

The net is an Input followed by a test-only layer that outputs each channel's
mean, so every score can be recomputed from the loop references."""
import numpy as np
import pytest
import ref_pycaffe as ref

import caffe_lite as caffe
from caffe_lite.errors import CaffeLiteError
from caffe_lite.layers.base import Layer, layer_types, register_layer

if "TestOnlyChannelMean" not in layer_types():
    @register_layer("TestOnlyChannelMean")
    class _ChannelMean(Layer):
        """(N, C, H, W) -> (N, C): the mean of every channel."""
        exact_num_bottom = 1
        exact_num_top = 1

        def reshape(self, bottom, top):
            top[0].reshape(bottom[0].shape[:2])

        def forward(self, bottom, top):
            top[0].data[...] = bottom[0].data.mean(axis=(2, 3))

NET = '''
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 4 dim: 3 dim: 5 dim: 6 } } }
layer { name: "score" type: "TestOnlyChannelMean" bottom: "data" top: "score" }
'''
rng = np.random.default_rng(3)
MEAN = np.array([0.1, 0.2, 0.3], np.float32)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text(NET)
    return str(path)


def _expected(crops):
    return np.array([ref.preprocess(c, (2, 0, 1), (2, 1, 0), 2.0, MEAN, 0.5).mean(axis=(1, 2))
                     for c in crops])


def test_predict_oversample_and_center(model):
    pytest.importorskip("PIL.Image", reason="Pillow (the 'image' extra) missing")
    net = caffe.Classifier(model, None, image_dims=(9, 10), mean=MEAN, input_scale=0.5,
                           raw_scale=2.0, channel_swap=(2, 1, 0))
    assert net.transformer.transpose['data'] == (2, 0, 1)
    assert list(net.crop_dims) == [5, 6]
    images = [rng.random((9, 10, 3)).astype(np.float32) for _ in range(3)]
    scores = net.predict(images)                   # 30 crops: batches of 4, padded
    assert scores.shape == (3, 3)
    crops = ref.oversample(images, (5, 6))
    np.testing.assert_allclose(scores, _expected(crops).reshape(3, 10, 3).mean(1),
                               rtol=1e-5)
    center = net.predict(images, oversample=False)
    y0, x0 = int(9 / 2.0 - 2.5), int(10 / 2.0 - 3.0)
    np.testing.assert_allclose(center, _expected([im[y0:y0 + 5, x0:x0 + 6] for im in images]),
                               rtol=1e-5)


def test_default_image_dims_is_the_input_size(model):
    net = caffe.Classifier(model, None)
    assert tuple(net.image_dims) == (5, 6)
    images = [rng.random((5, 6, 3)).astype(np.float32)]
    pytest.importorskip("PIL.Image", reason="Pillow (the 'image' extra) missing")
    np.testing.assert_allclose(net.predict(images, oversample=False),
                               [images[0].mean(axis=(0, 1))], rtol=1e-5)


def test_detect_windows(model, tmp_path):
    Image = pytest.importorskip("PIL.Image", reason="Pillow (the 'image' extra) missing")
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = pixels / np.float32(255)
    net = caffe.Detector(model, None, mean=MEAN, input_scale=0.5, raw_scale=2.0,
                         channel_swap=(2, 1, 0))
    windows = [np.array([0, 0, 5, 6]), np.array([2, 3, 12, 15])]
    found = net.detect_windows([(str(tmp_path / "a.png"), windows)])
    assert [d['filename'] for d in found] == [str(tmp_path / "a.png")] * 2
    crops = [caffe.io.resize_image(image[w[0]:w[2], w[1]:w[3]].astype(np.float32), (5, 6))
             for w in windows]
    np.testing.assert_allclose([d['prediction'] for d in found], _expected(crops), rtol=1e-5)
    padded = caffe.Detector(model, None, mean=MEAN, raw_scale=2.0, context_pad=1)
    assert padded.crop(image, windows[1]).shape == (5, 6, 3)
    with pytest.raises(CaffeLiteError, match="selective_search"):
        padded.detect_selective_search([str(tmp_path / "a.png")])
