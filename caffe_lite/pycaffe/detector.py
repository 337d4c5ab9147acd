"""pycaffe's Detector: classify windows cropped from images (R-CNN style),
optionally with a border of surrounding context."""
import os

import numpy as np

from ..errors import DependencyError
from ..net.net import TEST, Net
from . import io
from .classifier import make_transformer


class Detector(Net):
    """``Detector(model_file, pretrained_file, mean=None, input_scale=None,
    raw_scale=None, channel_swap=None, context_pad=None)``, built in TEST phase.

    context_pad: pixels of the net's input that show context around the
    window (R-CNN's feature extraction uses 16).
    """

    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None, context_pad=None, **net_kwargs):
        super().__init__(model_file, TEST, weights=pretrained_file, **net_kwargs)
        self.transformer = make_transformer(self, mean, input_scale, raw_scale,
                                            channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """Score windows (ymin, xmin, ymax, xmax) of images.

        images_windows: iterable of (image filename, list of windows).
        Returns a list of {'window', 'prediction', 'filename'} dicts.
        """
        images_windows = [(name, list(windows)) for name, windows in images_windows]
        window_inputs = []
        for filename, windows in images_windows:
            image = io.load_image(filename).astype(np.float32)
            window_inputs.extend(self.crop(image, window) for window in windows)
        in_ = self.inputs[0]
        caffe_in = np.stack([self.transformer.preprocess(in_, w) for w in window_inputs])
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        detections, ix = [], 0
        for filename, windows in images_windows:
            for window in windows:
                detections.append({'window': window, 'prediction': predictions[ix],
                                   'filename': filename})
                ix += 1
        return detections

    def detect_selective_search(self, image_fnames):
        """Windows from selective search (a MATLAB tool pycaffe shells out to)."""
        try:
            import selective_search_ijcv_with_python as selective_search
        except ImportError:
            raise DependencyError(
                "detect_selective_search needs the MATLAB-based package "
                "'selective_search_ijcv_with_python', which is not installed; "
                "compute windows another way and call detect_windows") from None
        image_fnames = [os.path.abspath(f) for f in image_fnames]
        windows = selective_search.get_windows(image_fnames, cmd='selective_search_rcnn')
        return self.detect_windows(zip(image_fnames, windows))

    def crop(self, im, window):
        """The window of ``im`` (H x W x K), with context when configured."""
        window = np.asarray(window)
        crop = im[int(window[0]):int(window[2]), int(window[1]):int(window[3])]
        if not self.context_pad:
            return crop
        # pycaffe assumes a square input; per axis here, the same when square
        size_h, size_w = int(self.crop_dims[0]), int(self.crop_dims[1])
        scale = np.array([size_h / (1. * size_h - self.context_pad * 2),
                          size_w / (1. * size_w - self.context_pad * 2)])
        half = np.array([window[2] - window[0] + 1, window[3] - window[1] + 1]) / 2.
        center = np.array([window[0], window[1]]) + half
        box = np.round(np.concatenate([center - scale * half, center + scale * half]))
        scale_h = size_h / (box[2] - box[0] + 1)
        scale_w = size_w / (box[3] - box[1] + 1)
        pad_y = int(round(max(0, -box[0]) * scale_h))          # out-of-bounds part
        pad_x = int(round(max(0, -box[1]) * scale_w))
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0., [im_h, im_w, im_h, im_w]).astype(int)
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        crop_h = min(int(round(clip_h * scale_h)), size_h - pad_y)
        crop_w = min(int(round(clip_w * scale_w)), size_w - pad_x)
        context = io.resize_image(im[box[0]:box[2], box[1]:box[3]], (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return crop

    def configure_crop(self, context_pad):
        """Set the crop size and, with context, the mean used to pad crops
        (in the image's own space: untransposed, unswapped, unscaled)."""
        in_ = self.inputs[0]
        tpose = self.transformer.transpose[in_]
        inv_tpose = [tpose[t] for t in tpose]
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inv_tpose]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = np.array(mean, dtype=np.float32).transpose(inv_tpose)
        channel_order = self.transformer.channel_swap.get(in_)
        if channel_order is not None:
            crop_mean = crop_mean[:, :, [list(channel_order).index(i)
                                         for i in range(crop_mean.shape[2])]]
        raw_scale = self.transformer.raw_scale.get(in_)
        if raw_scale is not None:
            crop_mean /= raw_scale
        self.crop_mean = crop_mean
