"""Losses on distances and margins, with no probabilities: EuclideanLoss (half
the squared distance between two bottoms), HingeLoss (L1/L2 margin of class
scores) and ContrastiveLoss (squared distance for similar pairs, a margin on the
distance for dissimilar ones). The shared label and normalisation rules are in
loss.py.
"""
import numpy as np

from ..proto import caffe_pb2
from .base import register_layer
from .loss import LossLayer, running_total


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
