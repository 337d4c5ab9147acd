"""Scoring detections as SSD's fork does (weiliu89/caffe, branch ssd): each detection
marked a true or false positive against the ground truth of its image and class
(DetectionEvaluate), and the marks of a whole test run turned into average
precision per class and their mean (the fork's Solver::TestDetection).

Arithmetic is float32 as in the fork, whose boxes, recall and precision are floats:
that decides ties such as recall 0.7f < 0.7 in the 11-point rule.
"""
import numpy as np

f32 = np.float32
AP_VERSIONS = ("11point", "MaxIntegral", "Integral")
AP_EPS = f32(1e-6)


def box_sizes(boxes, normalized=True):
    """Areas of (k, 4) corner boxes; 0 for an inverted box; pixel boxes count
    both ends ((w + 1) (h + 1))."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    if not normalized:
        w, h = w + f32(1), h + f32(1)
    return np.where((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]),
                    f32(0), w * h).astype(f32)


def overlaps(box, size, gts, gt_sizes, normalized=True):
    """IoU of one box against (k, 4) boxes, with the areas given (the fork keeps
    each box's area with it); 0 where they do not meet."""
    apart = ((gts[:, 0] > box[2]) | (gts[:, 2] < box[0])
             | (gts[:, 1] > box[3]) | (gts[:, 3] < box[1]))
    w = np.minimum(box[2], gts[:, 2]) - np.maximum(box[0], gts[:, 0])
    h = np.minimum(box[3], gts[:, 3]) - np.maximum(box[1], gts[:, 1])
    if not normalized:
        w, h = w + f32(1), h + f32(1)
    inter = (w * h).astype(f32)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (size + gt_sizes - inter)
    return np.where(apart | (w <= 0) | (h <= 0), f32(0), iou).astype(f32)


def to_pixels(boxes, height, width):
    """Normalized boxes clipped to [0, 1] and scaled to an image of height x width,
    with their pixel areas (the fork's OutputBBox without a resize_param, and
    with a WARP one)."""
    out = np.clip(boxes, f32(0), f32(1)) * np.array([width, height, width, height], f32)
    out = out.astype(f32)
    return out, box_sizes(out, normalized=not (width > 1 or height > 1))


def detected_images(detections):
    """The images a detection output names (column 0 not -1), in increasing order."""
    return sorted({int(i) for i in detections[:, 0] if int(i) != -1})


def mark_detections(detections, ground_truth, num_classes, background, threshold,
                    evaluate_difficult, image_sizes=None):
    """DetectionEvaluate's rows: (K, 5) float32 of (image, label, score, tp, fp).

    detections (N, 7): image, label, score, xmin, ymin, xmax, ymax (rows whose
    image is -1 skipped, label -1 marks "nothing found"); ground_truth (M, 8):
    image, label, instance, xmin, ymin, xmax, ymax, difficult (reading stops at
    the first image -1). First one row (-1, c, positives of c, -1, -1) per class c
    but the background; then per image and label in increasing order, that
    image's detections by decreasing score: a detection whose best IoU with a
    ground-truth box of its class reaches ``threshold`` takes that box (tp) unless
    an earlier one took it (fp); difficult boxes, unless evaluated, mark it neither.
    ``image_sizes`` {image: (height, width)} scores in pixels instead (the fork's
    name_size_file). Rows left over (image -1 with a label) stay zero, as in the fork.
    """
    num_valid = int(np.sum(detections[:, 1] != -1))
    num_pos_classes = num_classes if background == -1 else num_classes - 1
    out = np.zeros((num_pos_classes + num_valid, 5), f32)
    truth = {}                                     # image -> label -> [rows]
    for row in ground_truth:
        if int(row[0]) == -1:
            break
        truth.setdefault(int(row[0]), {}).setdefault(int(row[1]), []).append(row)
    found = {}
    for row in detections:
        if int(row[0]) != -1:
            found.setdefault(int(row[0]), {}).setdefault(int(row[1]), []).append(row)
    positives = {}
    for labels in truth.values():
        for label, rows in labels.items():
            count = sum(1 for r in rows if evaluate_difficult or not r[7])
            positives[label] = positives.get(label, 0) + count
    k = 0
    for c in range(num_classes):
        if c != background:
            out[k] = (-1, c, positives.get(c, 0), -1, -1)
            k += 1
    for image in sorted(found):
        for label in sorted(found[image]):
            if label == -1:
                continue
            dets = np.array(found[image][label], f32)
            dets = dets[np.argsort(-dets[:, 2], kind="stable")]
            rows = out[k:k + len(dets)]
            rows[:, 0], rows[:, 1], rows[:, 2] = image, label, dets[:, 2]
            k += len(dets)
            gts = truth.get(image, {}).get(label)
            if gts is None:
                rows[:, 4] = 1
                continue
            gts = np.array(gts, f32)
            boxes, gt_boxes = dets[:, 3:7], gts[:, 3:7]
            normalized = image_sizes is None
            if normalized:
                sizes, gt_sizes = box_sizes(boxes), box_sizes(gt_boxes)
            else:
                height, width = image_sizes[image]
                boxes, sizes = to_pixels(boxes, height, width)
                gt_boxes, gt_sizes = to_pixels(gt_boxes, height, width)
            taken = np.zeros(len(gts), bool)
            for i in range(len(dets)):
                iou = overlaps(boxes[i], sizes[i], gt_boxes, gt_sizes, normalized)
                best = int(np.argmax(iou))         # the first of equal maxima
                if iou[best] < f32(threshold):
                    rows[i, 4] = 1
                elif evaluate_difficult or not gts[best, 7]:
                    if taken[best]:
                        rows[i, 4] = 1
                    else:
                        rows[i, 3] = 1
                        taken[best] = True
    return out


def average_precision(scores, true_pos, num_pos, ap_version="Integral"):
    """AP of one class from its detections' scores and marks (1 tp, 0 fp), given
    its number of ground-truth boxes; 0 without detections or positives.

    Detections are ranked by decreasing score (ties keep their order). "11point"
    (VOC2007): the mean over recall r = 0, 0.1, ..., 1 of the best precision at a
    recall >= r. "MaxIntegral" (VOC2012, ILSVRC): the area under the precision
    envelope. "Integral": the sum of precision x recall step at each true positive.
    """
    if ap_version not in AP_VERSIONS:
        raise ValueError(f"ap_version must be one of {', '.join(AP_VERSIONS)}, "
                         f"got {ap_version!r}")
    scores = np.asarray(scores, f32)
    marks = np.asarray(true_pos).astype(np.int64)
    if len(marks) == 0 or num_pos == 0:
        return f32(0)
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(marks[order])
    fp = np.cumsum(1 - marks[order])
    if tp[-1] > num_pos:
        raise ValueError(f"{tp[-1]} true positives but only {num_pos} positives")
    prec = tp.astype(f32) / (tp + fp).astype(f32)
    rec = tp.astype(f32) / f32(num_pos)
    ap = f32(0)
    if ap_version == "11point":
        best_after = np.maximum.accumulate(prec[::-1])[::-1]   # max of prec[i:]
        for j in range(10, -1, -1):
            reached = np.nonzero(rec.astype(np.float64) >= j / 10.0)[0]
            best = best_after[reached[0]] if len(reached) else f32(0)
            ap = f32(ap + f32(best / f32(11)))
    elif ap_version == "MaxIntegral":
        cur_rec, cur_prec = rec[-1], prec[-1]
        for i in range(len(rec) - 2, -1, -1):
            cur_prec = max(prec[i], cur_prec)
            step = abs(f32(cur_rec - rec[i]))
            if step > AP_EPS:
                ap = f32(ap + f32(cur_prec * step))
            cur_rec = rec[i]
        ap = f32(ap + f32(cur_rec * cur_prec))
    else:
        prev = f32(0)
        for i in range(len(rec)):
            step = abs(f32(rec[i] - prev))
            if step > AP_EPS:
                ap = f32(ap + f32(prec[i] * step))
            prev = rec[i]
    return ap


def mean_average_precision(results, ap_version="Integral"):
    """(mAP, {label: AP}) over DetectionEvaluate outputs (any number of (K, 5)
    arrays, e.g. one per test batch), as the fork's solver scores a test run:
    positives summed per label; rows marked neither tp nor fp skipped; the mean
    is over every label with a positives row, a label without detections
    counting 0."""
    num_pos, marks = {}, {}
    for result in results:
        for row in np.asarray(result, f32).reshape(-1, 5):
            label = int(row[1])
            if int(row[0]) == -1:
                num_pos[label] = num_pos.get(label, 0) + int(row[2])
            elif int(row[3]) or int(row[4]):
                marks.setdefault(label, []).append((row[2], int(row[3])))
    aps = {}
    total = f32(0)
    for label in sorted(num_pos):
        if label not in marks:
            continue
        scores, tps = zip(*marks[label])
        aps[label] = average_precision(scores, tps, num_pos[label], ap_version)
        total = f32(total + aps[label])
    return (f32(total / f32(len(num_pos))) if num_pos else f32(0)), aps
