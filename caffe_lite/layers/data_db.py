"""Data layers that read records and transform them (transform_param): Data
(Datum records in LMDB or LevelDB) and ImageData (image files listed with their
labels). Tops: data (N, C, h, w) float32 and, if asked for, label (N,).

Records are read in order (ImageData optionally shuffled, anew each epoch) and
the reading wraps around at the end, so every epoch yields each record once; a
rank of data-parallel training reads its share of that endless stream
(DataLayer.own). The shuffling has its own generator, apart from the
transform's, so every rank shuffles alike whatever its crops drew.
Batches are loaded when forward needs them (no prefetch thread), so a run is
repeatable under caffe.set_random_seed.
"""
import itertools

import numpy as np

from ..data.datum import datum_to_chw
from ..data.files import find_file
from ..data.image import parse_list_line, read_image, to_chw
from ..data.transform import DataTransformer
from ..errors import CaffeLiteError
from ..proto import caffe_pb2
from .base import register_layer
from .data import DataLayer, layer_rng


class TransformingDataLayer(DataLayer):
    """Batches of records (N, C, H, W) through the DataTransformer. Subclasses
    provide ``open_source()`` and ``read_batch() -> (records, labels)``."""
    min_top = 1
    max_top = 2

    def layer_setup(self, bottom, top):
        tp = self.param.transform_param
        self.rng = layer_rng(per_rank=True)       # crops and mirrors
        self.order_rng = layer_rng()              # the shuffled order of the records
        mean = find_file(tp.mean_file, self.net_file) if tp.HasField("mean_file") else None
        self.transformer = DataTransformer(tp, self.phase, self.error, self.rng, mean)
        self.open_source()
        if self.batch_size <= 0:
            raise self.error("batch_size must be positive")
        records, labels = self.read_batch()
        self.pending = (records, labels)          # the first batch, read for its shape
        top[0].reshape((self.batch_size,) + self.transformer.output_shape(records.shape[1:]))
        if len(top) > 1:
            top[1].reshape(self.batch_size)

    def forward(self, bottom, top):
        if self.pending is not None:
            records, labels = self.pending
            self.pending = None
        else:
            records, labels = self.read_batch()
        data = self.transformer(records)                       # (N, C, h, w)
        top[0].reshape(data.shape)
        top[0].data[...] = data
        if len(top) > 1:
            top[1].reshape(len(labels))
            top[1].data[...] = labels

    def stack(self, arrays, names):
        """Records of one batch as (N, C, H, W); all must share the first's shape."""
        first = arrays[0].shape
        for array, name in zip(arrays, names):
            if array.shape != first:
                raise self.error(f"record {name} is {array.shape}, the batch's first "
                                 f"record is {first}: a batch needs equal shapes")
        return np.stack(arrays)


@register_layer("Data")
class DBDataLayer(TransformingDataLayer):
    """Datum records from data_param.source, an LMDB or LevelDB database
    (data_param.backend), in key order. Encoded (JPEG/PNG) datums are decoded
    (transform_param force_color / force_gray, else the image's own channels).
    data_param fields read: source, backend, batch_size (prefetch, rand_skip are
    accepted and unused)."""

    def open_source(self):
        p = self.param.data_param
        self.batch_size = p.batch_size
        self.decode_mode = self.open_database()

    def read_batch(self):
        arrays, labels, keys = [], [], []
        for key, value in itertools.islice(self.records, self.batch_size):
            datum = caffe_pb2.Datum.FromString(value)
            arrays.append(self.datum_array(datum, key))
            labels.append(datum.label)
            keys.append(key.decode(errors="replace"))
        return self.stack(arrays, keys), np.array(labels, np.float32)

    def datum_array(self, datum, key):
        try:
            return datum_to_chw(datum, self.decode_mode,
                                name=f"{self.source} record {key!r}")
        except CaffeLiteError as exc:
            raise self.error(exc.message + f" (record {key!r} of {self.source})") from None


@register_layer("ImageData")
class ImageDataLayer(TransformingDataLayer):
    """Images listed in image_data_param.source, one ``<path> <label>`` per line
    (the label after the last space), read as cv::imread would: BGR, or gray
    with is_color: false; resized to new_height x new_width when both are set.
    Fields read: source, root_folder (prefixed to each path as text), batch_size,
    shuffle (anew at each epoch), rand_skip, new_height, new_width, is_color."""

    def open_source(self):
        p = self.param.image_data_param
        self.batch_size = p.batch_size
        self.new_size = (p.new_height, p.new_width)
        if (p.new_height > 0) != (p.new_width > 0):
            raise self.error("set new_height and new_width together")
        self.is_color, self.root = p.is_color, p.root_folder
        self.source = find_file(p.source, self.net_file)
        lines = self.read_text(self.source, "image list").split("\n")
        self.lines = [parse_list_line(line) for line in lines if line.strip()]
        if not self.lines:
            raise self.error(f"the image list {self.source} is empty")
        self.shuffle = p.shuffle
        if self.shuffle:
            self.order_rng.shuffle(self.lines)
        start = 0
        if p.rand_skip:
            start = int(self.order_rng.integers(p.rand_skip))
            if start >= len(self.lines):
                raise self.error(f"rand_skip {p.rand_skip} skips past the "
                                 f"{len(self.lines)} images of {self.source}")
        self.items = self.own(self.all_lines(start))

    def all_lines(self, index):
        """(name, label) in list order from ``index``, reshuffled at each new
        epoch (when its last line is taken, as Caffe does)."""
        while True:
            line = self.lines[index]
            index += 1
            if index == len(self.lines):                 # next epoch
                index = 0
                if self.shuffle:
                    self.order_rng.shuffle(self.lines)
            yield line

    def read_batch(self):
        arrays, labels, names = [], [], []
        for name, label in itertools.islice(self.items, self.batch_size):
            try:
                image = read_image(self.root + name, *self.new_size, self.is_color)
            except CaffeLiteError as exc:
                raise self.error(f"could not load {self.root + name}: "
                                 f"{exc.message}") from None
            arrays.append(to_chw(image))
            labels.append(label)
            names.append(name)
        return self.stack(arrays, names), np.array(labels, np.float32)
