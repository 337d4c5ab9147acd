"""ParseNet's UnPooling (FIXED, DIV, REP; kernel from params or from a second
bottom's size) against plain loops written from the fork's window rules, and
float64 gradient checks."""
import numpy as np
import pytest
from layer_case import LayerCase, forward, proto

from caffe_lite.errors import LayerError


def ref_unpool(x, method, kernel, stride, pad):
    N, C, H, W = x.shape
    OH = (H - 1) * stride[0] - 2 * pad[0] + kernel[0]
    OW = (W - 1) * stride[1] - 2 * pad[1] + kernel[1]
    y = np.zeros((N, C, OH, OW))
    count = np.zeros((OH, OW))
    for h in range(H):
        for w in range(W):
            for r in range(h * stride[0] - pad[0], h * stride[0] - pad[0] + kernel[0]):
                for c in range(w * stride[1] - pad[1], w * stride[1] - pad[1] + kernel[1]):
                    if 0 <= r < OH and 0 <= c < OW:
                        count[r, c] += 1
    for n in range(N):
        for ch in range(C):
            for h in range(H):
                for w in range(W):
                    r0, c0 = h * stride[0] - pad[0], w * stride[1] - pad[1]
                    if method == "FIXED":
                        r = min(max((2 * r0 + kernel[0] - 1) // 2, 0), OH - 1)
                        c = min(max((2 * c0 + kernel[1] - 1) // 2, 0), OW - 1)
                        y[n, ch, r, c] = x[n, ch, h, w]
                        continue
                    r1 = min(r0 + kernel[0], OH + pad[0])
                    c1 = min(c0 + kernel[1], OW + pad[1])
                    value = x[n, ch, h, w]
                    if method == "DIV":
                        value = value / ((r1 - r0) * (c1 - c0))
                    for r in range(max(r0, 0), min(r1, OH)):
                        for c in range(max(c0, 0), min(c1, OW)):
                            y[n, ch, r, c] += value / count[r, c]
    return y


def text(method, extra="", bottoms=("x",)):
    return proto("UnPooling", f"unpooling_param {{ unpool: {method} {extra} }}",
                 bottoms=bottoms)


@pytest.mark.parametrize("method", ["FIXED", "DIV", "REP"])
@pytest.mark.parametrize("kernel, stride, pad, shape", [
    (2, 2, 0, (2, 3, 3, 4)), (3, 2, 1, (1, 2, 4, 3)), (3, 1, 0, (1, 2, 3, 3)),
    ((3, 2), (2, 1), (1, 0), (1, 2, 3, 4))])
def test_unpooling_against_loops_and_gradient(method, kernel, stride, pad, shape):
    pair = lambda v: v if isinstance(v, tuple) else (v, v)       # noqa: E731
    k, s, q = pair(kernel), pair(stride), pair(pad)
    extra = (f"out_kernel_h: {k[0]} out_kernel_w: {k[1]} out_stride_h: {s[0]} "
             f"out_stride_w: {s[1]} out_pad_h: {q[0]} out_pad_w: {q[1]}")
    case = LayerCase(text(method, extra), [shape],
                     reference=lambda x: ref_unpool(x, method, k, s, q))
    case.check_forward()
    case.check_gradient()


@pytest.mark.parametrize("method", ["REP", "DIV"])
@pytest.mark.parametrize("small, big", [((1, 1), (5, 7)), ((2, 3), (5, 7)), ((3, 3), (6, 6))])
def test_unpooling_sized_by_a_second_bottom(method, small, big):
    """ParseNet's global context: a pooled map spread back to the feature map."""
    x = np.random.default_rng(0).standard_normal((1, 2) + small)
    like = np.zeros((1, 1) + big)
    k = tuple(-(-b // s) for s, b in zip(small, big))
    st = tuple(1 if kk == b else kk for kk, b in zip(k, big))
    q = tuple(((s - 1) * t + kk - b) // 2 for s, t, kk, b in zip(small, st, k, big))
    case = LayerCase(text(method, "out_kernel_size: 0", bottoms=("x", "like")), [x, like],
                     check_bottoms=[0], reference=lambda a, b: ref_unpool(a, method, k, st, q))
    case.check_forward()
    case.check_gradient()
    if small == (1, 1) and method == "REP":
        (y,) = forward(text(method, bottoms=("x", "like")), [x, like])
        assert y.shape == (1, 2) + big
        np.testing.assert_allclose(y[0, :, 3, 4], x[0, :, 0, 0], rtol=1e-6)   # replicated


def test_unpooling_errors():
    with pytest.raises(LayerError, match="FIXED, DIV or REP"):
        forward(text("MAX", "out_kernel_size: 2"), [np.zeros((1, 1, 2, 2))])
    with pytest.raises(LayerError, match="out_kernel_size"):
        forward(text("REP"), [np.zeros((1, 1, 2, 2))])
    with pytest.raises(LayerError, match="smaller than the kernel"):
        forward(text("REP", "out_kernel_size: 2 out_pad: 2"), [np.zeros((1, 1, 2, 2))])
