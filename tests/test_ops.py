"""caffe_lite.ops kernels against the naive loop references in tests/ref_conv.py and
tests/reference.py."""
import numpy as np
import pytest
from ref_conv import ref_conv, ref_conv_backward, ref_deconv, ref_deconv_backward
from reference import (
    ref_ave_pool,
    ref_ave_pool_backward,
    ref_max_pool,
    ref_max_pool_backward,
    ref_pool_out_size,
)

from caffe_lite.ops import max_pool as max_pool_ops
from caffe_lite.ops.conv_gemm import conv_backward, conv_forward, deconv_backward, deconv_forward
from caffe_lite.ops.geometry import Workspace, conv_out_size, deconv_out_size
from caffe_lite.ops.im2col import col2im, im2col
from caffe_lite.ops.max_pool import max_pool_backward, max_pool_forward
from caffe_lite.ops.pooling import (
    ave_pool_backward,
    ave_pool_forward,
    pool_out_size,
    window_bounds,
)

RTOL32, ATOL32 = 1e-4, 1e-5


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(r, *shape, dtype=np.float32):
    return r.standard_normal(shape).astype(dtype)


# ==== sizes ==================================================================

def test_conv_sizes():
    assert conv_out_size(227, 11, 4) == 55
    assert conv_out_size(224, 3, 1, 1) == 224
    assert conv_out_size(7, 3, 1, 2, 2) == 7                       # dilation 2: extent 5
    assert conv_out_size(5, 2, 3, 0) == 2                          # stride > kernel
    assert conv_out_size(2, 5, 2, 1) == 1                          # C++ truncation: (-1)/2 == 0
    assert deconv_out_size(16, 64, 32, 16) == 512
    assert deconv_out_size(7, 3, 2, 1) == 13
    for size in range(1, 12):
        for k, s, p, d in [(3, 1, 1, 1), (3, 2, 0, 1), (2, 3, 1, 2), (4, 2, 1, 1)]:
            if size + 2 * p >= d * (k - 1) + 1:
                assert deconv_out_size(conv_out_size(size, k, s, p, d), k, s, p, d) <= size + s - 1


@pytest.mark.parametrize("ceil", [True, False])
def test_pool_out_size(ceil):
    for size in range(1, 20):
        for k in range(1, 6):
            for s in range(1, 5):
                for p in range(0, k):
                    if size + 2 * p >= k:
                        assert pool_out_size(size, k, s, p, ceil) == ref_pool_out_size(size, k, s, p, ceil)
    assert pool_out_size(55, 3, 2) == 27 and pool_out_size(112, 3, 2) == 56
    assert pool_out_size(112, 3, 2, 1, ceil=False) == 56 and pool_out_size(6, 3, 2, 1) == 4


def test_window_bounds():
    start, end, start_c, end_c = window_bounds(4, 3, 2, 1, 6)
    np.testing.assert_array_equal(start, [-1, 1, 3, 5])
    np.testing.assert_array_equal(end, [2, 4, 6, 7])             # clipped to H + p only
    np.testing.assert_array_equal(start_c, [0, 1, 3, 5])
    np.testing.assert_array_equal(end_c, [2, 4, 6, 6])


# ==== convolution ============================================================

