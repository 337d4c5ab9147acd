"""``caffe-lite convert-imageset ROOT/ LISTFILE DB``: Caffe's convert_imageset.
Each line of LISTFILE is ``<path> <label>``; ROOT/ is prefixed to the path as
text. Images are read as cv::imread does (BGR, or gray with --gray), optionally
resized, and stored as Datum records under keys ``%08d_<path>`` in a new LMDB
(default) or LevelDB. --encoded stores the image file (or a re-encoding) instead
of its pixels."""
import os
import sys

import numpy as np

from ..data.datum import array_to_datum
from ..data.db import RecordWriter
from ..data.image import parse_list_line, read_image, to_chw
from ..errors import CaffeLiteError
from ..proto import caffe_pb2
from ..rng import get_rng

HELP = "convert a list of images with labels into an LMDB/LevelDB of Datums"


def add_arguments(parser):
    parser.add_argument("root_folder", help="prefix of every path in the list")
    parser.add_argument("list_file", help="lines of '<path> <label>'")
    parser.add_argument("db_name", help="database to create (must not exist)")
    parser.add_argument("--gray", action="store_true", help="read images as grayscale")
    parser.add_argument("--shuffle", action="store_true",
                        help="shuffle the order of the images (seeded by --seed)")
    parser.add_argument("--seed", type=int, help="random seed for --shuffle")
    parser.add_argument("--backend", default="lmdb", choices=("lmdb", "leveldb"))
    parser.add_argument("--resize_height", "--resize-height", type=int, default=0)
    parser.add_argument("--resize_width", "--resize-width", type=int, default=0)
    parser.add_argument("--check_size", "--check-size", action="store_true",
                        help="require every image to have the same size")
    parser.add_argument("--encoded", action="store_true",
                        help="store encoded images instead of pixels")
    parser.add_argument("--encode_type", "--encode-type", default="",
                        help="encode as this type (png, jpg, ...); implies --encoded")


def run(args):
    with open(args.list_file) as handle:
        lines = [parse_list_line(line.rstrip("\r\n")) for line in handle if line.strip()]
    if args.shuffle:
        rng = get_rng() if args.seed is None else np.random.default_rng(args.seed)
        rng.shuffle(lines)
    height, width = max(0, args.resize_height), max(0, args.resize_width)
    encoded = args.encoded or bool(args.encode_type)
    count, size = 0, None
    with RecordWriter(args.db_name, args.backend) as db:
        for index, (name, label) in enumerate(lines):
            path = args.root_folder + name
            try:
                datum = image_datum(path, label, height, width, not args.gray,
                                    encoded, args.encode_type)
            except CaffeLiteError as exc:
                print(f"warning: skipping {path}: {exc.message}", file=sys.stderr)
                continue
            if args.check_size and not encoded:
                if size is None:
                    size = len(datum.data)
                elif len(datum.data) != size:
                    raise CaffeLiteError(f"image size {len(datum.data)} differs from "
                                         f"the first image's {size}", file=path)
            db.put(f"{index:08d}_{name}", datum.SerializeToString())
            count += 1
    print(f"Processed {count} files.", file=sys.stderr)
    return 0


def image_datum(path, label, height, width, is_color, encoded, encode_type):
    """Caffe's ReadImageToDatum: pixels (C, H, W) or, encoded, the file's bytes
    when they already are what is asked for, else a re-encoding (Pillow)."""
    image = read_image(path, height, width, is_color)
    if not encoded:
        return array_to_datum(to_chw(image), label)
    kind = (encode_type or os.path.splitext(path)[1][1:]).lower()
    ext = os.path.splitext(path)[1][1:].lower()
    same_type = ext == kind or (kind == "jpg" and ext == "jpeg")
    datum = caffe_pb2.Datum(label=label, encoded=True)
    if same_type and not (height or width) and (image.shape[2] == 3) == is_color:
        with open(path, "rb") as handle:
            datum.data = handle.read()
        return datum
    datum.data = encode_image(image, kind)
    return datum


def encode_image(image, kind):
    """A BGR/gray uint8 (H, W, C) image encoded as ``kind`` with Pillow."""
    import io

    from ..errors import require
    Image = require("PIL.Image", "image", "encoding images")
    pixels = image[:, :, 0] if image.shape[2] == 1 else image[:, :, ::-1]
    buffer = io.BytesIO()
    fmt = {"jpg": "JPEG", "jpeg": "JPEG"}.get(kind, kind.upper())
    try:
        Image.fromarray(pixels).save(buffer, format=fmt)
    except (KeyError, ValueError, OSError) as exc:
        raise CaffeLiteError(f"cannot encode images as '{kind}': {exc}") from None
    return buffer.getvalue()
