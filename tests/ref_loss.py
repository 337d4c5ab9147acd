"""Naive references for Softmax, the loss layers and Accuracy: plain loops written
from Caffe's formulas, never calling caffe_lite. Float64 results.

Scores are indexed as (outer, C, inner) around the class axis; ``labels`` has
outer*inner entries in that order.
"""
import math

import numpy as np

FLT_MIN = float(np.finfo(np.float32).tiny)


def _split(x, axis):
    axis %= x.ndim
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    return np.asarray(x, np.float64).reshape(outer, x.shape[axis], inner)


def ref_softmax(x, axis=1):
    s = _split(x, axis)
    out = np.zeros(s.shape)
    for o in range(s.shape[0]):
        for i in range(s.shape[2]):
            column = [float(s[o, c, i]) for c in range(s.shape[1])]
            peak = max(column)
            exps = [math.exp(v - peak) for v in column]
            for c in range(s.shape[1]):
                out[o, c, i] = exps[c] / sum(exps)
    return out.reshape(x.shape)


def normalizer(mode, outer, inner, valid):
    return max(1.0, {"FULL": outer * inner, "VALID": valid, "BATCH_SIZE": outer,
                     "NONE": 1}[mode])


def ref_softmax_loss(x, labels, axis=1, ignore_label=None, mode="VALID"):
    """(loss, gradient of the loss with respect to x)."""
    p = _split(ref_softmax(x, axis), axis)
    outer, C, inner = p.shape
    lab = np.ravel(labels)
    loss, valid = 0.0, 0
    grad = np.zeros(p.shape)
    for o in range(outer):
        for i in range(inner):
            label = int(lab[o * inner + i])
            if ignore_label is not None and label == ignore_label:
                continue
            loss -= math.log(max(p[o, label, i], FLT_MIN))
            valid += 1
            for c in range(C):
                grad[o, c, i] = p[o, c, i] - (c == label)
    norm = normalizer(mode, outer, inner, valid)
    return loss / norm, (grad / norm).reshape(x.shape)


def ref_infogain_loss(x, labels, H, axis=1, ignore_label=None, mode="VALID"):
    p = _split(ref_softmax(x, axis), axis)
    outer, C, inner = p.shape
    lab = np.ravel(labels)
    loss, valid = 0.0, 0
    grad = np.zeros(p.shape)
    for o in range(outer):
        for i in range(inner):
            label = int(lab[o * inner + i])
            if ignore_label is not None and label == ignore_label:
                continue
            valid += 1
            row_sum = sum(H[label, c] for c in range(C))
            for c in range(C):
                loss -= H[label, c] * math.log(max(p[o, c, i], 1e-20))
                grad[o, c, i] = p[o, c, i] * row_sum - H[label, c]
    norm = normalizer(mode, outer, inner, valid)
    return loss / norm, (grad / norm).reshape(x.shape)


def ref_multinomial_logistic_loss(p, labels):
    N = p.shape[0]
    flat = np.asarray(p, np.float64).reshape(N, -1)
    loss = 0.0
    grad = np.zeros(flat.shape)
    for n in range(N):
        label = int(np.ravel(labels)[n])
        prob = max(flat[n, label], 1e-20)
        loss -= math.log(prob)
        grad[n, label] = -1.0 / prob / N
    return loss / N, grad.reshape(p.shape)


def ref_sigmoid_cross_entropy(x, t, ignore_label=None, mode="BATCH_SIZE"):
    xf, tf = np.ravel(x), np.ravel(t)
    loss, valid = 0.0, 0
    grad = np.zeros(xf.shape)
    for k in range(xf.size):
        if ignore_label is not None and int(tf[k]) == ignore_label:
            continue
        p = 1.0 / (1.0 + math.exp(-xf[k]))
        # -[t log p + (1 - t) log(1 - p)], written without overflow
        loss += max(xf[k], 0) - xf[k] * tf[k] + math.log1p(math.exp(-abs(xf[k])))
        grad[k] = p - tf[k]
        valid += 1
    norm = normalizer(mode, x.shape[0], xf.size // x.shape[0], valid)
    return loss / norm, (grad / norm).reshape(x.shape)


def ref_euclidean_loss(a, b):
    N = a.shape[0]
    total = sum((float(u) - float(v)) ** 2 for u, v in zip(np.ravel(a), np.ravel(b)))
    return total / N / 2


def ref_hinge_loss(x, labels, norm="L1"):
    """(loss, gradient): margins max(0, 1 - y x), y = +1 for the label, -1 else."""
    N = x.shape[0]
    flat = np.asarray(x, np.float64).reshape(N, -1)
    loss = 0.0
    grad = np.zeros(flat.shape)
    for n in range(N):
        for d in range(flat.shape[1]):
            y = 1.0 if d == int(np.ravel(labels)[n]) else -1.0
            m = max(0.0, 1.0 - y * flat[n, d])
            loss += m if norm == "L1" else m * m
            if m > 0:
                grad[n, d] = -y if norm == "L1" else -2 * y * m
    return loss / N, (grad / N).reshape(x.shape)


def ref_contrastive_loss(a, b, similar, margin=1.0, legacy=False):
    """(loss, gradient with respect to a) with Caffe's gradient, which divides by
    d + 1e-4 in the non-legacy dissimilar case."""
    N = a.shape[0]
    fa, fb = np.asarray(a, np.float64).reshape(N, -1), np.asarray(b, np.float64).reshape(N, -1)
    loss = 0.0
    grad = np.zeros(fa.shape)
    for n in range(N):
        diff = fa[n] - fb[n]
        d2 = float(sum(v * v for v in diff))
        if int(np.ravel(similar)[n]):
            loss += d2
            grad[n] = diff / N
        elif legacy:
            loss += max(margin - d2, 0.0)
            if margin - d2 > 0:
                grad[n] = -diff / N
        else:
            d = math.sqrt(d2)
            loss += max(margin - d, 0.0) ** 2
            if margin - d > 0:
                grad[n] = -(margin - d) / (d + 1e-4) * diff / N
    return loss / N / 2, grad.reshape(a.shape)


def ref_accuracy(x, labels, top_k=1, axis=1, ignore_label=None):
    """(accuracy, per-class accuracy): correct when fewer than top_k classes score
    at least as high as the true class (so ties count against it)."""
    s = _split(x, axis)
    outer, C, inner = s.shape
    lab = np.ravel(labels)
    hits, count = 0, 0
    seen, right = [0] * C, [0] * C
    for o in range(outer):
        for i in range(inner):
            label = int(lab[o * inner + i])
            if ignore_label is not None and label == ignore_label:
                continue
            count += 1
            seen[label] += 1
            at_least = sum(1 for c in range(C) if s[o, c, i] >= s[o, label, i])
            if at_least <= top_k:
                hits += 1
                right[label] += 1
    per_class = [right[c] / seen[c] if seen[c] else 0.0 for c in range(C)]
    return (hits / count if count else 0.0), np.array(per_class)