# (N, C, H, W, Cout, kernel, stride, pad, dilation, group)
CONV2D = [
    (2, 3, 7, 6, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (1, 2, 5, 9, 3, (3, 3), (2, 2), (0, 0), (1, 1), 1),            # odd sizes, stride 2
    (2, 3, 6, 7, 2, (2, 3), (2, 1), (1, 0), (1, 1), 1),            # asymmetric everything
    (2, 2, 9, 8, 3, (3, 3), (1, 1), (2, 2), (2, 2), 1),            # dilation
    (1, 2, 9, 10, 2, (3, 2), (2, 1), (1, 2), (3, 2), 1),           # asymmetric dilation
    (2, 4, 6, 6, 6, (3, 3), (1, 1), (1, 1), (1, 1), 2),            # groups
    (2, 4, 5, 6, 4, (3, 3), (2, 2), (1, 1), (1, 1), 4),            # depthwise
    (2, 3, 8, 7, 2, (2, 2), (3, 3), (0, 1), (1, 1), 1),            # stride > kernel
    (1, 2, 4, 5, 3, (2, 2), (1, 2), (3, 3), (1, 1), 1),            # pad >= kernel
    (2, 5, 4, 6, 3, (1, 1), (1, 1), (0, 0), (1, 1), 1),            # 1x1 (no im2col copy)
    (2, 4, 7, 6, 4, (1, 1), (2, 2), (0, 0), (1, 1), 2),            # 1x1 strided, groups
    (2, 3, 5, 4, 2, (5, 4), (1, 1), (0, 0), (1, 1), 1),            # kernel = image
    (1, 2, 8, 8, 2, (4, 4), (2, 2), (1, 1), (1, 1), 1),            # kernel multiple of stride
    (2, 2, 9, 7, 4, (4, 6), (2, 3), (2, 1), (1, 1), 2),            # block col2im, groups
    (1, 3, 6, 6, 2, (4, 3), (2, 1), (0, 1), (1, 1), 1),            # block on one axis only
    (1, 1, 3, 3, 1, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 2, 7, 9, 3, (2, 2), (2, 2), (0, 0), (1, 1), 1),            # 2x2 s2: last row/col unread
    (1, 2, 9, 8, 2, (6, 4), (3, 2), (1, 0), (1, 1), 1),            # block col2im, unread tail
]


def conv_case(case, seed, dtype):
    N, C, H, W, Cout, k, s, p, d, g = case
    r = rng(seed)
    x = randn(r, N, C, H, W, dtype=dtype)
    w = randn(r, Cout, C // g, *k, dtype=dtype)
    b = randn(r, Cout, dtype=dtype)
    return x, w, b, dict(stride=s, pad=p, dilation=d, group=g)


@pytest.mark.parametrize("case", CONV2D)
def test_conv_forward_2d(case):
    x, w, b, kw = conv_case(case, 1, np.float32)
    y = conv_forward(x, w, b, **kw)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref_conv(x, w, b, **kw), rtol=RTOL32, atol=ATOL32)
    np.testing.assert_allclose(conv_forward(x, w, None, **kw), ref_conv(x, w, None, **kw),
                               rtol=RTOL32, atol=ATOL32)


@pytest.mark.parametrize("case", CONV2D)
def test_conv_backward_2d(case):
    x, w, b, kw = conv_case(case, 2, np.float64)
    y = conv_forward(x, w, b, **kw)
    dy = randn(rng(3), *y.shape, dtype=np.float64)
    dx, dw, db = conv_backward(x, w, dy, **kw)
    rdx, rdw, rdb = ref_conv_backward(x, w, dy, **kw)
    np.testing.assert_allclose(dx, rdx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, rdw, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, rdb, rtol=1e-10, atol=1e-10)
    # float32 agreement, and the need_* switches
    x32, w32, dy32 = (a.astype(np.float32) for a in (x, w, dy))
    dx32, dw32, db32 = conv_backward(x32, w32, dy32, need_db=False, **kw)
    assert db32 is None and dx32.dtype == dw32.dtype == np.float32
    np.testing.assert_allclose(dx32, rdx, rtol=RTOL32, atol=ATOL32)
    np.testing.assert_allclose(dw32, rdw, rtol=RTOL32, atol=1e-4)
    assert conv_backward(x32, w32, dy32, need_dx=False, need_dw=False, **kw)[:2] == (None, None)


# (N, C, H, W, Cout, kernel, stride, pad, dilation, group); C is deconv's input channels
DECONV2D = [
    (2, 3, 4, 5, 2, (4, 4), (2, 2), (1, 1), (1, 1), 1),            # FCN 2x upsampling
    (1, 2, 3, 3, 2, (16, 16), (8, 8), (4, 4), (1, 1), 2),          # FCN 8x, grouped
    (1, 2, 2, 3, 4, (8, 8), (4, 4), (2, 2), (1, 1), 2),            # 4x, channel-wise
    (2, 3, 4, 3, 4, (3, 3), (2, 2), (1, 1), (1, 1), 1),            # odd kernel
    (2, 2, 3, 4, 3, (3, 2), (1, 2), (0, 0), (1, 1), 1),
    (1, 2, 4, 4, 2, (3, 3), (2, 2), (2, 1), (2, 2), 1),            # dilation
    (2, 4, 3, 3, 2, (2, 2), (3, 3), (0, 0), (1, 1), 2),            # stride > kernel
    (2, 4, 5, 4, 4, (1, 1), (1, 1), (0, 0), (1, 1), 4),            # 1x1 depthwise
    (1, 3, 3, 4, 2, (6, 4), (3, 2), (2, 1), (1, 1), 1),            # block col2im, asymmetric
    (1, 2, 3, 3, 2, (4, 3), (2, 3), (0, 0), (1, 1), 2),
]


def deconv_case(case, seed, dtype):
    N, C, H, W, Cout, k, s, p, d, g = case
    r = rng(seed)
    x = randn(r, N, C, H, W, dtype=dtype)
    w = randn(r, C, Cout // g, *k, dtype=dtype)
    b = randn(r, Cout, dtype=dtype)
    return x, w, b, dict(stride=s, pad=p, dilation=d, group=g)


@pytest.mark.parametrize("case", DECONV2D)
def test_deconv_forward_2d(case):
    x, w, b, kw = deconv_case(case, 4, np.float32)
    y = deconv_forward(x, w, b, **kw)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref_deconv(x, w, b, **kw), rtol=RTOL32, atol=ATOL32)


@pytest.mark.parametrize("case", DECONV2D)
def test_deconv_backward_2d(case):
    x, w, b, kw = deconv_case(case, 5, np.float64)
    y = deconv_forward(x, w, b, **kw)
    dy = randn(rng(6), *y.shape, dtype=np.float64)
    got = deconv_backward(x, w, dy, **kw)
    for a, ref in zip(got, ref_deconv_backward(x, w, dy, **kw)):
        np.testing.assert_allclose(a, ref, rtol=1e-10, atol=1e-10)


# (N, C, spatial, Cout, kernel, stride, pad, dilation, group)
CONV_ND = [
    (2, 3, (9,), 4, (3,), (2,), (1,), (1,), 1),                    # 1-D
    (1, 4, (11,), 2, (4,), (2,), (1,), (1,), 2),                   # 1-D block col2im, groups
    (1, 2, (7,), 3, (2,), (1,), (3,), (3,), 1),                    # 1-D dilation, pad >= kernel
    (2, 2, (4, 5, 3), 3, (2, 3, 2), (1, 2, 1), (1, 0, 1), (1, 1, 1), 1),   # 3-D
    (1, 4, (5, 4, 6), 4, (3, 2, 2), (2, 1, 2), (1, 1, 0), (1, 2, 1), 2),   # 3-D groups, dilation
    (1, 2, (6, 4, 4), 2, (4, 2, 2), (2, 2, 2), (1, 0, 1), (1, 1, 1), 1),   # 3-D block col2im
]


@pytest.mark.parametrize("case", CONV_ND)
def test_conv_nd(case):
    N, C, S, Cout, k, s, p, d, g = case
    r = rng(7)
    x, w, b = randn(r, N, C, *S), randn(r, Cout, C // g, *k), randn(r, Cout)
    kw = dict(stride=s, pad=p, dilation=d, group=g)
    y = conv_forward(x, w, b, **kw)
    np.testing.assert_allclose(y, ref_conv(x, w, b, **kw), rtol=RTOL32, atol=ATOL32)
    # gradients in float64: conv is linear in x and in w, so <conv(x', w), dy> == <x', dx>
    # and <conv(x, w'), dy> == <w', dw> for any probes x', w' (the reference does the conv).
    x, w = x.astype(np.float64), w.astype(np.float64)
    dy = randn(r, *y.shape, dtype=np.float64)
    dx, dw, db = conv_backward(x, w, dy, **kw)
    for _ in range(2):
        xp, wp = randn(r, *x.shape, dtype=np.float64), randn(r, *w.shape, dtype=np.float64)
        np.testing.assert_allclose(np.vdot(ref_conv(xp, w, None, **kw), dy), np.vdot(xp, dx), rtol=1e-10)
        np.testing.assert_allclose(np.vdot(ref_conv(x, wp, None, **kw), dy), np.vdot(wp, dw), rtol=1e-10)
    np.testing.assert_allclose(db, dy.sum(axis=tuple(i for i in range(dy.ndim) if i != 1)), rtol=1e-12)
    for got, ref in zip((dx, dw, db), ref_conv_backward(x, w, dy, **kw)):    # and directly
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


# ==== adjointness ============================================================

GEOMETRIES = ([(c[1], (c[2], c[3]), c[5], c[6], c[7], c[8]) for c in CONV2D]
              + [(c[1], c[2], c[4], c[5], c[6], c[7]) for c in CONV_ND])


@pytest.mark.parametrize("C, S, k, s, p, d", GEOMETRIES)
def test_im2col_col2im_adjoint(C, S, k, s, p, d):
    r = rng(8)
    x = randn(r, 2, C, *S, dtype=np.float64)
    cols = im2col(x, k, s, p, d)
    c = randn(r, *cols.shape, dtype=np.float64)
    back = col2im(c, x.shape, k, s, p, d)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, back), rtol=1e-12)
    # the adjoint of the adjoint: reuse buffers through out=
    out = np.full_like(x, 7.0)
    np.testing.assert_array_equal(col2im(c, x.shape, k, s, p, d, out=out), back)
    np.testing.assert_array_equal(im2col(x, k, s, p, d, out=np.full_like(cols, 7.0)), cols)


