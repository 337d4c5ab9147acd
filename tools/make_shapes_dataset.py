#!/usr/bin/env python
"""Write the synthetic segmentation data (discs and squares on noise, see
tests/synthetic_shapes.py) that the example nets in models/ train on, as Caffe
HDF5Data files:

    <out>/shapes_train.h5, shapes_test.h5   data (N, 3, S, S), label (N, 1, S, S),
                                            float32; label 0 background, 1 disc, 2 square
    <out>/train.txt, test.txt               HDF5Data source lists

By default <out> is the data/ folder of each of models/fcn8s_tiny, deconvnet_tiny
and segnet_tiny (the same images in each). The files are generated, not committed
(~8 MB per folder with the defaults). Run from anywhere; the lists name the .h5 files
relative to the repository root, as the nets' ``source`` paths are, so
``caffe-lite train --solver models/<name>/solver.prototxt`` then works from the root.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("fcn8s_tiny", "deconvnet_tiny", "segnet_tiny")


def write_split(out_dir, split, images, labels):
    """shapes_<split>.h5 plus the <split>.txt list naming it."""
    import h5py
    path = os.path.join(out_dir, f"shapes_{split}.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=images)
        f.create_dataset("label", data=labels)
    listed = os.path.abspath(path)
    if listed.startswith(ROOT + os.sep):
        listed = os.path.relpath(listed, ROOT)
    with open(os.path.join(out_dir, f"{split}.txt"), "w") as f:
        f.write(listed + "\n")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", action="append",
                        help="output folder (repeatable; default: each model's data/)")
    parser.add_argument("--train", type=int, default=400, help="training images (400)")
    parser.add_argument("--test", type=int, default=100, help="test images (100)")
    parser.add_argument("--size", type=int, default=32,
                        help="image side (32: the nets' Unpooling/Crop sizes assume it)")
    parser.add_argument("--seed", type=int, default=1701)
    args = parser.parse_args(argv)
    try:
        import h5py  # noqa: F401
    except ImportError:
        sys.exit("h5py is needed to write HDF5 files: pip install '.[hdf5]'")
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from synthetic_shapes import majority_fraction, make_shapes

    outs = args.out or [os.path.join(ROOT, "models", m, "data") for m in MODELS]
    train = make_shapes(args.train, args.size, seed=args.seed)
    test = make_shapes(args.test, args.size, seed=args.seed + 1)   # held out
    for out in outs:
        os.makedirs(out, exist_ok=True)
        write_split(out, "train", *train)
        write_split(out, "test", *test)
        print(f"{out}: {args.train} training and {args.test} test images, "
              f"{args.size}x{args.size}")
    print(f"chance (majority class) pixel accuracy on the test images: "
          f"{majority_fraction(test[1]):.3f}")


if __name__ == "__main__":
    main()
