"""Kernels of the Faster R-CNN fork (rbgirshick/caffe-fast-rcnn): max pooling over
regions of interest, and the sigma-scaled smooth L1 penalty.

Arithmetic follows the fork's float32 kernels: roi corners rounded half away from
zero after the float product with spatial_scale, bin edges from float32 bin sizes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


def c_round(x: Array) -> Array:
    """C's round(): halves away from zero (numpy's round goes to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def roi_bins(roi: Array, scale: float, height: int, width: int, pooled_h: int,
             pooled_w: int) -> tuple[int, Array, Array]:
    """One roi row (batch, x1, y1, x2, y2) -> (batch index, row bounds (PH, 2),
    column bounds (PW, 2)); bounds are [start, end) clipped to the map."""
    f32 = np.float32
    corners = c_round(np.asarray(roi[1:5], f32) * f32(scale)).astype(np.int64)
    x1, y1, x2, y2 = (int(v) for v in corners)
    rows = _bin_bounds(y1, max(y2 - y1 + 1, 1), pooled_h, height)
    cols = _bin_bounds(x1, max(x2 - x1 + 1, 1), pooled_w, width)
    return int(roi[0]), rows, cols


def _bin_bounds(start: int, size: int, pooled: int, extent: int) -> Array:
    f32 = np.float32
    bin_size = f32(size) / f32(pooled)
    p = np.arange(pooled, dtype=f32)
    lo = np.floor(p * bin_size).astype(np.int64) + start
    hi = np.ceil((p + f32(1)) * bin_size).astype(np.int64) + start
    return np.stack([np.clip(lo, 0, extent), np.clip(hi, 0, extent)], axis=1)  # (P, 2)


def roi_pool_forward(data: Array, rois: Array, scale: float, pooled_h: int,
                     pooled_w: int) -> tuple[Array, Array]:
    """data (N, C, H, W), rois (R, 5) -> (top (R, C, PH, PW), argmax of the same
    shape: flat h*W+w within the plane, -1 for an empty bin, whose output is 0).
    The first maximum in raster order wins (the fork's strict >)."""
    _, channels, height, width = data.shape
    num_rois = rois.shape[0]
    top = np.zeros((num_rois, channels, pooled_h, pooled_w), data.dtype)
    argmax = np.full(top.shape, -1, np.int64)
    for r in range(num_rois):
        n, rows, cols = roi_bins(rois[r], scale, height, width, pooled_h, pooled_w)
        plane = data[n]                                         # (C, H, W)
        for ph, (h0, h1) in enumerate(rows):
            for pw, (w0, w1) in enumerate(cols):
                if h1 <= h0 or w1 <= w0:
                    continue
                window = plane[:, h0:h1, w0:w1].reshape(channels, -1)  # (C, bh*bw)
                best = np.argmax(window, axis=1)                # first max
                top[r, :, ph, pw] = window[np.arange(channels), best]
                bw = w1 - w0
                argmax[r, :, ph, pw] = (h0 + best // bw) * width + w0 + best % bw
    return top, argmax


def roi_pool_backward(top_diff: Array, argmax: Array, rois: Array,
                      data_shape: tuple[int, ...]) -> Array:
    """Each top diff added to its argmax element, rois in order (R, C, PH, PW)."""
    num, channels, height, width = data_shape
    diff = np.zeros(num * channels * height * width, top_diff.dtype)
    R = len(rois)
    idx = argmax.reshape(R, channels, -1)                       # (R, C, PH*PW)
    plane = rois[:, 0].astype(np.int64)[:, None] * channels + np.arange(channels)
    flat = plane[:, :, None] * (height * width) + idx           # into (N, C, H, W)
    keep = idx >= 0
    # one scatter; each element still sums its contributions rois-then-bins in order
    np.add.at(diff, flat[keep], top_diff.reshape(idx.shape)[keep])
    return diff.reshape(data_shape)


def smooth_l1(d: Array, sigma2: float) -> tuple[Array, Array]:
    """f(d) = 0.5 sigma^2 d^2 if |d| < 1/sigma^2 else |d| - 0.5/sigma^2, and f'(d)."""
    t = d.dtype.type
    s2 = t(sigma2)
    absd = np.abs(d)
    inside = absd < t(1) / s2
    value = np.where(inside, t(0.5) * d * d * s2, absd - t(0.5) / s2)
    slope = np.where(inside, s2 * d, np.sign(d))
    return value.astype(d.dtype), slope.astype(d.dtype)
