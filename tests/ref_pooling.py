"""Naive references for the pooling / upsampling family, written from the semantics in
caffe-semantics.md and conformance/README-forks.md: plain loops over every index, never
calling caffe_lite. Results are float64 unless stated. (Plain MAX/AVE pooling: see
reference.py.)"""
import itertools
import math

import numpy as np
from reference import ref_ave_pool, ref_ave_pool_backward, ref_max_pool


def _planes(shape):
    return itertools.product(range(shape[0]), range(shape[1]))


# ==== STOCHASTIC pooling (TEST) and SPP ========================================

def ref_stochastic_test(x, kernel, stride):
    """sum(x^2) / sum(x) over each window [o*s, o*s + k) clipped to the input; 0 if the
    sum is <= 0. Output size: ceil((H - k) / s) + 1."""
    N, C, H, W = x.shape
    OH, OW = (math.ceil((n - kernel) / stride) + 1 for n in (H, W))
    y = np.zeros((N, C, OH, OW))
    for n, c in _planes(x.shape):
        for oh, ow in itertools.product(range(OH), range(OW)):
            cells = [float(x[n, c, h, w])
                     for h in range(oh * stride, min(oh * stride + kernel, H))
                     for w in range(ow * stride, min(ow * stride + kernel, W))]
            total = sum(cells)
            y[n, c, oh, ow] = sum(v * v for v in cells) / total if total > 0 else 0.0
    return y


def spp_geometry(size, level):
    """(kernel, pad) of pyramid level ``level`` along an axis of ``size``."""
    bins = 2 ** level
    kernel = math.ceil(size / bins)
    return kernel, (kernel * bins - size + 1) // 2


def ref_spp(x, height, method="MAX"):
    """Each level pooled with kernel = stride, flattened per image, concatenated."""
    N = x.shape[0]
    parts = []
    for level in range(height):
        (kh, ph), (kw, pw) = (spp_geometry(s, level) for s in x.shape[2:])
        if method == "MAX":
            y = ref_max_pool(x, (kh, kw), (kh, kw), (ph, pw))[0]
        else:
            y = ref_ave_pool(x, (kh, kw), (kh, kw), (ph, pw))
        if height == 1:
            return y
        parts.append(y.reshape(N, -1))
    return np.concatenate(parts, axis=1)


def ref_spp_ave_backward(dy, x_shape, height):
    """AVE SPP backward: the levels' AVE pooling backwards, summed."""
    N, dx, start = x_shape[0], np.zeros(x_shape), 0
    for level in range(height):
        (kh, ph), (kw, pw) = (spp_geometry(s, level) for s in x_shape[2:])
        oh = ref_ave_pool(np.zeros(x_shape), (kh, kw), (kh, kw), (ph, pw)).shape
        width = int(np.prod(oh[1:]))
        part = dy.reshape(N, -1)[:, start:start + width].reshape(oh)
        dx += ref_ave_pool_backward(part, (kh, kw), (kh, kw), (ph, pw), x_shape)
        start += width
    return dx


# ==== Crop ====================================================================

def ref_crop(x, ref_shape, axis=2, offsets=()):
    """Copy x[i0 + o0, i1 + o1, ...] for every index i of the cropped shape."""
    axis = axis % x.ndim
    offs, shape = [], []
    for i in range(x.ndim):
        if i < axis:
            offs.append(0)
            shape.append(x.shape[i])
        else:
            offs.append(0 if not offsets else offsets[0] if len(offsets) == 1
                        else offsets[i - axis])
            shape.append(ref_shape[i])
    y = np.zeros(shape)
    for idx in itertools.product(*(range(s) for s in shape)):
        y[idx] = x[tuple(i + o for i, o in zip(idx, offs))]
    return y


# ==== Unpooling / Upsample ====================================================

def ref_unpool_max(x, mask, out_hw, kernel=None, stride=None):
    """Zero top; top[mask[i]] = x[i] in raster order per plane (later writes win).
    Without a mask: to (min(ph*sh, OH-1), min(pw*sw, OW-1))."""
    N, C, H, W = x.shape
    OH, OW = out_hw
    y = np.zeros((N, C, OH, OW))
    for n, c in _planes(x.shape):
        plane = y[n, c].reshape(-1)
        for h, w in itertools.product(range(H), range(W)):
            if mask is not None:
                target = int(mask[n, c, h, w])
            else:
                target = min(h * stride[0], OH - 1) * OW + min(w * stride[1], OW - 1)
            plane[target] = x[n, c, h, w]
    return y


def ref_unpool_max_backward(dy, mask, x_shape, stride=None):
    """dx[i] = dy[mask[i]] (each duplicate gets the full value)."""
    N, C, H, W = x_shape
    OH, OW = dy.shape[2:]
    dx = np.zeros(x_shape)
    for n, c in _planes(x_shape):
        plane = dy[n, c].reshape(-1)
        for h, w in itertools.product(range(H), range(W)):
            if mask is not None:
                target = int(mask[n, c, h, w])
            else:
                target = min(h * stride[0], OH - 1) * OW + min(w * stride[1], OW - 1)
            dx[n, c, h, w] = plane[target]
    return dx


