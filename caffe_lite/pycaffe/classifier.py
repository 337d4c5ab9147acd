"""pycaffe's Classifier: a Net that takes H x W x K images, scales them to
``image_dims``, crops (centre, or ten crops averaged) and returns class scores."""
import numpy as np

from ..errors import PreprocessError
from ..net.net import TEST, Net
from . import io


def make_transformer(net, mean=None, input_scale=None, raw_scale=None,
                     channel_swap=None):
    """A Transformer for the net's first input: H x W x K images in."""
    in_ = net.inputs[0]
    transformer = io.Transformer({in_: net.blobs[in_].data.shape})
    transformer.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(in_, mean)
    if input_scale is not None:
        transformer.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(in_, channel_swap)
    return transformer


class Classifier(Net):
    """``Classifier(model_file, pretrained_file, image_dims=None, mean=None,
    input_scale=None, raw_scale=None, channel_swap=None)``, built in TEST phase.

    image_dims: the size images are scaled to before cropping (default: the
    net's input size, i.e. no cropping). The other arguments configure
    ``self.transformer`` (see caffe.io.Transformer).
    """

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None,
                 input_scale=None, raw_scale=None, channel_swap=None, **net_kwargs):
        super().__init__(model_file, TEST, weights=pretrained_file, **net_kwargs)
        self.transformer = make_transformer(self, mean, input_scale, raw_scale,
                                            channel_swap)
        self.crop_dims = np.array(self.blobs[self.inputs[0]].data.shape[2:])
        self.image_dims = self.crop_dims if image_dims is None else image_dims

    def predict(self, inputs, oversample=True, *, blob=None):
        """(N, classes) scores for N images (H x W x K arrays); with
        ``oversample`` the ten crops' scores are averaged, else the centre
        crop is used. ``blob``: the output to read (pycaffe: the first)."""
        image_dims = tuple(int(d) for d in self.image_dims)
        for ix, image in enumerate(inputs):
            if np.ndim(image) != 3:
                raise PreprocessError(
                    f"image {ix} has shape {np.shape(image)}: Classifier.predict takes "
                    f"H x W x K images (a grayscale one as H x W x 1, e.g. "
                    f"caffe.io.load_image(path, color=False))")
        # (N, H, W, K): every image scaled to image_dims
        scaled = np.zeros((len(inputs),) + image_dims + (np.shape(inputs[0])[2],),
                          np.float32)
        for ix, image in enumerate(inputs):
            scaled[ix] = io.resize_image(image, image_dims)
        if oversample:
            crops = io.oversample(scaled, self.crop_dims)       # (10 N, h, w, K)
        else:
            center = np.array(image_dims) / 2.0
            box = np.concatenate([center - self.crop_dims / 2.0,
                                  center + self.crop_dims / 2.0]).astype(int)
            crops = scaled[:, box[0]:box[2], box[1]:box[3], :]
        in_ = self.inputs[0]
        caffe_in = np.stack([self.transformer.preprocess(in_, crop) for crop in crops])
        blob = blob or self.outputs[0]
        predictions = self.forward_all(blobs=[blob], **{in_: caffe_in})[blob]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
