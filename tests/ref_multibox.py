"""A naive MultiBoxLoss (SSD fork) for one configuration: shared locations,
priors used for matching, CENTER_SIZE codes, SMOOTH_L1 + SOFTMAX, MAX_NEGATIVE
or HARD_EXAMPLE mining, VALID normalisation. Plain loops from the fork's description; never
calls caffe_lite."""
import math


def iou(a, b):
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match(gts, priors, bipartite_only, threshold):
    match_of = [-1] * len(priors)
    best = [max([iou(p, g) for g in gts] + [0.0]) for p in priors]
    pool = list(range(len(gts)))
    while pool:
        top = (-1.0, None, None)
        for i, p in enumerate(priors):
            if match_of[i] != -1:
                continue
            for j in pool:
                o = iou(p, gts[j])
                if o > 1e-6 and o > top[0]:
                    top = (o, i, j)
        if top[1] is None:
            break
        match_of[top[1]], best[top[1]] = top[2], top[0]
        pool.remove(top[2])
    if not bipartite_only:
        for i, p in enumerate(priors):
            if match_of[i] != -1:
                continue
            cand = [(iou(p, g), j) for j, g in enumerate(gts)]
            cand = [(o, j) for o, j in cand if o > 1e-6 and o >= threshold]
            if cand:
                o, j = max(cand, key=lambda c: (c[0], -c[1]))
                match_of[i], best[i] = j, o
    return match_of, best


def encode(prior, var, box):
    pw, ph = prior[2] - prior[0], prior[3] - prior[1]
    pcx, pcy = (prior[0] + prior[2]) / 2, (prior[1] + prior[3]) / 2
    bw, bh = box[2] - box[0], box[3] - box[1]
    bcx, bcy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return [(bcx - pcx) / pw / var[0], (bcy - pcy) / ph / var[1],
            math.log(bw / pw) / var[2], math.log(bh / ph) / var[3]]


def softmax_nll(scores, label):
    peak = max(scores)
    total = sum(math.exp(s - peak) for s in scores)
    return -math.log(max(math.exp(scores[label] - peak) / total, 1.1754944e-38))


def smooth_l1(loc_row, target):
    total = 0.0
    for c in range(4):
        d = loc_row[c] - target[c]
        total += 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5
    return total


def multibox_loss(loc, conf, prior, gt, num_classes, bipartite_only=False,
                  threshold=0.5, neg_pos_ratio=3.0, neg_overlap=0.5, background=0,
                  mining="MAX_NEGATIVE", sample_size=64):
    """mining MAX_NEGATIVE: the unmatched priors (overlap < neg_overlap) of highest
    background loss, neg_pos_ratio per positive. HARD_EXAMPLE: the sample_size
    priors of highest confidence + localisation loss; matched ones not among them
    stop being positives, unmatched ones among them are the negatives."""
    num = loc.shape[0]
    priors = [list(prior[0, 0, 4 * k:4 * k + 4]) for k in range(prior.shape[2] // 4)]
    variances = [list(prior[0, 1, 4 * k:4 * k + 4]) for k in range(len(priors))]
    loc_loss = conf_loss = 0.0
    num_matches = 0
    for i in range(num):
        rows = [r for r in gt.reshape(-1, 8) if int(r[0]) == i]
        if not rows:
            continue
        gts, labels = [list(r[3:7]) for r in rows], [int(r[1]) for r in rows]
        match_of, best = match(gts, priors, bipartite_only, threshold)
        scores = [list(conf[i, k * num_classes:(k + 1) * num_classes])
                  for k in range(len(priors))]
        label_of = [labels[m] if m > -1 else background for m in match_of]
        loc_of = [smooth_l1(loc[i, 4 * k:4 * k + 4], encode(priors[k], variances[k], gts[m]))
                  if m > -1 else 0.0 for k, m in enumerate(match_of)]
        if mining == "HARD_EXAMPLE":
            total = [softmax_nll(scores[k], label_of[k]) + loc_of[k] for k in range(len(priors))]
            ranked = sorted(range(len(priors)), key=lambda k: -total[k])
            chosen = set(ranked[:min(sample_size, len(priors))])
            match_of = [m if k in chosen else -1 for k, m in enumerate(match_of)]
            negatives = [k for k in sorted(chosen) if match_of[k] == -1]
        positives = [k for k in range(len(priors)) if match_of[k] > -1]
        num_matches += len(positives)
        for k in positives:
            loc_loss += loc_of[k]
            conf_loss += softmax_nll(scores[k], labels[match_of[k]])
        if mining == "MAX_NEGATIVE":
            eligible = [k for k in range(len(priors))
                        if match_of[k] == -1 and best[k] < neg_overlap]
            eligible.sort(key=lambda k: -softmax_nll(scores[k], background))
            negatives = eligible[:min(int(len(positives) * neg_pos_ratio), len(eligible))]
        for k in negatives:
            conf_loss += softmax_nll(scores[k], background)
    normalizer = max(1, num_matches)
    return (loc_loss + conf_loss) / normalizer
