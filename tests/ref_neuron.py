"""Naive references for the neuron, normalization and Scale/Bias layers, written from
Caffe's semantics as plain loops over every index (never calling caffe_lite).

Slow on purpose; inputs are small. Results are float64 numpy arrays.
"""
import itertools
import math

import numpy as np


def _each(x):
    """Every index of x, row-major."""
    return itertools.product(*(range(n) for n in np.shape(x)))


def elementwise(f, *arrays):
    """Apply a scalar function to every element (of equally shaped arrays)."""
    out = np.zeros(np.shape(arrays[0]))
    for i in _each(arrays[0]):
        out[i] = f(*(float(a[i]) for a in arrays))
    return out


# ==== elementwise neurons: (value) and (value, top diff) -> gradient ===========

def relu(v, slope=0.0):
    return v if v > 0 else slope * v


def relu_grad(v, d, slope=0.0):
    return d if v > 0 else slope * d            # x == 0 takes the slope


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def bnll(v):
    return math.log1p(math.exp(v)) if v < 30 else v + math.log1p(math.exp(-v))


def bnll_grad(v, d):
    e = math.exp(min(v, 50.0))                  # Caffe clamps the exponent at 50
    return d * e / (e + 1.0)


def absval_grad(v, d):
    return d * (1.0 if v > 0 else -1.0 if v < 0 else 0.0)


def clip(v, lo, hi):
    return min(max(v, lo), hi)


def clip_grad(v, d, lo, hi):
    return d if lo <= v <= hi else 0.0          # passes at both bounds


def elu(v, alpha=1.0):
    return v if v > 0 else alpha * (math.exp(v) - 1.0)


def power(v, p=1.0, scale=1.0, shift=0.0):
    return (shift + scale * v) ** p


def exp_layer(v, base=-1.0, scale=1.0, shift=0.0):
    b = math.e if base == -1 else base
    return b ** (shift + scale * v)


def log_layer(v, base=-1.0, scale=1.0, shift=0.0):
    b = math.e if base == -1 else base
    return math.log(shift + scale * v) / math.log(b)


def swish(v, beta=1.0):
    return v * sigmoid(beta * v)


def threshold(v, t=0.0):
    return 1.0 if v > t else 0.0


def prelu(x, slopes):
    """x (N, C, ...), slopes (C,) or () (shared)."""
    slopes = np.asarray(slopes)
    y = np.zeros(x.shape)
    for i in _each(x):
        a = float(slopes[() if slopes.ndim == 0 else (i[1],)])
        v = float(x[i])
        y[i] = v if v > 0 else a * v
    return y


def prelu_grads(x, slopes, dy):
    """-> (dx, d slopes); the slope gradient sums dy x where x <= 0."""
    slopes = np.asarray(slopes)
    dx, da = np.zeros(x.shape), np.zeros(slopes.shape)
    for i in _each(x):
        c = () if slopes.ndim == 0 else (i[1],)
        a, v, d = float(slopes[c]), float(x[i]), float(dy[i])
        dx[i] = d if v > 0 else a * d
        if v <= 0:
            da[c] += d * v
    return dx, da


# ==== normalization ===========================================================

def lrn_across(x, size=5, alpha=1.0, beta=0.75, k=1.0):
    """y = x / (k + alpha/size * sum of x^2 over the size channels around c)^beta."""
    N, C, H, W = x.shape
    half = (size - 1) // 2
    y = np.zeros(x.shape)
    for n, c, h, w in _each(x):
        s = 0.0
        for cc in range(c - half, c + half + 1):
            if 0 <= cc < C:
                s += float(x[n, cc, h, w]) ** 2
        y[n, c, h, w] = float(x[n, c, h, w]) * (k + alpha / size * s) ** -beta
    return y


