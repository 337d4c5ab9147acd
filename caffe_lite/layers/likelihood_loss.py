"""Losses that are the negative log-likelihood of the target under predicted
probabilities: SoftmaxWithLoss and InfogainLoss (softmax inside, sharing the
ProbabilityLossLayer base), MultinomialLogisticLoss (the probabilities are the
bottom) and SigmoidCrossEntropyLoss (a sigmoid per element, computed stably
from x). Grouped because each takes log p clipped as Caffe does and normalises
through the LossLayer rules (loss.py).
"""
import os

import numpy as np

from ..data.files import find_file, read_blob_file
from .base import register_layer
from .loss import (
    LOG_THRESHOLD,
    NORMALIZATION,
    LossLayer,
    get_normalizer,
    ignore_label_of,
    running_total,
    workspace,
)
from .softmax import rounded, softmax_forward

FLT_MIN = float(np.finfo(np.float32).tiny)


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
    """H from a BlobProto file, found as Caffe finds it: from the working
    directory, then (our addition) from the net file's directory."""
    found = find_file(path, layer.net_file)
    if not os.path.exists(found):
        raise layer.error(f"infogain_loss_param source '{path}' not found")
    return read_blob_file(found, layer.error, "infogain matrix").astype(layer.dtype)


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


@register_layer("MultinomialLogisticLoss")
class MultinomialLogisticLossLayer(LossLayer):
    """Probabilities (N, D) (any trailing shape, flattened) and labels (N,) ->
    -sum log(max(p[label], 1e-20)) / N."""

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        b = bottom[1]
        if (b.channels, b.height, b.width) != (1, 1, 1):
            raise self.error(f"labels must have shape (N,) or (N, 1, 1, 1), got "
                             f"{b.shape}", blob=self.bottom_name(1))

    def _picked(self, bottom):
        num = bottom[0].num
        x = bottom[0].data.reshape(num, -1)
        labels, _ = self.class_labels(bottom[1].data.reshape(num), x.shape[1])
        rows = np.arange(num)
        return rows, labels, np.maximum(x[rows, labels], self.dtype.type(LOG_THRESHOLD))

    def forward(self, bottom, top):
        _, _, p = self._picked(bottom)
        self.set_loss(top, -running_total(rounded(np.log, p)), bottom[0].num)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        rows, labels, p = self._picked(bottom)
        dx = bottom[0].diff.reshape(len(rows), -1)
        dx[...] = 0
        dx[rows, labels] = -self.loss_scale(top, bottom[0].num) / p


@register_layer("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(LossLayer):
    """Logits x and targets t in [0, 1] of equal count -> cross-entropy of
    sigmoid(x) against t (computed stably from x) / normaliser. loss_param:
    ignore_label (compared with int(t)), normalization (BATCH_SIZE unless given;
    legacy normalize true = VALID, false = BATCH_SIZE)."""

    def layer_setup(self, bottom, top):
        lp = self.param.loss_param
        self.ignore_label = ignore_label_of(self.param)
        if lp.HasField("normalization"):
            self.normalization = lp.normalization
        elif lp.HasField("normalize"):
            self.normalization = NORMALIZATION.VALID if lp.normalize else NORMALIZATION.BATCH_SIZE
        else:
            self.normalization = NORMALIZATION.BATCH_SIZE

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count != bottom[1].count:
            raise self.error(f"logits {bottom[0].shape} and targets {bottom[1].shape} "
                             f"must have the same count", blob=self.bottom_name(1))

    def _valid(self, target):
        if self.ignore_label is None:
            return None
        return np.trunc(target) != self.ignore_label

    def forward(self, bottom, top):
        x, t = bottom[0].data, bottom[1].data.reshape(bottom[0].shape)
        positive = (x >= 0).astype(x.dtype)
        # log(1 + exp(-|x|)) written as Caffe writes it
        one, two = x.dtype.type(1), x.dtype.type(2)
        softplus = rounded(np.log, one + rounded(np.exp, x - two * x * positive))
        terms = x * (t - positive) - softplus
        valid = self._valid(t)
        if valid is not None:
            terms = terms[valid]
        count = terms.size
        self.normalizer = get_normalizer(self.normalization, x.shape[0],
                                         bottom[0].count_range(1), count)
        self.set_loss(top, -running_total(terms), self.normalizer)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, t = bottom[0].data, bottom[1].data.reshape(bottom[0].shape)
        dx = bottom[0].diff
        # Caffe's sigmoid 0.5 tanh(0.5 x) + 0.5 is evaluated in double precision
        x64 = x.astype(np.float64)
        np.copyto(dx, 0.5 * np.tanh(0.5 * x64) + 0.5, casting="same_kind")
        dx -= t
        valid = self._valid(t)
        if valid is not None:
            np.copyto(dx, 0, where=~valid)
        dx *= self.loss_scale(top, self.normalizer)
