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
