"""RNN, LSTM and LSTMUnit against loop references, float64 gradient checks, and
Caffe's quirks (state carried across forwards, no gradient into h_0/c_0).
The conformance cases lstm_* / rnn_* in test_conformance.py pin the numerics."""
import numpy as np
import pytest
from layer_case import LayerCase, setup_layer
from ref_recurrent import ref_lstm, ref_lstm_unit, ref_rnn

from caffe_lite.blob import Blob
from caffe_lite.errors import LayerError

T, N, D, H, S = 4, 3, 5, 3, 2
CONT = np.array([[0, 0, 0], [1, 1, 1], [0, 1, 1], [1, 1, 1]], float)


def spec(kind, expose=False):
    return (f"type: '{kind}' name: 'r' recurrent_param {{ num_output: {H} "
            f"expose_hidden: {str(expose).lower()} "
            f"weight_filler {{ type: 'uniform' min: -0.5 max: 0.5 }} "
            f"bias_filler {{ type: 'uniform' min: -0.3 max: 0.3 }} }}")


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(T, N, D)), rng.normal(size=(N, S)),
            rng.normal(size=(1, N, H)), rng.normal(size=(1, N, H)))


def params_of(layer):
    return [b.data.copy() for b in layer.blobs]


@pytest.mark.parametrize("static", [False, True])
def test_rnn_matches_reference(static):
    x, xs, h0, _ = inputs()

    def reference(x, cont, *rest):
        xs, (h0,), params = (rest[0], rest[1:2], rest[2:]) if static else (None, rest[:1],
                                                                           rest[1:])
        o, h_last = ref_rnn(x, cont, list(params), h0=h0[0], x_static=xs)
        return [o, h_last[None]]

    case = LayerCase(spec("RNN", expose=True), [x, CONT, xs, h0] if static else [x, CONT, h0],
                     num_top=2, reference=reference, forward_dtype=np.float64,
                     forward_rtol=0, forward_atol=1e-12)
    case.check_forward()
    assert [b.shape for b in case.layer.blobs] == \
        [(H, D), (H,)] + [(H, S)] * static + [(H, H), (H, H), (H,)]


@pytest.mark.parametrize("static", [False, True])
def test_lstm_matches_reference(static):
    x, xs, h0, c0 = inputs(1)

    def reference(x, cont, *rest):
        xs, (h0, c0), params = (rest[0], rest[1:3], rest[3:]) if static else (None, rest[:2],
                                                                              rest[2:])
        h, h_last, c_last = ref_lstm(x, cont, list(params), h0=h0[0], c0=c0[0], x_static=xs)
        return [h, h_last[None], c_last[None]]

    case = LayerCase(spec("LSTM", expose=True),
                     [x, CONT, xs, h0, c0] if static else [x, CONT, h0, c0], num_top=3,
                     reference=reference, forward_dtype=np.float64, forward_rtol=0,
                     forward_atol=1e-12)
    case.check_forward()
    assert [b.shape for b in case.layer.blobs] == \
        [(4 * H, D), (4 * H,)] + [(4 * H, S)] * static + [(4 * H, H)]


def test_lstm_unit_matches_reference():
    LayerCase("type: 'LSTMUnit' name: 'u'", [(1, N, H), (1, N, 4 * H), np.array([[1.0, 0.0, 0.5]])],
              seed=2, num_top=2, forward_dtype=np.float64, forward_rtol=0, forward_atol=1e-12,
              reference=lambda c_prev, gates, cont: [
                  v[None] for v in ref_lstm_unit(c_prev[0], gates[0], cont[0])]).check_forward()


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_state_carries_over_between_forwards(kind):
    """Without expose_hidden, h_0 (and c_0) of a forward is the last h_T (c_T)."""
    x, *_ = inputs(3)
    cont = np.ones((T, N))
    layer, bottom, top = setup_layer(spec(kind), [x, cont])
    layer.run_forward(bottom, top)
    first = top[0].data.copy()
    ref = ref_rnn if kind == "RNN" else ref_lstm
    out, *state = ref(x, cont, params_of(layer))
    np.testing.assert_allclose(first, out, atol=1e-12)
    layer.run_forward(bottom, top)
    carried = ref(x, cont, params_of(layer), *state)[0] if kind == "LSTM" else \
        ref(x, cont, params_of(layer), h0=state[0])[0]
    np.testing.assert_allclose(top[0].data, carried, atol=1e-12)


def test_lstm_unit_gradient():
    LayerCase("type: 'LSTMUnit' name: 'u'", [(1, N, H), (1, N, 4 * H), np.array([[1.0, 0.0, 1.0]])],
              seed=4, num_top=2, check_bottoms=[0, 1]).check_gradient()


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_recurrent_gradient(kind):
    # cont[0] = 0, so the state carried between the checker's forwards drops out
    x, xs, *_ = inputs(5)
    LayerCase(spec(kind), [x[:3, :2], CONT[:3, :2], xs[:2]], check_bottoms=[0, 2]).check_gradient()


@pytest.mark.parametrize("kind, num_state", [("RNN", 1), ("LSTM", 2)])
def test_exposed_state_gets_no_gradient(kind, num_state):
    """Caffe quirk: h_0/c_0 only share data with the unrolled net, and the top
    diffs of h_T/c_T are ignored."""
    x, _, h0, c0 = inputs(6)
    state = [h0, c0][:num_state]
    layer, bottom, top = setup_layer(spec(kind, expose=True), [x, CONT] + state,
                                     num_top=1 + num_state)
    layer.run_forward(bottom, top)
    top[0].diff[...] = 1
    for blob in top[1:]:
        blob.diff[...] = 0
    layer.backward(top, [True, False] + [True] * num_state, bottom)
    dx = bottom[0].diff.copy()
    for blob in top[1:]:
        blob.diff[...] = 5
    for blob in bottom:
        blob.diff[...] = 0
    layer.backward(top, [True, False] + [True] * num_state, bottom)
    np.testing.assert_array_equal(bottom[0].diff, dx)
    for blob in bottom[2:]:
        assert not blob.diff.any()


def test_bad_shapes_name_the_blob():
    x, *_ = inputs()
    with pytest.raises(LayerError, match="cont must be"):
        setup_layer(spec("RNN") + " bottom: 'x' bottom: 'cont'", [x, np.ones((T, N + 1))])
    with pytest.raises(LayerError, match="num_output"):
        setup_layer("type: 'LSTM' name: 'r' recurrent_param { num_output: 0 }",
                    [x, CONT])
    with pytest.raises(LayerError, match="exactly 3 top"):        # h, h_T, c_T
        setup_layer(spec("LSTM", expose=True), [x, CONT] + [np.zeros((1, N, H))] * 2,
                    num_top=2)
    with pytest.raises(LayerError, match="hidden state input must be"):
        setup_layer(spec("RNN", expose=True), [x, CONT, np.zeros((1, N, H + 1))],
                    num_top=2)


def test_cont_never_takes_a_gradient():
    x, *_ = inputs()
    layer, _, _ = setup_layer(spec("RNN"), [x, CONT])
    assert not layer.allow_force_backward(1) and layer.allow_force_backward(0)
    unit, _, _ = setup_layer("type: 'LSTMUnit' name: 'u'",
                             [np.zeros((1, N, H)), np.zeros((1, N, 4 * H)),
                              np.ones((1, N))], num_top=2)
    assert not unit.allow_force_backward(2)
    assert isinstance(layer.state[0], Blob)
