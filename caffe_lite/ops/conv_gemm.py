"""The convolution GEMMs over im2col columns: conv and deconv forward/backward.

Deconvolution is the transpose of convolution: its forward is convolution's
backward-data (W^T GEMM + col2im), its backward-data is convolution's forward.
"""
from functools import partial
from math import prod

import numpy as np

from . import jit, threads
from .depthwise import depthwise_backward, depthwise_forward, is_depthwise
from .geometry import check_out, conv_geometry, deconv_out_size, per_axis, scratch
from .im2col import col2im, column_shape, im2col, image_view
from .winograd import WinogradWeights, winograd_applies, winograd_groups

__all__ = ["conv_forward", "conv_backward", "deconv_forward", "deconv_backward",
           "COLUMN_BUDGET"]


# ==== convolution GEMMs ======================================================
# cols: (N, C*K, L) seen as (N, G, C/G*K, L). Conv weights: (Cout, C/G, *K) seen as
# (G, Cout/G, C/G*K). One stacked matmul handles every image and group.
#
# Columns of a whole batch take N times Caffe's per-image buffer (VGG conv1_2 at batch 8:
# 924 MB), so the helpers walk the batch in slices whose columns fit in COLUMN_BUDGET
# bytes -- the whole batch at once for most layers, and at least one image per slice.
COLUMN_BUDGET = 1 << 27  # 128 MiB


