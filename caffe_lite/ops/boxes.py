"""Box kernels of SSD (weiliu89/caffe, branch ssd): prior boxes, decoding of location
predictions, box areas, Jaccard overlap (IoU) and greedy NMS with an adaptive threshold.

Boxes are rows ``(xmin, ymin, xmax, ymax)`` in float32, normalised to the image size.
Every step rounds where the fork stores into a ``float``; the few sub-expressions that
C++ evaluates in double (a division by ``2.``, ``sqrt`` of an int) are done in float64
and rounded once, so results agree with the fork to an ulp or so.

Code types are PriorBoxParameter.CodeType's numbers.

>>> boxes = np.array([[0, 0, 2, 2], [1, 1, 3, 3]], np.float32)
>>> float(jaccard_one_to_many(boxes[0], box_areas(boxes[:1])[0], boxes[1:],
...                           box_areas(boxes[1:]))[0])
0.1428571492433548
"""
import math

import numpy as np

__all__ = ["CORNER", "CENTER_SIZE", "CORNER_SIZE", "prior_aspect_ratios", "prior_half_sizes",
           "prior_boxes", "decode_boxes", "box_areas", "jaccard_one_to_many",
           "top_scores", "nms_fast"]

CORNER, CENTER_SIZE, CORNER_SIZE = 1, 2, 3
F32 = np.float32


# ==== prior boxes ===========================================================

def prior_aspect_ratios(ratios, flip):
    """[1, r1, (1/r1), r2, ...] as float32 values: a ratio within 1e-6 of one already
    present is skipped; ``flip`` adds 1/r (computed in double, stored as float)."""
    out = [1.0]
    for r in (float(F32(r)) for r in ratios):
        if any(abs(r - a) < 1e-6 for a in out):
            continue
        out.append(r)
        if flip:
            out.append(float(F32(1.0 / r)))
    return out


def prior_half_sizes(min_sizes, max_sizes, aspect_ratios):
    """(A, 2) float64 half widths and heights of one cell's boxes, in the fork's order:
    per min size (truncated to int) the square box, the sqrt(min*max) square when max
    sizes are given, then one box per aspect ratio other than 1."""
    sizes = []
    for k, min_size in enumerate(min_sizes):
        m = int(min_size)
        sizes.append((float(m), float(m)))
        if max_sizes:
            side = float(F32(math.sqrt(m * int(max_sizes[k]))))
            sizes.append((side, side))
        for ar in aspect_ratios:
            if abs(ar - 1.0) < 1e-6:
                continue
            root = F32(math.sqrt(ar))                              # sqrtf
            sizes.append((float(F32(m) * root), float(F32(m) / root)))
    return np.asarray(sizes, np.float64).reshape(-1, 2) / 2.0


def prior_boxes(layer_hw, img_hw, step_hw, offset, half_sizes, clip):
    """(H*W*A, 4) float32 boxes, cells in raster order, A boxes per cell.

    Centre of cell (h, w): ((w + offset) * step_w, (h + offset) * step_h) in float32;
    box = (centre -+ half size) / image size, in double, stored as float; clip clamps
    to [0, 1].
    """
    (H, W), (img_h, img_w) = layer_hw, img_hw
    step_h, step_w = F32(step_hw[0]), F32(step_hw[1])
    cx = ((np.arange(W, dtype=F32) + F32(offset)) * step_w).astype(np.float64)  # (W,)
    cy = ((np.arange(H, dtype=F32) + F32(offset)) * step_h).astype(np.float64)  # (H,)
    hw, hh = half_sizes[:, 0], half_sizes[:, 1]                                # (A,)
    boxes = np.empty((H, W, len(half_sizes), 4), np.float64)
    boxes[..., 0] = (cx[None, :, None] - hw) / img_w
    boxes[..., 1] = (cy[:, None, None] - hh) / img_h
    boxes[..., 2] = (cx[None, :, None] + hw) / img_w
    boxes[..., 3] = (cy[:, None, None] + hh) / img_h
    boxes = boxes.astype(F32).reshape(-1, 4)
    if clip:
        np.clip(boxes, 0, 1, out=boxes)
    return boxes


