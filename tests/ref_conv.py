"""Naive loop references for Convolution, Deconvolution, Im2col and InnerProduct,
written from Caffe's semantics (caffe-semantics.md §3) and never calling caffe_lite.

Plain Python loops over every index, in float64; any number of spatial axes.
Slow on purpose: use small shapes.
"""
import itertools

import numpy as np


def _per_axis(value, nd):
    return (int(value),) * nd if np.ndim(value) == 0 else tuple(int(v) for v in value)


def conv_size(size, k, s, p, d):
    """Integer division as in C++ (the numerator is >= 0 for the shapes we test)."""
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def deconv_size(size, k, s, p, d):
    return s * (size - 1) + d * (k - 1) + 1 - 2 * p


def _geometry(nd, stride, pad, dilation):
    return _per_axis(stride, nd), _per_axis(pad, nd), _per_axis(dilation, nd)


def ref_conv(x, w, b=None, stride=1, pad=0, dilation=1, group=1):
    """x (N, C, *S), w (Cout, C/G, *K) -> y (N, Cout, *O): each output position sums
    w * x over its window; cells outside the input (padding) count as 0."""
    N, C, *S = x.shape
    Cout, Cg, *K = w.shape
    nd = len(S)
    s, p, d = _geometry(nd, stride, pad, dilation)
    O = [conv_size(S[a], K[a], s[a], p[a], d[a]) for a in range(nd)]
    Og = Cout // group
    y = np.zeros((N, Cout, *O))
    for n in range(N):
        for co in range(Cout):
            g = co // Og
            for o in itertools.product(*(range(v) for v in O)):
                acc = 0.0
                for c in range(Cg):
                    for k in itertools.product(*(range(v) for v in K)):
                        i = [o[a] * s[a] - p[a] + k[a] * d[a] for a in range(nd)]
                        if all(0 <= i[a] < S[a] for a in range(nd)):
                            acc += float(x[(n, g * Cg + c, *i)]) * float(w[(co, c, *k)])
                y[(n, co, *o)] = acc + (float(b[co]) if b is not None else 0.0)
    return y


def ref_deconv(x, w, b=None, stride=1, pad=0, dilation=1, group=1):
    """x (N, C, *S), w (C, Cout/G, *K) -> y (N, Cout, *O): every input cell scatters
    x * w onto the output window it maps to; cells landing outside O are dropped."""
    N, C, *S = x.shape
    _, Og, *K = w.shape
    nd = len(S)
    s, p, d = _geometry(nd, stride, pad, dilation)
    O = [deconv_size(S[a], K[a], s[a], p[a], d[a]) for a in range(nd)]
    Cg = C // group
    Cout = Og * group
    y = np.zeros((N, Cout, *O))
    for n in range(N):
        for c in range(C):
            g = c // Cg
            for i in itertools.product(*(range(v) for v in S)):
                for oc in range(Og):
                    for k in itertools.product(*(range(v) for v in K)):
                        o = [i[a] * s[a] - p[a] + k[a] * d[a] for a in range(nd)]
                        if all(0 <= o[a] < O[a] for a in range(nd)):
                            y[(n, g * Og + oc, *o)] += float(x[(n, c, *i)]) * float(w[(c, oc, *k)])
    if b is not None:
        for co in range(Cout):
            y[:, co] += float(b[co])
    return y


def ref_im2col(x, kernel, stride=1, pad=0, dilation=1):
    """x (N, C, *S) -> (N, C*prod(K), *O); row c*prod(K) + (row-major kernel offset)."""
    N, C, *S = x.shape
    nd = len(S)
    K = _per_axis(kernel, nd)
    s, p, d = _geometry(nd, stride, pad, dilation)
    O = [conv_size(S[a], K[a], s[a], p[a], d[a]) for a in range(nd)]
    offsets = list(itertools.product(*(range(v) for v in K)))
    cols = np.zeros((N, C * len(offsets), *O))
    for n in range(N):
        for c in range(C):
            for r, k in enumerate(offsets):
                for o in itertools.product(*(range(v) for v in O)):
                    i = [o[a] * s[a] - p[a] + k[a] * d[a] for a in range(nd)]
                    if all(0 <= i[a] < S[a] for a in range(nd)):
                        cols[(n, c * len(offsets) + r, *o)] = x[(n, c, *i)]
    return cols


def ref_inner_product(x, w, b=None, axis=1, transpose=False):
    """x (*lead, *rest) flattened to (M, K); w (N, K) or (K, N) -> y (*lead, N)."""
    lead = x.shape[:axis]
    M = int(np.prod(lead, dtype=np.int64))
    X = np.asarray(x, np.float64).reshape(M, -1)
    K = X.shape[1]
    N = w.shape[1] if transpose else w.shape[0]
    y = np.zeros((M, N))
    for m in range(M):
        for j in range(N):
            acc = 0.0
            for k in range(K):
                acc += X[m, k] * float(w[k, j] if transpose else w[j, k])
            y[m, j] = acc + (float(b[j]) if b is not None else 0.0)
    return y.reshape(*lead, N)
