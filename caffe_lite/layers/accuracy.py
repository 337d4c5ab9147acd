"""Accuracy: the fraction of items whose true class is among the top_k scores."""
import numpy as np

from .base import register_layer
from .loss import LossLayer


@register_layer("Accuracy")
class AccuracyLayer(LossLayer):
    """accuracy_param: top_k (1), axis (1), ignore_label. Scores (outer, C, inner)
    around axis, labels of count outer*inner -> a scalar; an optional second top
    (C,) holds the accuracy per true class (0 for classes never seen).

    An item is correct when fewer than top_k classes score >= its true class, so
    a tie counts against it. Not a loss (no loss weight) and no backward.
    """
    is_loss = False
    has_backward = False
    exact_num_top = None
    min_top, max_top = 1, 2

    def layer_setup(self, bottom, top):
        ap = self.param.accuracy_param
        self.top_k = ap.top_k
        self.ignore_label = ap.ignore_label if ap.HasField("ignore_label") else None

    def allow_force_backward(self, bottom_index):
        return False

    def reshape(self, bottom, top):
        if bottom[1].count == 0 or self.top_k > bottom[0].count // bottom[1].count:
            raise self.error(f"top_k {self.top_k} is more than the number of classes "
                             f"(scores {bottom[0].shape}, labels {bottom[1].shape})")
        self.dims = self.label_dims(bottom, self.param.accuracy_param.axis)
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((self.dims[1],))

    def forward(self, bottom, top):
        outer, channels, inner = self.dims
        scores = bottom[0].data.reshape(self.dims)
        labels, valid = self.class_labels(bottom[1].data.reshape(outer, inner),
                                          channels, self.ignore_label)
        true_score = np.take_along_axis(scores, labels[:, None, :], 1)   # (O, 1, I)
        # the true class itself is among those scoring >=, hence the <=
        correct = (scores >= true_score).sum(axis=1) <= self.top_k      # (O, I)
        count = int(valid.sum())
        hits = int((correct & valid).sum())
        t = top[0].dtype.type
        top[0].data[...] = 0 if count == 0 else t(hits) / t(count)
        if len(top) > 1:
            seen = np.bincount(labels[valid], minlength=channels)
            right = np.bincount(labels[valid & correct], minlength=channels)
            per_class = top[1].data
            per_class[...] = 0
            np.divide(right.astype(per_class.dtype), seen.astype(per_class.dtype),
                      out=per_class,
                      where=seen > 0)