# ==== decoding ===============================================================

def decode_boxes(prior, variance, loc, code_type, variance_encoded_in_target=False):
    """Decode location predictions ``loc`` (..., P, 4) against ``prior`` and its
    ``variance`` (P, 4); returns float32 boxes (..., P, 4).

    CORNER:      box = prior + v * loc
    CENTER_SIZE: centre = v01 * loc01 * prior_size + prior_centre,
                 size = exp(v23 * loc23) * prior_size
    CORNER_SIZE: box = prior + v * loc * prior_size (x by width, y by height)
    With ``variance_encoded_in_target`` v is 1 (the multiplication is skipped).
    """
    prior, loc = prior.astype(F32), loc.astype(F32)
    v = None if variance_encoded_in_target else variance.astype(F32)
    scaled = loc if v is None else v * loc                                     # (..., P, 4)
    if code_type == CORNER:
        return (prior + scaled).astype(F32)
    size = np.concatenate([prior[:, 2:] - prior[:, :2]] * 2, axis=1)          # (P, 4) w h w h
    if code_type == CORNER_SIZE:
        return (prior + scaled * size).astype(F32)
    if code_type != CENTER_SIZE:
        raise ValueError(f"unknown code type {code_type}")
    centre = ((prior[:, :2] + prior[:, 2:]).astype(np.float64) / 2).astype(F32)  # (P, 2)
    c = scaled[..., :2] * size[:, :2] + centre
    wh = np.exp(scaled[..., 2:].astype(np.float64)).astype(F32) * size[:, 2:]  # expf
    c, half = c.astype(np.float64), wh.astype(np.float64) / 2
    return np.concatenate([c - half, c + half], axis=-1).astype(F32)


def box_areas(boxes):
    """float32 areas (...,) of boxes (..., 4); 0 for an inverted box."""
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return np.where((w < 0) | (h < 0), F32(0), w * h).astype(F32)


def jaccard_one_to_many(box, area, boxes, areas):
    """IoU (M,) of one box (4,) with boxes (M, 4), given float32 areas; 0 where they
    do not overlap with positive width and height."""
    disjoint = ((boxes[:, 0] > box[2]) | (boxes[:, 2] < box[0]) |
                (boxes[:, 1] > box[3]) | (boxes[:, 3] < box[1]))
    iw = np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0])
    ih = np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1])
    inter = (iw * ih).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / ((area + areas) - inter)
    return np.where(disjoint | (iw <= 0) | (ih <= 0), F32(0), iou).astype(F32)


# ==== non-maximum suppression ===============================================

def top_scores(scores, threshold, top_k=-1):
    """Indices of the scores above ``threshold``, by descending score (ties in index
    order, a stable sort), at most ``top_k`` of them when top_k > -1."""
    index = np.flatnonzero(scores > threshold)
    index = index[np.argsort(-scores[index], kind="stable")]
    return index[:top_k] if -1 < top_k < len(index) else index


def nms_fast(boxes, scores, score_threshold, nms_threshold, eta=1.0, top_k=-1):
    """Greedy NMS: candidates above ``score_threshold`` (the ``top_k`` best), best
    first; one is kept when its IoU with every kept box is <= the threshold. After each
    kept box, with eta < 1, the threshold is multiplied by eta while above 0.5.
    Returns the kept indices in the order kept. boxes (M, 4), scores (M,)."""
    areas = box_areas(boxes)
    threshold = F32(nms_threshold)
    kept = []
    for idx in top_scores(scores, score_threshold, top_k):
        if kept:
            overlap = jaccard_one_to_many(boxes[idx], areas[idx], boxes[kept], areas[kept])
            if (overlap > threshold).any():
                continue
        kept.append(int(idx))
        if eta < 1 and threshold > 0.5:
            threshold = F32(threshold * F32(eta))
    return kept
