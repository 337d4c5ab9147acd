"""``caffe-lite compute-image-mean DB [MEAN.binaryproto]``: Caffe's
compute_image_mean. Averages every Datum of an LMDB/LevelDB (decoding encoded
ones), summing in float32 in record order as Caffe does, writes the mean as a
1 x C x H x W BlobProto with legacy dims, and prints each channel's mean."""
import sys

import numpy as np

from ..data.datum import datum_to_chw
from ..data.db import RecordReader
from ..errors import CaffeLiteError
from ..formats.atomic import atomic_write
from ..proto import caffe_pb2

HELP = "compute the mean image of an LMDB/LevelDB of Datums (binaryproto)"


def add_arguments(parser):
    parser.add_argument("db", help="input database")
    parser.add_argument("output", nargs="?", help="mean file to write (.binaryproto)")
    parser.add_argument("--backend", default="lmdb", choices=("lmdb", "leveldb"))


def run(args):
    mean = compute_mean(args.db, args.backend)
    if args.output:
        write_mean(mean, args.output)
    for c, plane in enumerate(mean):
        print(f"mean_value channel [{c}]: {plane.sum(dtype=np.float32) / plane.size}",
              file=sys.stderr)
    return 0


def compute_mean(path, backend="lmdb"):
    """The mean (C, H, W) float32 of every record, as Caffe computes it."""
    db = RecordReader(path, backend)
    try:
        total, count = None, 0
        for key, value in db.records():
            array = datum_to_chw(caffe_pb2.Datum.FromString(value))
            if total is None:
                total = np.zeros(array.shape, np.float32)
            elif array.shape != total.shape:
                raise CaffeLiteError(f"record {key!r} is {array.shape}, the first "
                                     f"is {total.shape}", file=path)
            total += array.astype(np.float32)
            count += 1
    finally:
        db.close()
    if not count:
        raise CaffeLiteError("the database holds no records", file=path)
    return total / np.float32(count)


def write_mean(mean, path):
    blob = caffe_pb2.BlobProto(num=1, channels=mean.shape[0], height=mean.shape[1],
                               width=mean.shape[2])
    blob.data.extend(mean.ravel().tolist())
    with atomic_write(path) as handle:
        handle.write(blob.SerializeToString())
