"""The segmentation forks' image-list data layers: DenseImageData (SegNet) and
ImageSegData (DeepLab / DeconvNet). Each reads "<image> <label>" lines, loads the
image (BGR, or gray) and its label map (a gray PNG, values unchanged), and crops
and mirrors both together (``data/segmentation.py``). Tops: data (N, C, h, w),
label (N, 1, h, w); ImageSegData's optional third top is each image's (height,
width) before cropping, (N, 1, 1, 2), as DeepLab's data_dim.

A missing file names the list file and line; a label whose size differs from its
image names both files. Batches are read when forward needs them, in list order
(shuffled anew each epoch with ``shuffle``); a rank of data-parallel training
reads its share (DataLayer.own).
"""
import itertools

import numpy as np

from ..data.files import find_file
from ..data.image import read_image, to_chw
from ..data.segmentation import (
    PairTransformer,
    cut_window,
    read_pair,
    read_pair_list,
    read_window_list,
)
from ..errors import CaffeLiteError
from ..proto import caffe_pb2
from .base import register_layer
from .data import DataLayer, layer_rng


class SegDataLayer(DataLayer):
    """Common ground; a subclass's ``read_params()`` sets source, root, batch_size,
    shuffle, size (new h, w), is_color, with_labels and ``self.transform``."""
    min_top = 1
    max_top = 2

    def layer_setup(self, bottom, top):
        self.rng = layer_rng(per_rank=True)     # crops and mirrors
        self.read_params()
        if self.batch_size <= 0:
            raise self.error("batch_size must be positive")
        self.source = find_file(self.source, self.net_file)
        text = self.read_text(self.source, "image list")
        self.pairs = self.read_list(text)
        self.order_rng = layer_rng()            # apart from the crops', alike on every rank
        if self.shuffle:
            self.order_rng.shuffle(self.pairs)
        self.items = self.own(self.all_pairs())
        self.pending = self.read_batch()
        self.shape_tops(top, self.pending)

    def shape_tops(self, top, batch):
        images, labels, dims = batch
        top[0].reshape(images.shape)
        if len(top) > 1:
            top[1].reshape(labels.shape if labels is not None else (len(images), 1, 1, 1))
        if len(top) > 2:
            top[2].reshape(dims.shape)

    def all_pairs(self):
        """The list's pairs in order, endless, reshuffled as each epoch ends."""
        index = 0
        while True:
            pair = self.pairs[index]
            index += 1
            if index == len(self.pairs):                 # next epoch
                index = 0
                if self.shuffle:
                    self.order_rng.shuffle(self.pairs)
            yield pair

    def read_batch(self):
        images, labels, dims = [], [], []
        for pair in itertools.islice(self.items, self.batch_size):
            image, label = self.read_item(pair)
            before = image.shape[1:]
            image, label = self.transform(image, label, self.error)
            dims.append(self.item_dims(before, image.shape[1:]))
            images.append(image)
            labels.append(label)
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise self.error(f"the images of one batch have different sizes {sorted(shapes)} "
                             f"after the transform: set new_height/new_width or a crop")
        stacked = None if not self.with_labels else np.stack(labels)
        return (np.stack(images), stacked,
                np.array(dims, np.float32).reshape(len(dims), 1, 1, 2))

    def read_list(self, text):
        return read_pair_list(self.source, text, self.error, self.with_labels)

    def item_dims(self, before, after):
        """The third top's (height, width) of one item: its size before the transform."""
        return before

    def read_item(self, entry):
        """One (image (C, H, W), label (1, H, W) or None) before the transform."""
        return read_pair(self.root, entry, self.source, self.error, self.size,
                         self.is_color)

    def forward(self, bottom, top):
        batch, self.pending = (self.pending or self.read_batch()), None
        self.shape_tops(top, batch)
        images, labels, dims = batch
        top[0].data[...] = images
        if len(top) > 1 and labels is not None:
            top[1].data[...] = labels
        if len(top) > 2:
            top[2].data[...] = dims

    def transform_from(self, tp, crop, mirror, pad=False, ignore_label=255):
        if tp.HasField("mean_file"):
            raise self.error("mean_file is not supported by the segmentation data layers: "
                             "give mean_value (one per channel)")
        return PairTransformer(crop, mirror, list(tp.mean_value) or None, tp.scale,
                               self.phase == caffe_pb2.TRAIN, self.rng, ignore_label, pad)


