"""The LSTM cell step (Caffe's LSTMUnit) forward and backward, over N x H at once.

Gate pre-activations come as (N, 4H) ordered i, f, o, g. Caffe evaluates the
sigmoid and its tanh (2 sigmoid(2x) - 1) in double and rounds to the blob type;
so do these kernels. Where cont == 0 the forget gate is exactly 0 (the previous
cell is dropped); otherwise it is cont * sigmoid(f').
"""
import numpy as np


def _sigmoid(x):
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


def _tanh(x):
    return np.tanh(x.astype(np.float64)).astype(x.dtype)


def _activations(gates, cont):
    """(i, f, o, g) each (N, H) from gate inputs (N, 4H) and cont (N,)."""
    H = gates.shape[1] // 4
    i = _sigmoid(gates[:, :H])
    f = cont[:, None] * _sigmoid(gates[:, H:2 * H])
    f[cont == 0] = 0
    o = _sigmoid(gates[:, 2 * H:3 * H])
    g = _tanh(gates[:, 3 * H:])
    return i, f, o, g


def lstm_unit_forward(c_prev, gates, cont):
    """c = f * c_prev + i * g; h = o * tanh(c). Returns (c, h), each (N, H)."""
    i, f, o, g = _activations(gates, cont)
    c = f * c_prev + i * g
    return c, o * _tanh(c)


def lstm_unit_backward(c_prev, gates, cont, c, dc, dh):
    """Gradients (dc_prev (N, H), dgates (N, 4H)) from the top diffs dc, dh."""
    i, f, o, g = _activations(gates, cont)
    tanh_c = _tanh(c)
    c_term = dc + dh * o * (1 - tanh_c * tanh_c)
    dgates = np.concatenate([c_term * g * i * (1 - i),
                             c_term * c_prev * f * (1 - f),
                             dh * tanh_c * o * (1 - o),
                             c_term * i * (1 - g * g)], axis=1)
    return c_term * f, dgates
