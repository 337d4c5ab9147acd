#!/usr/bin/env python3
"""compute_image_mean -- Caffe's tool of that name.

Same as: caffe-lite compute-image-mean [args]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from caffe_lite.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["compute-image-mean", *sys.argv[1:]]))
