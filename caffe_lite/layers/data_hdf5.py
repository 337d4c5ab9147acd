"""HDF5Data and HDF5Output (h5py, the ``hdf5`` extra).

File names in layer params are read as Caffe reads them, relative to the current
directory; a name that does not exist there is looked up next to the net's
prototxt (and an HDF5 list's entries next to the list file).
"""
import itertools

import numpy as np

from ..data.files import find_file
from ..errors import require
from .base import register_layer
from .data import DataLayer, layer_rng


@register_layer("HDF5Data")
class HDF5DataLayer(DataLayer):
    """Rows of the datasets named by the tops, from the .h5 files listed (one per
    line) in hdf5_data_param.source, file after file; batch_size rows per forward,
    wrapping at the end. With shuffle, the file order and the rows within each
    file are permuted anew each pass (so an epoch still yields every row once).
    One file is held in memory at a time, as in Caffe. A rank of data-parallel
    training takes its share of the rows (DataLayer.own)."""
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
        self.items = self.own(self.all_rows())

    def load(self, path):
        h5py = require("h5py", "hdf5", "the HDF5Data layer", file=path)
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

    def all_rows(self):
        """(arrays of the file in memory, row index) in reading order, endless."""
        while True:
            arrays = self.arrays
            for row in self.rows:
                yield arrays, row
            self.next_file()

    def forward(self, bottom, top):
        picked = list(itertools.islice(self.items, self.batch_size))
        filled = 0
        for _, run in itertools.groupby(picked, key=lambda item: id(item[0])):
            run = list(run)                       # consecutive rows of one file
            arrays, rows = run[0][0], [row for _, row in run]
            for blob, array in zip(top, arrays):
                if array.shape[1:] != blob.shape[1:]:
                    raise self.error(f"rows of shape {array.shape[1:]} do not match "
                                     f"the first file's {blob.shape[1:]}")
                blob.data[filled:filled + len(rows)] = array[rows]
            filled += len(rows)

    def next_file(self):
        if len(self.files) > 1:
            self.file_index += 1
            if self.file_index == len(self.files):
                self.file_index = 0
                if self.shuffle:
                    self.rng.shuffle(self.file_order)
            self.load(self.files[self.file_order[self.file_index]])
        elif self.shuffle:
            self.rng.shuffle(self.rows)


@register_layer("HDF5Output")
class HDF5OutputLayer(DataLayer):
    """Writes its two bottoms to hdf5_output_param.file_name as datasets 'data'
    and 'label' (4-D, as Caffe). The file is created at setup; each forward
    replaces the datasets with the current batch (Caffe can only write once)."""
    exact_num_bottom = 2
    exact_num_top = 0

    def layer_setup(self, bottom, top):
        self.file_name = self.param.hdf5_output_param.file_name
        h5py = require("h5py", "hdf5", "the HDF5Output layer", file=self.file_name)
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