@register_layer("DenseImageData")
class DenseImageDataLayer(SegDataLayer):
    """SegNet's reader. dense_image_data_param {source, root_folder, batch_size,
    shuffle, new_height, new_width (labels resized by nearest neighbour), is_color,
    crop_height/crop_width, mirror}; transform_param {crop_size, mirror, mean_value,
    scale} (either param's crop/mirror applies)."""

    def read_params(self):
        p, tp = self.param.dense_image_data_param, self.param.transform_param
        self.source, self.root, self.batch_size = p.source, p.root_folder, p.batch_size
        self.shuffle, self.is_color, self.with_labels = p.shuffle, p.is_color, True
        if (p.new_height > 0) != (p.new_width > 0):
            raise self.error("set new_height and new_width together")
        self.size = (p.new_height, p.new_width)
        crop = ((p.crop_height, p.crop_width) if p.crop_height and p.crop_width else
                (tp.crop_size, tp.crop_size))
        self.transform = self.transform_from(tp, crop, p.mirror or tp.mirror)


@register_layer("ImageSegData")
class ImageSegDataLayer(SegDataLayer):
    """DeepLab's / DeconvNet's reader. image_data_param {source, root_folder (prefixed
    to both names), batch_size, shuffle, new_height, new_width, is_color, label_type
    (NONE: lines name only images), ignore_label (255)}; transform_param {crop_size,
    mirror, mean_value, scale}. A pair smaller than the crop is padded: the image
    with its mean (0 after subtraction), the label with ignore_label."""
    max_top = 3

    def read_params(self):
        p, tp = self.param.image_data_param, self.param.transform_param
        self.source, self.root, self.batch_size = p.source, p.root_folder, p.batch_size
        self.shuffle, self.is_color = p.shuffle, p.is_color
        self.with_labels = p.label_type != caffe_pb2.ImageDataParameter.NONE
        if (p.new_height > 0) != (p.new_width > 0):
            raise self.error("set new_height and new_width together")
        self.size = (p.new_height, p.new_width)
        self.transform = self.transform_from(tp, (tp.crop_size, tp.crop_size), tp.mirror,
                                             pad=True, ignore_label=p.ignore_label)


@register_layer("WindowSegData")
class WindowSegDataLayer(SegDataLayer):
    """DeconvNet's window reader: lines '<image> <label> x1 y1 x2 y2' (inclusive
    corners; no label name with label_type NONE). image_data_param {source,
    root_folder, batch_size, shuffle, new_height/new_width (each window resized:
    image bilinear, label nearest), is_color, label_type (PIXEL: a label image;
    IMAGE: the label name is one class for every pixel; NONE: every pixel
    ignore_label), ignore_label (255)}; transform_param {crop_size, mirror,
    mean_value, scale}. A window leaving its image is padded: image 0, label
    ignore_label. Optional third top: each image's (height, width), at most the
    data top's."""
    max_top = 3

    def read_params(self):
        p, tp = self.param.image_data_param, self.param.transform_param
        self.source, self.root, self.batch_size = p.source, p.root_folder, p.batch_size
        self.shuffle, self.is_color = p.shuffle, p.is_color
        self.label_type, self.ignore_label = p.label_type, p.ignore_label
        self.with_labels = True
        if (p.new_height > 0) != (p.new_width > 0):
            raise self.error("set new_height and new_width together")
        self.size = (p.new_height, p.new_width)
        self.transform = self.transform_from(tp, (tp.crop_size, tp.crop_size), tp.mirror,
                                             pad=True, ignore_label=p.ignore_label)

    def read_list(self, text):
        named = self.label_type != caffe_pb2.ImageDataParameter.NONE
        return read_window_list(self.source, text, self.error, named)

    def read_item(self, entry):
        image_name, label_name, corners, line = entry
        where = f"{self.source}:{line}"

        def read(name, is_color):
            try:
                return read_image(self.root + name, is_color=is_color)
            except CaffeLiteError as exc:
                raise self.error(f"{where}: {self.root + name}: {exc.message}") from None

        image = read(image_name, self.is_color)
        self.image_hw = image.shape[:2]
        T = caffe_pb2.ImageDataParameter
        if self.label_type == T.PIXEL:
            label = read(label_name, False)
            if label.shape[:2] != image.shape[:2]:
                raise self.error(f"{where}: the label {self.root + label_name} is "
                                 f"{label.shape[1]}x{label.shape[0]} but the image "
                                 f"{self.root + image_name} is {image.shape[1]}x"
                                 f"{image.shape[0]} (width x height)")
        else:
            value = self.ignore_label
            if self.label_type == T.IMAGE:
                try:
                    value = int(label_name)
                except ValueError:
                    raise self.error(f"{where}: label_type IMAGE needs a class number, "
                                     f"got {label_name!r}") from None
            label = np.full(image.shape[:2] + (1,), value, np.int64)
        image, label = cut_window(image, label, corners, self.ignore_label, self.size)
        return to_chw(image), to_chw(label)

    def item_dims(self, before, after):
        """The fork's data_dim: the whole image's size, capped by the data top's."""
        return tuple(min(a, b) for a, b in zip(self.image_hw, after))
