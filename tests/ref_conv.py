"""The one naive convolution reference: Convolution, its gradients, Deconvolution, Im2col,
and InnerProduct, written from Caffe's semantics (caffe-semantics.md §3) and never
calling caffe_lite. Plain Python loops in float64, any number of spatial axes, groups,
dilation, pad, stride. Slow on purpose: use small shapes.

Everything is built on ``taps``, the single statement of which input cell meets which
weight at which output cell (as caffe_conv in Caffe's test_convolution_layer.cpp).
Deconvolution is the same set of taps read the other way round (the adjoint), so the
two cannot drift apart.
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


def conv_out_shape(x_shape, w_shape, stride=1, pad=0, dilation=1):
    N, _, *S = x_shape
    Cout, _, *K = w_shape
    s, p, d = _geometry(len(S), stride, pad, dilation)
    return (N, Cout, *(conv_size(S[a], K[a], s[a], p[a], d[a]) for a in range(len(S))))


def taps(x_shape, w_shape, stride=1, pad=0, dilation=1, group=1):
    """Yield (x index, w index, y index) for every product a convolution sums:
    x (N, C, *S), w (Cout, C/G, *K), y (N, Cout, *O), with input position
    i = o*s - p + k*d on each axis; taps reading the zero padding are left out."""
    N, C, *S = x_shape
    Cout, Cg, *K = w_shape
    nd = len(S)
    s, p, d = _geometry(nd, stride, pad, dilation)
    O = conv_out_shape(x_shape, w_shape, stride, pad, dilation)[2:]
    # per axis and output position: the (kernel offset, input position) pairs inside S
    inside = [[[(k, o * s[a] - p[a] + k * d[a]) for k in range(K[a])
                if 0 <= o * s[a] - p[a] + k * d[a] < S[a]] for o in range(O[a])]
              for a in range(nd)]
    Og = Cout // group
    for o in itertools.product(*(range(v) for v in O)):
        window = [tuple(zip(*pairs)) for pairs in
                  itertools.product(*(inside[a][o[a]] for a in range(nd)))]   # [(k, i)]
        for n, co in itertools.product(range(N), range(Cout)):
            g = co // Og
            for c in range(Cg):
                for k, i in window:
                    yield (n, g * Cg + c, *i), (co, c, *k), (n, co, *o)


def _add_bias(y, b):
    if b is not None:
        for co in range(y.shape[1]):
            y[:, co] += float(b[co])
    return y


def ref_conv(x, w, b=None, stride=1, pad=0, dilation=1, group=1):
    """x (N, C, *S), w (Cout, C/G, *K), b (Cout,) -> y (N, Cout, *O):
    y[n, co, o] = b[co] + sum over taps of x * w."""
    y = np.zeros(conv_out_shape(x.shape, w.shape, stride, pad, dilation))
    for xi, wi, yi in taps(x.shape, w.shape, stride, pad, dilation, group):
        y[yi] += float(x[xi]) * float(w[wi])
    return _add_bias(y, b)


def ref_conv_backward(x, w, dy, stride=1, pad=0, dilation=1, group=1):
    """Gradients of ref_conv for top diff dy: the same taps -> (dx, dw, db)."""
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for xi, wi, yi in taps(x.shape, w.shape, stride, pad, dilation, group):
        dx[xi] += float(dy[yi]) * float(w[wi])
        dw[wi] += float(dy[yi]) * float(x[xi])
    db = np.array([sum(float(v) for v in dy[:, c].ravel()) for c in range(dy.shape[1])])
    return dx, dw, db


def ref_deconv(x, w, b=None, stride=1, pad=0, dilation=1, group=1):
    """x (N, C, *S), w (C, Cout/G, *K) -> y (N, Cout, *O), O = s*(S-1) + d*(K-1) + 1 - 2p:
    the taps of the convolution from y back to x, each cell of x scattering x * w."""
    N, C, *S = x.shape
    _, Og, *K = w.shape
    s, p, d = _geometry(len(S), stride, pad, dilation)
    y = np.zeros((N, Og * group, *(deconv_size(S[a], K[a], s[a], p[a], d[a])
                                   for a in range(len(S)))))
    for yi, wi, xi in taps(y.shape, w.shape, stride, pad, dilation, group):
        y[yi] += float(x[xi]) * float(w[wi])
    return _add_bias(y, b)


def ref_deconv_backward(x, w, dy, stride=1, pad=0, dilation=1, group=1):
    """Gradients of ref_deconv for top diff dy -> (dx, dw, db): the same taps."""
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for yi, wi, xi in taps(dy.shape, w.shape, stride, pad, dilation, group):
        dx[xi] += float(dy[yi]) * float(w[wi])
        dw[wi] += float(dy[yi]) * float(x[xi])
    db = np.array([sum(float(v) for v in dy[:, c].ravel()) for c in range(dy.shape[1])])
    return dx, dw, db


def ref_im2col(x, kernel, stride=1, pad=0, dilation=1):
    """x (N, C, *S) -> (N, C*prod(K), *O); row c*prod(K) + (row-major kernel offset):
    the taps of a depthwise convolution (group = C), each copied instead of summed."""
    N, C, *S = x.shape
    K = _per_axis(kernel, len(S))
    w_shape = (C, 1, *K)
    _, _, *O = conv_out_shape(x.shape, w_shape, stride, pad, dilation)
    size = int(np.prod(K))
    cols = np.zeros((N, C * size, *O))
    for xi, (c, _, *k), (n, _, *o) in taps(x.shape, w_shape, stride, pad, dilation, C):
        cols[(n, c * size + int(np.ravel_multi_index(k, K)), *o)] = x[xi]
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
