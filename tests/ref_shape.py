"""Naive references for the shape, routing, Eltwise, Reduction, ArgMax and Embed
layers: plain loops over every index, written from Caffe's semantics and never
calling caffe_lite. Results are float64 unless stated."""
import itertools

import numpy as np


def _indices(shape):
    return itertools.product(*(range(d) for d in shape))


# ==== shape and routing ======================================================

def ref_flatten_shape(shape, axis=1, end_axis=-1):
    n = len(shape)
    a, e = axis % n, end_axis % n
    merged = 1
    for d in shape[a:e + 1]:
        merged *= d
    return tuple(shape[:a]) + (merged,) + tuple(shape[e + 1:])


def ref_reshape_shape(shape, dims, axis=0, num_axes=-1):
    """Caffe's Reshape output shape: 0 copies the bottom dim, -1 is inferred."""
    n = len(shape)
    start = axis if axis >= 0 else n + axis + 1
    end = n if num_axes == -1 else start + num_axes
    out = list(shape[:start])
    for i, d in enumerate(dims):
        out.append(shape[start + i] if d == 0 else d)
    out += list(shape[end:])
    if -1 in out:
        known = 1
        for d in out:
            if d != -1:
                known *= d
        total = 1
        for d in shape:
            total *= d
        out[out.index(-1)] = total // known
    return tuple(out)


def ref_concat(arrays, axis):
    """Output element by element: find which input the concat index falls in."""
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    out = np.zeros(shape)
    for idx in _indices(shape):
        k, pos = 0, idx[axis]
        while pos >= arrays[k].shape[axis]:
            pos -= arrays[k].shape[axis]
            k += 1
        out[idx] = arrays[k][idx[:axis] + (pos,) + idx[axis + 1:]]
    return out


def ref_slice(x, axis, points=None, num_tops=None):
    size = x.shape[axis]
    if not points:
        step = size // num_tops
        points = [step * i for i in range(1, num_tops)]
    bounds = [0] + list(points) + [size]
    outs = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        shape = x.shape[:axis] + (hi - lo,) + x.shape[axis + 1:]
        out = np.zeros(shape)
        for idx in _indices(shape):
            out[idx] = x[idx[:axis] + (idx[axis] + lo,) + idx[axis + 1:]]
        outs.append(out)
    return outs


def ref_tile(x, axis, tiles):
    """top[..., t*D + d, rest] = x[..., d, rest] where rest spans every later axis
    (the whole trailing block is repeated)."""
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis:], dtype=np.int64))
    flat = x.reshape(-1)
    out = np.zeros(outer * tiles * inner)
    for o in range(outer):
        for t in range(tiles):
            for i in range(inner):
                out[(o * tiles + t) * inner + i] = flat[o * inner + i]
    return out.reshape(x.shape[:axis] + (x.shape[axis] * tiles,) + x.shape[axis + 1:])


def ref_tile_backward(dy, x_shape, axis, tiles):
    outer = int(np.prod(x_shape[:axis], dtype=np.int64))
    inner = int(np.prod(x_shape[axis:], dtype=np.int64))
    flat = dy.reshape(-1)
    dx = np.zeros(outer * inner)
    for o in range(outer):
        for t in range(tiles):
            for i in range(inner):
                dx[o * inner + i] += flat[(o * tiles + t) * inner + i]
    return dx.reshape(x_shape)


def ref_batch_reindex(x, index):
    out = np.zeros((len(index),) + x.shape[1:])
    for m, k in enumerate(index):
        out[m] = x[int(k)]
    return out


def ref_batch_reindex_backward(dy, index, x_shape):
    dx = np.zeros(x_shape)
    for m, k in enumerate(index):
        dx[int(k)] += dy[m]
    return dx


def ref_filter(arrays, selector):
    keep = [n for n in range(len(selector)) if selector[n] != 0]
    return [np.array([a[n] for n in keep]).reshape((len(keep),) + a.shape[1:])
            for a in arrays]


