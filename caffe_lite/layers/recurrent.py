"""Recurrent layers: RNN, LSTM, and LSTMUnit (one LSTM cell step, the layer
Caffe's unrolled LSTM is made of).

Caffe builds RNN/LSTM as an unrolled internal net (InnerProduct, Scale, Eltwise,
TanH, LSTMUnit per time step). The same recurrences run here directly in numpy
-- one GEMM for the input of all steps, one per step for the hidden state --
with Caffe's parameter blobs, in Caffe's order:

  RNN   W_xh (H, D), b_h (H), [W_xh_static (H, S)], W_hh (H, H), W_ho (H, H), b_o (H)
  LSTM  W_xc (4H, D), b_c (4H), [W_xc_static (4H, S)], W_hc (4H, H)

recurrent_param fields read: num_output (H), weight_filler, bias_filler,
expose_hidden. Bottoms: x (T, N, ...), cont (T, N) -- 0 where a sequence
starts --, optional x_static (N, ...), then h_0 [, c_0] (1, N, H) with
expose_hidden. Tops: (T, N, H), then h_T [, c_T] with expose_hidden.

Caffe quirks kept: without expose_hidden the state carries over from the
previous forward (h_0 = last h_T, zero at first); h_0/c_0 get no gradient and
top diffs on h_T/c_T are ignored (the internal net only shares their data);
backward always fills the x / x_static diffs and accumulates every param diff.

LSTMUnit: bottoms c_prev (1, N, H), gate inputs (1, N, 4H) ordered i, f, o, g,
cont (1, N); tops c (1, N, H), h (1, N, H). c = f * c_prev + i * g,
h = o * tanh(c), with f = 0 where cont == 0. cont never takes a gradient. LSTM
runs the same cell step (``ops.lstm``) over time.
"""
import numpy as np

from ..blob import Blob
from ..fillers import fill
from ..ops.libm import tanhf
from ..ops.lstm import lstm_unit_backward, lstm_unit_forward
from .base import Layer, register_layer


