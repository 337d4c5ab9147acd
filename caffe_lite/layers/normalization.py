"""Normalization layers: LRN (across and within channels), MVN, BatchNorm and SSD's
Normalize (L2 norm with a learned scale).

Every step follows Caffe's float32 order of operations. LRN has no BLAS reduction,
so it reproduces Caffe bit for bit (its channel window slides as Caffe's running
sum). MVN and BatchNorm reduce with sums where Caffe calls gemv, whose summation
order is OpenBLAS's: they agree with Caffe to a few ulps.
"""
import numpy as np

from ..fillers import fill
from ..ops.libm import powf
from ..ops.lrn import channel_window_sums, lrn_across_forward  # noqa: F401 (tests)
from ..ops.pooling import ave_pool_backward, ave_pool_forward
from ..ops.winograd import fast_mode
from ..proto import caffe_pb2
from .base import Layer, register_layer, reused

_LRN = caffe_pb2.LRNParameter


@register_layer("LRN")
class LRNLayer(Layer):
    """lrn_param {local_size n (odd, default 5), alpha a, beta b, k, norm_region}.
    Bottom and top (N, C, H, W).
    ACROSS_CHANNELS: y = x (k + a/n sum_{n channels around c} x^2)^-b, zero padded.
    WITHIN_CHANNEL: y = x (1 + a avg_{n x n} x^2)^-b, k ignored; the average is an
    AVE pooling padded by (n - 1)/2, so it always divides by n^2 (Caffe's layers)."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p, t = self.param.lrn_param, self.dtype.type
        self.size = p.local_size
        if self.size % 2 != 1:
            raise self.error(f"local_size must be odd, got {self.size}")
        self.pre_pad = (self.size - 1) // 2
        self.alpha, self.beta, self.k = t(p.alpha), t(p.beta), t(p.k)
        self.across = p.norm_region == _LRN.ACROSS_CHANNELS

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"needs a 4-axis bottom (N, C, H, W), got shape "
                             f"{bottom[0].shape}", blob=self.param.bottom[0])
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.across:
            # scale kept for backward; its power too when training (else rebuilt there)
            self.scale = reused(getattr(self, "scale", None), x)
            self.scale_pow = reused(getattr(self, "scale_pow", None), x) \
                if self.phase == caffe_pb2.TRAIN else None
            lrn_across_forward(x, self.size, self.alpha, self.beta, self.k, top[0].data,
                               self.scale, self.scale_pow, fast=fast_mode())
        else:
            _, _, h, w = x.shape
            self.avg = ave_pool_forward(x * x, self.size, 1, self.pre_pad, (h, w))
            self.base = self.avg * self.alpha if self.alpha != 1 else self.avg.copy()
            self.base += 1
            self.power = powf(self.base, -self.beta)
            np.multiply(x, self.power, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, y, dy = bottom[0].data, top[0].data, top[0].diff
        if self.across:
            dx = self._across_backward(x, y, dy)
        else:
            # Caffe's chain: product <- power <- AVE pool <- square, then the split sum
            diff_scale = -self.beta * self.alpha
            d_avg = ((self.power / self.base) * diff_scale) * (dy * x)
            d_square = ave_pool_backward(d_avg, self.size, 1, self.pre_pad, x.shape)
            dx = dy * self.power + (2 * x) * d_square
        bottom[0].diff[...] = dx

    def _across_backward(self, x, y, dy):
        """dx = dy s^-b - (2 a b / n) x sum_{window} dy y / s, with the window sum
        slid over channels in Caffe's order (the mirror of the forward)."""
        if self.scale_pow is None:
            self.scale_pow = powf(self.scale, -self.beta)
        ratio = (dy * y) / self.scale                                 # (N, C, H, W)
        cache_ratio = self.dtype.type(2.0 * float(self.alpha) * float(self.beta)
                                      / self.size)
        dx = dy * self.scale_pow
        channels, pre = x.shape[1], self.pre_pad
        accum = np.zeros_like(ratio[:, 0])                            # (N, H, W)
        for j in range(min(pre, channels)):
            accum += ratio[:, j]
        for c in range(channels):
            if c + pre < channels:
                accum += ratio[:, c + pre]
            dx[:, c] += -cache_ratio * (x[:, c] * accum)
            if c - pre >= 0:
                accum -= ratio[:, c - pre]
        return dx


