"""Region proposal kernels as py-faster-rcnn computes them at test time: anchors,
box decoding, clipping, the minimum-size filter and greedy NMS. Boxes are
(x1, y1, x2, y2) in pixels with inclusive ends, so a width is x2 - x1 + 1.
Decoding runs in the deltas' dtype (float32 from a net), as py-faster-rcnn's
bbox_transform_inv casts the anchors to it.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

Array = np.ndarray[Any, Any]


def generate_anchors(base_size: int = 16, ratios: Sequence[float] = (0.5, 1, 2),
                     scales: Sequence[float] = (8, 16, 32)) -> Array:
    """(len(ratios) * len(scales), 4) anchors centred on the base box
    (0, 0, base_size-1, base_size-1), ratio-major; the ratio widths are rounded
    half to even (numpy's round, as generate_anchors.py).

    >>> generate_anchors(16, [1], [8]).tolist()
    [[-56.0, -56.0, 71.0, 71.0]]
    """
    size = float(base_size)
    centre = 0.5 * (size - 1)
    rows = []
    for ratio in ratios:
        w = np.round(np.sqrt(size * size / ratio))
        h = np.round(w * ratio)
        for scale in scales:
            sw, sh = w * scale, h * scale
            rows.append([centre - 0.5 * (sw - 1), centre - 0.5 * (sh - 1),
                         centre + 0.5 * (sw - 1), centre + 0.5 * (sh - 1)])
    return np.array(rows, np.float64)


def shifted_anchors(anchors: Array, height: int, width: int, stride: int) -> Array:
    """(H*W*A, 4): every anchor on every cell, cell-major in raster order."""
    sy, sx = np.meshgrid(np.arange(height) * stride, np.arange(width) * stride,
                         indexing="ij")
    shifts = np.stack([sx, sy, sx, sy], axis=-1).reshape(-1, 1, 4)   # (H*W, 1, 4)
    return (anchors[None] + shifts).reshape(-1, 4)


def decode_boxes(boxes: Array, deltas: Array) -> Array:
    """Boxes (K, 4) and deltas (K, 4) = (dx, dy, dw, dh) -> predicted boxes (K, 4):
    centre moved by d*size, size scaled by exp(d); x2 = centre + w/2."""
    t = deltas.dtype.type
    boxes = boxes.astype(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0] + t(1)
    heights = boxes[:, 3] - boxes[:, 1] + t(1)
    ctr_x = boxes[:, 0] + t(0.5) * widths
    ctr_y = boxes[:, 1] + t(0.5) * heights
    pred_x = deltas[:, 0] * widths + ctr_x
    pred_y = deltas[:, 1] * heights + ctr_y
    pred_w = np.exp(deltas[:, 2]) * widths
    pred_h = np.exp(deltas[:, 3]) * heights
    return np.stack([pred_x - t(0.5) * pred_w, pred_y - t(0.5) * pred_h,
                     pred_x + t(0.5) * pred_w, pred_y + t(0.5) * pred_h], axis=1)


def clip_boxes(boxes: Array, height: Any, width: Any) -> Array:
    """Clip x into [0, width-1] and y into [0, height-1]."""
    out = boxes.copy()
    out[:, 0::2] = np.maximum(np.minimum(boxes[:, 0::2], width - 1), 0)
    out[:, 1::2] = np.maximum(np.minimum(boxes[:, 1::2], height - 1), 0)
    return out


def nms(boxes: Array, thresh: float) -> list[int]:
    """Greedy NMS over boxes already sorted by score: keep a box, drop every later
    one whose IoU with it exceeds ``thresh``. Returns the kept indices."""
    t = boxes.dtype.type
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + t(1)) * (y2 - y1 + t(1))
    order = np.arange(len(boxes))
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.maximum(t(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + t(1))
        h = np.maximum(t(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + t(1))
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter)
        order = rest[overlap <= t(thresh)]
    return keep


def propose(scores: Array, deltas: Array, im_info: Array, *, feat_stride: int,
            base_size: int, ratios: Sequence[float], scales: Sequence[float],
            min_size: float, pre_nms_topn: int, post_nms_topn: int,
            nms_thresh: float) -> tuple[Array, Array]:
    """Foreground scores (A, H, W), deltas (4A, H, W), im_info (height, width,
    scale) -> (boxes (R, 4), scores (R,)), best first. A top N of 0 keeps all."""
    num_anchors, height, width = scores.shape
    anchors = shifted_anchors(generate_anchors(base_size, ratios, scales),
                              height, width, feat_stride)
    deltas = deltas.reshape(num_anchors * 4, height, width).transpose(1, 2, 0)
    deltas = deltas.reshape(-1, 4)                                    # (H*W*A, 4)
    flat_scores = scores.transpose(1, 2, 0).reshape(-1)               # (H*W*A,)
    boxes = clip_boxes(decode_boxes(anchors, deltas), im_info[0], im_info[1])
    t = boxes.dtype.type
    ws = boxes[:, 2] - boxes[:, 0] + t(1)
    hs = boxes[:, 3] - boxes[:, 1] + t(1)
    smallest = min_size * im_info[2]
    keep = (ws >= smallest) & (hs >= smallest)
    boxes, flat_scores = boxes[keep], flat_scores[keep]
    order = np.argsort(flat_scores, kind="stable")[::-1]
    if pre_nms_topn > 0:
        order = order[:pre_nms_topn]
    boxes, flat_scores = boxes[order], flat_scores[order]
    kept = nms(boxes, nms_thresh)
    if post_nms_topn > 0:
        kept = kept[:post_nms_topn]
    return boxes[kept], flat_scores[kept]
