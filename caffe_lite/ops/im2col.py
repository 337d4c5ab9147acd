"""im2col / col2im, for any number of spatial axes (the GEMMs are in conv_gemm.py, the
sizes, kernel offsets and buffers in geometry.py).

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
image, so no padded copy of the input is ever made. With the extra ``fast`` they run
compiled in 2-D instead (ops/jit_columns.py), im2col into the "image" and "channel"
layouts, col2im from all three: the same columns and sums (ResNet-50 at batch 1 86.8
-> 81.4 ms, GoogLeNet 48.5 -> 43.9 ms; LeNet's conv2 col2im at batch 64 2.4 -> 0.5 ms).

Deconvolution is the transpose of convolution: its forward is convolution's
backward-data (W^T GEMM + col2im), its backward-data is convolution's forward.
"""
import itertools
from math import prod

import numpy as np

from . import jit, jit_columns
from .geometry import check_out, conv_geometry, kernel_offsets, scratch

__all__ = ["im2col", "col2im", "column_shape", "image_view", "LAYOUTS"]


# Column layouts. "image": (N, C*K, L), Caffe's per-image buffers. The two folded ones
# make a whole batch one matrix (C*K, N*L) for one GEMM when the images are small:
# "channel" (C*K, N, L), and "batch_last" (C*K, L, N), whose copies and adds run over
# (output width x batch) at a time instead of one output row: the batch is staged in a
# (C, *S, N) copy of x. Each loop below sees any layout as a (N, C, *K, *O) view.
LAYOUTS = ("image", "channel", "batch_last")


def column_shape(layout, N, CK, L):
    """The shape of a layout's columns: CK rows per image, L output positions."""
    return {"image": (N, CK, L), "channel": (CK, N, L), "batch_last": (CK, L, N)}[layout]


def _batch_first(a, N, dims, at):
    """View ``a``, laid out as ``dims`` with the batch axis (N) inserted at index
    ``at``, as (N, *dims)."""
    shape = tuple(dims[:at]) + (N,) + tuple(dims[at:])
    order = (at,) + tuple(i for i in range(len(shape)) if i != at)
    return a.reshape(shape).transpose(order)


def _cols_view(cols, layout, N, C, kernel, osz):
    """A layout's columns as (N, C, *K, *O): the batch axis sits first ("image"),
    after the kernel axes ("channel") or last ("batch_last")."""
    dims = (C,) + tuple(kernel) + tuple(osz)
    at = {"image": 0, "channel": 1 + len(kernel), "batch_last": len(dims)}[layout]
    return _batch_first(cols, N, dims, at)


def image_view(a, layout, N, C, spatial):
    """A layout's (N, C, *S), (C, N, *S) or (C, *S, N) buffer as (N, C, *S): also how
    conv_gemm.py moves outputs and gradients in and out of a folded GEMM."""
    dims = (C,) + tuple(spatial)
    return _batch_first(a, N, dims, {"image": 0, "channel": 1, "batch_last": len(dims)}[layout])


def _staged(x, layout, workspace):
    """x as (N, C, *S), from a (C, *S, N) copy for batch_last (see LAYOUTS)."""
    if layout != "batch_last":
        return x
    N, C, *spatial = x.shape
    buf = scratch(workspace, "im2col_staged", (C,) + tuple(spatial) + (N,), x.dtype)
    staged = image_view(buf, layout, N, C, spatial)
    staged[...] = x
    return staged


