"""DetectionEvaluate (SSD fork, weiliu89/caffe branch ssd): marks each detection of a
test batch a true or false positive, for the solver (eval_type "detection") to
turn into mAP. The marking is ops/detection_eval.py."""
import numpy as np

from ..data.files import find_file
from ..ops.detection_eval import detected_images, mark_detections
from ..proto import caffe_pb2
from .base import Layer, register_layer

RESIZE = caffe_pb2.ResizeParameter


@register_layer("DetectionEvaluate")
class DetectionEvaluateLayer(Layer):
    """Bottoms: detections (1, 1, N, 7) as DetectionOutput makes them, ground truth
    (1, 1, M, 8) as AnnotatedData makes it (image, label, instance, xmin, ymin,
    xmax, ymax, difficult). Top (1, 1, C' + D, 5): one (-1, class, positives, -1,
    -1) row per class but the background, then one (image, label, score, tp, fp)
    row per detection. detection_evaluate_param: num_classes (required),
    background_label_id (0), overlap_threshold (0.5), evaluate_difficult_gt (true),
    name_size_file (lines "name height width", one per test image in order:
    IoU then in those pixels, the images taken in turn and again from the first
    after the last), resize_param (WARP, or FIT_SMALL_SIZE without scales).
    """
    exact_num_bottom = 2
    exact_num_top = 1
    has_backward = False

    def layer_setup(self, bottom, top):
        p = self.param.detection_evaluate_param
        if not p.HasField("num_classes") or p.num_classes < 1:
            raise self.error("detection_evaluate_param needs num_classes")
        self.num_classes = int(p.num_classes)
        self.background = int(p.background_label_id)
        self.threshold = p.overlap_threshold
        if not self.threshold > 0:
            raise self.error(f"overlap_threshold must be positive, got {self.threshold}")
        self.evaluate_difficult = p.evaluate_difficult_gt
        self.sizes = []
        if p.HasField("name_size_file"):
            self.sizes = self._read_sizes(find_file(p.name_size_file, self.net_file))
        self.count = 0
        if p.HasField("resize_param"):
            r = p.resize_param
            scaled = r.resize_mode == RESIZE.FIT_SMALL_SIZE and r.height_scale and r.width_scale
            if r.resize_mode == RESIZE.FIT_LARGE_SIZE_AND_PAD or scaled:
                raise self.error("resize_param: only WARP and FIT_SMALL_SIZE without "
                                 "height_scale/width_scale are supported")

    def _read_sizes(self, path):
        try:
            with open(path) as f:
                words = f.read().split()
        except OSError as exc:
            raise self.error(f"cannot read name_size_file {path}: {exc.strerror}") from None
        sizes = []
        for i in range(0, len(words) - 2, 3):           # stops at the first bad triple
            try:
                sizes.append((int(words[i + 1]), int(words[i + 2])))
            except ValueError:
                break
        if not sizes:
            raise self.error(f"name_size_file {path} has no 'name height width' line")
        return sizes

    def reshape(self, bottom, top):
        for i, (width, what) in enumerate(((7, "detections"), (8, "ground truth"))):
            shape = bottom[i].shape
            if len(shape) != 4 or shape[:2] != (1, 1) or shape[3] != width:
                raise self.error(f"the {what} must be (1, 1, rows, {width}), got {shape}",
                                 blob=self.param.bottom[i])
        num_pos_classes = self.num_classes - (self.background != -1)
        valid = int(np.sum(bottom[0].data[0, 0, :, 1] != -1))
        top[0].reshape(1, 1, num_pos_classes + valid, 5)

    def forward(self, bottom, top):
        det = bottom[0].data[0, 0]
        gt = bottom[1].data[0, 0]
        det_used = det[:, 0] != -1
        gt_used = np.cumprod(gt[:, 0] != -1).astype(bool)    # the fork stops at the first -1
        for i, (rows, used, what) in enumerate(((det, det_used, "detection"),
                                                 (gt, gt_used, "ground truth"))):
            if np.any(rows[used, 1].astype(np.int64) == self.background):
                raise self.error(f"a {what} row has the background label "
                                 f"{self.background}", blob=self.param.bottom[i])
        image_sizes = None
        if self.sizes:
            images = detected_images(det)
            n = len(self.sizes)
            image_sizes = {image: self.sizes[(self.count + k) % n]
                           for k, image in enumerate(images)}
            self.count = (self.count + len(images)) % n
        out = mark_detections(det, gt, self.num_classes, self.background, self.threshold,
                              self.evaluate_difficult, image_sizes)
        top[0].reshape(1, 1, len(out), 5)
        top[0].data[0, 0] = out
