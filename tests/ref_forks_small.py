"""Plain-loop references for the small fork layers (ReLU6, Mish, ShuffleChannel, Axpy,
PSROIPooling, Reorg, Region), written from the forks' and darknet's definitions,
independent of caffe_lite's code."""
import math

import numpy as np


def relu6(x):
    out = np.empty(x.shape)
    for i, v in np.ndenumerate(x):
        out[i] = min(max(float(v), 0.0), 6.0)
    return out


def mish(x):
    out = np.empty(x.shape)
    for i, v in np.ndenumerate(x):
        v = float(v)
        softplus = v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v))
        out[i] = v * math.tanh(softplus)
    return out


def shuffle_channel(x, group):
    N, C = x.shape[:2]
    per = C // group
    out = np.empty(x.shape)
    for n in range(N):
        for c in range(C):
            g, k = divmod(c, per)          # input channel c = g * per + k
            out[n, k * group + g] = x[n, c]
    return out


def axpy(a, x, y):
    out = np.empty(x.shape)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[n, c] = a.reshape(x.shape[:2])[n, c] * x[n, c] + y[n, c]
    return out


def c_round(v):
    return math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)


def psroi_pool(x, rois, scale, output_dim, group):
    """R-FCN's forward, one output element at a time (float64 arithmetic)."""
    N, C, H, W = x.shape
    rois = rois.reshape(-1, 5)
    out = np.zeros((len(rois), output_dim, group, group))
    for r, (b, x1, y1, x2, y2) in enumerate(rois):
        sw, sh = c_round(x1) * scale, c_round(y1) * scale
        ew, eh = (c_round(x2) + 1) * scale, (c_round(y2) + 1) * scale
        bh, bw = max(eh - sh, 0.1) / group, max(ew - sw, 0.1) / group
        for k in range(output_dim):
            for ph in range(group):
                for pw in range(group):
                    hs = min(max(math.floor(ph * bh + sh), 0), H)
                    he = min(max(math.ceil((ph + 1) * bh + sh), 0), H)
                    ws = min(max(math.floor(pw * bw + sw), 0), W)
                    we = min(max(math.ceil((pw + 1) * bw + sw), 0), W)
                    if he <= hs or we <= ws:
                        continue
                    c = (k * group + ph) * group + pw
                    total = 0.0
                    for h in range(hs, he):
                        for w in range(ws, we):
                            total += x[int(b), c, h, w]
                    out[r, k, ph, pw] = total / ((he - hs) * (we - ws))
    return out


def darknet_reorg(x, stride, reverse=False):
    """darknet's reorg_cpu loop over a flat buffer: the input dims (c, h, w) drive it;
    forward (reverse=False) writes out[in_index] = x[out_index]."""
    N, C, H, W = x.shape
    src = x.reshape(-1)
    out = np.zeros(src.size)
    out_c = C // (stride * stride)
    for b in range(N):
        for k in range(C):
            for j in range(H):
                for i in range(W):
                    in_index = i + W * (j + H * (k + C * b))
                    c2, offset = k % out_c, k // out_c
                    w2 = i * stride + offset % stride
                    h2 = j * stride + offset // stride
                    out_index = w2 + W * stride * (h2 + H * stride * (c2 + out_c * b))
                    if reverse:
                        out[out_index] = src[in_index]
                    else:
                        out[in_index] = src[out_index]
    if reverse:
        return out.reshape(N, C // (stride * stride), H * stride, W * stride)
    return out.reshape(N, C * stride * stride, H // stride, W // stride)


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def region(x, biases, classes, anchors, thresh, softmax=True):
    """YOLOv2's region transform without NMS; x (N, H, W, A * cell) channels-last."""
    N, H, W, _ = x.shape
    cell = 5 + classes
    out = np.zeros((N * H * W * anchors, cell))
    for n in range(N):
        for y in range(H):
            for xx in range(W):
                for a in range(anchors):
                    row = ((n * H + y) * W + xx) * anchors + a
                    t = x[n, y, xx, a * cell:(a + 1) * cell].astype(np.float64)
                    obj = _sigmoid(t[4])
                    if softmax:
                        e = [math.exp(v - max(t[5:])) for v in t[5:]]
                        probs = [v / sum(e) for v in e]
                    else:
                        probs = [_sigmoid(v) for v in t[5:]]
                    out[row, 0] = (xx + _sigmoid(t[0])) / W
                    out[row, 1] = (y + _sigmoid(t[1])) / H
                    out[row, 2] = math.exp(t[2]) * biases[2 * a] / W
                    out[row, 3] = math.exp(t[3]) * biases[2 * a + 1] / H
                    out[row, 4] = obj
                    for c in range(classes):
                        p = obj * probs[c]
                        out[row, 5 + c] = p if p > thresh else 0.0
    return out
