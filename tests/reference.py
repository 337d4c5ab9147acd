"""Naive references written from Caffe's semantics: plain loops over every index.

Slow on purpose and independent of caffe_lite's code; tests compare the fast kernels
and layers against them. A flat module of functions: add new references at the end.
Arrays are numpy; results are float64 unless stated.
"""
import itertools
import math

import numpy as np

FLT_MAX = float(np.finfo(np.float32).max)


def _tuple(v, nd):
    return (int(v),) * nd if np.ndim(v) == 0 else tuple(int(i) for i in v)


# ==== convolution ============================================================

def ref_conv2d(x, w, b=None, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Caffe convolution (like caffe_conv in test_convolution_layer.cpp).

    x (N, C, H, W), w (Cout, C/group, KH, KW), b (Cout,) -> y (N, Cout, OH, OW),
    OH = (H + 2*ph - (dh*(KH-1)+1)) // sh + 1; padded cells are zero.
    """
    sh, sw = _tuple(stride, 2)
    ph, pw = _tuple(pad, 2)
    dh, dw = _tuple(dilation, 2)
    N, C, H, W = x.shape
    Cout, Cg, KH, KW = w.shape
    Og = Cout // group
    OH = (H + 2 * ph - (dh * (KH - 1) + 1)) // sh + 1
    OW = (W + 2 * pw - (dw * (KW - 1) + 1)) // sw + 1
    y = np.zeros((N, Cout, OH, OW))
    for n in range(N):
        for g in range(group):
            for o in range(Og):
                co = g * Og + o
                for oh in range(OH):
                    for ow in range(OW):
                        acc = 0.0
                        for c in range(Cg):
                            for kh in range(KH):
                                for kw in range(KW):
                                    h = oh * sh - ph + kh * dh
                                    ww = ow * sw - pw + kw * dw
                                    if 0 <= h < H and 0 <= ww < W:
                                        acc += float(x[n, g * Cg + c, h, ww]) * float(w[co, c, kh, kw])
                        y[n, co, oh, ow] = acc + (float(b[co]) if b is not None else 0.0)
    return y


def ref_conv2d_backward(x, w, dy, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Gradients of ref_conv2d: the same loops, scattering dy -> (dx, dw, db)."""
    sh, sw = _tuple(stride, 2)
    ph, pw = _tuple(pad, 2)
    dh, dw_ = _tuple(dilation, 2)
    N, C, H, W = x.shape
    Cout, Cg, KH, KW = w.shape
    Og = Cout // group
    _, _, OH, OW = dy.shape
    dx = np.zeros(x.shape)
    dw = np.zeros(w.shape)
    db = np.zeros(Cout)
    for n in range(N):
        for g in range(group):
            for o in range(Og):
                co = g * Og + o
                for oh in range(OH):
                    for ow in range(OW):
                        gy = float(dy[n, co, oh, ow])
                        db[co] += gy
                        for c in range(Cg):
                            for kh in range(KH):
                                for kw in range(KW):
                                    h = oh * sh - ph + kh * dh
                                    ww = ow * sw - pw + kw * dw_
                                    if 0 <= h < H and 0 <= ww < W:
                                        dx[n, g * Cg + c, h, ww] += gy * float(w[co, c, kh, kw])
                                        dw[co, c, kh, kw] += gy * float(x[n, g * Cg + c, h, ww])
    return dx, dw, db


def ref_conv_nd(x, w, b=None, stride=1, pad=0, dilation=1, group=1):
    """ref_conv2d for any number of spatial axes (x (N, C, *S), w (Cout, C/group, *K))."""
    N, C, *S = x.shape
    Cout, Cg, *K = w.shape
    nd = len(S)
    s, p, d = _tuple(stride, nd), _tuple(pad, nd), _tuple(dilation, nd)
    O = [(S[a] + 2 * p[a] - (d[a] * (K[a] - 1) + 1)) // s[a] + 1 for a in range(nd)]
    Og = Cout // group
    y = np.zeros((N, Cout, *O))
    for n, co in itertools.product(range(N), range(Cout)):
        g = co // Og
        for o in itertools.product(*(range(v) for v in O)):
            acc = float(b[co]) if b is not None else 0.0
            for c in range(Cg):
                for k in itertools.product(*(range(v) for v in K)):
                    i = tuple(o[a] * s[a] - p[a] + k[a] * d[a] for a in range(nd))
                    if all(0 <= i[a] < S[a] for a in range(nd)):
                        acc += float(x[(n, g * Cg + c) + i]) * float(w[(co, c) + k])
            y[(n, co) + o] = acc
    return y


def ref_deconv2d(x, w, b=None, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Caffe deconvolution: each input pixel scatters its kernel-weighted value.

    x (N, C, H, W), w (C, Cout/group, KH, KW), b (Cout,) -> y (N, Cout, OH, OW),
    OH = sh*(H-1) + dh*(KH-1) + 1 - 2*ph; contributions landing in the padding are dropped.
    """
    sh, sw = _tuple(stride, 2)
    ph, pw = _tuple(pad, 2)
    dh, dw = _tuple(dilation, 2)
    N, C, H, W = x.shape
    _, Og, KH, KW = w.shape
    Cg = C // group
    Cout = Og * group
    OH = sh * (H - 1) + dh * (KH - 1) + 1 - 2 * ph
    OW = sw * (W - 1) + dw * (KW - 1) + 1 - 2 * pw
    y = np.zeros((N, Cout, OH, OW))
    for n in range(N):
        for ci in range(C):
            g = ci // Cg
            for h in range(H):
                for ww in range(W):
                    v = float(x[n, ci, h, ww])
                    for o in range(Og):
                        for kh in range(KH):
                            for kw in range(KW):
                                oh = h * sh - ph + kh * dh
                                ow = ww * sw - pw + kw * dw
                                if 0 <= oh < OH and 0 <= ow < OW:
                                    y[n, g * Og + o, oh, ow] += v * float(w[ci, o, kh, kw])
    if b is not None:
        y += np.asarray(b, np.float64).reshape(1, Cout, 1, 1)
    return y


def ref_deconv2d_backward(x, w, dy, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Gradients of ref_deconv2d: the same loops, gathering dy -> (dx, dw, db)."""
    sh, sw = _tuple(stride, 2)
    ph, pw = _tuple(pad, 2)
    dh, dw_ = _tuple(dilation, 2)
    N, C, H, W = x.shape
    _, Og, KH, KW = w.shape
    Cg = C // group
    _, _, OH, OW = dy.shape
    dx = np.zeros(x.shape)
    dw = np.zeros(w.shape)
    for n in range(N):
        for ci in range(C):
            g = ci // Cg
            for h in range(H):
                for ww in range(W):
                    for o in range(Og):
                        for kh in range(KH):
                            for kw in range(KW):
                                oh = h * sh - ph + kh * dh
                                ow = ww * sw - pw + kw * dw_
                                if 0 <= oh < OH and 0 <= ow < OW:
                                    gy = float(dy[n, g * Og + o, oh, ow])
                                    dx[n, ci, h, ww] += gy * float(w[ci, o, kh, kw])
                                    dw[ci, o, kh, kw] += gy * float(x[n, ci, h, ww])
    db = np.array([sum(float(v) for v in dy[:, c].ravel()) for c in range(dy.shape[1])])
    return dx, dw, db


# ==== pooling ================================================================

def ref_pool_out_size(size, kernel, stride, pad, ceil=True):
    """Caffe: ceil (or floor) of (size + 2p - k) / s, plus 1; drop a last window starting
    at or past size + p (only when p > 0)."""
    q = (size + 2 * pad - kernel) / stride
    out = int(math.ceil(q) if ceil else math.floor(q)) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def ref_max_pool(x, kernel, stride, pad, ceil=True):
    """Caffe MAX pooling (pooling_layer.cpp) for x (N, C, *S), any number of spatial axes.

    Returns (y, mask): the window is clipped to [0, S), starts at -FLT_MAX, and a cell
    replaces the max only if strictly greater; mask is the flat index in the plane.
    """
    N, C, *S = x.shape
    nd = len(S)
    k, s, p = _tuple(kernel, nd), _tuple(stride, nd), _tuple(pad, nd)
    O = [ref_pool_out_size(S[a], k[a], s[a], p[a], ceil) for a in range(nd)]
    y = np.zeros((N, C, *O))
    mask = np.zeros((N, C, *O))
    for n, c in itertools.product(range(N), range(C)):
        for o in itertools.product(*(range(v) for v in O)):
            start = [max(o[a] * s[a] - p[a], 0) for a in range(nd)]
            end = [min(o[a] * s[a] - p[a] + k[a], S[a]) for a in range(nd)]
            best, best_index = -FLT_MAX, -1
            for i in itertools.product(*(range(start[a], end[a]) for a in range(nd))):
                v = float(x[(n, c) + i])
                if v > best:
                    best = v
                    best_index = int(np.ravel_multi_index(i, S))
            y[(n, c) + o] = best
            mask[(n, c) + o] = best_index
    return y, mask


def ref_max_pool_backward(dy, mask, x_shape):
    """Caffe MAX pooling backward: dx[mask[o]] += dy[o] for each output o in order."""
    N, C, *S = x_shape
    dx = np.zeros(x_shape)
    for n, c in itertools.product(range(N), range(C)):
        plane = dx[n, c].reshape(-1)
        for o in itertools.product(*(range(v) for v in dy.shape[2:])):
            plane[int(mask[(n, c) + o])] += float(dy[(n, c) + o])
    return dx


def ref_ave_pool(x, kernel, stride, pad, ceil=True):
    """Caffe AVE pooling for x (N, C, *S): sum over the cells inside [0, S) divided by the
    window size clipped to [-p, S + p) only (padded cells count, the overhang does not)."""
    N, C, *S = x.shape
    nd = len(S)
    k, s, p = _tuple(kernel, nd), _tuple(stride, nd), _tuple(pad, nd)
    O = [ref_pool_out_size(S[a], k[a], s[a], p[a], ceil) for a in range(nd)]
    y = np.zeros((N, C, *O))
    for n, c in itertools.product(range(N), range(C)):
        for o in itertools.product(*(range(v) for v in O)):
            start = [o[a] * s[a] - p[a] for a in range(nd)]
            end = [min(start[a] + k[a], S[a] + p[a]) for a in range(nd)]
            pool_size = 1
            for a in range(nd):
                pool_size *= end[a] - start[a]
            total = 0.0
            for i in itertools.product(*(range(max(start[a], 0), min(end[a], S[a])) for a in range(nd))):
                total += float(x[(n, c) + i])
            y[(n, c) + o] = total / pool_size
    return y


def ref_ave_pool_backward(dy, kernel, stride, pad, x_shape):
    """Caffe AVE pooling backward: each output spreads dy / pool_size over its clipped window."""
    N, C, *S = x_shape
    nd = len(S)
    k, s, p = _tuple(kernel, nd), _tuple(stride, nd), _tuple(pad, nd)
    dx = np.zeros(x_shape)
    for n, c in itertools.product(range(N), range(C)):
        for o in itertools.product(*(range(v) for v in dy.shape[2:])):
            start = [o[a] * s[a] - p[a] for a in range(nd)]
            end = [min(start[a] + k[a], S[a] + p[a]) for a in range(nd)]
            pool_size = 1
            for a in range(nd):
                pool_size *= end[a] - start[a]
            for i in itertools.product(*(range(max(start[a], 0), min(end[a], S[a])) for a in range(nd))):
                dx[(n, c) + i] += float(dy[(n, c) + o]) / pool_size
    return dx
