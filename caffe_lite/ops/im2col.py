"""im2col / col2im, for any number of spatial axes (the GEMMs are in conv_gemm.py).

Column layout: ``cols`` has shape (N, C*K, L), K = prod(kernel), L = prod(out spatial).
``cols[n]`` is exactly Caffe's per-image ``col_buffer`` (row c*K + k for channel c and
row-major kernel offset k, column = row-major output position), so the convolution is
one stacked GEMM ``W (Cout, C*K) @ cols[n]`` per image that writes the output straight
into its (N, Cout, L) layout -- no transpose of the output (perf-notes: the batched
(C*K, N*L) layout needs a (Cout, N, L) -> (N, Cout, L) transpose that costs as much as
the copy it saves). For N = 1 the two layouts are the same. The copies run along the
contiguous output width.

im2col and col2im loop over kernel offsets only; each offset is one strided copy (add)
of the whole batch, restricted to the output positions whose input lies inside the
image, so no padded copy of the input is ever made.

Deconvolution is the transpose of convolution: its forward is convolution's
backward-data (W^T GEMM + col2im), its backward-data is convolution's forward.
"""
import itertools
from math import prod

import numpy as np

__all__ = ["conv_out_size", "deconv_out_size", "kernel_offsets", "im2col", "col2im",
           "Workspace"]


# ==== sizes and parameters ===================================================

