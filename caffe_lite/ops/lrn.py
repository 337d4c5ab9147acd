"""LRN across channels in Caffe's float32 order of operations, one pass over memory.

Caffe's CPU forward squares the input, slides a running sum of ``alpha/n x^2`` over the
channels (add the entering channel, subtract the leaving one), then raises the scale
to ``-beta`` and multiplies. Done one full-size array per step, that is a dozen passes
over memory and ~60 MB of fresh float64 temporaries on GoogLeNet's norm2 at batch 8.
Here the same operations run channel by channel: the squares live in a ring of
``n + 1`` channels (small inputs square everything at once), and each block of
finished scale channels is raised to the power (through a float64 buffer of ~32K
elements that stays in cache) and multiplied while it is still in cache. Every
float32 value is the one the whole-array steps give.
"""
import numpy as np

from . import jit
from .libm import powf_positive

__all__ = ["channel_window_sums", "lrn_across_forward"]

# float64 elements per power block: a few hundred KiB, inside L2
_BLOCK = 1 << 15
# inputs up to this many elements square all channels in one step (per-channel calls
# cost more than the memory on small maps); larger ones keep a ring of n + 1 channels
_ALL_SQUARES = 1 << 20


def channel_window_sums(v, size, start=0):
    """out[:, c] = start + sum of v[:, j] over |j - c| <= (size - 1) / 2 (zero padded),
    for v (N, C, ...), as Caffe's running sum: the window slides one channel at a
    time (add the entering channel, then subtract the leaving one), in Caffe's order
    of float operations. One vectorized step per channel over (N, ...)."""
    channels, pre = v.shape[1], (size - 1) // 2
    out = np.empty_like(v)
    first = out[:, 0]
    first[...] = start
    for j in range(min(pre + 1, channels)):
        first += v[:, j]
    for c in range(1, channels):
        current = out[:, c]
        if c + pre < channels:
            np.add(out[:, c - 1], v[:, c + pre], out=current)
        else:
            current[...] = out[:, c - 1]
        if c - pre - 1 >= 0:
            current -= v[:, c - pre - 1]
    return out


def lrn_across_forward(x, size, alpha, beta, k, out, scale, scale_pow=None, fast=False):
    """y = x (k + alpha/size sum_{size channels around c} x^2)^-beta, zero padded.

    x, out, scale (and scale_pow if given) are C-contiguous (N, C, ...) float arrays:
    ``scale`` receives the running sum (backward needs it), ``scale_pow`` the power.
    ``alpha`` is Caffe's alpha, divided by ``size`` here in x's dtype. Bit-identical to
    ``channel_window_sums(x * x * (alpha / size), size, k) ** -beta * x`` with the
    power rounded from float64 (see ``powf_positive`` for when exp/log replace pow).
    ``fast`` (the fast mode): the power in float32 instead, within an ulp of it and
    2.4x faster (GoogLeNet's norm2 at batch 4: 2.9 ms instead of 6.9).
    """
    dtype = x.dtype
    N, C = x.shape[:2]
    xv, yv, sv = (a.reshape(N, C, -1) for a in (x, out, scale))
    pv = None if scale_pow is None else scale_pow.reshape(N, C, -1)
    plane = xv.shape[2]
    a = dtype.type(alpha) / dtype.type(size)
    pre = (size - 1) // 2
    block = max(1, _BLOCK // max(1, N * plane))
    wide = None if fast else np.empty((N, min(block, C), plane), np.float64)
    narrow = None if pv is not None else np.empty((N, min(block, C), plane), dtype)
    positive = k > 0 and alpha >= 0      # the scale is then > 0 (or NaN/inf from x)

    def finish(start, stop):             # channels start..stop-1: power, then y
        p = pv[:, start:stop] if pv is not None else narrow[:, :stop - start]
        if fast:
            np.power(sv[:, start:stop], dtype.type(-beta), out=p)
        else:
            powf_positive(sv[:, start:stop], -beta, out=p, wide=wide[:, :stop - start],
                          positive=positive)
        np.multiply(p, xv[:, start:stop], out=yv[:, start:stop])

    if jit.handles(dtype) and xv.flags.c_contiguous and sv.flags.c_contiguous:
        jit.lrn_scale(xv, size, a, k, sv)
        for start in range(0, C, block):
            finish(start, min(start + block, C))
        return out
    if x.size <= _ALL_SQUARES:           # small maps: square every channel at once
        squares = np.empty(xv.shape, dtype)
        np.multiply(xv, xv, out=squares)
        squares *= a

        def square(c):
            return squares[:, c]
        leaving = square
    else:
        ring = np.empty((size + 1, N, plane), dtype)

        def square(c):                   # alpha/n x^2 of channel c, in its ring slot
            slot = ring[c % (size + 1)]
            np.multiply(xv[:, c], xv[:, c], out=slot)
            slot *= a
            return slot

        def leaving(c):
            return ring[c % (size + 1)]
    first = sv[:, 0]
    first.fill(k)
    for j in range(min(pre + 1, C)):
        first += square(j)
    start = 0
    for c in range(C):
        if c:
            current = sv[:, c]
            if c + pre < C:
                np.add(sv[:, c - 1], square(c + pre), out=current)
            else:
                current[...] = sv[:, c - 1]
            if c - pre - 1 >= 0:
                current -= leaving(c - pre - 1)
        if c + 1 - start == block or c + 1 == C:
            finish(start, c + 1)
            start = c + 1
    return out
