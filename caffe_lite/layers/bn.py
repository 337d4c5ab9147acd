"""The forks' "BN" layer: batch normalisation with its own affine part, in the two
parameter layouts that share the type name (semantics: conformance/README-forks.md).

- SegNet / ENet / DeconvNet: 2 blobs, scale and shift (1, C, 1, 1). bn_mode LEARN
  always normalises with the batch statistics (eps 1e-9, no running averages, any
  phase); INFERENCE is just scale * x + shift (statistics folded in offline).
- PSPNet: 4 blobs, slope, bias, running mean, running variance (1, C, 1, 1). TEST
  phase or ``frozen`` use the running statistics; TRAIN uses the batch ones and updates
  the running ones with ``momentum``. The statistics get lr_mult 0 (all four if frozen).

The layout comes from the blobs stored in the layer (2 or 4), else from which bn_param
fields are set, else from the number of ``param`` specs (4 means PSPNet).
"""
import numpy as np

from ..fillers import fill
from ..proto import caffe_pb2
from .base import Layer, register_layer

B = caffe_pb2.BNParameter
SEGNET_EPS = 1e-9
_PSP_FIELDS = ("slope_filler", "bias_filler", "momentum", "eps", "frozen")
_SEGNET_FIELDS = ("scale_filler", "shift_filler", "bn_mode")


def _sum_nhw(a, spatial_scale=1, batch_scale=1):
    """(N, C, L) -> (1, C, 1, 1): scaled spatial sums, then their scaled sum over the
    batch -- the order of the forks' two gemv calls (scales 1/L, 1/N give the mean)."""
    t = a.dtype.type
    per_image = a.sum(axis=2) * t(spatial_scale)
    return (per_image.sum(axis=0) * t(batch_scale)).reshape(1, -1, 1, 1)


def _mean_nhw(a):
    return _sum_nhw(a, 1.0 / a.shape[2], 1.0 / a.shape[0])


