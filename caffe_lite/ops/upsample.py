"""Upsampling kernels: scatter by index (max unpooling), window scatter (AVE/TILE
unpooling) and bilinear interpolation with aligned corners (Interp).

Unpooling is pooling run backwards, so the window kernels reuse pooling's
``kernel_offsets``: the unpooled plane plays the role of pooling's input. The bilinear
resize is separable, ``y = Lh @ x @ Lw^T`` with (out, in) matrices of two taps per row;
it runs as two gathers per axis (2 taps per output, not a dense row), which is also
the fork's own float32 order, so it is bit-identical.
"""
import numpy as np

from .geometry import check_out, kernel_offsets

__all__ = ["plane_index", "scatter_last", "gather", "window_scatter_add",
           "interp_taps", "interp_matrix", "interp_forward", "interp_backward"]


# ==== scatter by index =======================================================

def plane_index(mask):
    """Float mask (..., L) -> int64 indices, truncated toward zero like a C cast."""
    with np.errstate(invalid="ignore"):
        return np.trunc(mask).astype(np.int64)


def scatter_last(x, index, plane, out=None):
    """y (N, C, plane) = 0, then y[n, c, index[n, c, i]] = x[n, c, i] in raster order.

    x, index: (N, C, L); indices must lie in [0, plane) (the caller checks). Several
    writes to one cell keep the LAST one, as Caffe's loop does; numpy does not promise
    an order for repeated fancy-index writes, so duplicates are resolved explicitly.

    >>> scatter_last(np.array([[[1., 2., 3.]]]), np.array([[[1, 0, 1]]]), 3)
    array([[[2., 3., 0.]]])
    """
    N, C, L = x.shape
    y = check_out(out, (N, C, plane), x.dtype)
    y.fill(0)
    flat = (index.reshape(N * C, L) + np.arange(N * C, dtype=np.int64)[:, None] * plane).ravel()
    values = x.reshape(-1)
    keep = _last_writes(flat, N * C * plane)
    if keep is not None:
        flat, values = flat[keep], values[keep]
    y.reshape(-1)[flat] = values
    return y


def _last_writes(flat, size):
    """Boolean mask of the last write to each target, or None when no target repeats."""
    if flat.size == 0 or np.bincount(flat, minlength=size).max() <= 1:
        return None
    order = np.arange(flat.size)
    last = np.full(size, -1, np.int64)
    np.maximum.at(last, flat, order)                               # unbuffered: well defined
    return last[flat] == order


def gather(dy, index, out=None):
    """dx (N, C, L) with dx[n, c, i] = dy[n, c, index[n, c, i]]; dy (N, C, plane)."""
    dx = check_out(out, index.shape, dy.dtype)
    dx[...] = np.take_along_axis(dy, index, axis=2)
    return dx


# ==== window scatter (AVE / TILE unpooling) =================================

def window_scatter_add(x, kernel, stride, out_spatial, out=None):
    """y (N, C, *out_spatial) = 0, then every window [o*s, o*s+k) (clipped to the
    output) gets x[..., o] added to each of its cells.

    Offsets run in reverse row-major order so that each cell adds its windows in the
    (row-major) order of Caffe's loop: bit-identical in float32.
    """
    N, C, *spatial = x.shape
    y = check_out(out, (N, C) + tuple(out_spatial), x.dtype)
    y.fill(0)
    for _, oslc, islc in reversed(list(kernel_offsets(out_spatial, spatial, kernel, stride, 0))):
        if oslc is not None:
            dst = y[(Ellipsis,) + islc]
            np.add(dst, x[(Ellipsis,) + oslc], out=dst)
    return y


# ==== bilinear interpolation (Interp) ========================================

def interp_taps(in_size, out_size, dtype=np.float32):
    """Per output index o along one axis: (i0, i1, l0, l1), computed as the fork does in
    float32: ratio = (in-1)/(out-1) (0 if out == 1), r = ratio*o, i0 = int(r),
    i1 = i0 + (i0 < in-1), l1 = r - i0, l0 = 1 - l1 (the last two in ``dtype``)."""
    f32 = np.float32
    ratio = f32(in_size - 1) / f32(out_size - 1) if out_size > 1 else f32(0)
    r = ratio * np.arange(out_size, dtype=f32)                     # float32 products
    i0 = r.astype(np.int64)
    i1 = i0 + (i0 < in_size - 1)
    l1 = (r - i0.astype(f32)).astype(dtype)
    return i0, i1, np.ones_like(l1) - l1, l1


