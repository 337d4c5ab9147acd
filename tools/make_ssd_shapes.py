#!/usr/bin/env python
"""Write the synthetic detection data (discs and squares on noise with their boxes,
see tests/synthetic_shapes.py::make_detection_shapes) as the SSD fork's
AnnotatedDatum LMDBs, which AnnotatedData reads:

    <out>/train_lmdb, test_lmdb    one AnnotatedDatum per image: raw uint8 BGR
                                   pixels (or PNG with --encoded), one annotation
                                   group per class, boxes normalized to the image
    <out>/labelmap.prototxt        the fork's LabelMap: 0 background, 1 disc, 2 square

By default <out> is models/ssd_tiny/data. Generated, not committed (~3 MB).
Your own images and boxes go in the same way through ``write_lmdb``.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

LABELMAP = "".join(
    f'item {{\n  name: "{name}"\n  label: {label}\n  display_name: "{name}"\n}}\n'
    for label, name in enumerate(("background", "disc", "square")))


def write_lmdb(path, images, boxes, encoded=False):
    """images: uint8 (H, W, 3) BGR arrays; boxes: per image rows (label, xmin,
    ymin, xmax, ymax[, difficult]) normalized to it. Keys '%08d' in order."""
    from caffe_lite.data.annotated import make_annotated
    from caffe_lite.data.db import RecordWriter
    if os.path.exists(path):
        import shutil
        shutil.rmtree(path)
    with RecordWriter(path, "lmdb") as db:
        for i, (image, rows) in enumerate(zip(images, boxes)):
            data = png_bytes(image) if encoded else None
            db.put(f"{i:08d}".encode(), make_annotated(image, rows, data).SerializeToString())
    return path


def png_bytes(image):
    from io import BytesIO

    from PIL import Image
    out = BytesIO()
    Image.fromarray(image[:, :, ::-1]).save(out, format="PNG")     # BGR -> RGB file
    return out.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "models", "ssd_tiny", "data"))
    parser.add_argument("--train", type=int, default=400, help="training images (400)")
    parser.add_argument("--test", type=int, default=100, help="test images (100)")
    parser.add_argument("--size", type=int, default=48, help="image side (48)")
    parser.add_argument("--seed", type=int, default=1701)
    parser.add_argument("--encoded", action="store_true", help="store PNG (needs Pillow)")
    args = parser.parse_args(argv)
    try:
        import lmdb  # noqa: F401
    except ImportError:
        sys.exit("lmdb is needed to write the databases: pip install '.[lmdb]'")
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from synthetic_shapes import make_detection_shapes

    os.makedirs(args.out, exist_ok=True)
    for split, num, seed in (("train", args.train, args.seed),
                             ("test", args.test, args.seed + 1)):
        images, boxes = make_detection_shapes(num, args.size, seed=seed)
        write_lmdb(os.path.join(args.out, f"{split}_lmdb"), images, boxes, args.encoded)
    with open(os.path.join(args.out, "labelmap.prototxt"), "w") as f:
        f.write(LABELMAP)
    print(f"{args.out}: {args.train} training and {args.test} test images, "
          f"{args.size}x{args.size}, classes disc and square")


if __name__ == "__main__":
    main()
