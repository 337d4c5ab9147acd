"""The segmentation forks' metrics over per-pixel scores: SegAccuracy (DeepLab:
pixel accuracy, mean class accuracy, mean IoU, from a confusion matrix) and
EltwiseAccuracy (DeconvNet: pixel accuracy). Both take scores (N, C, H, W) and a
label map (N, 1, H, W); pixels whose label is an ignore_label are not counted.
ParseNet's pair (weiliu89/caffe branch fcn): ParseOutput turns scores into a
label map, ParseEvaluate counts per label what a solver with eval_type
"segmentation" turns into accuracies and IoU. No backward, as in the forks.
"""
import numpy as np

from .base import Layer, register_layer


class _PixelMetric(Layer):
    exact_num_bottom = 2
    has_backward = False

    def allow_force_backward(self, bottom_index):
        return False

    def check_shapes(self, bottom):
        score, label = bottom[0].shape, bottom[1].shape
        if len(score) != 4 or label != (score[0], 1) + score[2:]:
            raise self.error(f"needs scores (N, C, H, W) and labels (N, 1, H, W), got "
                             f"{score} and {label}")

    def predictions(self, bottom, ignore):
        """(predicted class, label) of the counted pixels, both int64 1-D."""
        pred = bottom[0].data.argmax(axis=1).reshape(-1)
        label = bottom[1].data.reshape(-1).astype(np.int64)
        keep = ~np.isin(label, list(ignore))
        return pred[keep], label[keep]


@register_layer("SegAccuracy")
class SegAccuracyLayer(_PixelMetric):
    """seg_accuracy_param {ignore_label (repeated), reset (true)}. Top 0 (1, 1, 1, 3):
    [pixel accuracy, mean class accuracy, mean IoU] over the classes that occur
    (in the labels or the predictions); an optional top 1 (C,) holds each class's
    IoU (0 where a class never occurs). With reset false the confusion matrix
    accumulates over forwards, as the fork's does. Labels >= C are an error."""
    min_top = 1
    max_top = 2

    def layer_setup(self, bottom, top):
        p = self.param.seg_accuracy_param
        self.ignore, self.reset = set(p.ignore_label), p.reset
        self.confusion = None

    def reshape(self, bottom, top):
        self.check_shapes(bottom)
        top[0].reshape(1, 1, 1, 3)
        if len(top) > 1:
            top[1].reshape(bottom[0].shape[1])

    def forward(self, bottom, top):
        C = bottom[0].shape[1]
        pred, label = self.predictions(bottom, self.ignore)
        if label.size and (label.min() < 0 or label.max() >= C):
            raise self.error(f"labels must lie in [0, {C}) or be ignored, got "
                             f"{label.min()}..{label.max()}", blob=self.param.bottom[1])
        if self.reset or self.confusion is None or len(self.confusion) != C:
            self.confusion = np.zeros((C, C), np.int64)
        self.confusion += np.bincount(label * C + pred, minlength=C * C).reshape(C, C)
        m = self.confusion                                    # rows: truth, cols: prediction
        hit = np.diag(m).astype(np.float64)
        truth, predicted = m.sum(axis=1), m.sum(axis=0)
        union = truth + predicted - hit
        present = union > 0
        iou = np.where(present, hit / np.maximum(union, 1), 0.0)
        seen = truth > 0
        pixel = hit.sum() / max(m.sum(), 1)
        per_class = (hit[seen] / truth[seen]).mean() if seen.any() else 0.0
        mean_iou = iou[present].mean() if present.any() else 0.0
        top[0].data[...] = np.array([pixel, per_class, mean_iou]).reshape(1, 1, 1, 3)
        if len(top) > 1:
            top[1].data[...] = iou