def im2col(x, kernel, stride=1, pad=0, dilation=1, out=None, layout="image", workspace=None):
    """Unfold (N, C, *spatial) into columns (N, C*K, L) in Caffe's per-image order.

    ``out`` (C-contiguous, right shape and dtype) is filled and returned when given.
    ``layout``: "channel" gives (C*K, N, L), "batch_last" (C*K, L, N) instead, the whole
    batch as one matrix (C*K, N*L) for one GEMM when the images are small (LAYOUTS);
    ``workspace`` then holds batch_last's staged input.

    >>> x = np.arange(9.).reshape(1, 1, 3, 3)
    >>> im2col(x, 2)[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    N, C, *spatial = x.shape
    kernel, stride, pad, dilation, osz = conv_geometry(spatial, kernel, stride, pad, dilation)
    out = check_out(out, column_shape(layout, N, C * prod(kernel), prod(osz)), x.dtype)
    if (len(spatial) == 2 and layout != "batch_last" and x.flags.c_contiguous
            and jit.handles(x.dtype)):
        return jit_columns.im2col_2d(x, out, kernel, stride, pad, dilation, osz,
                                     channel_major=layout == "channel")
    cols = _cols_view(out, layout, N, C, kernel, osz)             # (N, C, *K, *O)
    x = _staged(x, layout, workspace)
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


def col2im(cols, x_shape, kernel, stride=1, pad=0, dilation=1, out=None, workspace=None,
           layout="image"):
    """Adjoint of im2col: fold columns (N, C*K, L) back into ``x_shape``, summing overlaps.
    ``layout``: the columns' layout (see im2col); the folded ones sum in a buffer in the
    columns' memory order, transposed into ``out`` once.

    ``out`` is overwritten (not accumulated into) when given. When every kernel size is a
    multiple of its stride (dilation 1) only prod(k/s) block-adds are needed instead of
    prod(k) strided adds (``workspace`` then holds the block buffer).

    >>> col2im(np.ones((1, 4, 4)), (1, 1, 3, 3), 2)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    N, C, *spatial = x_shape
    kernel, stride, pad, dilation, osz = conv_geometry(spatial, kernel, stride, pad, dilation)
    expect = column_shape(layout, N, C * prod(kernel), prod(osz))
    if cols.shape != expect:
        raise ValueError(f"col2im: columns {cols.shape} do not match image {tuple(x_shape)} "
                         f"with kernel {kernel}: expected {expect}")
    out = check_out(out, tuple(x_shape), cols.dtype)
    blocks = tuple(k // s for k, s in zip(kernel, stride))
    if (all(d == 1 for d in dilation) and all(k % s == 0 for k, s in zip(kernel, stride))
            and prod(blocks) < prod(kernel)):
        if layout != "image":
            cols = np.ascontiguousarray(_cols_view(cols, layout, N, C, kernel, osz)).reshape(
                N, C * prod(kernel), prod(osz))
        return _col2im_blocks(cols, out, stride, pad, osz, blocks, workspace)
    if len(spatial) == 2 and cols.flags.c_contiguous and jit.handles(cols.dtype):
        if layout != "batch_last":
            return jit_columns.col2im_2d(cols, out, kernel, stride, pad, dilation, osz, layout)
        staged = scratch(workspace, "col2im_staged", (C,) + tuple(spatial) + (N,), cols.dtype)
        jit_columns.col2im_2d(cols, staged, kernel, stride, pad, dilation, osz, layout)
        out[...] = image_view(staged, layout, N, C, spatial)
        return out
    src = _cols_view(cols, layout, N, C, kernel, osz)             # (N, C, *K, *O)
    if layout == "image":
        staged = acc = out
    else:                                   # sum in the columns' memory order
        staged = scratch(workspace, "col2im_staged",
                         column_shape(layout, N, C, prod(spatial)), cols.dtype)
        acc = image_view(staged, layout, N, C, spatial)
    staged.fill(0)
    for k, oslc, islc in kernel_offsets(spatial, osz, kernel, stride, pad, dilation):
        if oslc is not None:
            dst = acc[(Ellipsis,) + islc]
            np.add(dst, src[(slice(None), slice(None)) + k][(Ellipsis,) + oslc], out=dst)
    if layout != "image":
        out[...] = acc
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
    buf = scratch(workspace, "col2im_phases", (N, C) + tuple(stride) + nblk, out.dtype)
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
    full = scratch(workspace, "col2im_full", interleaved, out.dtype)
    full[...] = phases
    full = full.reshape((N, C) + tuple(b * s for b, s in zip(nblk, stride)))
    out[...] = full[(Ellipsis,) + tuple(slice(p, p + i) for p, i in zip(pad, spatial))]
    return out
