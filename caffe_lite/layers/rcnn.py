"""The Faster R-CNN fork's layers (rbgirshick/caffe-fast-rcnn): ROIPooling,
SmoothL1Loss with sigma and inside/outside weights, and Proposal, the C++ form of
py-faster-rcnn's ``rpn.proposal_layer.ProposalLayer`` (net/passes.py swaps that
Python layer for this one). The numerics are in ops/roi.py and ops/rpn.py.
"""
import numpy as np

from ..ops.roi import roi_pool_backward, roi_pool_forward, smooth_l1
from ..ops.rpn import propose
from .base import Layer, register_layer
from .loss import LossLayer


@register_layer("ROIPooling")
class ROIPoolingLayer(Layer):
    """data (N, C, H, W), rois (R, 5) rows (batch, x1, y1, x2, y2) in image pixels
    -> (R, C, PH, PW), the max over each bin. roi_pooling_param: pooled_h, pooled_w,
    spatial_scale (image -> map). Backward sends each top diff to the winning
    element; the rois get none."""
    exact_num_bottom = 2
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.roi_pooling_param
        if p.pooled_h <= 0 or p.pooled_w <= 0:
            raise self.error("roi_pooling_param pooled_h and pooled_w must be > 0")
        self.pooled_h, self.pooled_w = int(p.pooled_h), int(p.pooled_w)
        self.spatial_scale = float(p.spatial_scale)

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4 or bottom[1].count_range(1) != 5:
            raise self.error(f"needs data (N, C, H, W) and rois (R, 5), got "
                             f"{bottom[0].shape} and {bottom[1].shape}")
        top[0].reshape((bottom[1].shape[0], bottom[0].channels, self.pooled_h,
                        self.pooled_w))

    def forward(self, bottom, top):
        rois = bottom[1].data.reshape(-1, 5)
        batch = rois[:, 0].astype(np.int64)
        if np.any((batch < 0) | (batch >= bottom[0].num)):
            raise self.error(f"roi batch index out of range [0, {bottom[0].num})",
                             blob=self.param.bottom[1])
        top[0].data[...], self.argmax = roi_pool_forward(
            bottom[0].data, rois, self.spatial_scale, self.pooled_h, self.pooled_w)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = roi_pool_backward(
                top[0].diff, self.argmax, bottom[1].data.reshape(-1, 5), bottom[0].shape)
        if propagate_down[1]:
            bottom[1].diff[...] = 0


@register_layer("SmoothL1Loss")
class SmoothL1LossLayer(LossLayer):
    """pred, target (same shape) [, inside_w, outside_w] -> with
    d = inside_w * (pred - target): sum(outside_w * f(d)) / N, N the first axis,
    f(d) = 0.5 sigma^2 d^2 if |d| < 1/sigma^2 else |d| - 0.5/sigma^2
    (smooth_l1_loss_param sigma, 1). The R-CNN fork's layer; the sum is of
    absolute values, as the fork's asum. pred and target both get a gradient."""
    exact_num_bottom = None
    min_bottom = 2
    max_bottom = 4

    def layer_setup(self, bottom, top):
        if len(bottom) == 3:
            raise self.error("takes 2 bottoms, or 4 (with inside and outside weights)")
        sigma = self.dtype.type(self.param.smooth_l1_loss_param.sigma)
        self.sigma2 = sigma * sigma

    def allow_force_backward(self, bottom_index):
        return bottom_index < 2

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        for i, b in enumerate(bottom[1:], 1):
            if b.count != bottom[0].count:
                raise self.error(f"bottom {i} has {b.count} elements, pred has "
                                 f"{bottom[0].count}", blob=self.param.bottom[i])

    def forward(self, bottom, top):
        diff = bottom[0].data - bottom[1].data.reshape(bottom[0].shape)
        if len(bottom) == 4:
            diff *= bottom[2].data.reshape(diff.shape)
        errors, self.slope = smooth_l1(diff, self.sigma2)
        if len(bottom) == 4:
            errors *= bottom[3].data.reshape(diff.shape)
        self.set_loss(top, np.sum(np.abs(errors)), bottom[0].num)

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1), (1, -1)):
            if not propagate_down[i]:
                continue
            grad = self.slope * (sign * self.loss_scale(top, bottom[i].num))
            if len(bottom) == 4:
                grad *= bottom[2].data.reshape(grad.shape)
                grad *= bottom[3].data.reshape(grad.shape)
            bottom[i].diff[...] = grad.reshape(bottom[i].shape)


@register_layer("Proposal")
class ProposalLayer(Layer):
    """RPN scores (1, 2A, H, W) (background then foreground per anchor),
    box deltas (1, 4A, H, W), im_info (1, 3) = (height, width, scale) -> rois
    (R, 5) rows (0, x1, y1, x2, y2) [, scores (R, 1)].

    proposal_param: feat_stride (16), base_size (16), min_size (16, times the image
    scale), ratio (0.5 1 2), scale (8 16 32), pre_nms_topn (6000), post_nms_topn
    (300), nms_thresh (0.7). py-faster-rcnn's test-time steps: anchors on every
    cell, decode, clip to the image, drop small boxes, sort by score, top N, greedy
    NMS, top N. No backward."""
    exact_num_bottom = 3
    min_top = 1
    max_top = 2
    has_backward = False

    def layer_setup(self, bottom, top):
        p = self.param.proposal_param
        self.feat_stride = int(p.feat_stride)
        self.base_size = int(p.base_size)
        self.min_size = float(p.min_size)
        self.ratios = list(p.ratio) or [0.5, 1.0, 2.0]
        self.scales = list(p.scale) or [8.0, 16.0, 32.0]
        self.pre_nms_topn, self.post_nms_topn = int(p.pre_nms_topn), int(p.post_nms_topn)
        self.nms_thresh = float(p.nms_thresh)
        if bottom[0].num != 1:
            raise self.error("only one image per batch is supported (as in "
                             "py-faster-rcnn)", blob=self.param.bottom[0])

    def allow_force_backward(self, bottom_index):
        return False

    def reshape(self, bottom, top):
        top[0].reshape((1, 5))
        if len(top) > 1:
            top[1].reshape((1, 1))

    def forward(self, bottom, top):
        num_anchors = len(self.ratios) * len(self.scales)
        if bottom[0].channels != 2 * num_anchors or bottom[1].channels != 4 * num_anchors:
            raise self.error(f"{num_anchors} anchors need {2 * num_anchors} score and "
                             f"{4 * num_anchors} delta channels, got {bottom[0].shape} "
                             f"and {bottom[1].shape}")
        boxes, scores = propose(
            bottom[0].data[0, num_anchors:], bottom[1].data[0],
            bottom[2].data.reshape(-1)[:3], feat_stride=self.feat_stride,
            base_size=self.base_size, ratios=self.ratios, scales=self.scales,
            min_size=self.min_size, pre_nms_topn=self.pre_nms_topn,
            post_nms_topn=self.post_nms_topn, nms_thresh=self.nms_thresh)
        top[0].reshape((len(boxes), 5))
        top[0].data[:, 0] = 0
        top[0].data[:, 1:] = boxes
        if len(top) > 1:
            top[1].reshape((len(scores), 1))
            top[1].data[:, 0] = scores