@pytest.mark.parametrize("layout", ["channel", "batch_last"])
@pytest.mark.parametrize("k, s, p, d", [(3, 1, 1, 1), (2, 2, 0, 1), (3, 2, 1, 2), (4, 2, 1, 1)])
def test_folded_layouts_hold_the_same_columns(layout, k, s, p, d):
    """The folded layouts are the per-image columns transposed, exactly, and col2im
    from them gives the per-image col2im bit for bit (same adds, same order; k4 s2
    takes the block path)."""
    r = rng(9)
    x = randn(r, 3, 2, 6, 7)
    cols = im2col(x, k, s, p, d)                                   # (N, CK, L)
    order = (1, 0, 2) if layout == "channel" else (1, 2, 0)
    folded = im2col(x, k, s, p, d, layout=layout, workspace=Workspace())
    np.testing.assert_array_equal(folded, cols.transpose(order))
    c = randn(r, *cols.shape)
    np.testing.assert_array_equal(
        col2im(np.ascontiguousarray(c.transpose(order)), x.shape, k, s, p, d, layout=layout),
        col2im(c, x.shape, k, s, p, d))


def test_im2col_layout():
    """cols[n] is Caffe's col_buffer: row c*K + k, column oh*OW + ow, zeros in the padding."""
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3)
    cols = im2col(x, (2, 2), 1, 1, 1)                              # OH = OW = 4
    assert cols.shape == (2, 2 * 4, 16)
    n, c, kh, kw, oh, ow = 1, 1, 1, 0, 2, 1                         # reads x[1, 1, 2, 0]
    assert cols[n, c * 4 + kh * 2 + kw, oh * 4 + ow] == x[1, 1, 2, 0]
    assert cols[0, 0, 0] == 0                                      # (oh, ow) = (0, 0), offset (0, 0): padding


