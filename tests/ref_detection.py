"""Naive references for SSD's layers (PriorBox, Permute, Normalize, DetectionOutput):
plain loops written from the fork's semantics (tests/data/conformance/detection/
README.md), never calling caffe_lite. Results are float64 unless stated."""
import itertools
import math

import numpy as np


def ref_permute(x, order):
    order = list(order) + [a for a in range(x.ndim) if a not in order]
    y = np.empty([x.shape[a] for a in order])
    for index in itertools.product(*(range(d) for d in x.shape)):
        y[tuple(index[a] for a in order)] = x[index]
    return y


def ref_normalize(x, scale, across_spatial, eps=1e-10):
    """y = s_c x / ||x|| over C*H*W (across_spatial) or over C per position."""
    N, C = x.shape[:2]
    flat = x.reshape(N, C, -1)
    y = np.empty_like(flat, dtype=np.float64)
    scale = np.broadcast_to(np.reshape(scale, -1), (C,))
    for n in range(N):
        if across_spatial:
            total = eps
            for c in range(C):
                for s in range(flat.shape[2]):
                    total += float(flat[n, c, s]) ** 2
        for s in range(flat.shape[2]):
            if not across_spatial:
                total = eps
                for c in range(C):
                    total += float(flat[n, c, s]) ** 2
            for c in range(C):
                y[n, c, s] = scale[c] * flat[n, c, s] / math.sqrt(total)
    return y.reshape(x.shape)


def ref_normalize_backward_fork(x, scale, dy, across_spatial, eps=1e-10):
    """The fork's bottom diff: s_c (dy - x <x, dy> / n^2) / n (the scale outside)."""
    N, C = x.shape[:2]
    xf, gf = x.reshape(N, C, -1), dy.reshape(N, C, -1)
    S = xf.shape[2]
    scale = np.broadcast_to(np.reshape(scale, -1), (C,))
    dx = np.empty(xf.shape)
    groups = [[(c, s) for c in range(C) for s in range(S)]] if across_spatial else \
        [[(c, s) for c in range(C)] for s in range(S)]
    for n in range(N):
        for group in groups:
            norm2 = eps + sum(float(xf[n, c, s]) ** 2 for c, s in group)
            dot = sum(float(xf[n, c, s]) * gf[n, c, s] for c, s in group)
            for c, s in group:
                dx[n, c, s] = scale[c] * (gf[n, c, s] - xf[n, c, s] * dot / norm2) / \
                    math.sqrt(norm2)
    return dx.reshape(x.shape)


def ref_prior_box(H, W, img_h, img_w, min_sizes, max_sizes=(), ratios=(), flip=True,
                  clip=False, variance=(0.1,), step_h=None, step_w=None, offset=0.5):
    """(1, 2, H*W*A*4): per cell, per min size: the square, the sqrt(min*max) square,
    then one box per distinct further aspect ratio (and 1/r with flip)."""
    all_ratios = [1.0]
    for r in ratios:
        for candidate in ([r, 1.0 / r] if flip else [r]):
            if all(abs(candidate - a) >= 1e-6 for a in all_ratios):
                all_ratios.append(candidate)
    step_h = img_h / H if step_h is None else step_h
    step_w = img_w / W if step_w is None else step_w
    boxes = []
    for h in range(H):
        for w in range(W):
            cx, cy = (w + offset) * step_w, (h + offset) * step_h
            for k, m in enumerate(min_sizes):
                m = int(m)
                sizes = [(m, m)]
                if max_sizes:
                    side = math.sqrt(m * int(max_sizes[k]))
                    sizes.append((side, side))
                sizes += [(m * math.sqrt(r), m / math.sqrt(r)) for r in all_ratios[1:]]
                for bw, bh in sizes:
                    box = [(cx - bw / 2) / img_w, (cy - bh / 2) / img_h,
                           (cx + bw / 2) / img_w, (cy + bh / 2) / img_h]
                    boxes.append([min(max(v, 0), 1) for v in box] if clip else box)
    variance = list(variance) * (4 // len(variance))
    out = np.array([sum(boxes, []), variance * len(boxes)])
    return out[None]


def _iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def _decode(prior, var, loc, code):
    if code == "CORNER":
        return [prior[i] + var[i] * loc[i] for i in range(4)]
    pw, ph = prior[2] - prior[0], prior[3] - prior[1]
    if code == "CORNER_SIZE":
        return [prior[i] + var[i] * loc[i] * (pw if i % 2 == 0 else ph) for i in range(4)]
    cx = var[0] * loc[0] * pw + (prior[0] + prior[2]) / 2
    cy = var[1] * loc[1] * ph + (prior[1] + prior[3]) / 2
    w, h = math.exp(var[2] * loc[2]) * pw, math.exp(var[3] * loc[3]) * ph
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def ref_detection_output(loc, conf, prior, num_classes, share_location=True, background=0,
                         code="CORNER", variance_in_target=False, threshold=-np.inf,
                         nms_threshold=0.3, eta=1.0, top_k=-1, keep_top_k=-1):
    """(1, 1, K, 7) rows (image, label, score, box) as the README orders them."""
    N, P = loc.shape[0], prior.shape[2] // 4
    L = 1 if share_location else num_classes
    rows = []
    for n in range(N):
        kept = {}
        for c in range(num_classes):
            if c == background:
                continue
            boxes = []
            for p in range(P):
                l_index = 0 if share_location else c
                lv = [loc[n, (p * L + l_index) * 4 + i] for i in range(4)]
                var = [1.0] * 4 if variance_in_target else \
                    [prior[0, 1, p * 4 + i] for i in range(4)]
                boxes.append(_decode([prior[0, 0, p * 4 + i] for i in range(4)], var, lv, code))
            candidates = [(conf[n, p * num_classes + c], p) for p in range(P)
                          if conf[n, p * num_classes + c] > threshold]
            candidates.sort(key=lambda sp: -sp[0])
            if top_k > -1:
                candidates = candidates[:top_k]
            chosen, limit = [], nms_threshold
            for _score, p in candidates:
                if all(_iou(boxes[p], boxes[q]) <= limit for q in chosen):
                    chosen.append(p)
                    if eta < 1 and limit > 0.5:
                        limit *= eta
            kept[c] = [(conf[n, p * num_classes + c], p, boxes[p]) for p in chosen]
        everything = [(s, c, p, b) for c in kept for s, p, b in kept[c]]
        if keep_top_k > -1 and len(everything) > keep_top_k:
            best = sorted(everything, key=lambda e: -e[0])[:keep_top_k]
            everything = sorted(best, key=lambda e: (e[1], -e[0]))
        rows += [[n, c, s] + list(b) for s, c, p, b in everything]
    if not rows:
        rows = [[n] + [-1] * 6 for n in range(N)]
    return np.array(rows, np.float64)[None, None]
