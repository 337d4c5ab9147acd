"""Naive references for the Faster R-CNN fork's layers, written as plain loops from
the forks' definitions (README of the detection cases, py-faster-rcnn's
proposal steps); they never call caffe_lite. Float64 unless said otherwise.
"""
import math

import numpy as np


def c_round(v):
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def roi_pool(data, rois, scale, pooled_h, pooled_w):
    """(top, argmax) with argmax the flat h*W+w of the first maximum, -1 if empty."""
    _, channels, height, width = data.shape
    top = np.zeros((len(rois), channels, pooled_h, pooled_w))
    argmax = np.full(top.shape, -1)
    f32 = np.float32
    for r, roi in enumerate(rois):
        n = int(roi[0])
        x1, y1, x2, y2 = (c_round(float(f32(roi[k]) * f32(scale))) for k in (1, 2, 3, 4))
        roi_h, roi_w = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        bin_h, bin_w = f32(roi_h) / f32(pooled_h), f32(roi_w) / f32(pooled_w)
        for c in range(channels):
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    h0 = min(max(int(math.floor(f32(ph) * bin_h)) + y1, 0), height)
                    h1 = min(max(int(math.ceil(f32(ph + 1) * bin_h)) + y1, 0), height)
                    w0 = min(max(int(math.floor(f32(pw) * bin_w)) + x1, 0), width)
                    w1 = min(max(int(math.ceil(f32(pw + 1) * bin_w)) + x1, 0), width)
                    best, where = -math.inf, -1
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            if data[n, c, h, w] > best:
                                best, where = data[n, c, h, w], h * width + w
                    if where >= 0:
                        top[r, c, ph, pw], argmax[r, c, ph, pw] = best, where
    return top, argmax


def smooth_l1_loss(pred, target, inside=None, outside=None, sigma=1.0):
    s2 = sigma * sigma
    total = 0.0
    p, t = pred.reshape(-1), target.reshape(-1)
    for i in range(p.size):
        d = float(p[i] - t[i]) * (1.0 if inside is None else float(inside.flat[i]))
        f = 0.5 * s2 * d * d if abs(d) < 1.0 / s2 else abs(d) - 0.5 / s2
        total += abs(f * (1.0 if outside is None else float(outside.flat[i])))
    return total / pred.shape[0]


def anchors(base_size=16, ratios=(0.5, 1, 2), scales=(8, 16, 32)):
    """generate_anchors: the base box's area split by each ratio (widths rounded
    half to even), then each scale; ratio-major."""
    out = []
    ctr = (base_size - 1) / 2.0
    for ratio in ratios:
        w = round(math.sqrt(base_size * base_size / ratio))     # Python: half to even
        h = round(w * ratio)
        for scale in scales:
            sw, sh = w * scale, h * scale
            out.append((ctr - (sw - 1) / 2, ctr - (sh - 1) / 2,
                        ctr + (sw - 1) / 2, ctr + (sh - 1) / 2))
    return out


def iou_inclusive(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / (area_a + area_b - inter)


def proposals(scores, deltas, im_info, feat_stride=16, min_size=16, pre_nms=6000,
              post_nms=300, nms_thresh=0.7):
    """scores (1, 2A, H, W), deltas (1, 4A, H, W), im_info (height, width, scale)
    -> list of (score, x1, y1, x2, y2), best first."""
    base = anchors()
    num_a = len(base)
    _, _, height, width = scores.shape
    im_h, im_w, im_scale = (float(v) for v in im_info)
    found = []
    for y in range(height):
        for x in range(width):
            for a in range(num_a):
                ax1, ay1, ax2, ay2 = (base[a][0] + x * feat_stride, base[a][1] + y * feat_stride,
                                      base[a][2] + x * feat_stride, base[a][3] + y * feat_stride)
                aw, ah = ax2 - ax1 + 1, ay2 - ay1 + 1
                cx, cy = ax1 + 0.5 * aw, ay1 + 0.5 * ah
                dx, dy, dw, dh = (float(deltas[0, 4 * a + k, y, x]) for k in range(4))
                px, py = dx * aw + cx, dy * ah + cy
                pw, ph = math.exp(dw) * aw, math.exp(dh) * ah
                box = [px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw, py + 0.5 * ph]
                box[0] = min(max(box[0], 0), im_w - 1)
                box[2] = min(max(box[2], 0), im_w - 1)
                box[1] = min(max(box[1], 0), im_h - 1)
                box[3] = min(max(box[3], 0), im_h - 1)
                if box[2] - box[0] + 1 >= min_size * im_scale and \
                        box[3] - box[1] + 1 >= min_size * im_scale:
                    found.append((float(scores[0, num_a + a, y, x]), *box))
    found.sort(key=lambda row: -row[0])
    found = found[:pre_nms]
    kept = []
    for row in found:
        if all(iou_inclusive(row[1:], k[1:]) <= nms_thresh for k in kept):
            kept.append(row)
    return kept[:post_nms]