@pytest.mark.parametrize("case", DECONV2D + [
    (2, 4, 4, 3, 6, (3, 3), (1, 2), (1, 0), (2, 1), 2)])
def test_deconv_is_conv_transpose(case):
    """<conv(x), y> == <x, deconv(y)> with the same weight array (float64)."""
    N, Cy, H, W, Cx, k, s, p, d, g = case                          # deconv input Cy -> output Cx
    r = rng(9)
    w = randn(r, Cy, Cx // g, *k, dtype=np.float64)                 # conv weights Cx -> Cy
    kw = dict(stride=s, pad=p, dilation=d, group=g)
    y = randn(r, N, Cy, H, W, dtype=np.float64)
    x = randn(r, *deconv_forward(y, w, None, **kw).shape, dtype=np.float64)
    np.testing.assert_allclose(np.vdot(conv_forward(x, w, None, **kw), y),
                               np.vdot(x, deconv_forward(y, w, None, **kw)), rtol=1e-12)


@pytest.mark.parametrize("case", CONV_ND)
def test_deconv_nd_is_conv_transpose(case):
    """N-D deconv against the N-D conv reference through <conv(x), y> == <x, deconv(y)>;
    then its gradients through linearity in y and w (float64)."""
    N, C, S, Cout, k, s, p, d, g = case
    r = rng(10)
    w = randn(r, Cout, C // g, *k, dtype=np.float64)               # conv C -> Cout = deconv Cout -> C
    kw = dict(stride=s, pad=p, dilation=d, group=g)
    y = randn(r, *ref_conv(randn(r, N, C, *S), w, None, **kw).shape, dtype=np.float64)
    xd = deconv_forward(y, w, None, **kw)
    x = randn(r, *xd.shape, dtype=np.float64)
    np.testing.assert_allclose(np.vdot(ref_conv(x, w, None, **kw), y), np.vdot(x, xd), rtol=1e-12)
    np.testing.assert_allclose(xd, ref_deconv(y, w, None, **kw), rtol=1e-10, atol=1e-10)
    dx, dw, db = deconv_backward(y, w, x, **kw)                    # x as the top gradient
    for got, ref in zip((dx, dw, db), ref_deconv_backward(y, w, x, **kw)):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
    yp, wp = randn(r, *y.shape, dtype=np.float64), randn(r, *w.shape, dtype=np.float64)
    np.testing.assert_allclose(np.vdot(deconv_forward(yp, w, None, **kw), x), np.vdot(yp, dx), rtol=1e-12)
    np.testing.assert_allclose(np.vdot(deconv_forward(y, wp, None, **kw), x), np.vdot(wp, dw), rtol=1e-12)
    np.testing.assert_allclose(db, x.sum(axis=tuple(i for i in range(x.ndim) if i != 1)), rtol=1e-12)


# ==== buffers and errors =====================================================

def test_batch_slices(monkeypatch):
    """Batches whose columns exceed COLUMN_BUDGET run in slices: same results."""
    import caffe_lite.ops.conv_gemm as conv_gemm_module
    conv_cases = [conv_case(c, 18, np.float64) for c in (CONV2D[0], CONV2D[5], CONV2D[9])]
    deconv_cases = [deconv_case(c, 19, np.float64) for c in (DECONV2D[0], DECONV2D[3])]
    whole = [(conv_forward(x, w, b, **kw), conv_backward(x, w, conv_forward(x, w, b, **kw), **kw))
             for x, w, b, kw in conv_cases]
    whole_de = [(deconv_forward(x, w, b, **kw), deconv_backward(x, w, deconv_forward(x, w, b, **kw), **kw))
                for x, w, b, kw in deconv_cases]
    monkeypatch.setattr(conv_gemm_module, "COLUMN_BUDGET", 1)           # one image per slice
    ws = Workspace()
    for (x, w, b, kw), (y, grads) in zip(conv_cases, whole):
        np.testing.assert_allclose(conv_forward(x, w, b, workspace=ws, **kw), y, rtol=1e-12)
        for a, ref in zip(conv_backward(x, w, y, workspace=ws, **kw), grads):
            np.testing.assert_allclose(a, ref, rtol=1e-12, atol=1e-12)
    for (x, w, b, kw), (y, grads) in zip(deconv_cases, whole_de):
        np.testing.assert_allclose(deconv_forward(x, w, b, workspace=ws, **kw), y, rtol=1e-12)
        for a, ref in zip(deconv_backward(x, w, y, workspace=ws, **kw), grads):
            np.testing.assert_allclose(a, ref, rtol=1e-12, atol=1e-12)



def test_workspace_and_out():
    ws = Workspace()
    for case in (CONV2D[0], CONV2D[5], CONV2D[0]):                 # shapes change, buffers reused
        x, w, b, kw = conv_case(case, 11, np.float32)
        y = np.empty_like(ref_conv(x, w, b, **kw), dtype=np.float32)
        assert conv_forward(x, w, b, out=y, workspace=ws, **kw) is y
        np.testing.assert_allclose(y, ref_conv(x, w, b, **kw), rtol=RTOL32, atol=ATOL32)
        dy = randn(rng(12), *y.shape)
        dx_out = np.empty_like(x)
        dx, dw, db = conv_backward(x, w, dy, dx_out=dx_out, workspace=ws, **kw)
        assert dx is dx_out
        ref = ref_conv_backward(x, w, dy, **kw)
        np.testing.assert_allclose(dx, ref[0], rtol=RTOL32, atol=ATOL32)
        np.testing.assert_allclose(dw, ref[1], rtol=RTOL32, atol=1e-4)
    assert ws.get("cols", (2, 3), np.float32).shape == (2, 3)


def test_errors():
    x = np.zeros((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match="group"):
        conv_forward(x, np.zeros((3, 2, 3, 3), np.float32), group=2)
    with pytest.raises(ValueError, match="weights"):
        conv_forward(x, np.zeros((2, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        im2col(x, 9, 3)
    with pytest.raises(ValueError, match="C-contiguous"):
        im2col(x, 3, out=np.zeros((1, 36, 9), np.float64))
    with pytest.raises(ValueError, match="spatial axis"):
        im2col(x, (3, 3, 3))
    with pytest.raises(ValueError, match="dy"):
        conv_backward(x, np.zeros((2, 4, 3, 3), np.float32), np.zeros((1, 2, 4, 4), np.float32))


# ==== pooling ================================================================

# (N, C, H, W, kernel, stride, pad, ceil)
POOL2D = [
    (2, 3, 8, 7, (3, 3), (2, 2), (1, 1), True),                    # Caffe's pool_max_ties geometry
    (2, 2, 6, 6, (2, 2), (2, 2), (0, 0), True),
    (1, 2, 7, 7, (2, 2), (2, 2), (0, 0), True),                    # ceil overhang, no pad
    (1, 2, 7, 7, (2, 2), (2, 2), (0, 0), False),
    (1, 2, 6, 6, (3, 3), (2, 2), (1, 1), True),                    # overhang with pad
    (1, 2, 5, 5, (2, 2), (2, 2), (1, 1), True),                    # last window rule drops one
    (1, 2, 5, 5, (2, 2), (2, 2), (1, 1), False),
    (2, 1, 9, 6, (3, 2), (2, 1), (1, 0), True),                    # asymmetric
    (1, 2, 7, 8, (2, 3), (3, 2), (1, 2), True),                    # stride > kernel, pad
    (1, 2, 6, 5, (3, 3), (1, 1), (2, 2), True),                    # stride 1, pad 2
    (2, 2, 5, 4, (5, 4), (1, 1), (0, 0), True),                    # global
    (1, 3, 11, 13, (3, 3), (2, 2), (0, 0), True),                  # 3x3 s2 ceil (CaffeNet)
    (1, 1, 1, 1, (1, 1), (1, 1), (0, 0), True),
]


def pool_input(case, seed, ties=False):
    N, C, H, W = case[:4]
    r = rng(seed)
    if ties:
        return r.integers(-2, 3, size=(N, C, H, W)).astype(np.float32)
    return randn(r, N, C, H, W)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("case", POOL2D)
def test_max_pool(case, ties):
    N, C, H, W, k, s, p, ceil = case
    x = pool_input(case, 13, ties)
    ref_y, ref_mask = ref_max_pool(x, k, s, p, ceil)
    out_shape = tuple(pool_out_size(n, *a, ceil) for n, a in zip((H, W), zip(k, s, p)))
    assert out_shape == ref_y.shape[2:]
    y, mask = max_pool_forward(x, k, s, p, out_shape, need_mask=True)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(mask, ref_mask)
    assert mask.dtype == np.float32
    y2, none = max_pool_forward(x, k, s, p, out_shape)
    assert none is None
    np.testing.assert_array_equal(y2, ref_y)
    dy = randn(rng(14), *y.shape)
    np.testing.assert_allclose(max_pool_backward(dy, mask, x.shape),
                               ref_max_pool_backward(dy, ref_mask, x.shape), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", POOL2D)
def test_ave_pool(case):
    N, C, H, W, k, s, p, ceil = case
    x = pool_input(case, 15)
    ref_y = ref_ave_pool(x, k, s, p, ceil)
    y = ave_pool_forward(x, k, s, p, ref_y.shape[2:])
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref_y, rtol=1e-6, atol=1e-7)
    dy = randn(rng(16), *y.shape)
    dx = ave_pool_backward(dy, k, s, p, x.shape)
    np.testing.assert_allclose(dx, ref_ave_pool_backward(dy, k, s, p, x.shape), rtol=1e-6, atol=1e-7)
    # exact adjoint in float64
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    np.testing.assert_allclose(np.vdot(ave_pool_forward(x64, k, s, p, y.shape[2:]), dy64),
                               np.vdot(x64, ave_pool_backward(dy64, k, s, p, x.shape)), rtol=1e-12)


def test_ave_pool_divisor_counts_padding_not_overhang():
    x = np.ones((1, 1, 4, 4), np.float32)
    y = ave_pool_forward(x, 3, 2, 1, (pool_out_size(4, 3, 2, 1),) * 2)   # windows [-1,2) [1,4) [3,5)
    per_axis = np.array([2 / 3, 3 / 3, 1 / 2])                      # cells inside / window clipped to H+p
    np.testing.assert_allclose(y[0, 0], np.outer(per_axis, per_axis), rtol=1e-7)
    y = ave_pool_forward(x, 3, 2, 0, (pool_out_size(4, 3, 2, 0),) * 2)   # windows [0,3), [2,5) -> [2,4)
    np.testing.assert_array_equal(y[0, 0], [[1, 1], [1, 1]])


def test_max_pool_nan_and_inf_like_caffe():
    """Caffe compares with '>' from -FLT_MAX: NaN and -inf never win."""
    x = np.array([[[[np.nan, 1.0], [-np.inf, np.nan]]]], np.float32)
    for need_mask in (False, True):
        y, mask = max_pool_forward(x, 2, 2, 0, (1, 1), need_mask=need_mask)
        assert y[0, 0, 0, 0] == 1.0
    assert mask[0, 0, 0, 0] == 1
    lowest = -np.finfo(np.float32).max
    for fill in (-np.inf, lowest):                                  # nothing is > -FLT_MAX
        y, mask = max_pool_forward(np.full((1, 1, 2, 2), fill, np.float32), 2, 2, 0, (1, 1), True)
        assert y[0, 0, 0, 0] == lowest and mask[0, 0, 0, 0] == -1


@pytest.mark.parametrize("case", POOL2D)
def test_max_pool_in_chunks_with_nan_and_inf(monkeypatch, case):
    """Both paths pool a few planes at a time through -FLT_MAX-padded phase arrays;
    chunk edges, NaN, +-inf and windows of nothing above -FLT_MAX as Caffe."""
    N, C, H, W, k, s, p, ceil = case
    monkeypatch.setattr(max_pool_ops, "_CHUNK", 2 * H * W)            # 2 planes, then the rest
    x = randn(rng(18), N + 1, C + 2, H, W)
    r = rng(19)
    for value in (np.nan, np.inf, -np.inf, -np.finfo(np.float32).max):
        x.reshape(-1)[r.integers(0, x.size, size=max(1, x.size // 8))] = value
    x[0, 0] = -np.inf                                                # a plane of nothing
    ref_y, ref_mask = ref_max_pool(x, k, s, p, ceil)
    y, mask = max_pool_forward(x, k, s, p, ref_y.shape[2:])
    np.testing.assert_array_equal(y, ref_y)
    assert mask is None and np.all(y[0, 0] == -np.finfo(np.float32).max)
    y, mask = max_pool_forward(x, k, s, p, ref_y.shape[2:], need_mask=True)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(mask, ref_mask)


def test_max_pool_backward_order_and_invalid_entries():
    """Cells hit by several windows sum in output order (float32); -1 entries are dropped."""
    mask = np.array([[[[0., 0.], [-1., 0.]]], [[[3., -1.], [3., 3.]]]], np.float32)   # (2, 1, 2, 2)
    dy = np.array([[[[1e8, 1.], [5., -1e8]]], [[[1., 2.], [3., 4.]]]], np.float32)
    dx = max_pool_backward(dy, mask, (2, 1, 2, 2))
    expect = np.float32(np.float32(np.float32(1e8) + np.float32(1.)) + np.float32(-1e8))  # = 0, not 1
    np.testing.assert_array_equal(dx[0, 0].ravel(), [expect, 0, 0, 0])
    np.testing.assert_array_equal(dx[1, 0].ravel(), [0, 0, 0, 8])


# (N, C, spatial, kernel, stride, pad, ceil)
POOL_ND = [
    (2, 2, (9,), (3,), (2,), (1,), True),
    (1, 2, (8,), (2,), (3,), (0,), False),
    (1, 2, (5, 6, 4), (2, 3, 2), (2, 2, 1), (1, 1, 0), True),
    (1, 1, (4, 5, 5), (3, 2, 3), (1, 2, 2), (0, 1, 1), False),
]


@pytest.mark.parametrize("case", POOL_ND)
def test_pool_nd(case):
    N, C, S, k, s, p, ceil = case
    r = rng(17)
    x = r.integers(-3, 4, size=(N, C, *S)).astype(np.float32)
    out_shape = tuple(pool_out_size(n, *a, ceil) for n, a in zip(S, zip(k, s, p)))
    ref_y, ref_mask = ref_max_pool(x, k, s, p, ceil)
    y, mask = max_pool_forward(x, k, s, p, out_shape, need_mask=True)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(mask, ref_mask)
    np.testing.assert_array_equal(max_pool_forward(x, k, s, p, out_shape)[0], ref_y)
    dy = randn(r, *y.shape)
    np.testing.assert_allclose(max_pool_backward(dy, mask, x.shape),
                               ref_max_pool_backward(dy, ref_mask, x.shape), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ave_pool_forward(x, k, s, p, out_shape), ref_ave_pool(x, k, s, p, ceil),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ave_pool_backward(dy, k, s, p, x.shape),
                               ref_ave_pool_backward(dy, k, s, p, x.shape), rtol=1e-6, atol=1e-7)


def test_docstring_examples():
    import doctest

    import caffe_lite.ops.geometry as geometry_module
    import caffe_lite.ops.im2col as im2col_module
    import caffe_lite.ops.max_pool as max_pool_module
    import caffe_lite.ops.pooling as pooling_module
    for module in (geometry_module, im2col_module, pooling_module, max_pool_module):
        assert doctest.testmod(module).failed == 0
