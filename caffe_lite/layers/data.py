"""Data layers fed from memory or HDF5: DummyData, MemoryData, HDF5Data,
HDF5Output. They have no bottoms (HDF5Output no tops) and no backward.

File names in layer params are read as Caffe reads them, relative to the
current directory; a name that does not exist there is looked up next to the
net's prototxt (and an HDF5 list's entries next to the list file).
"""
import os

import numpy as np

from ..errors import require
from ..fillers import fill
from ..proto import caffe_pb2
from ..rng import get_rng
from .base import Layer, register_layer


def find_file(path, *bases):
    """``path`` if it exists as given (Caffe: relative to the CWD), else the first
    existing ``base/path``; the name as given when none exists."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    for base in bases:
        if base:
            candidate = os.path.join(os.path.dirname(os.path.abspath(base)), path)
            if os.path.exists(candidate):
                return candidate
    return path


def layer_rng():
    """A data layer's own generator, seeded from the global one (set_random_seed),
    as Caffe seeds each layer's RNG from its global one."""
    return np.random.default_rng(get_rng().integers(2 ** 63))


class DataLayer(Layer):
    """Common ground of the data layers: no bottoms, no backward, tops sized in
    setup (or by forward), so reshape has nothing to do."""
    exact_num_bottom = 0
    has_backward = False

    def reshape(self, bottom, top):
        pass

    def top_name(self, i):
        tops = self.param.top
        return tops[i] if i < len(tops) else f"top[{i}]"

    def read_text(self, path, what):
        """The text of a file the params name (``what`` says which in errors)."""
        try:
            with open(path) as handle:
                return handle.read()
        except OSError as exc:
            raise self.error(f"cannot read the {what} {path}: "
                             f"{exc.strerror or exc}") from None


@register_layer("DummyData")
class DummyDataLayer(DataLayer):
    """Tops filled by data_filler (one for all tops, or one per top; default
    constant 0), shaped by ``shape`` or the legacy num/channels/height/width.
    Constant fillers fill once at setup, others refill on every forward."""
    min_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.dummy_data_param
        n = len(top)
        if len(p.data_filler) not in (0, 1, n):
            raise self.error(f"give 0, 1 or {n} (one per top) data_filler, got "
                             f"{len(p.data_filler)}")
        legacy = [p.num, p.channels, p.height, p.width]
        if any(len(d) for d in legacy):
            if len(p.shape):
                raise self.error("give either shape or num/channels/height/width")
            for name, dims in zip(("num", "channels", "height", "width"), legacy):
                if len(dims) not in (1, n):
                    raise self.error(f"give '{name}' once or once per top ({n}), "
                                     f"got {len(dims)}")
            shapes = [[d[0] if len(d) == 1 else d[i] for d in legacy] for i in range(n)]
        else:
            if len(p.shape) not in (1, n):
                raise self.error(f"give 'shape' once or once per top ({n}), got "
                                 f"{len(p.shape)}")
            shapes = [list(p.shape[0 if len(p.shape) == 1 else i].dim) for i in range(n)]
        fillers = list(p.data_filler) or [caffe_pb2.FillerParameter(type="constant")]
        self.fillers = [fillers[0 if len(fillers) == 1 else i] for i in range(n)]
        self.refill = [f.type != "constant" for f in self.fillers]
        for blob, shape, filler in zip(top, shapes, self.fillers):
            blob.reshape(shape)
            fill(blob, filler)

    def forward(self, bottom, top):
        for blob, filler, refill in zip(top, self.fillers, self.refill):
            if refill:
                fill(blob, filler)


@register_layer("MemoryData")
class MemoryDataLayer(DataLayer):
    """Serves batches from arrays given with ``reset(data, labels)``
    (``Net.set_input_arrays``): data (M, C, H, W), labels (M,) or (M, 1, 1, 1),
    M a multiple of batch_size; each forward takes the next batch, wrapping.
    memory_data_param fields read: batch_size, channels, height, width. As in
    Caffe, forward shapes the label top (B, 1, 1, 1) and no transform is applied."""
    exact_num_top = 2

    def layer_setup(self, bottom, top):
        p = self.param.memory_data_param
        self.batch_size, self.channels = p.batch_size, p.channels
        self.height, self.width = p.height, p.width
        if min(self.batch_size, self.channels, self.height, self.width) <= 0:
            raise self.error("memory_data_param needs positive batch_size, channels, "
                             "height and width")
        top[0].reshape(self.batch_size, self.channels, self.height, self.width)
        top[1].reshape(self.batch_size)
        self.data = self.labels = None
        self.pos = 0

    def reset(self, data, labels):
        """Use these arrays from the first batch on (float32 arrays are used
        without a copy, so later changes to them are seen, as in Caffe)."""
        data = np.ascontiguousarray(data, dtype=self.dtype)
        labels = np.ascontiguousarray(labels, dtype=self.dtype)
        item = (self.channels, self.height, self.width)
        if data.ndim != 4 or data.shape[1:] != item:
            raise self.error(f"data array must be (M, {', '.join(map(str, item))}), "
                             f"got {data.shape}", blob=self.top_name(0))
        if labels.size != len(labels) or len(labels) != len(data):
            raise self.error(f"labels must hold one value per data item ({len(data)}), "
                             f"got shape {labels.shape}", blob=self.top_name(1))
        if len(data) == 0 or len(data) % self.batch_size:
            raise self.error(f"the number of items ({len(data)}) must be a positive "
                             f"multiple of batch_size {self.batch_size}")
        self.data, self.labels = data, labels.reshape(-1)
        self.pos = 0

    def forward(self, bottom, top):
        if self.data is None:
            raise self.error("MemoryData has no arrays yet: call "
                             "net.set_input_arrays(data, labels) first")
        B, end = self.batch_size, self.pos + self.batch_size
        top[0].reshape(B, self.channels, self.height, self.width)
        top[1].reshape(B, 1, 1, 1)
        top[0].data[...] = self.data[self.pos:end]
        top[1].data.reshape(-1)[...] = self.labels[self.pos:end]
        self.pos = end % len(self.data)


