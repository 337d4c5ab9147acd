"""SSD box arithmetic as the weiliu89/caffe ssd fork does it (bbox_util.cpp), in
float32: normalized boxes (xmin, ymin, xmax, ymax) with exclusive ends, Jaccard
overlaps, the bipartite / per-prediction matching and the three box codes.

Code types follow PriorBoxParameter.CodeType: 1 CORNER, 2 CENTER_SIZE,
3 CORNER_SIZE. ``variance_in_target``: the variances are already in the
targets, so encoding and decoding skip them.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import boxes

Array = np.ndarray[Any, Any]
CORNER, CENTER_SIZE, CORNER_SIZE = boxes.CORNER, boxes.CENTER_SIZE, boxes.CORNER_SIZE


def box_sizes(boxes: Array) -> Array:
    """(K, 4) -> (K,) areas; 0 for an inverted box."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.where((w < 0) | (h < 0), 0, w * h).astype(boxes.dtype)


def jaccard(a: Array, b: Array) -> Array:
    """(A, 4), (B, 4) -> (A, B) intersection over union, 0 where they do not meet."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = iw * ih
    union = box_sizes(a)[:, None] + box_sizes(b)[None, :] - inter
    meet = (iw > 0) & (ih > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(meet, inter / np.where(meet, union, 1), 0).astype(a.dtype)


def match_boxes(gt: Array, preds: Array, bipartite_only: bool, threshold: float,
                ignore_cross_boundary: bool = False) -> tuple[Array, Array]:
    """Match predictions (P, 4) to ground truth (G, 4) -> (match (P,), overlap (P,)):
    match is the gt index, -1 for none, -2 for an ignored cross-boundary box;
    overlap the matched (or best) overlap. First each gt takes its best free
    prediction, greedily by the largest overlap left (ties: lower prediction, then
    earlier gt); then, unless bipartite_only, every free prediction takes its best
    gt with overlap >= threshold."""
    num_pred = len(preds)
    match = np.full(num_pred, -1, np.int64)
    overlap = np.zeros(num_pred, np.float32)
    if len(gt) == 0:
        return match, overlap
    ov = jaccard(preds, gt)                                    # (P, G)
    present = ov > np.float32(1e-6)
    if ignore_cross_boundary:
        cross = np.any((preds < 0) | (preds > 1), axis=1)
        match[cross] = -2
        present[cross] = False
    overlap[:] = np.max(np.where(present, ov, 0), axis=1)
    free = present.copy()
    for _ in range(len(gt)):
        scores = np.where(free, ov, -np.inf)
        best = int(np.argmax(scores))                          # first in (pred, gt) order
        i, j = divmod(best, len(gt))
        if not np.isfinite(scores[i, j]):
            break
        match[i], overlap[i] = j, ov[i, j]
        free[i, :] = False
        free[:, j] = False
    if not bipartite_only:
        rest = (match == -1) & present.any(axis=1)
        good = present & (ov >= np.float32(threshold)) & rest[:, None]
        scores = np.where(good, ov, -np.inf)
        best = np.argmax(scores, axis=1)
        take = np.isfinite(scores[np.arange(num_pred), best])
        match[take] = best[take]
        overlap[take] = ov[take, best[take]]
    return match, overlap


def encode_boxes(priors: Array, variances: Array, boxes: Array, code_type: int,
                 variance_in_target: bool) -> Array:
    """Ground-truth boxes (K, 4) relative to their priors (K, 4) -> targets (K, 4)."""
    f32 = np.float32
    pw = priors[:, 2] - priors[:, 0]
    ph = priors[:, 3] - priors[:, 1]
    if code_type == CORNER:
        out = boxes - priors
    elif code_type == CENTER_SIZE:
        pcx, pcy = (priors[:, 0] + priors[:, 2]) / f32(2), (priors[:, 1] + priors[:, 3]) / f32(2)
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        bcx, bcy = (boxes[:, 0] + boxes[:, 2]) / f32(2), (boxes[:, 1] + boxes[:, 3]) / f32(2)
        out = np.stack([(bcx - pcx) / pw, (bcy - pcy) / ph,
                        np.log((bw / pw).astype(np.float64)).astype(f32),
                        np.log((bh / ph).astype(np.float64)).astype(f32)], axis=1)
    elif code_type == CORNER_SIZE:
        sizes = np.stack([pw, ph, pw, ph], axis=1)
        out = (boxes - priors) / sizes
    else:
        raise ValueError(f"unknown code_type {code_type}")
    out = out.astype(f32)
    return out if variance_in_target else (out / variances).astype(f32)


def decode_boxes(priors: Array, variances: Array, codes: Array, code_type: int,
                 variance_in_target: bool) -> Array:
    """The inverse of encode_boxes: predictions (K, 4) -> boxes (K, 4), float32,
    exactly as DetectionOutput decodes them (ops/boxes.py)."""
    return boxes.decode_boxes(priors, variances, codes, code_type, variance_in_target)
