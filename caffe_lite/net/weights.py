"""Weights in and out of a Net's graph: copy (by layer name, Caffe's shape rules),
share, save (binary or HDF5) and to_proto. Functions of a NetGraph, called by
Net's methods of the same names."""
from __future__ import annotations

import os
from typing import Iterable

from ..blob import Blob
from ..errors import WeightsError
from ..formats import SavedBlob, SavedLayer, blob_to_proto, read_weights, write_weights
from ..layers.base import Layer
from ..proto import caffe_pb2
from .graph import NetGraph


def copy_from(graph: NetGraph, weights_file: str | os.PathLike[str]) -> None:
    """Copy blobs from a .caffemodel (or .h5) into layers of the same name."""
    path = os.fspath(weights_file)
    copy_from_layers(graph, read_weights(path), path)


def copy_from_layers(graph: NetGraph, saved_layers: Iterable[SavedLayer],
                     source: str | None = None) -> None:
    """Copy saved layers' blobs into the graph's layers of the same name."""
    layers: dict[str, Layer] = {}
    for name, layer in zip(graph.layer_names, graph.layers):
        layers.setdefault(name, layer)       # the first of a name, as Caffe
    for saved in saved_layers:
        if saved.name not in layers:
            continue                         # unknown source layers are ignored
        layer = layers[saved.name]
        if len(saved.blobs) != len(layer.blobs):
            raise WeightsError(
                f"the weights have {len(saved.blobs)} blob(s) for this layer, "
                f"the net has {len(layer.blobs)}", file=source,
                layer=layer.name, layer_type=layer.type)
        for i, (src, dst) in enumerate(zip(saved.blobs, layer.blobs)):
            if not _shape_fits(src, dst):
                raise WeightsError(
                    f"param blob {i} has shape {tuple(src.data.shape)} in the "
                    f"weights but {dst.shape} in the net", file=source,
                    layer=layer.name, layer_type=layer.type, blob=f"{layer.name}[{i}]")
            dst.data[...] = src.data.reshape(dst.shape)


def share_with(graph: NetGraph, other: NetGraph) -> None:
    """Use another graph's param blobs for layers of the same name (test nets)."""
    mine = dict(zip(graph.layer_names, graph.layers))
    for layer in other.layers:
        target = mine.get(layer.name)
        if target is None:
            continue
        if len(target.blobs) != len(layer.blobs):
            raise WeightsError("different number of param blobs", layer=layer.name,
                               layer_type=layer.type)
        for i, blob in enumerate(layer.blobs):
            if target.blobs[i].shape != blob.shape:
                raise WeightsError(f"cannot share param {i}: shape {blob.shape} vs "
                                   f"{target.blobs[i].shape}", layer=layer.name,
                                   layer_type=layer.type)
            target.blobs[i].share_data(blob)


def to_proto(graph: NetGraph, write_diff: bool = False) -> caffe_pb2.NetParameter:
    """The net as a NetParameter with its blobs (slow for big nets: prefer save)."""
    out = caffe_pb2.NetParameter()
    out.name = graph.param.name
    for lp, layer in zip(graph.param.layer, graph.layers):
        dst = out.layer.add()
        dst.CopyFrom(lp)
        del dst.blobs[:]
        for blob in layer.blobs:
            dst.blobs.add().CopyFrom(blob_to_proto(blob.data, blob.diff if write_diff else None))
    return out


def save(graph: NetGraph, path: str | os.PathLike[str], fmt: str | None = None) -> None:
    """Write the weights as a binary .caffemodel (or HDF5 for .h5)."""
    layers = [(lp, [b.data for b in layer.blobs])
              for lp, layer in zip(graph.param.layer, graph.layers)]
    write_weights(os.fspath(path), graph.param.name, layers, fmt=fmt)


def _shape_fits(saved: SavedBlob, blob: Blob) -> bool:
    """Caffe's shape check; a legacy 4-D blob compares with the last four axes."""
    src_shape = tuple(saved.data.shape)
    if not saved.legacy:
        return src_shape == tuple(blob.shape)
    if blob.num_axes > 4:
        return False
    return src_shape == tuple(blob.legacy_shape(i) for i in range(-4, 0))
