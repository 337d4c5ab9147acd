"""SSD's annotated records (weiliu89/caffe, branch ssd): an AnnotatedDatum is an
image with boxes, and training augments both together. This module decodes the
records and does the geometric part as the fork does: batch samplers choose a
crop (sampler scale/aspect, sample_constraint on IoU or coverage, max_sample,
max_trials), expand_param zooms out onto a mean-filled canvas, and every box
follows the image (projected, clipped, dropped by emit_constraint, mirrored).

Boxes are float32 arrays (k, 7): group_label, instance_id, xmin, ymin, xmax,
ymax, difficult, normalized to the image, in the record's group order.
"""
import numpy as np

from ..errors import CaffeLiteError
from ..proto import caffe_pb2
from .datum import datum_to_chw

f32 = np.float32
EMIT = caffe_pb2.EmitConstraint
UNIT = np.array([0, 0, 1, 1], f32)


def read_annotated(value, mode, name):
    """Serialized AnnotatedDatum -> (uint8 image (H, W, C), boxes (k, 7), its
    label, whether it has an annotation type)."""
    try:
        record = caffe_pb2.AnnotatedDatum.FromString(value)
    except Exception as exc:                          # protobuf's DecodeError
        raise CaffeLiteError(f"{name} is not an AnnotatedDatum ({exc})") from None
    image = datum_to_chw(record.datum, mode, name)
    if image.dtype != np.uint8:
        raise CaffeLiteError(f"{name} holds float data; annotated records are images "
                             f"(uint8 or encoded)")
    rows = [(g.group_label, a.instance_id, a.bbox.xmin, a.bbox.ymin, a.bbox.xmax,
             a.bbox.ymax, a.bbox.difficult)
            for g in record.annotation_group for a in g.annotation]
    boxes = np.array(rows, f32).reshape(-1, 7)
    return (np.ascontiguousarray(image.transpose(1, 2, 0)), boxes, record.datum.label,
            record.HasField("type"))


def make_annotated(image, boxes, encoded=None):
    """An AnnotatedDatum (type BBOX) from a uint8 (H, W, C) image (BGR) and rows
    (label, xmin, ymin, xmax, ymax[, difficult]) normalized to it; boxes of one
    label form one group, groups in increasing label. ``encoded`` bytes (PNG, JPEG)
    are stored instead of the raw pixels when given."""
    record = caffe_pb2.AnnotatedDatum()
    record.type = caffe_pb2.AnnotatedDatum.BBOX
    datum = record.datum
    datum.height, datum.width, datum.channels = image.shape
    if encoded is not None:
        datum.data, datum.encoded = encoded, True
    else:
        datum.data = np.ascontiguousarray(image.transpose(2, 0, 1)).tobytes()
    groups = {}
    for row in boxes:
        groups.setdefault(int(row[0]), []).append(row)
    for label in sorted(groups):
        group = record.annotation_group.add()
        group.group_label = label
        for instance, row in enumerate(groups[label]):
            a = group.annotation.add()
            a.instance_id = instance
            a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax = (float(v) for v in row[1:5])
            a.bbox.difficult = bool(row[5]) if len(row) > 5 else False
    return record


# -- box geometry (normalized, float32 as the fork's NormalizedBBox) -------------

def box_size(b):
    """Area, 0 for an inverted box."""
    if b[2] < b[0] or b[3] < b[1]:
        return f32(0)
    return f32((b[2] - b[0]) * (b[3] - b[1]))


def intersection(a, b):
    """The common box, (0, 0, 0, 0) when they do not meet."""
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return np.zeros(4, f32)
    return np.array([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]),
                     min(a[3], b[3])], f32)


def jaccard(a, b):
    inter = intersection(a, b)
    w, h = inter[2] - inter[0], inter[3] - inter[1]
    if w <= 0 or h <= 0:
        return f32(0)
    size = f32(w * h)
    return f32(size / (box_size(a) + box_size(b) - size))


def coverage(a, b):
    """How much of ``a`` lies in ``b``."""
    inter = box_size(intersection(a, b))
    return f32(inter / box_size(a)) if inter > 0 else f32(0)


def clip_box(b):
    return np.clip(np.asarray(b, f32), f32(0), f32(1))


def satisfies(sample, objects, c):
    """The fork's SatisfySampleConstraint: true without constraints; otherwise
    true when some object passes the first kind of constraint given (jaccard
    overlap, else sample coverage, else object coverage). The fork's loop checks
    the later kinds too, but a pass of the first already decides its answer."""
    for kind, measure in (("jaccard_overlap", lambda o: jaccard(sample, o)),
                          ("sample_coverage", lambda o: coverage(sample, o)),
                          ("object_coverage", lambda o: coverage(o, sample))):
        low, high = c.HasField("min_" + kind), c.HasField("max_" + kind)
        if not (low or high):
            continue
        for obj in objects:
            value = measure(obj)
            if not ((low and value < getattr(c, "min_" + kind))
                    or (high and value > getattr(c, "max_" + kind))):
                return True
        return False
    return True