@register_layer("MVN")
class MVNLayer(Layer):
    """mvn_param {normalize_variance (default true), across_channels, eps 1e-9}.
    Per (n, c) plane, or per n across channels: y = x - mean, then / (std + eps)
    (eps added to the std, not the variance). Bottom up to 4 axes; the top takes
    the legacy 4-D shape (N, C, H, W), as in Caffe."""
    exact_num_bottom = 1
    exact_num_top = 1
    allows_in_place = True

    def layer_setup(self, bottom, top):
        p = self.param.mvn_param
        self.normalize_variance = p.normalize_variance
        self.across_channels = p.across_channels
        self.eps = self.dtype.type(p.eps)

    def reshape(self, bottom, top):
        b = bottom[0]
        if b.num_axes > 4:
            raise self.error(f"needs at most 4 axes, got shape {b.shape}",
                             blob=self.param.bottom[0])
        top[0].reshape(b.num, b.channels, b.height, b.width)

    def _rows(self, blob):
        """Rows normalized on their own: (N, C*H*W) or (N*C, H*W)."""
        rows = blob.num if self.across_channels else blob.num * blob.channels
        return rows, blob.count // rows

    def forward(self, bottom, top):
        rows, dim = self._rows(bottom[0])
        t = self.dtype.type
        x = bottom[0].data.reshape(rows, dim)
        y = x - x.sum(axis=1, keepdims=True) * t(1.0 / dim)           # (rows, dim)
        if self.normalize_variance:
            variance = np.square(y).sum(axis=1, keepdims=True) * t(1.0 / dim)
            self.std = np.power(variance, t(0.5)) + self.eps          # (rows, 1)
            y /= self.std
        top[0].data[...] = y.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        rows, dim = self._rows(bottom[0])
        t = self.dtype.type
        dy = top[0].diff.reshape(rows, dim)
        if self.normalize_variance:
            y = top[0].data.reshape(rows, dim)
            g = y * (y * dy).sum(axis=1, keepdims=True)
            g += dy.sum(axis=1, keepdims=True)
            dx = (dy + t(-1.0 / dim) * g) / self.std
        else:
            dx = dy - dy.sum(axis=1, keepdims=True) * t(1.0 / dim)
        bottom[0].diff[...] = dx.reshape(bottom[0].shape)


@register_layer("BatchNorm")
class BatchNormLayer(Layer):
    """batch_norm_param {use_global_stats (default: phase == TEST),
    moving_average_fraction f (0.999), eps (1e-5)}. Bottom (N, C, ...); blobs mean
    sum (C,), variance sum (C,), scale factor s (1,), never learned (lr_mult 0).
    Global stats: mean = blob0 / s, var = blob1 / s (0 when s == 0). Batch stats:
    mean and biased variance over all but axis 1, and the blobs become s f + 1,
    mean + f blob0, m/(m-1) var + f blob1 (m = count / C).
    y = (x - mean) / sqrt(var + eps); no affine part (a Scale layer follows)."""
    exact_num_bottom = 1
    exact_num_top = 1
    allows_in_place = True

    def layer_setup(self, bottom, top):
        p = self.param.batch_norm_param
        t = self.dtype.type
        self.fraction, self.eps = t(p.moving_average_fraction), t(p.eps)
        self.use_global_stats = p.use_global_stats if p.HasField("use_global_stats") \
            else self.phase == caffe_pb2.TEST
        if bottom[0].num_axes == 0:
            raise self.error("needs a bottom with axes, got a scalar",
                             blob=self.param.bottom[0])
        self.channels = 1 if bottom[0].num_axes == 1 else bottom[0].shape[1]
        self.blobs = [self.make_blob((self.channels,)), self.make_blob((self.channels,)),
                      self.make_blob((1,))]
        # statistics are not parameters: Caffe pins their lr_mult to 0
        for i in range(len(self.blobs)):
            if i == len(self.param.param):
                self.param.param.add().lr_mult = 0
            elif self.param.param[i].lr_mult != 0:
                raise self.error("cannot learn batch normalization statistics: "
                                 f"param {i} must have lr_mult 0")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) >= 2 and shape[1] != self.channels:
            raise self.error(f"was set up for {self.channels} channels, got shape "
                             f"{shape}", blob=self.param.bottom[0])
        top[0].reshape(shape)

    def global_statistics(self):
        """(mean, std) per channel from the stored sums, as a TEST forward uses them
        (net/fusion.py applies them in a compiled pass)."""
        t = self.dtype.type
        mean_sum, var_sum, factor = (b.data for b in self.blobs)
        scale = t(0) if factor[0] == 0 else t(1) / factor[0]
        return scale * mean_sum, np.sqrt(scale * var_sum + self.eps)

    def forward(self, bottom, top):
        t = self.dtype.type
        x = bottom[0].data
        n = x.shape[0]
        x = x.reshape(n, self.channels, -1)                             # (N, C, S)
        mean_sum, var_sum, factor = (b.data for b in self.blobs)
        if self.use_global_stats:
            mean, std = self.global_statistics()
            # straight into top (in place too): backward needs only std, not x_norm
            self.std = std[:, None]                                      # (C, 1)
            y = top[0].data.reshape(x.shape)
            np.subtract(x, mean[:, None], out=y)
            y /= self.std
            self.x_norm = None
            return
        else:
            inv = t(1.0 / (n * x.shape[2]))
            mean = (x.sum(axis=2) * inv).sum(axis=0)                    # (C,)
        y = x - mean[:, None]
        if not self.use_global_stats:
            var = (np.square(y).sum(axis=2) * inv).sum(axis=0)           # biased
            m = x.size // self.channels
            correction = t(m) / t(m - 1) if m > 1 else t(1)
            factor *= self.fraction
            factor += 1
            mean_sum[...] = mean + self.fraction * mean_sum
            var_sum[...] = correction * var + self.fraction * var_sum
        self.std = np.sqrt(var + self.eps)[:, None]                      # (C, 1)
        y /= self.std
        self.x_norm = y               # kept: later in-place layers may overwrite top
        top[0].data[...] = y.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        """Only the bottom diff: the statistics blobs never get a gradient."""
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(top[0].shape[0], self.channels, -1)    # (N, C, S)
        if self.use_global_stats:
            dx = dy / self.std
        else:
            y = self.x_norm
            g = y * (y * dy).sum(axis=2).sum(axis=0)[:, None]
            g += dy.sum(axis=2).sum(axis=0)[:, None]
            dx = (dy + self.dtype.type(-1.0 / y[:, 0].size) * g) / self.std
        bottom[0].diff[...] = dx.reshape(bottom[0].shape)


