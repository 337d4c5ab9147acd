"""A Python data layer in the style of FCN's voc_layers.py: each forward draws a
batch of synthetic images (discs and squares on noise) with their per-pixel
labels (0 background, 1 disc, 2 square). param_str is a dict literal:
{'batch': 8, 'size': 32, 'seed': 1}."""
import ast

import caffe
import numpy as np


def make_shapes(rng, batch, size):
    """(batch, 3, size, size) float32 images and (batch, 1, size, size) labels."""
    images = rng.normal(0, 0.15, (batch, 3, size, size)).astype(np.float32)
    labels = np.zeros((batch, 1, size, size), np.float32)
    yy, xx = np.mgrid[:size, :size]
    for i in range(batch):
        for _ in range(rng.integers(1, 3)):
            kind = rng.integers(1, 3)
            r = rng.integers(size // 8, size // 4)
            cy, cx = rng.integers(r, size - r, 2)
            if kind == 1:
                inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            else:
                inside = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
            labels[i, 0][inside] = kind
            colour = rng.uniform(0.5, 1.0, 3).astype(np.float32)
            images[i][:, inside] = colour[:, None]
    return images, labels


class ShapesDataLayer(caffe.Layer):
    def setup(self, bottom, top):
        params = ast.literal_eval(self.param_str)
        self.batch = params.get('batch', 8)
        self.size = params.get('size', 32)
        self.rng = np.random.default_rng(params.get('seed', 1))
        if len(top) != 2:
            raise Exception("Need two tops: data and label.")
        if len(bottom) != 0:
            raise Exception("Do not define a bottom.")

    def reshape(self, bottom, top):
        self.data, self.label = make_shapes(self.rng, self.batch, self.size)
        top[0].reshape(*self.data.shape)
        top[1].reshape(*self.label.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.data
        top[1].data[...] = self.label

    def backward(self, top, propagate_down, bottom):
        pass