def _batch_slices(N, column_bytes_per_image):
    step = max(1, min(N, COLUMN_BUDGET // max(1, column_bytes_per_image)))
    return [slice(n, min(n + step, N)) for n in range(0, N, step)]


def _columns(x, kernel, stride, pad, dilation, workspace):
    """im2col into the workspace; a 1x1 stride-1 unpadded kernel is a free reshape."""
    N, C, *spatial = x.shape
    kernel, stride, pad, dilation, osz = conv_geometry(spatial, kernel, stride, pad, dilation)
    if all(k == 1 and s == 1 and p == 0 for k, s, p in zip(kernel, stride, pad)):
        return x.reshape(N, C, prod(spatial))
    return im2col(x, kernel, stride, pad, dilation,
                  out=scratch(workspace, "cols", (N, C * prod(kernel), prod(osz)), x.dtype))


# Batch folding: for small images the per-image GEMMs are too small for BLAS (LeNet's
# conv2: (50 x 500) @ (500 x 64) per image), so the whole batch slice becomes one GEMM
# over folded columns (C*K, N*L), whose output comes out as (Cout, N*L) and is
# transposed back, which is cheap exactly when L is small (perf-notes: for 224^2 maps
# the transpose costs as much as it saves). Pointwise (1x1 stride-1 unpadded)
# convolutions need no columns per image, so folding would add two copies: they stay
# per image (measured: GoogLeNet b8 forward 20% slower when they folded).
FOLD_MAX_L = 1024


def _pointwise(kernel, stride, pad):
    return all(k == 1 and s == 1 and p == 0 for k, s, p in
               zip(kernel, *(per_axis(v, len(kernel), n) for v, n in ((stride, "stride"), (pad, "pad")))))


def _fold_layout(x, w, stride, pad, osz):
    """None (per image), or the folded column layout (im2col.LAYOUTS) for this layer.

    "batch_last" copies and adds runs of (output width x batch) where "channel" does
    one output row at a time, which pays on narrow maps (LeNet's conv2, 8 wide at
    batch 64: im2col 1.6 -> 0.5 ms, col2im 4.7 -> 1.8 ms) but costs a transpose of the
    input and of the output. Both are strided copies of about 0.6 ns per value, against
    roughly 10 ns saved per row of columns that no longer needs a loop of its own, so
    it is taken when C*K rows of L*N values outweigh the Cout*L*N output values
    transposed: 16 C*K > width * Cout. At stride > 1 the batch is the only contiguous
    run, and "channel" stays (LeNet's conv1, one input channel: 20% slower
    batch_last)."""
    N, C = x.shape[:2]
    kernel = w.shape[2:]
    L = prod(osz)
    if N < 2 or L > FOLD_MAX_L or _pointwise(kernel, stride, pad):
        return None
    unit_stride = all(s == 1 for s in per_axis(stride, len(kernel), "stride"))
    if unit_stride and 16 * C * prod(kernel) > osz[-1] * w.shape[0]:
        return "batch_last"
    return "channel"


FOLD_MAX_MACS_COMPILED = 4_000_000


def _forward_layout(x, w, stride, pad, osz):
    """_fold_layout for a forward; with compiled im2col (its copies need no folding) only
    where one image's GEMM has under FOLD_MAX_MACS_COMPILED multiply-adds (LeNet: 1.6 M).
    Batch 8, A/B: GoogLeNet 246 -> 228 ms, CaffeNet 114 -> 111, SqueezeNet 65 -> 62.5."""
    layout = _fold_layout(x, w, stride, pad, osz)
    small = w.size * prod(osz) < FOLD_MAX_MACS_COMPILED
    return layout if small or not jit.available() else None


def _columns_folded(x, kernel, geometry, layout, workspace):
    """The folded columns of x (n, C, *S), as a (C*K, n*L) matrix."""
    n, C, *spatial = x.shape
    osz = conv_geometry(spatial, kernel, *geometry)[-1]
    CK, L = C * prod(kernel), prod(osz)
    out = scratch(workspace, "cols", column_shape(layout, n, CK, L), x.dtype)
    return im2col(x, kernel, *geometry, out=out, layout=layout, workspace=workspace).reshape(CK, n * L)


def _weight_cache(workspace, w):
    """Transformed Winograd weights live beside the scratch arrays, one cache per
    weights array (a workspace may serve many layers: lean nets, shadows); each
    cache checks the values, so a reused address is never a stale hit."""
    if workspace is None:
        return None
    if not hasattr(workspace, "winograd_weights"):
        workspace.winograd_weights = {}
    key = (w.__array_interface__["data"][0], w.shape)
    return workspace.winograd_weights.setdefault(key, WinogradWeights())


def _matmul(a, b, out):
    """np.matmul(a, b, out=out); a contraction of length 1 is an outer product, which BLAS
    does ~7x slower than a broadcast multiply (depthwise deconvolution, conv backward)."""
    if a.shape[-1] == 1:
        np.multiply(a, b, out=out)
    else:
        np.matmul(a, b, out=out)


def _gemm_forward(cols, w, group, out):
    """out (N, G, Cout/G, L) = W (G, Cout/G, C/G*K) @ cols (N, G, C/G*K, L)."""
    N, CK, L = cols.shape
    _matmul(w.reshape(group, w.shape[0] // group, -1), cols.reshape(N, group, CK // group, L),
            out=out.reshape(N, group, -1, L))


def _gemm_data(w, dy, group, out):
    """out (N, G, C/G*K, L) = W^T (G, C/G*K, Cout/G) @ dy (N, G, Cout/G, L)."""
    N, Cout, L = dy.shape
    wt = w.reshape(group, w.shape[0] // group, -1).transpose(0, 2, 1)
    _matmul(wt, dy.reshape(N, group, Cout // group, L), out=out.reshape(N, group, -1, L))


def _gemm_weight(dy, cols, group):
    """dW (G, Cout/G, C/G*K) = sum_n dy (N, G, Cout/G, L) @ cols^T (N, G, L, C/G*K)."""
    N, Cout, L = dy.shape
    colsT = cols.reshape(N, group, -1, L).transpose(0, 1, 3, 2)
    per_image = np.matmul(dy.reshape(N, group, Cout // group, L), colsT)  # (N, G, Cout/G, C/G*K)
    return per_image[0] if N == 1 else per_image.sum(axis=0)


def _check_conv(x, w, group, w_in_axis, what):
    if group < 1 or x.shape[1] % group or w.shape[0] % group:
        raise ValueError(f"{what}: group {group} must divide the channels {x.shape[1]} and the "
                         f"weight's first axis {w.shape[0]}")
    expect = x.shape[1] // group if w_in_axis == 1 else x.shape[1]
    if w.ndim != x.ndim or w.shape[w_in_axis] != expect:
        raise ValueError(f"{what}: weights {w.shape} do not fit input {x.shape} with group {group}")


def _sum_bias(dy):
    """db (Cout,) = dy summed over the batch and spatial axes."""
    return dy.reshape(dy.shape[0], dy.shape[1], -1).sum(axis=(0, 2))


# ==== a batch over threads ===================================================
# With worker threads (ops/threads.py) a batch is cut into one part per thread, each
# part the serial computation of its images with BLAS on one thread: im2col, col2im,
# the depthwise and Winograd kernels then use every core too. Below MIN_THREADED_MACS
# multiply-adds it costs more than it saves: LeNet's train step at batch 64 (conv2:
# 0.1 G forward, 0.2 G backward) took 35.8 ms split, 31.3 ms serial.
MIN_THREADED_MACS = 300_000_000


def _thread_parts(N, macs):
    """Slices of the batch, one per worker thread, or None to stay serial."""
    if N < 2 or macs < MIN_THREADED_MACS:
        return None
    count = threads.threads()
    return threads.split(N, count) if count > 1 else None


def _part(workspace, k):
    return None if workspace is None else workspace.part(k)


def conv_forward(x, w, b=None, stride=1, pad=0, dilation=1, group=1, out=None, workspace=None,
                 scale=None):
    """Convolution: x (N, C, *S), w (Cout, C/G, *K), b (Cout,) or None -> y (N, Cout, *O).

    y[n, g*Cout/G + o] = sum_{c,k} w[g*Cout/G + o, c, k] x[n, g*C/G + c, o*s - p + k*d] + b.
    ``out``: C-contiguous array to write y into; ``workspace``: a Workspace for the columns;
    ``scale`` (Cout,): multiplies each output channel before b is added (folded layers).
    """
    _check_conv(x, w, group, 1, "conv_forward")
    N, C, *spatial = x.shape
    Cout, kernel = w.shape[0], w.shape[2:]
    *_, osz = conv_geometry(spatial, kernel, stride, pad, dilation)
    y = check_out(out, (N, Cout) + osz, x.dtype)
    parts = _thread_parts(N, N * Cout * prod(w.shape[1:]) * prod(osz))
    if parts:
        threads.run_parts([partial(conv_forward, x[p], w, b, stride, pad, dilation, group,
                                   y[p], _part(workspace, k), scale)
                           for k, p in enumerate(parts)])
        return y
    if winograd_applies(x, w, stride, dilation, group):
        return winograd_groups(x, w, b, pad, group, y, workspace,
                               partial(_weight_cache, workspace), scale)
    if scale is not None:                       # scaled, then shifted by b
        conv_forward(x, w, None, stride, pad, dilation, group, y, workspace)
        per_channel = (1, Cout) + (1,) * len(osz)
        y *= scale.reshape(per_channel)
        if b is not None:
            y += b.reshape(per_channel)
        return y
    if is_depthwise(x, w, group):
        return depthwise_forward(x, w, b, stride, pad, dilation, out=y, workspace=workspace)
    L = prod(osz)
    layout = _forward_layout(x, w, stride, pad, osz)
    for n in _batch_slices(N, C * prod(kernel) * L * x.itemsize):
        if layout:
            m = len(x[n])
            cols = _columns_folded(x[n], kernel, (stride, pad, dilation), layout, workspace)
            yc = scratch(workspace, "y_folded", (Cout, m * L), x.dtype)
            _gemm_forward(cols.reshape(1, -1, m * L), w, group, yc.reshape(1, Cout, m * L))
            y[n].reshape(m, Cout, L)[...] = image_view(yc, layout, m, Cout, (L,))
            continue
        cols = _columns(x[n], kernel, stride, pad, dilation, workspace)  # (n, C*K, L)
        _gemm_forward(cols, w, group, y[n])                              # (n, Cout, L)
    if b is not None:
        y += b.reshape((1, Cout) + (1,) * len(osz))
    return y


def conv_backward(x, w, dy, stride=1, pad=0, dilation=1, group=1, need_dx=True, need_dw=True,
                  need_db=True, dx_out=None, workspace=None):
    """Gradients of conv_forward given dy (N, Cout, *O) -> (dx, dw, db), None where not needed.

    dx (N, C, *S) = col2im(W^T dy); dw (Cout, C/G, *K) = sum_n dy[n] cols[n]^T;
    db (Cout,) = sum of dy. Nothing is accumulated: the caller adds dw/db into its diffs.
    """
    _check_conv(x, w, group, 1, "conv_backward")
    N, C, *spatial = x.shape
    Cout, kernel = w.shape[0], w.shape[2:]
    *_, osz = conv_geometry(spatial, kernel, stride, pad, dilation)
    if dy.shape != (N, Cout) + osz:
        raise ValueError(f"conv_backward: dy {dy.shape} should be {(N, Cout) + osz}")
    parts = _thread_parts(N, N * Cout * prod(w.shape[1:]) * prod(osz) * (need_dx + need_dw))
    if parts and (need_dx or need_dw):
        dx = check_out(dx_out, x.shape, dy.dtype, "dx_out") if need_dx else None
        grads = threads.run_parts([partial(
            conv_backward, x[p], w, dy[p], stride, pad, dilation, group, need_dx, need_dw,
            False, None if dx is None else dx[p], _part(workspace, k))
            for k, p in enumerate(parts)])
        dw = None
        if need_dw:
            dw = grads[0][1]
            for _, part_dw, _ in grads[1:]:
                dw += part_dw
        return dx, dw, _sum_bias(dy) if need_db else None
    if is_depthwise(x, w, group):
        db = _sum_bias(dy) if need_db else None
        dx, dw = depthwise_backward(x, w, dy, stride, pad, dilation, need_dx, need_dw,
                                    dx_out, workspace)
        return dx, dw, db
    L = prod(osz)
    layout = _fold_layout(x, w, stride, pad, osz)
    dy = dy.reshape(N, Cout, L)                                    # (N, Cout, L)
    db = _sum_bias(dy) if need_db else None
    dw = np.zeros((group, Cout // group, C // group * prod(kernel)), w.dtype) if need_dw else None
    dx = check_out(dx_out, x.shape, dy.dtype, "dx_out") if need_dx else None
    for n in _batch_slices(N, C * prod(kernel) * L * x.itemsize):
        if layout:
            _conv_backward_folded(x[n], w, dy[n], (stride, pad, dilation), layout, group, dw,
                                  dx[n] if need_dx else None, workspace)
            continue
        if need_dw:
            cols = _columns(x[n], kernel, stride, pad, dilation, workspace)
            dw += _gemm_weight(dy[n], cols, group)
        if need_dx:
            dcols = scratch(workspace, "dcols", (dy[n].shape[0], C * prod(kernel), L), dy.dtype)
            _gemm_data(w, dy[n], group, dcols)
            col2im(dcols, x[n].shape, kernel, stride, pad, dilation, out=dx[n], workspace=workspace)
    return dx, None if dw is None else dw.reshape(w.shape), db


def _conv_backward_folded(x, w, dy, geometry, layout, group, dw, dx, workspace):
    """conv_backward's GEMMs over the batch as one (folded columns): dw += (G,
    Cout/G, n*L) @ cols^T; dx = col2im(W^T @ dy), both with n*L columns."""
    n, C, *spatial = x.shape
    Cout, kernel, L = w.shape[0], w.shape[2:], dy.shape[2]
    dyc = scratch(workspace, "dy_folded", column_shape(layout, n, Cout, L), dy.dtype)
    image_view(dyc, layout, n, Cout, (L,))[...] = dy
    dyc = dyc.reshape(1, Cout, n * L)
    if dw is not None:
        cols = _columns_folded(x, kernel, geometry, layout, workspace).reshape(1, -1, n * L)
        dw += _gemm_weight(dyc, cols, group)
    if dx is not None:
        CK = C * prod(kernel)
        dcols = scratch(workspace, "dcols", column_shape(layout, n, CK, L), dy.dtype)
        _gemm_data(w, dyc, group, dcols.reshape(1, CK, n * L))
        col2im(dcols, x.shape, kernel, *geometry, out=dx, workspace=workspace, layout=layout)


def deconv_forward(x, w, b=None, stride=1, pad=0, dilation=1, group=1, out=None, workspace=None):
    """Deconvolution: x (N, C, *S), w (C, Cout/G, *K), b (Cout,) or None -> y (N, Cout, *O).

    The transpose of conv_forward with the same weights: y = col2im(W^T x) + b, with
    O = s(S-1) + d(K-1) + 1 - 2p per axis.
    """
    _check_conv(x, w, group, 0, "deconv_forward")
    N, C, *spatial = x.shape
    Cout, kernel = w.shape[1] * group, w.shape[2:]
    nd, L = len(spatial), prod(spatial)
    params = [per_axis(v, nd, n) for v, n in zip((stride, pad, dilation), ("stride", "pad", "dilation"))]
    osz = tuple(deconv_out_size(i, k, *a) for i, k, *a in zip(spatial, kernel, *params))
    if min(osz, default=1) <= 0:
        raise ValueError(f"deconv_forward: empty output {osz} for input {tuple(spatial)}")
    y = check_out(out, (N, Cout) + osz, x.dtype)
    x = x.reshape(N, C, L)
    for n in _batch_slices(N, Cout * prod(kernel) * L * x.itemsize):
        cols = scratch(workspace, "dcols", (x[n].shape[0], Cout * prod(kernel), L), x.dtype)
        _gemm_data(w, x[n], group, cols)                           # (n, G, Cout/G*K, L)
        col2im(cols, y[n].shape, kernel, stride, pad, dilation, out=y[n], workspace=workspace)
    if b is not None:
        y += b.reshape((1, Cout) + (1,) * nd)
    return y


def deconv_backward(x, w, dy, stride=1, pad=0, dilation=1, group=1, need_dx=True, need_dw=True,
                    need_db=True, dx_out=None, workspace=None):
    """Gradients of deconv_forward given dy (N, Cout, *O) -> (dx, dw, db), None where not needed.

    dx = conv_forward(dy, w) (deconv weights read as conv weights (C, Cout/G, *K));
    dw (C, Cout/G, *K) = sum_n x[n] im2col(dy)[n]^T; db = sum of dy.
    """
    _check_conv(x, w, group, 0, "deconv_backward")
    N, C, *spatial = x.shape
    Cout, kernel, L = dy.shape[1], w.shape[2:], prod(spatial)
    *_, osz = conv_geometry(dy.shape[2:], kernel, stride, pad, dilation)
    if osz != tuple(spatial):
        raise ValueError(f"deconv_backward: dy {dy.shape} does not match input {x.shape}")
    db = _sum_bias(dy) if need_db else None
    dw = np.zeros((group, C // group, Cout // group * prod(kernel)), w.dtype) if need_dw else None
    dx = check_out(dx_out, x.shape, dy.dtype, "dx_out") if need_dx else None
    x = x.reshape(N, C, L)
    for n in _batch_slices(N, Cout * prod(kernel) * L * dy.itemsize):
        if need_dw or need_dx:
            cols = _columns(dy[n], kernel, stride, pad, dilation, workspace)   # (n, Cout*K, L)
        if need_dw:
            dw += _gemm_weight(x[n], cols, group)
        if need_dx:
            _gemm_forward(cols, w, group, dx[n])
    return dx, None if dw is None else dw.reshape(w.shape), db