@register_layer("HDF5Data")
class HDF5DataLayer(DataLayer):
    """Rows of the datasets named by the tops, from the .h5 files listed (one per
    line) in hdf5_data_param.source, file after file; batch_size rows per forward,
    wrapping at the end. With shuffle, the file order and the rows within each
    file are permuted anew each pass (so an epoch still yields every row once).
    One file is held in memory at a time, as in Caffe."""
    min_top = 1

    def layer_setup(self, bottom, top):
        if self.param.HasField("transform_param"):
            raise self.error("HDF5Data does not transform data (remove transform_param)")
        p = self.param.hdf5_data_param
        self.batch_size, self.shuffle = p.batch_size, p.shuffle
        if self.batch_size <= 0:
            raise self.error("hdf5_data_param.batch_size must be positive")
        self.source = find_file(p.source, self.net_file)
        names = self.read_text(self.source, "HDF5 list file").split()
        if not names:
            raise self.error(f"the HDF5 list file {self.source} names no files")
        self.files = [find_file(name, self.source, self.net_file) for name in names]
        self.rng = layer_rng()
        self.file_order = np.arange(len(self.files))
        if self.shuffle:
            self.rng.shuffle(self.file_order)
        self.file_index = 0
        self.load(self.files[self.file_order[0]])
        for blob, array in zip(top, self.arrays):
            blob.reshape((self.batch_size,) + array.shape[1:])

    def load(self, path):
        h5py = require("h5py", "hdf5", "the HDF5Data layer")
        try:
            with h5py.File(path, "r") as f:
                missing = [name for name in self.param.top if name not in f]
                if missing:
                    raise self.error(f"HDF5 file {path} has no dataset "
                                     f"'{missing[0]}' (datasets are named by the "
                                     f"tops)", blob=missing[0])
                self.arrays = [np.asarray(f[name], dtype=self.dtype)
                               for name in self.param.top]
        except OSError as exc:
            raise self.error(f"cannot open HDF5 file {path}: {exc}") from None
        rows = {len(a) if a.ndim else 0 for a in self.arrays}
        if rows == {0}:
            raise self.error(f"HDF5 file {path} has no rows")
        if len(rows) != 1:
            raise self.error(f"the datasets of {path} have different numbers of rows")
        self.rows = np.arange(rows.pop())
        if self.shuffle:
            self.rng.shuffle(self.rows)
        self.row = 0

    def forward(self, bottom, top):
        filled = 0
        while filled < self.batch_size:       # one chunk per file crossed
            take = min(self.batch_size - filled, len(self.rows) - self.row)
            picked = self.rows[self.row:self.row + take]
            for blob, array in zip(top, self.arrays):
                if array.shape[1:] != blob.shape[1:]:
                    raise self.error(f"rows of shape {array.shape[1:]} do not match "
                                     f"the first file's {blob.shape[1:]}")
                blob.data[filled:filled + take] = array[picked]
            filled += take
            self.row += take
            if self.row == len(self.rows):
                self.next_file()

    def next_file(self):
        if len(self.files) > 1:
            self.file_index += 1
            if self.file_index == len(self.files):
                self.file_index = 0
                if self.shuffle:
                    self.rng.shuffle(self.file_order)
            self.load(self.files[self.file_order[self.file_index]])
        else:
            self.row = 0
            if self.shuffle:
                self.rng.shuffle(self.rows)


@register_layer("HDF5Output")
class HDF5OutputLayer(DataLayer):
    """Writes its two bottoms to hdf5_output_param.file_name as datasets 'data'
    and 'label' (4-D, as Caffe). The file is created at setup; each forward
    replaces the datasets with the current batch (Caffe can only write once)."""
    exact_num_bottom = 2
    exact_num_top = 0

    def layer_setup(self, bottom, top):
        h5py = require("h5py", "hdf5", "the HDF5Output layer")
        self.file_name = self.param.hdf5_output_param.file_name
        try:
            h5py.File(self.file_name, "w").close()
        except OSError as exc:
            raise self.error(f"cannot create HDF5 file {self.file_name}: {exc}") from None

    def forward(self, bottom, top):
        if bottom[0].num != bottom[1].num:
            raise self.error(f"data and label must have the same batch size, got "
                             f"{bottom[0].num} and {bottom[1].num}")
        h5py = require("h5py", "hdf5", "the HDF5Output layer")
        with h5py.File(self.file_name, "a") as f:
            for name, blob in zip(("data", "label"), bottom):
                shape = tuple(blob.legacy_shape(i) for i in range(4))
                if name in f:
                    del f[name]
                f.create_dataset(name, data=blob.data.reshape(shape).astype(np.float32))
