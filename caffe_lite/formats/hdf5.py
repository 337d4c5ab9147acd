"""Caffe's HDF5 weights layout: group "data", one group per layer name, datasets
"0", "1", ... for its param blobs (Net::ToHDF5 / CopyTrainedLayersFromHDF5).
h5py is optional (the 'hdf5' extra)."""
import os

import numpy as np

from ..errors import ModelFileError, require
from .atomic import atomic_write
from .blobs import SavedBlob, SavedLayer


def _h5py(path):
    return require("h5py", "hdf5", "reading or writing HDF5 weights", file=path)


def read_weights_hdf5(path):
    """[SavedLayer] from a .caffemodel.h5; types are not stored, so type is ""."""
    path = os.fspath(path)
    h5py = _h5py(path)
    try:
        with h5py.File(path, "r") as handle:
            if "data" not in handle or not isinstance(handle["data"], h5py.Group):
                raise ModelFileError("no 'data' group: not a Caffe HDF5 weights file",
                                     file=path)
            layers = []
            _collect(h5py, handle["data"], "", layers)
            return layers
    except OSError as exc:
        raise ModelFileError(f"cannot read HDF5 weights: {exc}", file=path) from None


def _collect(h5py, group, prefix, layers):
    """A group holding datasets is a layer; subgroups are layers too (a layer name
    with '/' is stored as nested groups)."""
    datasets = {key: item for key, item in group.items()
                if isinstance(item, h5py.Dataset)}
    if prefix and (datasets or not len(group)):
        layers.append(SavedLayer(prefix, "", _blobs(datasets, prefix)))
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            _collect(h5py, item, f"{prefix}/{key}" if prefix else key, layers)


def _blobs(datasets, layer):
    if sorted(datasets) != [str(i) for i in range(len(datasets))]:
        raise ModelFileError(f"datasets {sorted(datasets)} are not named 0..n-1",
                             layer=layer)
    return [SavedBlob(np.asarray(datasets[str(i)][()]), False)
            for i in range(len(datasets))]


def write_weights_hdf5(path, layers):
    """[(LayerParameter, [arrays])] -> Caffe's layout (float32 datasets)."""
    h5py = _h5py(path)
    with atomic_write(path, "w+b") as raw, h5py.File(raw, "w") as handle:
        data = handle.create_group("data")
        for layer_param, arrays in layers:
            group = data.require_group(layer_param.name)
            for i, array in enumerate(arrays):
                group.create_dataset(str(i), data=np.asarray(array, np.float32))