@register_layer("EltwiseAccuracy")
class EltwiseAccuracyLayer(_PixelMetric):
    """eltwise_accuracy_param {ignore_label, top_k (1)}: the fraction of counted
    pixels whose label is among the top_k scores; a scalar top."""
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.eltwise_accuracy_param
        self.ignore = {p.ignore_label} if p.HasField("ignore_label") else set()
        self.top_k = p.top_k

    def reshape(self, bottom, top):
        self.check_shapes(bottom)
        top[0].reshape(())

    def forward(self, bottom, top):
        scores = bottom[0].data
        label = bottom[1].data[:, 0].astype(np.int64)            # (N, H, W)
        keep = ~np.isin(label, list(self.ignore))
        safe = np.clip(label, 0, scores.shape[1] - 1)
        own = np.take_along_axis(scores, safe[:, None], axis=1)[:, 0]   # (N, H, W)
        higher = (scores > own[:, None]).sum(axis=1)              # rank of the true class
        correct = (higher < self.top_k) & keep
        top[0].data[...] = correct.sum() / max(int(keep.sum()), 1)


@register_layer("ParseOutput")
class ParseOutputLayer(Layer):
    """Scores (N, C, H, W) -> top 0: the label of the highest score per pixel (N,
    1, H, W), the first of equal maxima; optional top 1: that score."""
    exact_num_bottom = 1
    min_top = 1
    max_top = 2
    has_backward = False

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"needs scores (N, C, H, W), got {bottom[0].shape}")
        N, _, H, W = bottom[0].shape
        for blob in top:
            blob.reshape(N, 1, H, W)

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[:, 0] = x.argmax(axis=1)
        if len(top) > 1:
            top[1].data[:, 0] = x.max(axis=1)


@register_layer("ParseEvaluate")
class ParseEvaluateLayer(Layer):
    """Predicted labels (N, 1, H, W) and ground truth (N, 1, H', W'), as many
    pixels -> (1, num_labels, 1, 3): per label, the pixels predicted right, the
    pixels it labels and the pixels predicted as it. Ground-truth pixels with an
    ignore_label are not counted. parse_evaluate_param: num_labels (required),
    ignore_label (repeated)."""
    exact_num_bottom = 2
    exact_num_top = 1
    has_backward = False

    def allow_force_backward(self, bottom_index):
        return False

    def layer_setup(self, bottom, top):
        p = self.param.parse_evaluate_param
        if not p.HasField("num_labels") or p.num_labels < 1:
            raise self.error("parse_evaluate_param needs num_labels")
        self.num_labels = int(p.num_labels)
        self.ignore = set(p.ignore_label)

    def reshape(self, bottom, top):
        pred, gt = bottom[0].shape, bottom[1].shape
        if len(pred) != 4 or len(gt) != 4 or pred[0] != gt[0] or pred[1] != 1 or \
                gt[1] != 1 or pred[2] != gt[2] or bottom[0].count != bottom[1].count:
            raise self.error(f"needs predicted labels (N, 1, H, W) and ground truth of "
                             f"as many pixels, got {pred} and {gt}")
        top[0].reshape(1, self.num_labels, 1, 3)

    def forward(self, bottom, top):
        pred = bottom[0].data.reshape(-1).astype(np.int64)       # C++ int truncation
        gt = bottom[1].data.reshape(-1).astype(np.int64)
        if pred.size and (pred.min() < 0 or pred.max() >= self.num_labels):
            raise self.error(f"predicted labels must lie in [0, {self.num_labels}), got "
                             f"{pred.min()}..{pred.max()}", blob=self.param.bottom[0])
        keep = ~np.isin(gt, list(self.ignore))
        pred, gt = pred[keep], gt[keep]
        if gt.size and (gt.min() < 0 or gt.max() >= self.num_labels):
            raise self.error(f"ground-truth labels must lie in [0, {self.num_labels}) "
                             f"or be ignored, got {gt.min()}..{gt.max()}",
                             blob=self.param.bottom[1])
        out = top[0].data.reshape(self.num_labels, 3)
        out[:, 0] = np.bincount(gt[gt == pred], minlength=self.num_labels)
        out[:, 1] = np.bincount(gt, minlength=self.num_labels)
        out[:, 2] = np.bincount(pred, minlength=self.num_labels)