def lrn_within(x, size=5, alpha=1.0, beta=0.75):
    """y = x / (1 + alpha/size^2 * sum of x^2 over the size x size window)^beta."""
    N, C, H, W = x.shape
    half = (size - 1) // 2
    y = np.zeros(x.shape)
    for n, c, h, w in _each(x):
        s = 0.0
        for hh in range(h - half, h + half + 1):
            for ww in range(w - half, w + half + 1):
                if 0 <= hh < H and 0 <= ww < W:
                    s += float(x[n, c, hh, ww]) ** 2
        y[n, c, h, w] = float(x[n, c, h, w]) * (1 + alpha / size ** 2 * s) ** -beta
    return y


def mvn(x, normalize_variance=True, across_channels=False, eps=1e-9):
    """Per (n, c) (or per n): subtract the mean, divide by (std + eps)."""
    x = np.asarray(x, np.float64)
    N, C = x.shape[:2]
    groups = [[(n,)] for n in range(N)] if across_channels else \
        [[(n, c)] for n in range(N) for c in range(C)]
    y = np.zeros(x.shape)
    for (g,) in groups:
        cells = [i for i in _each(x) if i[:len(g)] == g]
        mean = sum(float(x[i]) for i in cells) / len(cells)
        var = sum((float(x[i]) - mean) ** 2 for i in cells) / len(cells)
        for i in cells:
            v = float(x[i]) - mean
            y[i] = v / (math.sqrt(var) + eps) if normalize_variance else v
    return y


def batch_norm(x, mean_sum, var_sum, factor, use_global_stats, fraction=0.999,
               eps=1e-5):
    """-> (y, new mean_sum, new var_sum, new factor); statistics over all axes but 1."""
    x = np.asarray(x, np.float64)
    C = x.shape[1]
    cells = [[i for i in _each(x) if i[1] == c] for c in range(C)]
    if use_global_stats:
        s = 0.0 if factor == 0 else 1.0 / factor
        mean = [s * float(mean_sum[c]) for c in range(C)]
        var = [s * float(var_sum[c]) for c in range(C)]
        new = (np.array(mean_sum, float), np.array(var_sum, float), float(factor))
    else:
        mean = [sum(float(x[i]) for i in cs) / len(cs) for cs in cells]
        var = [sum((float(x[i]) - mean[c]) ** 2 for i in cs) / len(cs)
               for c, cs in enumerate(cells)]
        m = len(cells[0])
        correction = m / (m - 1) if m > 1 else 1.0
        new = (np.array([mean[c] + fraction * float(mean_sum[c]) for c in range(C)]),
               np.array([correction * var[c] + fraction * float(var_sum[c])
                         for c in range(C)]),
               float(factor) * fraction + 1)
    y = np.zeros(x.shape)
    for c, cs in enumerate(cells):
        for i in cs:
            y[i] = (float(x[i]) - mean[c]) / math.sqrt(var[c] + eps)
    return (y,) + new


# ==== Scale / Bias ===========================================================

def _operand_index(i, axis, ndim_operand):
    return i[axis:axis + ndim_operand]


def scale(x, s, axis=1, bias=None):
    """y[i] = x[i] * s[i[axis:axis+s.ndim]] (+ bias, same shape as s)."""
    s = np.asarray(s)
    axis = 0 if s.ndim == 0 else axis % x.ndim
    y = np.zeros(x.shape)
    for i in _each(x):
        j = _operand_index(i, axis, s.ndim)
        y[i] = float(x[i]) * float(s[j]) + (float(np.asarray(bias)[j]) if bias is not None
                                            else 0.0)
    return y


def bias(x, b, axis=1):
    return scale(x, np.ones(np.shape(b)), axis, bias=b)


def scale_grads(x, s, dy, axis=1):
    """-> (dx, ds, d bias) for y = x s + b."""
    s = np.asarray(s)
    axis = 0 if s.ndim == 0 else axis % x.ndim
    dx, ds, db = np.zeros(x.shape), np.zeros(s.shape), np.zeros(s.shape)
    for i in _each(x):
        j = _operand_index(i, axis, s.ndim)
        dx[i] = float(dy[i]) * float(s[j])
        ds[j] += float(dy[i]) * float(x[i])
        db[j] += float(dy[i])
    return dx, ds, db
