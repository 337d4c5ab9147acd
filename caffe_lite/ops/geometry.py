"""What every kernel shares: per-axis parameters, Caffe's convolution and
deconvolution output sizes, the kernel-offset slices that im2col/col2im, pooling
and unpooling loop over, and output/scratch buffers. Public names, one place:
the sibling kernels import them from here.

Parameters are an int (same for every spatial axis) or one value per spatial axis;
``per_axis`` turns either into a tuple.
"""
import functools
import itertools
from math import prod

import numpy as np

__all__ = ["per_axis", "conv_out_size", "deconv_out_size", "conv_geometry", "kernel_offsets",
           "check_out", "Workspace", "scratch"]


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


def per_axis(value, nd, name):
    """An int or a sequence of nd ints -> tuple of nd ints."""
    if type(value) is int:
        return (value,) * nd
    if type(value) is tuple and len(value) == nd and all(type(v) is int for v in value):
        return value
    if np.ndim(value) == 0:
        return (int(value),) * nd
    t = tuple(int(v) for v in value)
    if len(t) != nd:
        raise ValueError(f"{name} needs 1 or {nd} values (one per spatial axis), got {t}")
    return t


def conv_geometry(spatial, kernel, stride, pad, dilation):
    """Normalise per-axis parameters; return them with the conv output spatial shape.
    Made once per geometry: every convolution asks several times per forward."""
    try:
        return _cached_geometry(tuple(spatial), kernel, stride, pad, dilation)
    except TypeError:                             # unhashable parameters (lists, arrays)
        return _geometry(spatial, kernel, stride, pad, dilation)


def _geometry(spatial, kernel, stride, pad, dilation):
    nd = len(spatial)
    kernel, stride, pad, dilation = (per_axis(v, nd, n) for v, n in zip(
        (kernel, stride, pad, dilation), ("kernel", "stride", "pad", "dilation")))
    out = tuple(conv_out_size(*a) for a in zip(spatial, kernel, stride, pad, dilation))
    if min(out, default=1) <= 0:
        raise ValueError(f"convolution of spatial shape {tuple(spatial)} with kernel {kernel}"
                         f" stride {stride} pad {pad} dilation {dilation} is empty: {out}")
    return kernel, stride, pad, dilation, out


_cached_geometry = functools.lru_cache(maxsize=1024)(_geometry)


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
    """Iterate ``(k, out_slices, in_slices)`` for every kernel offset, row-major.

    ``k`` is the offset tuple; ``out_slices`` / ``in_slices`` are tuples of slices, one per
    spatial axis, such that ``out[..., *out_slices]`` pairs element-wise with
    ``x[..., *in_slices]`` for the windows whose offset-k cell lies inside the input
    (padding and any overhang past the input are left out). Both are None when no window
    has that cell inside. Shared by im2col/col2im and pooling.
    """
    nd = len(in_shape)
    params = [per_axis(v, nd, n) for v, n in zip(
        (kernel, stride, pad, dilation), ("kernel", "stride", "pad", "dilation"))]
    return iter(_offsets(tuple(in_shape), tuple(out_shape), *params))


@functools.lru_cache(maxsize=1024)
def _offsets(in_shape, out_shape, kernel, stride, pad, dilation):
    """kernel_offsets' entries, made once per geometry (a net asks each forward)."""
    axes = [_axis_offsets(*a) for a in zip(in_shape, out_shape, kernel, stride, pad, dilation)]
    entries = []
    for combo in itertools.product(*axes):
        k = tuple(c[0] for c in combo)
        if any(c[1] is None for c in combo):
            entries.append((k, None, None))
        else:
            entries.append((k, tuple(c[1] for c in combo), tuple(c[2] for c in combo)))
    return tuple(entries)


# ==== output and scratch buffers =============================================

def check_out(out, shape, dtype, name="out", strided=False):
    """Allocate a C-contiguous array, or check the caller's one (it is written through
    views, so it must be C-contiguous unless the kernel takes ``strided`` views)."""
    if out is None:
        return np.empty(shape, dtype)
    if (out.shape != tuple(shape) or out.dtype != dtype
            or not (strided or out.flags.c_contiguous)):
        layout = "" if strided else "C-contiguous "
        raise ValueError(f"{name} must be a {layout}{np.dtype(dtype)} array of shape "
                         f"{tuple(shape)}, got {out.dtype} {out.shape}")
    return out


class Workspace:
    """Named scratch arrays reused across calls (a layer keeps one).

    Fresh large temporaries cost page faults (perf-notes: 115 MiB ~14 ms); a workspace
    keeps the largest buffer seen under each name and hands out views of it.
    """

    def __init__(self):
        self._arrays = {}
        self._parts = []

    def part(self, k):
        """The k-th child workspace, for the k-th part of work split over threads."""
        while len(self._parts) <= k:
            self._parts.append(Workspace())
        return self._parts[k]

    def get(self, name, shape, dtype):
        """A C-contiguous array of ``shape`` (contents undefined), reusing capacity."""
        size, dtype = prod(shape), np.dtype(dtype)
        buf = self._arrays.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = self._arrays[name] = np.empty(size, dtype)
        return buf[:size].reshape(shape)


def scratch(workspace, name, shape, dtype):
    """``workspace``'s array ``name`` (contents undefined), or a fresh one without a workspace."""
    return np.empty(shape, dtype) if workspace is None else workspace.get(name, shape, dtype)
