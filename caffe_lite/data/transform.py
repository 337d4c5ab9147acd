"""Caffe's DataTransformer (transform_param): crop, mirror, mean subtraction and
scale, applied to a batch of records (N, C, H, W) as the data layers load them.

transform_param fields read: scale, mirror, crop_size, mean_file (a binaryproto
as large as the uncropped records), mean_value (one, or one per channel).
Per element, as Caffe: y[n, c, i, j'] = (x[n, c, h_off + i, w_off + j] - mean) * scale,
with j' = crop - 1 - j for a mirrored record and the mean taken at the source
position. TRAIN crops at random offsets, TEST at the centre ((H - crop) // 2);
with ``mirror`` each record is flipped with probability 1/2 in either phase
(Caffe's behaviour, not only in TRAIN).
"""

import numpy as np

from ..proto import caffe_pb2
from .files import read_blob_file


class DataTransformer:
    """Built once per data layer. ``error(message, blob=None)`` makes the layer's
    error; ``rng`` is the layer's own numpy Generator (crop offsets, mirrors)."""

    def __init__(self, param, phase, error, rng, mean_path=None):
        self.scale = np.float32(param.scale)
        self.mirror = param.mirror
        self.crop = param.crop_size
        self.train = phase == caffe_pb2.TRAIN
        self.error = error
        self.rng = rng
        self.mean = None
        self.mean_values = None
        if param.HasField("mean_file"):
            if len(param.mean_value):
                raise error("transform_param cannot have both mean_file and mean_value")
            self.mean_file = mean_path or param.mean_file
            self.mean = read_mean(self.mean_file, error)
        elif len(param.mean_value):
            self.mean_values = np.array(param.mean_value, np.float32)

    def output_shape(self, record_shape):
        """(C, H, W) of a record -> (C, h, w) after cropping; checks that it fits."""
        C, H, W = record_shape
        if self.crop and (H < self.crop or W < self.crop):
            raise self.error(f"crop_size {self.crop} does not fit records of "
                             f"{H} x {W}")
        if self.mean is not None and self.mean.shape != (C, H, W):
            raise self.error(f"the mean file {self.mean_file} holds a {self.mean.shape} "
                             f"mean, the records are {(C, H, W)}")
        if self.mean_values is not None and len(self.mean_values) not in (1, C):
            raise self.error(f"give one mean_value or one per channel ({C}), got "
                             f"{len(self.mean_values)}")
        return (C, self.crop, self.crop) if self.crop else (C, H, W)

    def __call__(self, records):
        """records (N, C, H, W), uint8 or float -> float32 (N, C, h, w)."""
        N, C, H, W = records.shape
        self.output_shape((C, H, W))                       # checks the crop fits
        return self.apply(records, *self.draw(N, H, W))

    def draw(self, N, H, W):
        """The random part for N records of H x W: crop offsets (h_off, w_off)
        and mirror flags, each of length N."""
        h, w = (self.crop, self.crop) if self.crop else (H, W)
        if self.crop and self.train:
            h_off = self.rng.integers(0, H - h + 1, N)
            w_off = self.rng.integers(0, W - w + 1, N)
        else:
            h_off = np.full(N, (H - h) // 2)
            w_off = np.full(N, (W - w) // 2)
        flip = (self.rng.integers(0, 2, N).astype(bool) if self.mirror
                else np.zeros(N, bool))
        return h_off, w_off, flip

    def apply(self, records, h_off, w_off, flip):
        """Crop at the offsets, mirror where flagged, subtract the mean, scale."""
        N, C, H, W = records.shape
        _, h, w = self.output_shape((C, H, W))
        rows = h_off[:, None] + np.arange(h)                     # (N, h)
        cols = w_off[:, None] + np.arange(w)                     # (N, w)
        cols[flip] = cols[flip, ::-1]
        if h == H and w == W and not flip.any():
            out = records.astype(np.float32)
            mean = self.mean
        else:
            index = (np.arange(N)[:, None, None, None], np.arange(C)[None, :, None, None],
                     rows[:, None, :, None], cols[:, None, None, :])
            out = records[index].astype(np.float32)              # (N, C, h, w)
            mean = None if self.mean is None else self.mean[index[1:]]
        if mean is not None:
            out -= mean
        elif self.mean_values is not None:
            out -= np.broadcast_to(self.mean_values, (C,))[:, None, None]
        out *= self.scale
        return out


def read_mean(path, error):
    """The mean image of a binaryproto as (C, H, W) float32 (Caffe uses the first
    item of a legacy 4-D blob)."""
    mean = read_blob_file(path, error, "mean file")
    if mean.ndim < 3:
        raise error(f"the mean file {path} holds a blob of shape {mean.shape}; "
                    f"expected (1, C, H, W)")
    return mean.reshape((-1,) + mean.shape[-3:])[0].copy()
