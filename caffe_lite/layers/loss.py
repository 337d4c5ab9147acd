"""The LossLayer base: the rules every loss shares, and nothing else.

Label checks (count and one label per prediction), ignore_label, the
normalisation modes of loss_param (FULL, VALID, BATCH_SIZE, NONE) and Caffe's
order of summation. The losses themselves are grouped by idea:
``likelihood_loss.py`` (negative log-likelihood of probabilities: softmax,
infogain, multinomial logistic, sigmoid cross-entropy) and ``distance_loss.py``
(distances and margins: Euclidean, Hinge, Contrastive); Accuracy reuses the
label rules in ``accuracy.py``.

As in Caffe, a loss top is a scalar, the default loss_weight is 1, backward reads
its scale from top[0].diff (where the net stores the loss weight) and labels
never get a gradient.
"""
from __future__ import annotations

import numpy as np

from ..proto import caffe_pb2
from .base import Layer
from .shape import AxisMixin
from .softmax import outer_inner

LOG_THRESHOLD = 1e-20            # Caffe's kLOG_THRESHOLD
NORMALIZATION = caffe_pb2.LossParameter


class LossLayer(AxisMixin, Layer):
    """Two bottoms (predictions, targets) with equal first dims -> a scalar top."""
    is_loss = True
    exact_num_bottom: int | None = 2
    exact_num_top: int | None = 1
    auto_top_blobs = True       # a loss layer without a top still counts (Caffe)

    def reshape(self, bottom, top):
        if bottom[0].num_axes == 0 or bottom[1].num_axes == 0 or \
                bottom[0].shape[0] != bottom[1].shape[0]:
            raise self.error(f"predictions {bottom[0].shape} and targets "
                             f"{bottom[1].shape} must have the same first dimension",
                             blob=self.bottom_name(1))
        top[0].reshape(())

    def loss_scale(self, top, normalizer=1):
        """The gradient scale: top[0]'s diff (the loss weight) / normalizer."""
        t = self.dtype.type
        return t(top[0].diff.flat[0]) / t(normalizer)

    def set_loss(self, top, loss, normalizer=1):
        t = self.dtype.type
        top[0].data[...] = t(loss) / t(normalizer)

    def label_dims(self, bottom, axis, axis_name="axis"):
        """(outer, C, inner) of the scores bottom[0] around ``axis``, checking that
        bottom[1] holds one label per outer*inner position."""
        axis = self.canonical_axis(bottom[0], axis, "axis", self.bottom_name(0))
        dims = outer, _, inner = outer_inner(bottom[0], axis)
        if bottom[1].count != outer * inner:
            raise self.error(f"{bottom[1].count} labels for {outer * inner} predictions "
                             f"(scores {bottom[0].shape}, {axis_name} {axis})",
                             blob=self.bottom_name(1))
        return dims

    def class_labels(self, values, num_classes, ignore_label=None, index=1):
        """Float labels -> (int labels, valid mask); truncated like a C++ int cast.
        Ignored positions get label 0 and valid False; other labels must lie in
        [0, num_classes)."""
        valid = np.ones(values.shape, bool) if ignore_label is None else \
            np.trunc(values) != ignore_label
        in_range = (values >= 0) & (values < num_classes)
        bad = valid & ~in_range
        if bad.any():
            raise self.error(f"label {values[bad][0]:g} is out of range [0, "
                             f"{num_classes})" + ("" if ignore_label is None else
                                                  f" and is not ignore_label "
                                                  f"{ignore_label}"),
                             blob=self.bottom_name(index))
        labels = np.where(valid & in_range, values, 0).astype(np.intp)
        return labels, valid


def running_total(terms):
    """Sum in order with one rounding per addition, as Caffe's scalar loss loops
    do (this reproduces Caffe's float32 losses bit for bit)."""
    flat = np.ravel(terms)
    return flat.dtype.type(0) if flat.size == 0 else np.add.accumulate(flat)[-1]


def get_normalizer(mode, outer, inner, valid_count):
    """Caffe's loss normaliser, never below 1 (an all-ignored batch gives loss 0)."""
    value = {NORMALIZATION.FULL: outer * inner, NORMALIZATION.VALID: valid_count,
             NORMALIZATION.BATCH_SIZE: outer, NORMALIZATION.NONE: 1}[mode]
    return max(1, value)


def workspace(array, shape, dtype):
    """``array`` when it already has this shape, else a new one (no fresh
    allocation, and so no page faults, on every pass)."""
    if array is None or array.shape != tuple(shape) or array.dtype != dtype:
        array = np.empty(shape, dtype)
    return array


def ignore_label_of(param):
    lp = param.loss_param
    return lp.ignore_label if lp.HasField("ignore_label") else None