@register_layer("Normalize")
class NormalizeLayer(Layer):
    """norm_param {across_spatial (true), channel_shared (true), eps (1e-10),
    scale_filler (constant 1)}: SSD's L2 normalisation with a learned scale.
    Bottom and top (N, C, ...), at least 2 axes; one blob: the scale, shape () if
    channel_shared else (C,).
    across_spatial: y = s x / sqrt(sum over C*H*W of x^2 + eps), per sample;
    otherwise:      y = s x / sqrt(eps + sum over C of x^2), per sample and position.
    Backward is the fork's: dx = s (dy - x <x, dy> / n^2) / n with the sum over the
    norm's extent, d s = sum y dy / s. With different per-channel scales dx is not the
    exact gradient (the fork leaves the scale out of <x, dy>); it is what the fork gives.
    """
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.norm_param
        self.across_spatial, self.channel_shared = p.across_spatial, p.channel_shared
        self.eps = self.dtype.type(p.eps)
        if bottom[0].num_axes < 2:
            raise self.error(f"needs at least 2 axes (N, C, ...), got {bottom[0].shape}")
        channels = bottom[0].shape[1]
        if not self.blobs:
            blob = self.make_blob(() if self.channel_shared else (channels,))
            if p.HasField("scale_filler"):
                fill(blob, p.scale_filler)
            else:
                blob.data[...] = 1
            self.blobs = [blob]
        if self.blobs[0].count != (1 if self.channel_shared else channels):
            raise self.error(f"scale has shape {self.blobs[0].shape}, not one value "
                             f"{'shared' if self.channel_shared else 'per channel'}")
        self.param_propagate_down = [True]

    def reshape(self, bottom, top):
        if bottom[0].num_axes < 2:
            raise self.error(f"needs at least 2 axes (N, C, ...), got {bottom[0].shape}")
        top[0].reshape(bottom[0].shape)

    def _scale(self):
        """The scale, broadcastable over (N, C, S)."""
        s = self.blobs[0].data
        return s.reshape(1, 1, 1) if self.channel_shared else s.reshape(1, -1, 1)

    def forward(self, bottom, top):
        t = self.dtype.type
        x = bottom[0].data.reshape(bottom[0].shape[0], bottom[0].shape[1], -1)  # (N, C, S)
        squares = np.square(x)
        if self.across_spatial:
            norm = np.sqrt(squares.sum(axis=(1, 2)) + self.eps)[:, None, None]  # (N, 1, 1)
            y = x * (t(1) / norm).astype(self.dtype)
        else:
            norm = np.sqrt(self.eps + squares.sum(axis=1, keepdims=True))   # (N, 1, S)
            y = x / norm
        self.norm = norm
        top[0].data[...] = (y * self._scale()).reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        shape = (bottom[0].shape[0], bottom[0].shape[1], -1)
        dy = top[0].diff.reshape(shape)                                     # (N, C, S)
        if self.param_propagate_down[0]:
            # accumulate: Caffe adds parameter gradients
            y = top[0].data.reshape(shape)
            s = self.blobs[0].data
            if self.channel_shared:
                self.blobs[0].diff[...] += np.sum(y * dy) / s
            else:
                self.blobs[0].diff[...] += ((y * dy).sum(axis=2) / s).sum(axis=0)
        if propagate_down[0]:
            x, norm = bottom[0].data.reshape(shape), self.norm
            axes = (1, 2) if self.across_spatial else 1
            dot = np.sum(x * dy, axis=axes, keepdims=True)
            dx = (dy - x * (dot / (norm * norm))) / norm
            bottom[0].diff[...] = (dx * self._scale()).reshape(bottom[0].shape)