def sample_box(sampler, rng):
    """A random box of scale and aspect ratio in the sampler's ranges, inside the
    unit square (the aspect ratio kept where the box can fit)."""
    scale = f32(rng.uniform(sampler.min_scale, sampler.max_scale))
    ratio = f32(rng.uniform(sampler.min_aspect_ratio, sampler.max_aspect_ratio))
    ratio = min(max(ratio, f32(scale ** 2)), f32(1 / scale ** 2))
    w, h = f32(scale * np.sqrt(ratio)), f32(scale / np.sqrt(ratio))
    # max(0, .): float rounding can make a full-width box a hair wider than 1
    x, y = f32(rng.uniform(0, max(0, 1 - w))), f32(rng.uniform(0, max(0, 1 - h)))
    return np.array([x, y, x + w, y + h], f32)


def check_sampler(s):
    """The fork's CHECKs on a Sampler, as a message (None when fine)."""
    if not 0 < s.min_scale <= s.max_scale <= 1:
        return f"sampler scales must satisfy 0 < min_scale <= max_scale <= 1, got " \
               f"{s.min_scale:g}, {s.max_scale:g}"
    if not 0 < s.min_aspect_ratio <= s.max_aspect_ratio:
        return f"sampler aspect ratios must satisfy 0 < min <= max, got " \
               f"{s.min_aspect_ratio:g}, {s.max_aspect_ratio:g}"
    return None


def batch_samples(boxes, batch_samplers, rng):
    """The fork's GenerateBatchSamples: every sampler (use_original_image) draws
    up to max_trials boxes, keeping those that meet its constraint, at most
    max_sample of them."""
    objects = boxes[:, 2:6]
    found_all = []
    for bs in batch_samplers:
        if not bs.use_original_image:
            continue
        found = 0
        for _ in range(bs.max_trials):
            if bs.HasField("max_sample") and found >= bs.max_sample:
                break
            box = sample_box(bs.sampler, rng)          # inside the unit square
            if satisfies(box, objects, bs.sample_constraint):
                found += 1
                found_all.append(box)
    return found_all


def project_boxes(boxes, crop, mirror=False, emit=None):
    """The fork's TransformAnnotation: boxes in the coordinates of ``crop`` (a box
    of the image), clipped; those outside it, or failing ``emit`` (an
    EmitConstraint: CENTER inside the crop, or MIN_OVERLAP coverage), dropped."""
    crop = np.asarray(crop, f32)
    cw, ch = f32(crop[2] - crop[0]), f32(crop[3] - crop[1])
    kept = []
    for row in boxes:
        b = row[2:6]
        if emit is not None:
            if emit.emit_type == EMIT.CENTER:
                cx, cy = (b[0] + b[2]) / f32(2), (b[1] + b[3]) / f32(2)
                if not (crop[0] <= cx <= crop[2] and crop[1] <= cy <= crop[3]):
                    continue
            elif not coverage(b, crop) > emit.emit_overlap:
                continue
        if b[0] >= crop[2] or b[2] <= crop[0] or b[1] >= crop[3] or b[3] <= crop[1]:
            continue
        p = clip_box([(b[0] - crop[0]) / cw, (b[1] - crop[1]) / ch,
                      (b[2] - crop[0]) / cw, (b[3] - crop[1]) / ch])
        if box_size(p) <= 0:
            continue
        if mirror:
            p[0], p[2] = f32(1) - p[2], f32(1) - p[0]
        out = row.copy()
        out[2:6] = p
        kept.append(out)
    return np.array(kept, f32).reshape(-1, 7)


def crop_image(image, box):
    """The pixels of a normalized box (clipped), offsets and sizes truncated as
    the fork's CropImage."""
    H, W = image.shape[:2]
    b = clip_box(box) * np.array([W, H, W, H], f32)
    x, y = int(b[0]), int(b[1])
    w, h = int(f32(b[2] - b[0])), int(f32(b[3] - b[1]))
    return image[y:y + h, x:x + w]


def expand_image(image, ratio, fill, rng):
    """The image at a random place on a canvas ``ratio`` times larger filled with
    ``fill`` (per channel); returns (canvas, the canvas as a box of the image)."""
    H, W, C = image.shape
    height, width = int(H * f32(ratio)), int(W * f32(ratio))
    y = int(np.floor(f32(rng.uniform(0, height - H))))
    x = int(np.floor(f32(rng.uniform(0, width - W))))
    canvas = np.empty((height, width, C), np.uint8)
    canvas[...] = np.clip(np.rint(np.broadcast_to(np.asarray(fill, f32), (C,))), 0, 255)
    canvas[y:y + H, x:x + W] = image
    box = np.array([-x / W, -y / H, (width - x) / W, (height - y) / H], f32)
    return canvas, box


def label_rows(per_item):
    """AnnotatedData's label top: (1, 1, K, 8) rows (item, group_label,
    instance_id, xmin, ymin, xmax, ymax, difficult) from each item's boxes; one
    row of -1 when the batch has none."""
    rows = [np.concatenate([np.full((len(b), 1), i, f32), b], axis=1)
            for i, b in enumerate(per_item) if len(b)]
    if not rows:
        return np.full((1, 1, 1, 8), -1, f32)
    return np.concatenate(rows)[None, None]
