"""SSD's detection layers (weiliu89/caffe, branch ssd): PriorBox makes the default
boxes of one feature map, DetectionOutput decodes the predictions against them and keeps
the best boxes per class by NMS. Neither has a gradient. The numerics are in
ops/boxes.py; semantics in tests/data/conformance/detection/README.md.
"""
import numpy as np

from ..ops.boxes import decode_boxes, nms_fast, prior_aspect_ratios, prior_boxes, prior_half_sizes
from .base import Layer, register_layer


@register_layer("PriorBox")
class PriorBoxLayer(Layer):
    """prior_box_param: min_size (repeated, required), max_size (one per min_size, each
    > its min_size), aspect_ratio (repeated), flip (true), clip (false), variance (none:
    0.1; one value; or four), img_size | img_h + img_w (default: bottom[1]'s H, W),
    step | step_h + step_w (default: image size / feature size), offset (0.5).

    Bottoms: the feature map (N, C, H, W) and the image (N, 3, IH, IW); only their H, W
    are read. Top (1, 2, H*W*A*4): row 0 the boxes (xmin, ymin, xmax, ymax) / image
    size, cells in raster order with A boxes each; row 1 the variances per box.
    Centre of cell (h, w) = ((w + offset) step_w, (h + offset) step_h); the box sizes
    come from int(min_size), sqrt(int(min) int(max)) and min * (sqrt r, 1 / sqrt r).
    """
    exact_num_bottom = 2
    exact_num_top = 1
    has_backward = False

    def layer_setup(self, bottom, top):
        p = self.param.prior_box_param
        min_sizes, max_sizes = list(p.min_size), list(p.max_size)
        if not min_sizes or min(min_sizes) <= 0:
            raise self.error("prior_box_param needs min_size, every one positive")
        if max_sizes and len(max_sizes) != len(min_sizes):
            raise self.error(f"give one max_size per min_size ({len(min_sizes)}), got "
                             f"{len(max_sizes)}")
        if any(mx <= mn for mn, mx in zip(min_sizes, max_sizes)):
            raise self.error("every max_size must be greater than its min_size")
        if any(not r > 0 for r in p.aspect_ratio):
            raise self.error(f"every aspect_ratio must be positive, got "
                             f"{list(p.aspect_ratio)}")
        ratios = prior_aspect_ratios(p.aspect_ratio, p.flip)
        self.half_sizes = prior_half_sizes(min_sizes, max_sizes, ratios)
        self.num_priors = len(self.half_sizes)
        self.clip = p.clip
        variance = list(p.variance) or [0.1]
        if len(variance) not in (1, 4) or min(variance) <= 0:
            raise self.error(f"variance must be 1 or 4 positive values, got {variance}")
        self.variance = np.array(variance * (4 // len(variance)), np.float32)
        self.img_hw = self._pair(p, "img_size", "img_h", "img_w")
        self.step_hw = self._pair(p, "step", "step_h", "step_w")
        self.offset = p.offset

    def _pair(self, p, one, h, w):
        """(h, w) from ``one`` or from both ``h`` and ``w``; None when not given."""
        if p.HasField(one):
            if p.HasField(h) or p.HasField(w):
                raise self.error(f"give {one}, or {h} and {w}, not both forms")
            return getattr(p, one), getattr(p, one)
        if p.HasField(h) or p.HasField(w):
            if not (p.HasField(h) and p.HasField(w)):
                raise self.error(f"give both {h} and {w}")
            return getattr(p, h), getattr(p, w)
        return None

    def reshape(self, bottom, top):
        for i, what in enumerate(("feature map", "image")):
            if bottom[i].num_axes != 4:
                raise self.error(f"the {what} must have 4 axes (N, C, H, W), got "
                                 f"{bottom[i].shape}")
        H, W = bottom[0].shape[2:]
        top[0].reshape(1, 2, H * W * self.num_priors * 4)

    def forward(self, bottom, top):
        H, W = bottom[0].shape[2:]
        img_hw = self.img_hw or bottom[1].shape[2:]
        step_hw = self.step_hw or (np.float32(img_hw[0]) / np.float32(H),
                                   np.float32(img_hw[1]) / np.float32(W))
        boxes = prior_boxes((H, W), img_hw, step_hw, self.offset, self.half_sizes, self.clip)
        out = top[0].data.reshape(2, -1, 4)
        out[0] = boxes
        out[1] = self.variance


@register_layer("DetectionOutput")
class DetectionOutputLayer(Layer):
    """detection_output_param: num_classes (C, required), share_location (true),
    background_label_id (0; -1 for none), code_type (CORNER | CENTER_SIZE |
    CORNER_SIZE), variance_encoded_in_target (false), confidence_threshold (none),
    nms_param {nms_threshold (0.3), top_k (none), eta (1)}, keep_top_k (-1: all).
    save_output_param, visualize and save_file are accepted and ignored (no files).

    Bottoms: loc (N, P*L*4) with L = 1 if share_location else C, conf (N, P*C)
    probabilities, prior (1, 2, P*4) from PriorBox. Top (1, 1, K, 7), one row (image,
    label, score, xmin, ymin, xmax, ymax) per kept box: per image and non-background
    class, NMS over the decoded boxes scoring above the threshold; keep_top_k keeps the
    best scores of an image over all classes. Rows by image, then label, then NMS order.
    Nothing kept anywhere: (1, 1, N, 7) of -1 with the image index in column 0.
    """
    exact_num_bottom = 3
    exact_num_top = 1
    has_backward = False

    def layer_setup(self, bottom, top):
        p = self.param.detection_output_param
        if not p.HasField("num_classes") or p.num_classes < 1:
            raise self.error("detection_output_param needs num_classes")
        self.num_classes = p.num_classes
        self.share_location = p.share_location
        self.num_loc_classes = 1 if self.share_location else self.num_classes
        self.background = p.background_label_id
        if self.share_location and self.background == -1:
            # the fork stores shared boxes under label -1 and then skips them as background
            raise self.error("share_location with background_label_id -1 finds no "
                             "location predictions in the fork (it aborts)")
        self.code_type = p.code_type
        self.variance_encoded = p.variance_encoded_in_target
        self.keep_top_k = p.keep_top_k
        self.threshold = (p.confidence_threshold if p.HasField("confidence_threshold")
                          else -np.finfo(np.float32).max)
        nms = p.nms_param
        self.nms_threshold, self.eta = nms.nms_threshold, nms.eta
        self.top_k = nms.top_k if nms.HasField("top_k") else -1
        if self.nms_threshold < 0:
            raise self.error(f"nms_threshold must be >= 0, got {self.nms_threshold}")
        if not 0 < self.eta <= 1:
            raise self.error(f"eta must be in (0, 1], got {self.eta}")

    def reshape(self, bottom, top):
        loc, conf, prior = bottom
        if loc.legacy_shape(0) != conf.legacy_shape(0):            # the fork's num()
            raise self.error(f"loc has {loc.legacy_shape(0)} images but conf "
                             f"{conf.legacy_shape(0)}")
        if prior.num_axes != 3 or prior.shape[1] != 2 or prior.shape[2] % 4:
            raise self.error(f"prior must be (1, 2, P*4) as PriorBox makes it, got "
                             f"{prior.shape}")
        self.num_priors = prior.shape[2] // 4
        P, N = self.num_priors, loc.legacy_shape(0)
        if loc.count != N * P * self.num_loc_classes * 4:
            raise self.error(f"loc {loc.shape} must hold {P} priors x "
                             f"{self.num_loc_classes} location class(es) x 4 per image")
        if conf.count != N * P * self.num_classes:
            raise self.error(f"conf {conf.shape} must hold {P} priors x "
                             f"{self.num_classes} classes per image")
        top[0].reshape(1, 1, 1, 7)

    def forward(self, bottom, top):
        N, P, C = bottom[0].legacy_shape(0), self.num_priors, self.num_classes
        loc = bottom[0].data.reshape(N, P, self.num_loc_classes, 4).transpose(0, 2, 1, 3)
        conf = bottom[1].data.reshape(N, P, C)
        prior = bottom[2].data.reshape(2, P, 4)
        boxes = decode_boxes(prior[0], prior[1], loc, self.code_type,
                             self.variance_encoded)                         # (N, L, P, 4)
        rows = []
        for n in range(N):
            kept = self._image_detections(boxes[n], conf[n])
            for label, indices in sorted(kept.items()):
                b = boxes[n, 0 if self.share_location else label, indices]  # (k, 4)
                block = np.empty((len(indices), 7), np.float32)
                block[:, 0], block[:, 1] = n, label
                block[:, 2] = conf[n, indices, label]
                block[:, 3:] = b
                rows.append(block)
        if rows:
            out = np.concatenate(rows)
        else:
            out = np.full((N, 7), -1, np.float32)
            out[:, 0] = np.arange(N)
        top[0].reshape(1, 1, len(out), 7)
        top[0].data[0, 0] = out

    def _image_detections(self, boxes, scores):
        """{label: kept prior indices in NMS order} for one image; boxes (L, P, 4),
        scores (P, C)."""
        kept = {}
        for c in range(self.num_classes):
            if c == self.background:
                continue
            kept[c] = nms_fast(boxes[0 if self.share_location else c], scores[:, c],
                               self.threshold, self.nms_threshold, self.eta, self.top_k)
        total = sum(len(v) for v in kept.values())
        if -1 < self.keep_top_k < total:
            pairs = [(scores[i, c], c, i) for c, indices in kept.items() for i in indices]
            order = sorted(range(len(pairs)), key=lambda k: -pairs[k][0])[:self.keep_top_k]
            best = {}
            for k in order:
                best.setdefault(pairs[k][1], []).append(pairs[k][2])
            kept = best
        return {c: v for c, v in kept.items() if v}
