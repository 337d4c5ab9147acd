"""Naive references for the recurrent layers, written from Caffe's unrolled nets
(rnn_layer.cpp, lstm_layer.cpp, lstm_unit_layer.cpp) with loops over time, batch
and units, in float64. They never call caffe_lite."""
import math

import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def ref_lstm_unit(c_prev, gates, cont):
    """c_prev (N, H), gates (N, 4H) ordered i, f, o, g, cont (N,) -> (c, h)."""
    N, H = c_prev.shape
    c = np.zeros((N, H))
    h = np.zeros((N, H))
    for n in range(N):
        for d in range(H):
            i = _sigmoid(gates[n, d])
            f = 0.0 if cont[n] == 0 else cont[n] * _sigmoid(gates[n, H + d])
            o = _sigmoid(gates[n, 2 * H + d])
            g = math.tanh(gates[n, 3 * H + d])
            c[n, d] = f * c_prev[n, d] + i * g
            h[n, d] = o * math.tanh(c[n, d])
    return c, h


def _affine(W, v, b=None):
    """W (O, I) times v (I,) plus b, by loops."""
    out = np.zeros(W.shape[0])
    for o in range(W.shape[0]):
        total = 0.0 if b is None else float(b[o])
        for i in range(W.shape[1]):
            total += W[o, i] * v[i]
        out[o] = total
    return out


def ref_rnn(x, cont, params, h0=None, x_static=None):
    """x (T, N, D), cont (T, N); params W_xh, b_h, [W_xh_static], W_hh, W_ho, b_o.
    Returns (o (T, N, H), h_T (N, H))."""
    T, N = cont.shape
    W_xh, b_h = params[0], params[1]
    W_s = params[2] if x_static is not None else None
    W_hh, W_ho, b_o = params[-3], params[-2], params[-1]
    H = W_hh.shape[0]
    o = np.zeros((T, N, H))
    h_last = np.zeros((N, H))
    for n in range(N):
        h = np.zeros(H) if h0 is None else np.array(h0[n], float)
        for t in range(T):
            pre = _affine(W_hh, cont[t, n] * h) + _affine(W_xh, x[t, n].ravel(), b_h)
            if W_s is not None:
                pre += _affine(W_s, x_static[n].ravel())
            h = np.array([math.tanh(v) for v in pre])
            o[t, n] = [math.tanh(v) for v in _affine(W_ho, h, b_o)]
        h_last[n] = h
    return o, h_last


def ref_lstm(x, cont, params, h0=None, c0=None, x_static=None):
    """x (T, N, D), cont (T, N); params W_xc, b_c, [W_xc_static], W_hc.
    Returns (h (T, N, H), h_T (N, H), c_T (N, H))."""
    T, N = cont.shape
    W_xc, b_c, W_hc = params[0], params[1], params[-1]
    W_s = params[2] if x_static is not None else None
    H = W_hc.shape[1]
    out = np.zeros((T, N, H))
    h_last, c_last = np.zeros((N, H)), np.zeros((N, H))
    for n in range(N):
        h = np.zeros(H) if h0 is None else np.array(h0[n], float)
        c = np.zeros(H) if c0 is None else np.array(c0[n], float)
        for t in range(T):
            gates = _affine(W_hc, cont[t, n] * h) + _affine(W_xc, x[t, n].ravel(), b_c)
            if W_s is not None:
                gates += _affine(W_s, x_static[n].ravel())
            c_new, h_new = ref_lstm_unit(c[None], gates[None], np.array([cont[t, n]]))
            c, h = c_new[0], h_new[0]
            out[t, n] = h
        h_last[n], c_last[n] = h, c
    return out, h_last, c_last
