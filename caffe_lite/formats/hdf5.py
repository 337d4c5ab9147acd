"""Caffe's HDF5 weights layout: group "data", one group per layer name, datasets
"0", "1", ... for its param blobs (Net::ToHDF5 / CopyTrainedLayersFromHDF5).
h5py is optional (the 'hdf5' extra)."""
import contextlib
import os

import numpy as np

from ..errors import CaffeLiteError, ModelFileError, require
from .atomic import atomic_write
from .blobs import StoredBlob, StoredLayer


def _h5py(path):
    return require("h5py", "hdf5", "reading or writing HDF5 weights", file=path)


@contextlib.contextmanager
def open_weights_hdf5(path):
    """[StoredLayer] of an open .caffemodel.h5; types are not stored, so type is "".
    A dataset stored without compression that declares more bytes than the whole
    file holds is refused before anything is read."""
    path = os.fspath(path)
    h5py = _h5py(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"cannot read HDF5 weights: {exc}", file=path) from None
    with handle:
        try:
            if "data" not in handle or not isinstance(handle["data"], h5py.Group):
                raise ModelFileError("no 'data' group: not a Caffe HDF5 weights file")
            layers = []
            _collect(h5py, handle["data"], "", layers, os.path.getsize(path))
        except CaffeLiteError as exc:
            exc.with_context(file=path)
            raise
        except OSError as exc:
            raise ModelFileError(f"cannot read HDF5 weights: {exc}", file=path) from None
        yield layers


def _collect(h5py, group, prefix, layers, file_size):
    """A group holding datasets is a layer; subgroups are layers too (a layer name
    with '/' is stored as nested groups)."""
    datasets = {key: item for key, item in group.items()
                if isinstance(item, h5py.Dataset)}
    if prefix and (datasets or not len(group)):
        layers.append(StoredLayer(prefix, "", _blobs(datasets, prefix, file_size)))
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            _collect(h5py, item, f"{prefix}/{key}" if prefix else key, layers, file_size)


def _blobs(datasets, layer, file_size):
    if sorted(datasets) != [str(i) for i in range(len(datasets))]:
        raise ModelFileError(f"datasets {sorted(datasets)} are not named 0..n-1",
                             layer=layer)
    blobs = [_Hdf5Blob(datasets[str(i)]) for i in range(len(datasets))]
    for i, blob in enumerate(blobs):
        if blob.dtype.kind not in "fiub":
            raise ModelFileError(f"dataset of type {blob.dtype} is not numbers",
                                 layer=layer, blob=f"{layer}[{i}]")
        if not blob.compressed and blob.nbytes > file_size:
            raise ModelFileError(
                f"dataset declares shape {blob.shape}, {blob.nbytes:,} bytes, more "
                f"than the {file_size:,} bytes of the whole file", layer=layer,
                blob=f"{layer}[{i}]")
    return blobs


class _Hdf5Blob(StoredBlob):
    """A dataset, read with read_direct into the target (h5py converts types)."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.shape, self.legacy = tuple(dataset.shape), False
        self.dtype = np.dtype(dataset.dtype)
        self.compressed = dataset.id.get_create_plist().get_nfilters() > 0

    def read_into(self, out):
        if out.size != int(np.prod(self.shape, dtype=np.int64)):
            raise ModelFileError(f"cannot read a dataset of shape {self.shape} into "
                                 f"an array of shape {out.shape}")
        try:
            if out.size and out.flags.c_contiguous and out.shape == self.shape:
                self.dataset.read_direct(out)
            else:
                out[...] = np.asarray(self.dataset[()]).reshape(out.shape)
        except (OSError, TypeError, ValueError) as exc:
            raise ModelFileError(f"cannot read HDF5 dataset: {exc}") from None


def write_weights_hdf5(path, layers):
    """[(LayerParameter, [arrays])] -> Caffe's layout (float32 datasets)."""
    h5py = _h5py(path)
    with atomic_write(path, "w+b") as raw, h5py.File(raw, "w") as handle:
        data = handle.create_group("data")
        for layer_param, arrays in layers:
            group = data.require_group(layer_param.name)
            for i, array in enumerate(arrays):
                group.create_dataset(str(i), data=np.asarray(array, np.float32))