def ref_embed(index, weight, bias=None):
    out = np.zeros(index.shape + (weight.shape[1],))
    for idx in _indices(index.shape):
        for j in range(weight.shape[1]):
            out[idx + (j,)] = weight[int(index[idx]), j] + (0 if bias is None else bias[j])
    return out


# ==== Eltwise ================================================================

def ref_eltwise(op, arrays, coeffs=None):
    """op 'PROD' / 'SUM' / 'MAX'; MAX returns (top, winner index per element)."""
    coeffs = coeffs or [1.0] * len(arrays)
    shape = arrays[0].shape
    out, winner = np.zeros(shape), np.zeros(shape, int)
    for idx in _indices(shape):
        values = [float(a[idx]) for a in arrays]
        if op == "PROD":
            out[idx] = np.prod(values)
        elif op == "SUM":
            out[idx] = sum(c * v for c, v in zip(coeffs, values))
        else:
            best = 0 if values[0] > values[1] else 1       # strict: a tie goes to 1
            for k in range(2, len(values)):
                if values[k] > values[best]:                 # strict: earlier keeps it
                    best = k
            out[idx], winner[idx] = values[best], best
    return (out, winner) if op == "MAX" else out


def ref_eltwise_backward(op, arrays, dy, coeffs=None):
    coeffs = coeffs or [1.0] * len(arrays)
    grads = [np.zeros(dy.shape) for _ in arrays]
    winner = ref_eltwise("MAX", arrays)[1] if op == "MAX" else None
    for idx in _indices(dy.shape):
        for i in range(len(arrays)):
            if op == "PROD":
                others = [float(a[idx]) for j, a in enumerate(arrays) if j != i]
                grads[i][idx] = dy[idx] * np.prod(others)
            elif op == "SUM":
                grads[i][idx] = coeffs[i] * dy[idx]
            else:
                grads[i][idx] = dy[idx] if winner[idx] == i else 0.0
    return grads


# ==== Reduction and ArgMax =====================================================

def ref_reduction(x, op="SUM", axis=0, coeff=1.0):
    axis %= max(x.ndim, 1)
    lead = x.shape[:axis]
    out = np.zeros(lead)
    for idx in _indices(lead):
        total = 0.0
        block = x[idx]
        for v in np.ravel(block):
            v = float(v)
            total += {"SUM": v, "MEAN": v, "ASUM": abs(v), "SUMSQ": v * v}[op]
        if op == "MEAN":
            total /= np.size(block)
        out[idx] = coeff * total
    return out


def ref_argmax(x, top_k=1, out_max_val=False, axis=None):
    """Candidates sorted by (value, index) descending: the larger index wins a tie."""
    def best(values):
        pairs = sorted(((float(v), j) for j, v in enumerate(values)), reverse=True)
        return pairs[:top_k]

    if axis is not None:
        axis %= x.ndim
        shape = list(x.shape)
        shape[axis] = top_k
        out = np.zeros(shape)
        rest = x.shape[:axis] + x.shape[axis + 1:]
        for idx in _indices(rest):
            line = [x[idx[:axis] + (d,) + idx[axis:]] for d in range(x.shape[axis])]
            for k, (v, j) in enumerate(best(line)):
                out[idx[:axis] + (k,) + idx[axis:]] = v if out_max_val else j
        return out
    shape = [1] * max(x.ndim, 3)
    shape[0], shape[1], shape[2] = x.shape[0], 2 if out_max_val else 1, top_k
    out = np.zeros(shape)
    for n in range(x.shape[0]):
        for k, (v, j) in enumerate(best(np.ravel(x[n]))):
            out[(n, 0, k) + (0,) * (len(shape) - 3)] = j
            if out_max_val:
                out[(n, 1, k) + (0,) * (len(shape) - 3)] = v
    return out