class RecurrentLayer(Layer):
    """Shared shape logic of RNN and LSTM; subclasses define the recurrence."""
    num_state = 1           # recurrent blobs: h (RNN) or h, c (LSTM)
    gates = 1               # hidden-size multiples of the per-step GEMM output

    def __init__(self, param, phase=None):
        super().__init__(param, phase)
        self.expose_hidden = param.recurrent_param.expose_hidden
        exposed = self.num_state if self.expose_hidden else 0
        self.min_bottom, self.max_bottom = 2 + exposed, 3 + exposed
        self.exact_num_top = 1 + exposed

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1             # never into the cont indicators

    def bottom_name(self, i):
        bottoms = self.param.bottom
        return bottoms[i] if i < len(bottoms) else f"bottom[{i}]"

    def layer_setup(self, bottom, top):
        p = self.param.recurrent_param
        self.hidden = p.num_output
        if self.hidden <= 0:
            raise self.error("recurrent_param.num_output must be positive")
        if bottom[0].num_axes < 2:
            raise self.error(f"x must be (T, N, ...), got shape {bottom[0].shape}",
                             blob=self.bottom_name(0))
        exposed = self.num_state if self.expose_hidden else 0
        self.static_input = len(bottom) > 2 + exposed
        self.input_dim = bottom[0].count_range(2)
        G = self.gates * self.hidden
        shapes = [(G, self.input_dim), (G,)]
        if self.static_input:
            if bottom[2].num_axes < 1:
                raise self.error("x_static needs at least one axis",
                                 blob=self.bottom_name(2))
            shapes.append((G, bottom[2].count_range(1)))
        shapes += self.extra_param_shapes()
        self.blobs = [self.make_blob(s) for s in shapes]
        for blob in self.blobs:
            fill(blob, p.bias_filler if blob.num_axes == 1 else p.weight_filler)
        self.param_propagate_down = [True] * len(self.blobs)
        self.state = [Blob(dtype=self.dtype) for _ in range(self.num_state)]

    def extra_param_shapes(self):
        return [(self.gates * self.hidden, self.hidden)]

    def reshape(self, bottom, top):
        x, cont = bottom[0], bottom[1]
        if x.num_axes < 2 or x.count_range(2) != self.input_dim:
            raise self.error(f"x must be (T, N, ...) with {self.input_dim} values per "
                             f"item, got shape {x.shape}", blob=self.bottom_name(0))
        T, N = x.shape[:2]
        if cont.shape != (T, N):
            raise self.error(f"cont must be (T, N) = {(T, N)}, got {cont.shape}",
                             blob=self.bottom_name(1))
        if self.static_input and (bottom[2].shape[0] != N or
                                  bottom[2].count_range(1) != self.blobs[2].shape[1]):
            raise self.error(f"x_static must be (N={N}, ...) with "
                             f"{self.blobs[2].shape[1]} values per item, got "
                             f"{bottom[2].shape}", blob=self.bottom_name(2))
        state_shape = (1, N, self.hidden)
        for i, blob in enumerate(bottom[2 + self.static_input:]):
            if blob.shape != state_shape:
                raise self.error(f"hidden state input must be {state_shape}, got "
                                 f"{blob.shape}",
                                 blob=self.bottom_name(2 + self.static_input + i))
        for blob in self.state:
            blob.reshape(state_shape)            # Caffe keeps old values if they fit
        top[0].reshape((T, N, self.hidden))
        for blob in top[1:]:
            blob.reshape(state_shape)

    # -- shared pieces ---------------------------------------------------------
    def input_terms(self, bottom):
        """W x + b for all steps (T, N, G) and W_static x_static (N, G) or None."""
        T, N = bottom[0].shape[:2]
        x = bottom[0].data.reshape(T * N, self.input_dim)
        xw = x @ self.blobs[0].data.T                                  # (T*N, G)
        xw += self.blobs[1].data
        static = None
        if self.static_input:
            static = bottom[2].data.reshape(N, -1) @ self.blobs[2].data.T  # (N, G)
        return xw.reshape(T, N, -1), static

    def initial_state(self, bottom):
        if self.expose_hidden:
            return [b.data[0] for b in bottom[2 + self.static_input:]]
        return [s.data[0].copy() for s in self.state]

    def save_state(self, final, top):
        for blob, value in zip(self.state, final):
            blob.data[0] = value
        if self.expose_hidden:
            for blob, value in zip(top[1:], final):
                blob.data[0] = value

    def input_backward(self, bottom, dxw, dstatic):
        """Gradients of the input terms: x / x_static diffs and their weights."""
        T, N = bottom[0].shape[:2]
        x = bottom[0].data.reshape(T * N, self.input_dim)
        d = dxw.reshape(T * N, -1)                                     # (T*N, G)
        self.blobs[0].diff[...] += d.T @ x
        self.blobs[1].diff[...] += d.sum(axis=0)
        np.matmul(d, self.blobs[0].data, out=bottom[0].diff.reshape(T * N, -1))
        if self.static_input:
            xs = bottom[2].data.reshape(N, -1)
            self.blobs[2].diff[...] += dstatic.T @ xs
            np.matmul(dstatic, self.blobs[2].data, out=bottom[2].diff.reshape(N, -1))


@register_layer("RNN")
class RNNLayer(RecurrentLayer):
    """h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h [+ W_xh_static x_static]),
    o_t = tanh(W_ho h_t + b_o)."""

    def extra_param_shapes(self):
        H = self.hidden
        return [(H, H), (H, H), (H,)]

    def forward(self, bottom, top):
        xw, static = self.input_terms(bottom)
        W_hh = self.blobs[-3].data
        cont = bottom[1].data
        T, N, H = xw.shape
        h_prev = self.initial_state(bottom)[0]
        self.h_conted = np.empty_like(xw)                              # (T, N, H)
        self.h = np.empty_like(xw)
        for t in range(T):
            self.h_conted[t] = h_prev * cont[t][:, None]
            pre = self.h_conted[t] @ W_hh.T
            pre += xw[t]
            if static is not None:
                pre += static
            h_prev = self.h[t] = tanhf(pre)
        o = self.h.reshape(T * N, H) @ self.blobs[-2].data.T
        o += self.blobs[-1].data
        tanhf(o, out=top[0].data.reshape(T * N, H))
        self.save_state([h_prev], top)

    def backward(self, top, propagate_down, bottom):
        W_hh, W_ho, b_o = self.blobs[-3], self.blobs[-2], self.blobs[-1]
        T, N, H = self.h.shape
        o = top[0].data.reshape(T * N, H)
        d_o = top[0].diff.reshape(T * N, H) * (1 - o * o)                # (T*N, H)
        W_ho.diff[...] += d_o.T @ self.h.reshape(T * N, H)
        b_o.diff[...] += d_o.sum(axis=0)
        dh_out = (d_o @ W_ho.data).reshape(T, N, H)
        cont = bottom[1].data
        dpre = np.empty_like(dh_out)
        dh_next = None
        for t in reversed(range(T)):
            dh = dh_out[t] if dh_next is None else dh_out[t] + dh_next
            dpre[t] = dh * (1 - self.h[t] * self.h[t])
            W_hh.diff[...] += dpre[t].T @ self.h_conted[t]
            dh_next = (dpre[t] @ W_hh.data) * cont[t][:, None]
        self.input_backward(bottom, dpre, _ordered_sum(dpre) if self.static_input else None)


