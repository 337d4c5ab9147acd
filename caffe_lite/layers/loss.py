"""The LossLayer base with the label and normalisation rules every loss shares,
and the softmax-based losses: SoftmaxWithLoss, InfogainLoss. The other losses
live in loss_more.py.

As in Caffe, a loss top is a scalar, the default loss_weight is 1, backward reads
its scale from top[0].diff (where the net stores the loss weight) and labels
never get a gradient.
"""
from __future__ import annotations

import os

import numpy as np

from ..proto import caffe_pb2
from .base import Layer, register_layer
from .shape import AxisMixin
from .softmax import outer_inner, rounded, softmax_forward

FLT_MIN = float(np.finfo(np.float32).tiny)
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


class ProbabilityLossLayer(LossLayer):
    """What SoftmaxWithLoss and InfogainLoss share: the softmax of the scores in
    self.prob (outer, C, inner), one class label per outer*inner position, the
    normaliser, and an optional second top holding the probabilities."""
    exact_num_top = None
    min_top, max_top = 1, 2

    def reshape_scores(self, bottom, top, axis, axis_name):
        super().reshape(bottom, top)
        self.dims = self.label_dims(bottom, axis, axis_name)
        self.prob = workspace(self.prob, self.dims, self.dtype)
        if len(top) > 1:
            top[1].reshape(bottom[0].shape)

    def start_forward(self, bottom):
        """The softmax of the scores into self.prob; returns the (outer, inner)
        labels and their valid mask."""
        outer, channels, inner = self.dims
        softmax_forward(bottom[0].data.reshape(self.dims), self.prob)
        return self.class_labels(bottom[1].data.reshape(outer, inner), channels,
                                 self.ignore_label)

    def finish_forward(self, top, loss, labels, valid):
        """Keep labels, valid and the normaliser for backward; write the loss
        and the probabilities top."""
        outer, _, inner = self.dims
        self.labels, self.valid = labels, valid
        self.normalizer = get_normalizer(self.normalization, outer, inner,
                                         int(valid.sum()))
        self.set_loss(top, loss, self.normalizer)
        if len(top) > 1:
            np.copyto(top[1].data, self.prob.reshape(top[1].shape))


@register_layer("SoftmaxWithLoss")
class SoftmaxWithLossLayer(ProbabilityLossLayer):
    """Scores (outer, C, inner) around softmax_param axis (1) and labels of count
    outer*inner -> -sum log(max(p[label], FLT_MIN)) / normaliser. loss_param:
    ignore_label, normalization (VALID) or the legacy normalize (true = VALID,
    false = BATCH_SIZE). An optional second top holds the probabilities (Caffe 9b89154
    rejects it; we allow it, with loss weight 0 unless loss_weight says otherwise;
    as in InfogainLoss, its diff is ignored in backward)."""

    def layer_setup(self, bottom, top):
        lp = self.param.loss_param
        self.ignore_label = ignore_label_of(self.param)
        self.prob = None
        if not lp.HasField("normalization") and lp.HasField("normalize"):
            self.normalization = NORMALIZATION.VALID if lp.normalize else NORMALIZATION.BATCH_SIZE
        else:
            self.normalization = lp.normalization

    def reshape(self, bottom, top):
        self.reshape_scores(bottom, top, self.param.softmax_param.axis, "softmax axis")

    def forward(self, bottom, top):
        labels, valid = self.start_forward(bottom)
        p = np.take_along_axis(self.prob, labels[:, None, :], 1)[:, 0, :]
        loss = -running_total(rounded(np.log, np.maximum(p[valid],
                                                        self.dtype.type(FLT_MIN))))
        self.finish_forward(top, loss, labels, valid)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff.reshape(self.dims)
        np.copyto(dx, self.prob)
        index = self.labels[:, None, :]
        picked = np.take_along_axis(dx, index, 1) - self.valid[:, None, :]
        np.put_along_axis(dx, index, picked, 1)
        np.copyto(dx, 0, where=~self.valid[:, None, :])
        dx *= self.loss_scale(top, self.normalizer)


def _read_infogain_matrix(layer, path):
    """H from a BlobProto file; a relative path is tried from the working
    directory (as Caffe does), then from the net file's directory."""
    candidates = [path]
    if not os.path.isabs(path) and layer.net_file:
        candidates.append(os.path.join(os.path.dirname(os.fspath(layer.net_file)), path))
    for candidate in candidates:
        if os.path.exists(candidate):
            from ..formats.caffemodel import read_blobproto
            return np.asarray(read_blobproto(candidate), layer.dtype)
    raise layer.error(f"infogain_loss_param source '{path}' not found (tried "
                      f"{', '.join(map(repr, candidates))})")


@register_layer("InfogainLoss")
class InfogainLossLayer(ProbabilityLossLayer):
    """Softmax along infogain_loss_param axis (1), then
    -sum_l H[label, l] log(max(p_l, 1e-20)) / normaliser, with H (C, C) from the
    third bottom or from infogain_loss_param source. loss_param ignore_label,
    normalization (VALID). Optional second top: the probabilities."""
    exact_num_bottom = None
    min_bottom, max_bottom = 2, 3

    def layer_setup(self, bottom, top):
        lp = self.param.loss_param
        if lp.HasField("normalize"):
            raise self.error("loss_param normalize is deprecated and not accepted "
                             "here: use normalization")
        self.normalization = lp.normalization
        self.ignore_label = ignore_label_of(self.param)
        self.prob = self.file_h = None
        if len(bottom) < 3:
            source = self.param.infogain_loss_param.source
            if not source:
                raise self.error("needs the matrix H: give infogain_loss_param source "
                                 "or a third bottom")
            self.file_h = _read_infogain_matrix(self, source)

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    def reshape(self, bottom, top):
        self.reshape_scores(bottom, top, self.param.infogain_loss_param.axis, "axis")
        channels = self.dims[1]
        h_count = bottom[2].count if len(bottom) > 2 else self.file_h.size
        if h_count != channels * channels:
            raise self.error(f"H has {h_count} values, expected {channels}x{channels}",
                             blob=self.bottom_name(2) if len(bottom) > 2 else None)

    def matrix(self, bottom):
        """H (C, C): the third bottom, or the matrix read from the source file."""
        channels = self.dims[1]
        h = bottom[2].data if len(bottom) > 2 else self.file_h
        return h.reshape(channels, channels)

    def forward(self, bottom, top):
        labels, valid = self.start_forward(bottom)
        h = self.matrix(bottom)
        log_p = rounded(np.log, np.maximum(self.prob, self.dtype.type(LOG_THRESHOLD)))
        terms = h[labels] * log_p.transpose(0, 2, 1)              # (outer, inner, C)
        loss = -running_total(terms[valid])
        self.finish_forward(top, loss, labels, valid)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        h = self.matrix(bottom)
        row_sums = np.add.accumulate(h, axis=1)[:, -1]           # Caffe's order
        dx = bottom[0].diff.reshape(self.dims)
        np.multiply(self.prob, row_sums[self.labels][:, None, :], out=dx)
        dx -= h[self.labels].transpose(0, 2, 1)                    # (outer, C, inner)
        np.copyto(dx, 0, where=~self.valid[:, None, :])
        dx *= self.loss_scale(top, self.normalizer)