def interp_matrix(in_size, out_size, dtype=np.float32):
    """The same taps as an (out_size, in_size) matrix (for tests and docs).

    >>> interp_matrix(2, 3)
    array([[1. , 0. ],
           [0.5, 0.5],
           [0. , 1. ]], dtype=float32)
    """
    i0, i1, l0, l1 = interp_taps(in_size, out_size, dtype)
    m = np.zeros((out_size, in_size), dtype)
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), l0)
    np.add.at(m, (rows, i1), l1)
    return m


def _resample(a, taps, axis, out):
    """out = l0 * a[i0] + l1 * a[i1] along ``axis``: the fork's products and sum, in
    its order (so bit-identical), touching 2 taps per output instead of a dense row."""
    i0, i1, l0, l1 = taps
    shape = [1] * a.ndim
    shape[axis] = -1
    np.multiply(np.take(a, i0, axis=axis), l0.reshape(shape), out=out)
    out += np.take(a, i1, axis=axis) * l1.reshape(shape)
    return out


def _resample_adjoint(a, taps, in_size, axis):
    """Adjoint of _resample: each output's l0 * a goes to i0, l1 * a to i1. The tap
    indices never decrease, so the outputs feeding one input are a contiguous run:
    add the runs' j-th members for j = 0, 1, ... (a few passes, no scatter conflicts)."""
    res_shape = list(a.shape)
    res_shape[axis] = in_size
    res = np.zeros(res_shape, a.dtype)
    shape = [1] * a.ndim
    shape[axis] = -1
    lead = (slice(None),) * axis
    for index, weight in taps[0::2], taps[1::2]:
        targets, starts, counts = np.unique(index, return_index=True, return_counts=True)
        weighted = a * weight.reshape(shape)
        for j in range(counts.max()):
            run = counts > j
            res[lead + (targets[run],)] += weighted[lead + (starts[run] + j,)]
    return res


def _plane_blocks(planes, plane_size, itemsize, budget=1 << 21):
    """Slices over planes sized so that a block's temporaries stay in cache."""
    step = max(1, budget // max(1, plane_size * itemsize))
    return [slice(i, i + step) for i in range(0, planes, step)]


def interp_forward(x, crop, eff_shape, out_shape, out=None):
    """Resize the crop x[..., c:c+He, c:c+We] of x (N, C, H, W) to out_shape (Ho, Wo).

    Same size: a copy. Otherwise separable 2-tap passes, the width pass first as the
    fork's formula lh0*(lw0*p00 + lw1*p01) + lh1*(lw0*p10 + lw1*p11) groups it; run
    over blocks of planes so the temporaries stay in cache.
    """
    (He, We), (Ho, Wo) = eff_shape, out_shape
    N, C = x.shape[:2]
    y = check_out(out, (N, C, Ho, Wo), x.dtype)
    xc = x.reshape((N * C,) + x.shape[2:])[:, crop:crop + He, crop:crop + We]
    if (He, We) == (Ho, Wo):
        y.reshape(N * C, Ho, Wo)[...] = xc
        return y
    w_taps, h_taps = interp_taps(We, Wo, x.dtype), interp_taps(He, Ho, x.dtype)
    planes = y.reshape(N * C, Ho, Wo)
    for block in _plane_blocks(N * C, Ho * Wo, x.itemsize):
        part = xc[block]
        rows = _resample(part, w_taps, 2, np.empty((len(part), He, Wo), x.dtype))
        _resample(rows, h_taps, 1, planes[block])                  # (P, Ho, Wo)
    return y


def interp_backward(dy, crop, eff_shape, x_shape, out=None):
    """Adjoint of interp_forward: dx (N, C, H, W), zero outside the crop."""
    He, We = eff_shape
    N, C, Ho, Wo = dy.shape
    dx = check_out(out, tuple(x_shape), dy.dtype)
    dx.fill(0)
    region = dx.reshape((N * C,) + dx.shape[2:])[:, crop:crop + He, crop:crop + We]
    g = dy.reshape(N * C, Ho, Wo)
    if (He, We) == (Ho, Wo):
        region[...] = g
        return dx
    w_taps, h_taps = interp_taps(We, Wo, dy.dtype), interp_taps(He, Ho, dy.dtype)
    for block in _plane_blocks(N * C, Ho * Wo, dy.itemsize):
        rows = _resample_adjoint(g[block], h_taps, He, 1)          # (P, He, Wo)
        region[block] = _resample_adjoint(rows, w_taps, We, 2)     # (P, He, We)
    return dx
