"""Weights in and out of a Net's graph: copy (by layer name, Caffe's shape rules),
share, save (binary or HDF5) and to_proto. Functions of a NetGraph, called by
Net's methods of the same names."""
from __future__ import annotations

import os
from typing import Any, Iterable, Sequence, TypeVar

from ..blob import Blob
from ..errors import WeightsError
from ..formats import SavedLayer, StoredLayer, blob_to_proto, write_weights
from ..formats.caffemodel import blob_context, open_weights
from ..layers.base import Layer
from ..proto import caffe_pb2
from .graph import NetGraph


def copy_from(graph: NetGraph, weights_file: str | os.PathLike[str]) -> None:
    """Copy blobs from a .caffemodel (or .h5) into layers of the same name.

    Every layer and shape is checked before any value is read; then each blob's
    values go from the file straight into the param array, with no copy between."""
    path = os.fspath(weights_file)
    with open_weights(path) as stored:
        for saved, i, src, dst in _matches(graph, stored, path):
            with blob_context(path, saved, i):
                src.read_into(dst.data_for_overwrite())


def copy_from_layers(graph: NetGraph, saved_layers: Iterable[SavedLayer],
                     source: str | None = None) -> None:
    """Copy saved layers' blobs into the graph's layers of the same name."""
    for _, _, src, dst in _matches(graph, list(saved_layers), source):
        dst.data_for_overwrite()[...] = src.data.reshape(dst.shape)


_Saved = TypeVar("_Saved", SavedLayer, StoredLayer)


def _matches(graph: NetGraph, saved_layers: Sequence[_Saved],
             source: str | None) -> list[tuple[_Saved, int, Any, Blob]]:
    """(saved layer, index, saved blob, net blob) for every blob to copy, after
    checking all of them by Caffe's rules: layers matched by name (the first of a
    name; unknown ones ignored), blob counts equal, shapes equal."""
    layers: dict[str, Layer] = {}
    for name, layer in zip(graph.layer_names, graph.layers):
        layers.setdefault(name, layer)       # the first of a name, as Caffe
    pairs = []
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
            if not _shape_fits(tuple(src.shape), src.legacy, dst):
                raise WeightsError(
                    f"param blob {i} has shape {tuple(src.shape)} in the "
                    f"weights but {dst.shape} in the net", file=source,
                    layer=layer.name, layer_type=layer.type, blob=f"{layer.name}[{i}]")
            pairs.append((saved, i, src, dst))
    return pairs


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


def _shape_fits(src_shape: tuple[int, ...], legacy: bool, blob: Blob) -> bool:
    """Caffe's shape check; a legacy 4-D blob compares with the last four axes."""
    if not legacy:
        return src_shape == tuple(blob.shape)
    if blob.num_axes > 4:
        return False
    return src_shape == tuple(blob.legacy_shape(i) for i in range(-4, 0))
