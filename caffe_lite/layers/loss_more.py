"""Losses without an internal softmax: MultinomialLogisticLoss (on probabilities),
SigmoidCrossEntropyLoss, EuclideanLoss, HingeLoss, ContrastiveLoss."""
import numpy as np

from ..proto import caffe_pb2
from .base import register_layer
from .loss import (LOG_THRESHOLD, NORMALIZATION, LossLayer, get_normalizer,
                   ignore_label_of, running_total)
from .softmax import rounded


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


@register_layer("EuclideanLoss")
class EuclideanLossLayer(LossLayer):
    """a, b of equal count per item -> sum((a - b)^2) / (2 N). Both bottoms get a
    gradient (either may be the target)."""

    def allow_force_backward(self, bottom_index):
        return True

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count_range(1) != bottom[1].count_range(1):
            raise self.error(f"inputs {bottom[0].shape} and {bottom[1].shape} must have "
                             f"the same size per item", blob=self.bottom_name(1))

    def forward(self, bottom, top):
        self.delta = bottom[0].data - bottom[1].data.reshape(bottom[0].shape)
        flat = self.delta.reshape(-1)
        t = self.dtype.type
        self.set_loss(top, t(np.dot(flat, flat)) / t(bottom[0].num), 2)

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                alpha = sign * self.loss_scale(top, bottom[i].num)
                np.multiply(self.delta.reshape(bottom[i].shape), alpha,
                            out=bottom[i].diff)


@register_layer("HingeLoss")
class HingeLossLayer(LossLayer):
    """Scores (N, D) (trailing axes flattened), labels (N,) -> with
    m = max(0, 1 - y x) where y = +1 for the true class and -1 otherwise:
    L1 sum(m) / N, L2 sum(m^2) / N (hinge_loss_param norm, default L1)."""

    def layer_setup(self, bottom, top):
        self.norm = self.param.hinge_loss_param.norm
        if self.norm not in (caffe_pb2.HingeLossParameter.L1,
                             caffe_pb2.HingeLossParameter.L2):
            raise self.error(f"unknown hinge_loss_param norm {self.norm}")

    def _signed_margins(self, bottom):
        """(margins with the true class entry negated, rows, labels)."""
        num = bottom[0].num
        x = bottom[0].data.reshape(num, -1)
        labels, _ = self.class_labels(bottom[1].data.reshape(-1)[:num], x.shape[1])
        rows = np.arange(num)
        signed = x.copy()
        signed[rows, labels] *= -1
        return np.maximum(0, 1 + signed), rows, labels

    def forward(self, bottom, top):
        margins, _, _ = self._signed_margins(bottom)
        flat = margins.reshape(-1)
        total = np.sum(flat) if self.norm == caffe_pb2.HingeLossParameter.L1 else \
            np.dot(flat, flat)
        self.set_loss(top, total, bottom[0].num)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        margins, rows, labels = self._signed_margins(bottom)
        margins[rows, labels] *= -1
        dx = bottom[0].diff.reshape(margins.shape)
        num = bottom[0].num
        if self.norm == caffe_pb2.HingeLossParameter.L1:
            np.multiply(np.sign(margins), self.loss_scale(top, num), out=dx)
        else:
            np.multiply(margins, self.loss_scale(top) * 2 / self.dtype.type(num),
                        out=dx)


@register_layer("ContrastiveLoss")
class ContrastiveLossLayer(LossLayer):
    """Feature pairs a, b (N, C, 1, 1) and a similarity label (N, 1, 1, 1)
    (non-zero = similar) -> sum over pairs of d^2 (similar) or
    max(margin - d, 0)^2 (dissimilar; legacy_version: max(margin - d^2, 0)),
    divided by 2N. contrastive_loss_param margin (1), legacy_version (false)."""
    exact_num_bottom = 3

    def layer_setup(self, bottom, top):
        cp = self.param.contrastive_loss_param
        self.margin = self.dtype.type(cp.margin)
        self.legacy = cp.legacy_version
        a, b, sim = bottom
        if a.channels != b.channels or (a.height, a.width, b.height, b.width) != \
                (1, 1, 1, 1) or (sim.channels, sim.height, sim.width) != (1, 1, 1):
            raise self.error(f"needs features (N, C, 1, 1) twice and labels "
                             f"(N, 1, 1, 1); got {a.shape}, {b.shape}, {sim.shape}")

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def forward(self, bottom, top):
        num = bottom[0].num
        self.delta = (bottom[0].data - bottom[1].data.reshape(bottom[0].shape)
                      ).reshape(num, -1)
        self.dist_sq = np.einsum("nc,nc->n", self.delta, self.delta)
        self.similar = bottom[2].data.reshape(-1)[:num].astype(np.intp) != 0
        if self.legacy:
            apart = np.maximum(self.margin - self.dist_sq, 0)
        else:
            apart = np.maximum(self.margin - np.sqrt(self.dist_sq), 0) ** 2
        loss = running_total(np.where(self.similar, self.dist_sq, apart))
        t = self.dtype.type
        self.set_loss(top, t(loss) / t(num), 2)

    def backward(self, top, propagate_down, bottom):
        if self.legacy:
            mdist = self.margin - self.dist_sq
        else:
            dist = np.sqrt(self.dist_sq)
            mdist = self.margin - dist
        for i, sign in ((0, 1), (1, -1)):
            if not propagate_down[i]:
                continue
            alpha = sign * self.loss_scale(top, bottom[i].num)
            beta = -alpha if self.legacy else \
                -alpha * mdist / (dist + self.dtype.type(1e-4))
            factor = np.where(self.similar, alpha, np.where(mdist > 0, beta, 0))
            np.multiply(self.delta, factor.astype(self.dtype)[:, None],
                        out=bottom[i].diff.reshape(self.delta.shape))