@register_layer("BN")
class BNLayer(Layer):
    """Bottom (N, C, H, W); top 0 the same shape. SegNet LEARN may add tops 1 and 2:
    the batch mean and the batch variance (without eps), (1, C, 1, 1) each."""
    exact_num_bottom = 1
    min_top = 1
    max_top = 3
    allows_in_place = True

    def layer_setup(self, bottom, top):
        x = bottom[0]
        if x.num_axes != 4:
            raise self.error(f"input must have 4 axes (N, C, H, W), got {x.shape}")
        p = self.param.bn_param
        self.pspnet = self._is_pspnet(p)
        shape = (1, x.shape[1], 1, 1)
        if self.pspnet:
            if len(top) > 1:
                raise self.error("the PSPNet BN layout has one top")
            self.frozen, self.momentum, self.eps = p.frozen, p.momentum, p.eps
            fillers = (p.slope_filler, p.bias_filler)
            self._freeze_param_specs()
        else:
            self.inference = p.bn_mode == B.INFERENCE
            fillers = (p.scale_filler, p.shift_filler)
        self.blobs = [self.make_blob(shape) for _ in range(4 if self.pspnet else 2)]
        for blob, filler in zip(self.blobs, fillers):
            fill(blob, filler)
        self.param_propagate_down = [True] * len(self.blobs)
        if self.pspnet and self.frozen:
            self.blobs[3].data[...] = 1

    def _is_pspnet(self, p):
        if len(self.param.blobs) in (2, 4):
            return len(self.param.blobs) == 4
        psp = [f for f in _PSP_FIELDS if p.HasField(f)]
        seg = [f for f in _SEGNET_FIELDS if p.HasField(f)]
        if psp and seg:
            raise self.error(f"bn_param mixes the PSPNet fields {psp} with the SegNet "
                             f"fields {seg}")
        return bool(psp) or (not seg and len(self.param.param) == 4)

    def _freeze_param_specs(self):
        """As PSPNet does: the running statistics (and everything if frozen) get lr 0."""
        specs = self.param.param
        while len(specs) < 4:
            specs.add()
        for i in range(4) if self.frozen else (2, 3):
            specs[i].lr_mult = 0
            specs[i].decay_mult = 0

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.num_axes != 4 or x.shape[1] != self.blobs[0].shape[1]:
            raise self.error(f"input shape {x.shape} does not match the layer's "
                             f"{self.blobs[0].shape[1]} channels")
        top[0].reshape(x.shape)
        for blob in top[1:]:
            blob.reshape(self.blobs[0].shape)

    # -- forward -------------------------------------------------------------
    def forward(self, bottom, top):
        x = bottom[0].data
        N, C = x.shape[:2]
        self.x = None
        scale, shift = self.blobs[0].data, self.blobs[1].data
        if not self.pspnet and self.inference:
            # scale's gradient needs x; in place the fork reads the blob, which then
            # holds y. We keep a copy when training; in TEST (inference nets, where a
            # copy per layer would double the memory) we read the blob as the fork does.
            if bottom[0] is top[0] and self.phase == caffe_pb2.TRAIN:
                self.x = x.copy()
            top[0].data[...] = scale * x + shift
            return
        flat = x.reshape(N, C, -1)
        t = x.dtype.type
        if self.pspnet:
            mean, var = self._pspnet_statistics(flat)
            self.inv_std = (var + t(self.eps)) ** t(-0.5)
            x_norm = (x - mean) * self.inv_std
            self.x_norm = None if self.frozen else x_norm   # frozen: backward needs none
            top[0].data[...] = scale * x_norm + shift
            return
        mean = _mean_nhw(flat)                   # E[x], E[x^2] - E[x]^2, as the fork
        var = _mean_nhw(flat * flat) - mean * mean
        for blob, stat in zip(top[1:], (mean, var)):
            blob.data[...] = stat
        self.std = np.sqrt(var + t(SEGNET_EPS))
        self.x_norm = (x - mean) / self.std
        top[0].data[...] = scale * self.x_norm + shift

    def _use_global_stats(self):
        return self.frozen or self.phase == caffe_pb2.TEST

    def _pspnet_statistics(self, flat):
        """Running statistics, or batch ones folded into the running averages."""
        if self._use_global_stats():
            return self.blobs[2].data, self.blobs[3].data
        t = flat.dtype.type
        mean = _mean_nhw(flat)
        centered = flat - mean.reshape(1, -1, 1)
        var = _mean_nhw(centered * centered)                         # biased
        m = t(self.momentum)
        for blob, stat in ((self.blobs[2], mean), (self.blobs[3], var)):
            blob.data[...] = (t(1) - m) * stat + m * blob.data
        return mean, var

    # -- backward (param diffs accumulate, per our contract) -------------------
    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        N, C = dy.shape[:2]
        dy_flat = dy.reshape(N, C, -1)
        frozen = self.pspnet and self.frozen
        if not frozen:
            # The SegNet fork overwrites these diffs; accumulating gives the same value
            # after the solver clears them, and stays right with iter_size > 1.
            if not self.pspnet and self.inference:
                x = self.x if self.x is not None else bottom[0].data
                wrt_scale = dy * x
            else:
                wrt_scale = dy * self.x_norm
            if self.param_propagate_down[0]:
                self.blobs[0].diff[...] += _sum_nhw(wrt_scale.reshape(N, C, -1))
            if self.param_propagate_down[1]:
                self.blobs[1].diff[...] += _sum_nhw(dy_flat)
        if not propagate_down[0]:
            return
        scale = self.blobs[0].data
        if not self.pspnet and self.inference:
            bottom[0].diff[...] = scale * dy
        elif self.pspnet and self._use_global_stats():
            # Fixed statistics: the exact adjoint. (PSPNet's non-frozen TEST backward
            # applies the batch formula to them; nobody relies on that.)
            bottom[0].diff[...] = dy * (scale * self.inv_std)
        else:
            bottom[0].diff[...] = self._batch_backward(dy, scale)

    def _batch_backward(self, dy, scale):
        """dx = (g - mean(g) - x_norm * mean(g * x_norm)) / std with g = scale * dy."""
        t = dy.dtype.type
        N, C, H, W = dy.shape
        g = scale * dy
        g_flat = g.reshape(N, C, -1)
        sum_gx = _sum_nhw((g * self.x_norm).reshape(N, C, -1))
        dx = g + t(-1.0 / (N * H * W)) * (self.x_norm * sum_gx + _sum_nhw(g_flat))
        return dx * self.inv_std if self.pspnet else dx / self.std