def conv_out_size(size, kernel, stride=1, pad=0, dilation=1):
    """Caffe's convolution output size along one axis: (size + 2p - (d(k-1)+1)) / s + 1.

    The division truncates toward zero as in C++, so a kernel slightly larger than the
    padded input still gives 1; a result <= 0 is for the caller to reject.

    >>> conv_out_size(224, 3, 1, 1), conv_out_size(227, 11, 4), conv_out_size(5, 3, 2, 0, 2)
    (224, 55, 1)
    """
    num = size + 2 * pad - (dilation * (kernel - 1) + 1)
    return (num // stride if num >= 0 else -(-num // stride)) + 1


def deconv_out_size(size, kernel, stride=1, pad=0, dilation=1):
    """Caffe's deconvolution output size along one axis: s(size-1) + d(k-1) + 1 - 2p.

    >>> deconv_out_size(16, 64, 32, 16), deconv_out_size(7, 4, 2, 1)
    (512, 14)
    """
    return stride * (size - 1) + dilation * (kernel - 1) + 1 - 2 * pad


def _per_axis(value, nd, name):
    """An int or a sequence of nd ints -> tuple of nd ints."""
    if np.ndim(value) == 0:
        return (int(value),) * nd
    t = tuple(int(v) for v in value)
    if len(t) != nd:
        raise ValueError(f"{name} needs 1 or {nd} values (one per spatial axis), got {t}")
    return t


def _conv_geometry(spatial, kernel, stride, pad, dilation):
    """Normalise per-axis parameters; return them with the conv output spatial shape."""
    nd = len(spatial)
    kernel, stride, pad, dilation = (_per_axis(v, nd, n) for v, n in zip(
        (kernel, stride, pad, dilation), ("kernel", "stride", "pad", "dilation")))
    out = tuple(conv_out_size(*a) for a in zip(spatial, kernel, stride, pad, dilation))
    if min(out, default=1) <= 0:
        raise ValueError(f"convolution of spatial shape {tuple(spatial)} with kernel {kernel}"
                         f" stride {stride} pad {pad} dilation {dilation} is empty: {out}")
    return kernel, stride, pad, dilation, out


def _check_out(out, shape, dtype, name="out"):
    """Allocate a C-contiguous array, or check the caller's one (it is written through views)."""
    if out is None:
        return np.empty(shape, dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous {np.dtype(dtype)} array of shape "
                         f"{tuple(shape)}, got {out.dtype} {out.shape}")
    return out


# ==== kernel offsets =========================================================

def _axis_offsets(in_size, out_size, kernel, stride, pad, dilation):
    """For each kernel offset k on one axis: (k, out slice, in slice) or (k, None, None).

    Output o reads input i = o*s - p + k*d; the out slice holds the o with 0 <= i < in_size,
    the in slice the matching i (step s).
    """
    entries = []
    for k in range(kernel):
        shift = k * dilation - pad
        lo = max(0, -(shift // stride))                            # ceil(-shift / s)
        hi = min(out_size, (in_size - 1 - shift) // stride + 1)
        if hi > lo:
            start = lo * stride + shift
            entries.append((k, slice(lo, hi), slice(start, start + (hi - lo - 1) * stride + 1, stride)))
        else:
            entries.append((k, None, None))
    return entries


def kernel_offsets(in_shape, out_shape, kernel, stride=1, pad=0, dilation=1):
    """Yield ``(k, out_slices, in_slices)`` for every kernel offset, row-major.

    ``k`` is the offset tuple; ``out_slices`` / ``in_slices`` are tuples of slices, one per
    spatial axis, such that ``out[..., *out_slices]`` pairs element-wise with
    ``x[..., *in_slices]`` for the windows whose offset-k cell lies inside the input
    (padding and any overhang past the input are left out). Both are None when no window
    has that cell inside. Shared by im2col/col2im and pooling.
    """
    nd = len(in_shape)
    params = [_per_axis(v, nd, n) for v, n in zip(
        (kernel, stride, pad, dilation), ("kernel", "stride", "pad", "dilation"))]
    axes = [_axis_offsets(*a) for a in zip(in_shape, out_shape, *params)]
    for combo in itertools.product(*axes):
        k = tuple(c[0] for c in combo)
        if any(c[1] is None for c in combo):
            yield k, None, None
        else:
            yield k, tuple(c[1] for c in combo), tuple(c[2] for c in combo)


# ==== im2col / col2im ========================================================

def im2col(x, kernel, stride=1, pad=0, dilation=1, out=None):
    """Unfold (N, C, *spatial) into columns (N, C*K, L) in Caffe's per-image order.

    ``out`` (C-contiguous, right shape and dtype) is filled and returned when given.

    >>> x = np.arange(9.).reshape(1, 1, 3, 3)
    >>> im2col(x, 2)[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    N, C, *spatial = x.shape
    kernel, stride, pad, dilation, osz = _conv_geometry(spatial, kernel, stride, pad, dilation)
    out = _check_out(out, (N, C * prod(kernel), prod(osz)), x.dtype)
    cols = out.reshape(N, C, *kernel, *osz)                      # view: (N, C, *K, *O)
    for k, oslc, islc in kernel_offsets(spatial, osz, kernel, stride, pad, dilation):
        dst = cols[(slice(None), slice(None)) + k]                # (N, C, *O)
        if oslc is None:
            dst[...] = 0
            continue
        for axis, s in enumerate(oslc):                           # zero the padding border
            before = (slice(None),) * (2 + axis)
            dst[before + (slice(0, s.start),)] = 0
            dst[before + (slice(s.stop, None),)] = 0
        dst[(Ellipsis,) + oslc] = x[(Ellipsis,) + islc]
    return out


def col2im(cols, x_shape, kernel, stride=1, pad=0, dilation=1, out=None, workspace=None):
    """Adjoint of im2col: fold columns (N, C*K, L) back into ``x_shape``, summing overlaps.

    ``out`` is overwritten (not accumulated into) when given. When every kernel size is a
    multiple of its stride (dilation 1) only prod(k/s) block-adds are needed instead of
    prod(k) strided adds (``workspace`` then holds the block buffer).

    >>> col2im(np.ones((1, 4, 4)), (1, 1, 3, 3), 2)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    N, C, *spatial = x_shape
    kernel, stride, pad, dilation, osz = _conv_geometry(spatial, kernel, stride, pad, dilation)
    if cols.shape != (N, C * prod(kernel), prod(osz)):
        raise ValueError(f"col2im: columns {cols.shape} do not match image {tuple(x_shape)} "
                         f"with kernel {kernel}: expected {(N, C * prod(kernel), prod(osz))}")
    out = _check_out(out, tuple(x_shape), cols.dtype)
    blocks = tuple(k // s for k, s in zip(kernel, stride))
    if (all(d == 1 for d in dilation) and all(k % s == 0 for k, s in zip(kernel, stride))
            and prod(blocks) < prod(kernel)):
        return _col2im_blocks(cols, out, stride, pad, osz, blocks, workspace)
    cols = cols.reshape(N, C, *kernel, *osz)                      # (N, C, *K, *O)
    out[...] = 0
    for k, oslc, islc in kernel_offsets(spatial, osz, kernel, stride, pad, dilation):
        if oslc is not None:
            dst = out[(Ellipsis,) + islc]
            np.add(dst, cols[(slice(None), slice(None)) + k + oslc], out=dst)
    return out


def _col2im_blocks(cols, out, stride, pad, osz, blocks, workspace):
    """col2im for kernel = m*s per axis: kernel offset a*s + r of output o lands on padded
    position (o + a)*s + r. Sum into a phase-major buffer (N, C, *s, *B), B = O + m - 1,
    where every block offset a is one add with contiguous rows on both sides, then
    interleave the phases back (measured: k4 s2 ~5x faster than adding into a stride-s
    destination; k64 s32 takes 4 adds instead of 4096)."""
    N, C, *spatial = out.shape
    nd = len(spatial)
    # enough blocks for every window and for the whole image (trailing cells no window reads stay 0)
    nblk = tuple(max(o + m - 1, -(-(p + i) // s)) for o, m, p, i, s in zip(osz, blocks, pad, spatial, stride))
    buf = _scratch(workspace, "col2im_phases", (N, C) + tuple(stride) + nblk, out.dtype)
    buf.fill(0)
    # (N, C, m1, s1, m2, s2, .., *O): kernel offset a*s + r split into block a and phase r
    cols = cols.reshape((N, C) + sum(((m, s) for m, s in zip(blocks, stride)), ()) + tuple(osz))
    for a in itertools.product(*(range(m) for m in blocks)):
        src = cols[(slice(None), slice(None)) + sum(((ai, slice(None)) for ai in a), ())]     # (N, C, *s, *O)
        dst = buf[(Ellipsis,) + tuple(slice(ai, ai + o) for ai, o in zip(a, osz))]
        np.add(dst, src, out=dst)
    # (N, C, *s, *B) -> padded image (N, C, B1, s1, B2, s2, ..) -> crop the padding
    interleaved = (N, C) + sum(((b, s) for b, s in zip(nblk, stride)), ())
    phases = buf.transpose((0, 1) + sum(((2 + nd + i, 2 + i) for i in range(nd)), ()))
    if all(p == 0 and b * s == i for p, b, s, i in zip(pad, nblk, stride, spatial)):
        out.reshape(interleaved)[...] = phases                    # no padding to crop (e.g. FCN)
        return out
    full = _scratch(workspace, "col2im_full", interleaved, out.dtype)
    full[...] = phases
    full = full.reshape((N, C) + tuple(b * s for b, s in zip(nblk, stride)))
    out[...] = full[(Ellipsis,) + tuple(slice(p, p + i) for p, i in zip(pad, spatial))]
    return out


# ==== workspaces =============================================================

class Workspace:
    """Named scratch arrays reused across calls (a layer keeps one).

    Fresh large temporaries cost page faults (perf-notes: 115 MiB ~14 ms); a workspace
    keeps the largest buffer seen under each name and hands out views of it.
    """

    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype):
        """A C-contiguous array of ``shape`` (contents undefined), reusing capacity."""
        size, dtype = prod(shape), np.dtype(dtype)
        buf = self._arrays.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = self._arrays[name] = np.empty(size, dtype)
        return buf[:size].reshape(shape)


def _scratch(workspace, name, shape, dtype):
    return np.empty(shape, dtype) if workspace is None else workspace.get(name, shape, dtype)
