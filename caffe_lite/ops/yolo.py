"""YOLOv2's kernels: darknet's reorg (space to depth in darknet's own index order)
and the Region output transform (logistic box centres and objectness, softmax or
logistic class scores, anchor-scaled sizes) with its per-class NMS.
"""
import numpy as np


def reorg_index(shape, stride):
    """darknet's reorg as a permutation: the flat (N, C H W) source index of every
    flat output element of each image, for an (N, C, H, W) input with s^2 | C. darknet reads the
    input buffer as (C / s^2, H s, W s) and writes output channel (dy s + dx) C / s^2
    + c2 at (j, i) of a (C, H, W) buffer from (c2, j s + dy, i s + dx); the layer
    then reads that buffer as (C s^2, H / s, W / s).

    >>> reorg_index((1, 4, 2, 2), 2)[0, :4].tolist()
    [0, 2, 8, 10]
    """
    N, C, H, W = shape
    s = stride
    flat = np.arange(C * H * W).reshape(C // (s * s), H, s, W, s)    # (c2, j, dy, i, dx)
    index = flat.transpose(2, 4, 0, 1, 3).reshape(1, C * H * W)       # (dy, dx, c2, j, i)
    return np.broadcast_to(index, (N, C * H * W))


def logistic(x):
    return 1 / (1 + np.exp(-x))


def softmax_last(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def region_forward(x, biases, classes, coords, anchors, thresh, use_softmax, classfix,
                   norm_hw=None):
    """x (N, H, W, A (1 + coords + classes)) channels-last, as OpenCV's RegionLayer
    takes it -> (N H W A, 1 + coords + classes): per anchor a of cell (y, x):
    [(x + logistic tx) / W, (y + logistic ty) / H, exp(tw) b_2a / W_n,
    exp(th) b_2a+1 / H_n, logistic t0, t0 * p_c where > thresh else 0]."""
    N, H, W, _ = x.shape
    cell = 1 + coords + classes
    t = x.reshape(N, H, W, anchors, cell).astype(np.float64)
    out = np.empty_like(t)
    obj = logistic(t[..., 4])
    probs = softmax_last(t[..., 5:]) if use_softmax else logistic(t[..., 5:])
    hn, wn = norm_hw if norm_hw is not None else (H, W)
    ys = np.arange(H)[None, :, None, None]
    xs = np.arange(W)[None, None, :, None]
    b = np.asarray(biases, np.float64).reshape(anchors, 2)
    out[..., 0] = (xs + logistic(t[..., 0])) / W
    out[..., 1] = (ys + logistic(t[..., 1])) / H
    out[..., 2] = np.exp(t[..., 2]) * b[:, 0] / wn
    out[..., 3] = np.exp(t[..., 3]) * b[:, 1] / hn
    out[..., 4] = obj
    scale = np.where((classfix == -1) & (obj < 0.5), 0.0, obj)
    prob = scale[..., None] * probs
    out[..., 5:] = np.where(prob > thresh, prob, 0.0)
    return out.reshape(N * H * W * anchors, cell)


def region_nms(dets, classes, thresh, nms_threshold):
    """Per class, greedy NMS over the rows of dets (rows (x, y, w, h, obj, p...)),
    highest score first; suppressed or sub-threshold scores become 0 (OpenCV's
    do_nms_sort over one image's rows)."""
    x, y, w, h = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3]
    x0, y0, x1, y1 = x - w / 2, y - h / 2, x - w / 2 + w, y - h / 2 + h
    area = w * h
    for k in range(classes):
        scores = dets[:, 5 + k].copy()
        dets[:, 5 + k] = 0
        order = np.argsort(-scores, kind="stable")
        order = order[scores[order] > thresh]
        kept = []
        for i in order:
            if kept:
                kk = np.array(kept)
                iw = np.minimum(x1[kk], x1[i]) - np.maximum(x0[kk], x0[i])
                ih = np.minimum(y1[kk], y1[i]) - np.maximum(y0[kk], y0[i])
                inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
                iou = inter / (area[kk] + area[i] - inter)
                if (iou > nms_threshold).any():
                    continue
            kept.append(int(i))
        dets[kept, 5 + k] = scores[kept]
    return dets
