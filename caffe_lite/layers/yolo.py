"""YOLOv2's layers as the Caffe ports and OpenCV's importer run them: Reorg
(darknet's space-to-depth, in darknet's own index order) and Region (the
detection output, forward only). Kernels in ``ops.yolo``.
"""
import numpy as np

from ..ops.yolo import region_forward, region_nms, reorg_index
from .base import Layer, register_layer


@register_layer("Reorg")
class ReorgLayer(Layer):
    """reorg_param {stride (2; OpenCV's reorg_stride wins when set), reverse}.
    Bottom (N, C, H, W) -> (N, C s^2, H/s, W/s), or with reverse -> (N, C/s^2, H s, W s).
    The element order is darknet's reorg (what OpenCV's ReorgLayer gives), which is
    not a plain space-to-depth: see ``ops.yolo.reorg_index``. Backward is the
    inverse permutation."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.reorg_param
        self.stride = p.reorg_stride if p.HasField("reorg_stride") else p.stride
        self.reverse = p.reverse
        if self.stride < 1:
            raise self.error("reorg stride must be >= 1")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        s = self.stride
        if len(shape) != 4:
            raise self.error(f"needs a bottom (N, C, H, W), got {shape}")
        N, C, H, W = shape
        if self.reverse:
            if C % (s * s):
                raise self.error(f"stride^2 = {s * s} must divide the channels, got {shape}")
            top[0].reshape(N, C // (s * s), H * s, W * s)
            self.index = reorg_index(shape, s)          # darknet: the input's dims
        else:
            if H % s or W % s or C % (s * s):
                raise self.error(f"stride {s} must divide height and width, and its square "
                                 f"the channels (darknet's index order), got {shape}")
            top[0].reshape(N, C * s * s, H // s, W // s)
            self.index = reorg_index(shape, s)

    def _permute(self, src, dst, gather):
        """gather: dst.flat = src.flat[index]; else scatter: dst.flat[index] = src.flat."""
        N = src.shape[0]
        s, d = src.reshape(N, -1), dst.reshape(N, -1)
        rows = np.arange(N)[:, None]
        if gather:
            d[...] = s[rows, self.index]
        else:
            d[rows, self.index] = s

    def forward(self, bottom, top):
        self._permute(bottom[0].data, top[0].data, gather=not self.reverse)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self._permute(top[0].diff, bottom[0].diff, gather=self.reverse)


@register_layer("Region")
class RegionLayer(Layer):
    """YOLOv2's region output, forward only, as OpenCV's RegionLayer computes it.
    region_param {classes, coords (4), anchors (5; the ports' ``num`` wins when set),
    biases (2 per anchor; else the layer's blob, from the caffemodel as OpenCV takes
    it), thresh (0.2), nms_threshold (0.4; 0 = no NMS), softmax / logistic (class
    activation), classfix}.

    Bottom 0 is channels-last (N, H, W, A (1 + coords + classes)), as OpenCV takes it
    (a Permute {0, 2, 3, 1} before it in the net); an optional bottom 1 (N, C, Hn, Wn)
    gives the size the box sizes are divided by (else H, W). Top
    (N H W A, 1 + coords + classes) rows [x, y, w, h, objectness, class scores]:
    centres (cell + logistic t) / grid, sizes exp(t) anchor / size, scores objectness
    x class probability, zeroed at or below thresh. Like OpenCV, the forward then
    runs greedy per-class NMS on each image's rows (IoU > nms_threshold suppressed,
    highest score first) and zeroes the suppressed scores."""
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1
    has_backward = False

    def layer_setup(self, bottom, top):
        p = self.param.region_param
        self.classes, self.coords = p.classes, p.coords
        self.anchors = p.num if p.HasField("num") else p.anchors
        self.thresh, self.nms_threshold = p.thresh, p.nms_threshold
        self.softmax, self.classfix = p.softmax, p.classfix
        if self.coords != 4 or self.classes < 1 or self.anchors < 1:
            raise self.error("region_param needs coords 4, classes >= 1 and anchors >= 1")
        if not (p.softmax or p.logistic):
            raise self.error("region_param needs softmax or logistic for the classes")
        self.blobs = [self.make_blob((2 * self.anchors,))]
        if len(p.biases):
            if len(p.biases) != 2 * self.anchors:
                raise self.error(f"region_param.biases needs 2 values per anchor "
                                 f"({2 * self.anchors}), got {len(p.biases)}")
            self.blobs[0].data[...] = p.biases
        else:
            self.blobs[0].data[...] = 1

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        cell = 1 + self.coords + self.classes
        if len(shape) != 4 or shape[3] != cell * self.anchors:
            raise self.error(f"needs a channels-last bottom (N, H, W, anchors * (1 + coords "
                             f"+ classes) = {cell * self.anchors}), got {shape}")
        N, H, W, _ = shape
        top[0].reshape(N * H * W * self.anchors, cell)

    def forward(self, bottom, top):
        x = bottom[0].data
        norm = bottom[1].shape[2:4] if len(bottom) > 1 else None
        dets = region_forward(x, self.blobs[0].data, self.classes, self.coords, self.anchors,
                              self.thresh, self.softmax, self.classfix, norm)
        if self.nms_threshold > 0:
            per_image = len(dets) // x.shape[0]
            for n in range(x.shape[0]):
                region_nms(dets[n * per_image:(n + 1) * per_image], self.classes,
                           self.thresh, self.nms_threshold)
        top[0].data[...] = dets
