"""Naive references for the data layers, written from Caffe's semantics with plain
loops (never calling caffe_lite): the DataTransformer of one record, OpenCV's
bilinear resize in floating point, and the record order of an epoch."""
import math

import numpy as np


def ref_transform(record, crop=0, h_off=0, w_off=0, mirror=False, mean=None,
                  mean_values=None, scale=1.0):
    """One record (C, H, W) -> float32 (C, h, w), element by element as
    DataTransformer::Transform(const Datum&, Dtype*) does."""
    C, H, W = record.shape
    h, w = (crop, crop) if crop else (H, W)
    out = np.zeros((C, h, w), np.float32)
    f32 = np.float32
    for c in range(C):
        for i in range(h):
            for j in range(w):
                x = f32(record[c, h_off + i, w_off + j])
                if mean is not None:
                    v = (x - f32(mean[c, h_off + i, w_off + j])) * f32(scale)
                elif mean_values is not None:
                    m = mean_values[0] if len(mean_values) == 1 else mean_values[c]
                    v = (x - f32(m)) * f32(scale)
                else:
                    v = x * f32(scale)
                out[c, i, w - 1 - j if mirror else j] = v
    return out


def ref_bilinear_resize(image, height, width):
    """Bilinear resize (H, W, C) -> (height, width, C) with OpenCV's pixel-centre
    mapping and edge clamping, in exact arithmetic, rounded to uint8."""
    H, W, C = image.shape
    out = np.zeros((height, width, C), np.uint8)
    for y in range(height):
        fy = (y + 0.5) * H / height - 0.5
        y0 = math.floor(fy)
        wy = fy - y0
        for x in range(width):
            fx = (x + 0.5) * W / width - 0.5
            x0 = math.floor(fx)
            wx = fx - x0
            for c in range(C):
                def px(r, q, c=c):
                    return float(image[min(max(r, 0), H - 1), min(max(q, 0), W - 1), c])
                if x0 < 0 or x0 >= W - 1:
                    wx_ = 0.0
                    x0_ = min(max(x0, 0), W - 1)
                else:
                    wx_, x0_ = wx, x0
                top = px(y0, x0_) * (1 - wx_) + px(y0, x0_ + 1) * wx_
                bottom = px(y0 + 1, x0_) * (1 - wx_) + px(y0 + 1, x0_ + 1) * wx_
                value = top * (1 - wy) + bottom * wy
                out[y, x, c] = min(max(int(math.floor(value + 0.5)), 0), 255)
    return out


def ref_epoch_order(num_records, batch_size, batches):
    """Record indices served by a sequential reader over ``batches`` batches."""
    order = []
    position = 0
    for _ in range(batches):
        for _ in range(batch_size):
            order.append(position)
            position = (position + 1) % num_records
    return order