def _unpool_window(ph, pw, kernel, stride, out_hw):
    h0, w0 = ph * stride[0], pw * stride[1]
    h1, w1 = min(h0 + kernel[0], out_hw[0]), min(w0 + kernel[1], out_hw[1])
    return h0, h1, w0, w1, (h1 - h0) * (w1 - w0)


def ref_unpool_window(x, kernel, stride, out_hw, divide):
    """AVE (divide=True: x / clipped area) or TILE (x) added over every window."""
    N, C, H, W = x.shape
    y = np.zeros((N, C) + tuple(out_hw))
    for n, c in _planes(x.shape):
        for ph, pw in itertools.product(range(H), range(W)):
            h0, h1, w0, w1, area = _unpool_window(ph, pw, kernel, stride, out_hw)
            value = float(x[n, c, ph, pw]) / (area if divide else 1)
            for h, w in itertools.product(range(h0, h1), range(w0, w1)):
                y[n, c, h, w] += value
    return y


def ref_unpool_window_backward(dy, kernel, stride, x_shape):
    """AVE and TILE alike: dx = (sum of dy over the clipped window) / its area."""
    dx = np.zeros(x_shape)
    out_hw = dy.shape[2:]
    for n, c in _planes(x_shape):
        for ph, pw in itertools.product(range(x_shape[2]), range(x_shape[3])):
            h0, h1, w0, w1, area = _unpool_window(ph, pw, kernel, stride, out_hw)
            total = sum(float(dy[n, c, h, w]) for h in range(h0, h1) for w in range(w0, w1))
            dx[n, c, ph, pw] = total / area
    return dx


# ==== Interp ==================================================================

def _interp_taps(in_size, out_size):
    """Per output index: (i, i + (i < in-1), lambda) with ratio in float32."""
    ratio = np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.float32(0)
    taps = []
    for o in range(out_size):
        r = np.float32(ratio * np.float32(o))
        i = int(r)
        taps.append((i, i + (1 if i < in_size - 1 else 0), float(r - np.float32(i))))
    return taps


def ref_interp(x, out_hw, pad_beg=0, pad_end=0):
    """Bilinear, aligned corners, over the crop starting at -pad_beg on both axes."""
    N, C, H, W = x.shape
    c0 = -pad_beg
    He, We = H + pad_beg + pad_end, W + pad_beg + pad_end
    y = np.zeros((N, C) + tuple(out_hw))
    rows, cols = _interp_taps(He, out_hw[0]), _interp_taps(We, out_hw[1])
    for n, c in _planes(x.shape):
        p = x[n, c, c0:c0 + He, c0:c0 + We].astype(np.float64)
        for oh, (h0, h1, lh) in enumerate(rows):
            for ow, (w0, w1, lw) in enumerate(cols):
                y[n, c, oh, ow] = (1 - lh) * ((1 - lw) * p[h0, w0] + lw * p[h0, w1]) + \
                    lh * ((1 - lw) * p[h1, w0] + lw * p[h1, w1])
    return y


def ref_interp_backward(dy, x_shape, pad_beg=0, pad_end=0):
    """Each dy scattered to its 4 taps with the same weights; 0 outside the crop."""
    N, C, H, W = x_shape
    c0 = -pad_beg
    He, We = H + pad_beg + pad_end, W + pad_beg + pad_end
    dx = np.zeros(x_shape)
    rows, cols = _interp_taps(He, dy.shape[2]), _interp_taps(We, dy.shape[3])
    for n, c in _planes(x_shape):
        for oh, (h0, h1, lh) in enumerate(rows):
            for ow, (w0, w1, lw) in enumerate(cols):
                g = float(dy[n, c, oh, ow])
                for h, w, wt in ((h0, w0, (1 - lh) * (1 - lw)), (h0, w1, (1 - lh) * lw),
                                 (h1, w0, lh * (1 - lw)), (h1, w1, lh * lw)):
                    dx[n, c, c0 + h, c0 + w] += wt * g
    return dx


# ==== BN ======================================================================

def _channel_stats(x):
    """Per channel over N, H, W: (mean, biased variance)."""
    N, C, H, W = x.shape
    mean, var = np.zeros(C), np.zeros(C)
    for c in range(C):
        values = [float(v) for v in x[:, c].ravel()]
        mean[c] = sum(values) / len(values)
        var[c] = sum((v - mean[c]) ** 2 for v in values) / len(values)
    return mean, var


def ref_bn(x, scale, shift, mean=None, var=None, eps=1e-9):
    """scale * (x - mean) / sqrt(var + eps) + shift per channel; batch statistics
    when mean/var are None. Returns (y, batch mean, batch var)."""
    if mean is None:
        mean, var = _channel_stats(x)
    y = np.zeros(x.shape)
    for n, c in _planes(x.shape):
        std = math.sqrt(var[c] + eps)
        y[n, c] = float(scale[c]) * (x[n, c] - mean[c]) / std + float(shift[c])
    return y, mean, var
