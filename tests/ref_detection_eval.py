"""Naive references for detection scoring (DetectionEvaluate and the solver's mAP),
plain loops in float64 written from the SSD fork's semantics, never calling caffe_lite.

One float32 fact is kept on purpose: the fork holds recall as a float, so the
11-point rule compares float32(tp / npos) with the double r / 10 (``fork_recall``)."""
import numpy as np


def iou(a, b, pixels=False):
    one = 1.0 if pixels else 0.0
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return 0.0
    w = min(a[2], b[2]) - max(a[0], b[0]) + one
    h = min(a[3], b[3]) - max(a[1], b[1]) + one
    if w <= 0 or h <= 0:
        return 0.0

    def area(r):
        if r[2] < r[0] or r[3] < r[1]:
            return 0.0
        return (r[2] - r[0] + one) * (r[3] - r[1] + one)
    return w * h / (area(a) + area(b) - w * h)


def ref_mark(dets, gts, num_classes, background, threshold, evaluate_difficult,
             sizes=None):
    """List of (image, label, score, tp, fp) rows: one per class first, then the
    detections per image, label, decreasing score. sizes: {image: (h, w)}."""
    rows = []
    gt_by = {}
    for g in gts:
        if g[0] == -1:
            break
        gt_by.setdefault((int(g[0]), int(g[1])), []).append(list(g))
    for c in range(num_classes):
        if c == background:
            continue
        npos = sum(len([g for g in v if evaluate_difficult or not g[7]])
                   for (i, lab), v in gt_by.items() if lab == c)
        rows.append((-1, c, npos, -1, -1))
    keys = sorted({(int(d[0]), int(d[1])) for d in dets if d[0] != -1 and d[1] != -1})
    for image, label in keys:
        mine = [d for d in dets if int(d[0]) == image and int(d[1]) == label]
        mine.sort(key=lambda d: -d[2])
        truth = gt_by.get((image, label), [])

        def place(box, image=image):
            if sizes is None:
                return list(box)
            h, w = sizes[image]
            return [min(max(v, 0.0), 1.0) * s for v, s in zip(box, (w, h, w, h))]
        taken = [False] * len(truth)
        for d in mine:
            best, best_j = -1.0, -1
            for j, g in enumerate(truth):
                o = iou(place(d[3:7]), place(g[3:7]), pixels=sizes is not None)
                if o > best:
                    best, best_j = o, j
            if best_j < 0 or best < threshold:
                rows.append((image, label, d[2], 0, 1))
            elif not evaluate_difficult and truth[best_j][7]:
                rows.append((image, label, d[2], 0, 0))
            elif taken[best_j]:
                rows.append((image, label, d[2], 0, 1))
            else:
                taken[best_j] = True
                rows.append((image, label, d[2], 1, 0))
    return rows


def fork_recall(tp, npos):
    return float(np.float32(tp) / np.float32(npos))


def ref_ap(scores, tps, npos, version):
    """AP from ranked precision/recall; 11point over r = 0, .1, ..., 1 of the best
    precision at recall >= r; MaxIntegral the area under the running-max envelope;
    Integral the mean precision at the true positives."""
    if not len(scores) or npos == 0:
        return 0.0
    order = sorted(range(len(scores)), key=lambda i: -scores[i])   # stable
    tp = fp = 0
    prec, rec = [], []
    for i in order:
        tp += tps[i]
        fp += 1 - tps[i]
        prec.append(tp / (tp + fp))
        rec.append(fork_recall(tp, npos))
    if version == "11point":
        total = 0.0
        for j in range(11):
            reached = [p for p, r in zip(prec, rec) if r >= j / 10]
            total += max(reached) if reached else 0.0
        return total / 11
    if version == "Integral":
        return sum(p for p, i in zip(prec, order) if tps[i]) / npos
    # MaxIntegral: the envelope at each recall level, summed over recall steps
    total, prev = 0.0, 0.0
    for k in range(len(prec)):
        if rec[k] > prev:
            total += (rec[k] - prev) * max(prec[k:])
            prev = rec[k]
    return total
