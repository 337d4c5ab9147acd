"""The inputs of a batch-inference run, in a fixed order with a key per item:
an image list (Caffe's ``<path> [label]`` lines; key = the path as written), a
folder of images (sorted names; key = the file name) or an LMDB / LevelDB of
Datum records (key order; key = the record's key).

``Inputs`` holds only names, so it travels to Dask workers cheaply; a worker
reads its own items with ``read_records``, as Caffe's data layers would read
them: images as cv::imread does (BGR, or gray for a one-channel net), records
as (C, H, W) arrays.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..data.datum import datum_to_chw
from ..data.db import RecordReader
from ..data.image import COLOR, GRAY, parse_list_line, read_image, to_chw
from ..errors import CaffeLiteError
from ..proto import caffe_pb2

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff")


@dataclass
class Inputs:
    """kind: 'list', 'folder', 'lmdb' or 'leveldb'; keys in input order;
    ``paths``: the file each key names (images), else empty."""
    kind: str
    source: str
    keys: list[str]
    paths: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)


def open_inputs(source: str | os.PathLike[str]) -> Inputs:
    """The inputs ``source`` names (see the module docstring)."""
    source = os.fspath(source)
    if not os.path.exists(source):
        raise CaffeLiteError("the input does not exist (give an image list, a folder "
                             "of images, or an LMDB / LevelDB)", file=source)
    if os.path.isdir(source):
        backend = _database_backend(source)
        if backend:
            reader = RecordReader(source, backend)
            try:
                keys = [key.decode("utf-8", "replace") for key, _ in reader.records()]
            finally:
                reader.close()
            inputs = Inputs(backend, source, keys)
        else:
            names = sorted(n for n in os.listdir(source)
                           if n.lower().endswith(IMAGE_EXTENSIONS))
            inputs = Inputs("folder", source, names,
                            [os.path.join(source, n) for n in names])
    else:
        try:
            with open(source) as handle:
                lines = [line.strip() for line in handle if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise CaffeLiteError(f"cannot read the image list: {exc}", file=source) \
                from None
        keys = [parse_list_line(line)[0] for line in lines]
        base = os.path.dirname(os.path.abspath(source))
        paths = [k if os.path.isabs(k) or os.path.exists(k) else os.path.join(base, k)
                 for k in keys]
        inputs = Inputs("list", source, keys, paths)
    if not len(inputs):
        raise CaffeLiteError("the input holds no items", file=source)
    return inputs


def _database_backend(folder: str) -> str | None:
    if os.path.exists(os.path.join(folder, "data.mdb")):
        return "lmdb"
    if os.path.exists(os.path.join(folder, "CURRENT")):
        return "leveldb"
    return None


def read_records(inputs: Inputs, indices: list[int], channels: int,
                 size: tuple[int, int] = (0, 0)) -> list[np.ndarray]:
    """The items at ``indices`` as (C, H, W) arrays (images resized to ``size``
    when it is not (0, 0), as ImageData's new_height / new_width)."""
    if inputs.kind in ("list", "folder"):
        return [to_chw(read_image(inputs.paths[i], *size, is_color=channels != 1))
                for i in indices]
    reader = RecordReader(inputs.source, inputs.kind)
    mode = COLOR if channels == 3 else GRAY
    try:
        records = []
        for i in indices:
            value = reader.get(inputs.keys[i].encode("utf-8"))
            if value is None:
                raise CaffeLiteError(f"record {inputs.keys[i]!r} is no longer in the "
                                     f"database", file=inputs.source)
            records.append(datum_to_chw(caffe_pb2.Datum.FromString(value), mode,
                                        name=f"{inputs.source} record {inputs.keys[i]!r}"))
        return records
    finally:
        reader.close()
