#!/usr/bin/env python
"""Build models/lenet/data: the 8x8 handwritten digits that scikit-learn ships
(1797 images, UCI "Optical Recognition of Handwritten Digits", CC BY 4.0),
upscaled to 16x16 and written as Caffe HDF5Data files.

Run once by a maintainer (needs scikit-learn and h5py); the result is committed,
so neither is needed to train. Output, all float32:
    digits_train.h5 / digits_test.h5   data (N, 1, 16, 16) in [0, 1], label (N,)
    train.txt / test.txt               HDF5Data source lists (paths from the repo root)
The split is a fixed seeded shuffle: 1437 training and 360 test images.
A few test images also go to models/lenet/examples as 32x32 dark-on-light PNG and
PGM files, for trying ``caffe-lite classify``.
"""
import argparse
import os
import struct
import sys
import zlib

import numpy as np

SIZE = 16
NUM_TEST = 360
SEED = 1701


def upscale(images, size):
    """Bilinear resize (N, h, w) -> (N, size, size) with half-pixel centres."""
    h = images.shape[1]
    pos = (np.arange(size) + 0.5) * h / size - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, h - 1)
    hi = np.clip(lo + 1, 0, h - 1)
    frac = np.clip(pos - lo, 0, 1)
    interp = np.zeros((size, h))                       # (size, h) interpolation matrix
    interp[np.arange(size), lo] += 1 - frac
    interp[np.arange(size), hi] += frac
    return np.einsum("ih,nhw,jw->nij", interp, images, interp)


def write_png(path, gray):
    """An 8-bit grayscale PNG, without Pillow."""
    height, width = gray.shape
    rows = b"".join(b"\0" + gray[r].tobytes() for r in range(height))

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" +
                chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def write_examples(images, labels, out_dir, wanted=(0, 3, 7)):
    """One test image per wanted label: ink dark on white, 32x32."""
    os.makedirs(out_dir, exist_ok=True)
    for label in wanted:
        k = int(np.flatnonzero(labels == label)[0])
        big = upscale(images[k:k + 1, 0].astype(np.float64), 32)[0]
        gray = np.round(255 * (1 - np.clip(big, 0, 1))).astype(np.uint8)
        stem = os.path.join(out_dir, f"digit_{label}")
        write_png(stem + ".png", gray)
        with open(stem + ".pgm", "wb") as f:
            f.write(b"P5\n32 32\n255\n" + gray.tobytes())


def build(out_dir, list_prefix, examples_dir):
    try:
        import h5py
        from sklearn.datasets import load_digits
    except ImportError as exc:
        sys.exit(f"this script needs scikit-learn and h5py ({exc}); "
                 f"pip install scikit-learn h5py")
    digits = load_digits()
    images = upscale(digits.images.astype(np.float64) / 16.0, SIZE)
    images = np.clip(images, 0, 1).astype(np.float32)[:, None]      # (N, 1, 16, 16)
    labels = digits.target.astype(np.float32)
    order = np.random.RandomState(SEED).permutation(len(labels))
    splits = {"test": order[:NUM_TEST], "train": order[NUM_TEST:]}
    os.makedirs(out_dir, exist_ok=True)
    for name, idx in splits.items():
        path = os.path.join(out_dir, f"digits_{name}.h5")
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=images[idx], compression="gzip",
                             compression_opts=9, shuffle=True)
            f.create_dataset("label", data=labels[idx], compression="gzip",
                             compression_opts=9, shuffle=True)
        with open(os.path.join(out_dir, f"{name}.txt"), "w") as f:
            f.write(f"{list_prefix}/digits_{name}.h5\n")
        print(f"{path}: {len(idx)} images, classes "
              f"{np.bincount(labels[idx].astype(int)).tolist()}")
    test = splits["test"]
    write_examples(images[test], labels[test], examples_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="models/lenet/data",
                        help="output directory (default: models/lenet/data)")
    parser.add_argument("--examples", default="models/lenet/examples",
                        help="where the sample digit images go")
    parser.add_argument("--list-prefix", default=None,
                        help="directory written into train.txt/test.txt "
                             "(default: the --out value)")
    args = parser.parse_args()
    build(args.out, args.list_prefix or args.out.rstrip("/"), args.examples)


if __name__ == "__main__":
    main()