@register_layer("LSTM")
class LSTMLayer(RecurrentLayer):
    """Gates (i, f, o, g) = W_hc (cont_t h_{t-1}) + W_xc x_t + b_c [+ W_xc_static
    x_static]; c_t, h_t from LSTMUnit."""
    num_state = 2
    gates = 4

    def forward(self, bottom, top):
        xw, static = self.input_terms(bottom)
        W_hc = self.blobs[-1].data
        cont = bottom[1].data
        T, N, G = xw.shape
        h_prev, c_prev = self.initial_state(bottom)
        self.h_conted = np.empty((T, N, self.hidden), xw.dtype)
        self.gate_input = np.empty_like(xw)                            # (T, N, 4H)
        self.c = np.empty((T + 1, N, self.hidden), xw.dtype)           # c_0 .. c_T
        self.c[0] = c_prev
        h = top[0].data                                                # (T, N, H)
        for t in range(T):
            self.h_conted[t] = h_prev * cont[t][:, None]
            gates = self.h_conted[t] @ W_hc.T
            gates += xw[t]
            if static is not None:
                gates += static
            self.gate_input[t] = gates
            self.c[t + 1], h[t] = lstm_unit_forward(self.c[t], gates, cont[t])
            h_prev = h[t]
        self.save_state([h_prev, self.c[T]], top)

    def backward(self, top, propagate_down, bottom):
        W_hc = self.blobs[-1]
        T, N, H = top[0].shape
        cont = bottom[1].data
        dh_top = top[0].diff
        dgates = np.empty_like(self.gate_input)
        dc = np.zeros((N, H), dh_top.dtype)         # c_T's copy feeds no loss
        dh_next = None
        for t in reversed(range(T)):
            dh = dh_top[t] if dh_next is None else dh_next + dh_top[t]
            dc, dgates[t] = lstm_unit_backward(self.c[t], self.gate_input[t], cont[t],
                                               self.c[t + 1], dc, dh)
            W_hc.diff[...] += dgates[t].T @ self.h_conted[t]
            dh_next = (dgates[t] @ W_hc.data) * cont[t][:, None]
        self.input_backward(bottom, dgates,
                            _ordered_sum(dgates) if self.static_input else None)


def _ordered_sum(steps):
    """Sum over time in step order, as Caffe's Split backward adds the copies."""
    total = steps[0].copy()
    for step in steps[1:]:
        total += step
    return total


def _name(names, i):
    return names[i] if i < len(names) else f"bottom[{i}]"


@register_layer("LSTMUnit")
class LSTMUnitLayer(Layer):
    exact_num_bottom = 3
    exact_num_top = 2

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def reshape(self, bottom, top):
        c_prev, gates, cont = bottom
        N = c_prev.shape[1] if c_prev.num_axes > 1 else -1
        for i, (blob, axes) in enumerate(zip(bottom, (3, 3, 2))):
            if blob.num_axes != axes or blob.shape[0] != 1 or blob.shape[1] != N:
                raise self.error(f"bottom {i} must have {axes} axes shaped (1, N, ...) "
                                 f"with N from c_prev, got {blob.shape}",
                                 blob=_name(self.param.bottom, i))
        if gates.shape[2] != 4 * c_prev.shape[2]:
            raise self.error(f"gates must have 4 x {c_prev.shape[2]} channels, got "
                             f"{gates.shape[2]}", blob=_name(self.param.bottom, 1))
        top[0].reshape(c_prev.shape)
        top[1].reshape(c_prev.shape)

    def forward(self, bottom, top):
        c, h = lstm_unit_forward(bottom[0].data[0], bottom[1].data[0], bottom[2].data[0])
        top[0].data[0] = c
        top[1].data[0] = h

    def backward(self, top, propagate_down, bottom):
        if not (propagate_down[0] or propagate_down[1]):
            return
        dc_prev, dgates = lstm_unit_backward(
            bottom[0].data[0], bottom[1].data[0], bottom[2].data[0], top[0].data[0],
            top[0].diff[0], top[1].diff[0])
        if propagate_down[0]:
            bottom[0].diff[0] = dc_prev
        if propagate_down[1]:
            bottom[1].diff[0] = dgates
