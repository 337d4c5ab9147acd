"""``caffe-lite classify``: run one image through a deploy net and print the top
classes, e.g. a digit with models/lenet/deploy.prototxt and its trained weights.

Images: .npy (an array), .pgm/.ppm (read here), anything else through Pillow
(the ``image`` extra). The image is resized to the net input, scaled to [0, 1]
(``--scale``), and inverted when its border is brighter than its centre (the
digits were trained as light strokes on a dark background).
"""
import os

import numpy as np

from ..errors import CaffeLiteError, require

HELP = "classify an image with a trained net and print the top classes"


def add_arguments(parser):
    parser.add_argument("image", help="image file (.png/.jpg with Pillow, .pgm, .npy)")
    parser.add_argument("--model", required=True, help="deploy net (.prototxt)")
    parser.add_argument("--weights", required=True, help="trained weights (.caffemodel)")
    parser.add_argument("--top", type=int, default=3, help="classes to show (default 3)")
    parser.add_argument("--labels", help="text file with one class name per line")
    parser.add_argument("--scale", type=float, default=None,
                        help="multiply pixels by this (default: 1/255 for 8-bit images)")
    parser.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                        help="invert dark-on-light images (default: auto)")


def read_image(path, channels):
    """(H, W, C) float array with the file's own value range."""
    ext = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise CaffeLiteError("image file does not exist", file=path)
    if ext == ".npy":
        image = np.load(path).astype(np.float32)
    elif ext in (".pgm", ".ppm"):
        image = _read_netpbm(path)
    else:
        pil = require("PIL.Image", "image", "reading this image format")
        with pil.open(path) as img:
            image = np.asarray(img.convert("L" if channels == 1 else "RGB"), np.float32)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] != channels:
        image = (image.mean(axis=2, keepdims=True) if channels == 1
                 else np.repeat(image[:, :, :1], channels, axis=2))
    return image


def _read_netpbm(path):
    """Binary PGM (P5) / PPM (P6), 8 or 16 bit."""
    raw = open(path, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:
        while raw[pos:pos + 1].isspace():
            pos += 1
        if raw[pos:pos + 1] == b"#":
            pos = raw.index(b"\n", pos)
            continue
        end = pos
        while not raw[end:end + 1].isspace():
            end += 1
        fields.append(raw[pos:end])
        pos = end
    magic = fields[0]
    width, height, maxval = map(int, fields[1:])
    if magic not in (b"P5", b"P6"):
        raise CaffeLiteError("only binary PGM (P5) / PPM (P6) files are supported",
                             file=path)
    depth = 1 if magic == b"P5" else 3
    dtype = ">u2" if maxval > 255 else "u1"
    data = np.frombuffer(raw, dtype, height * width * depth, pos + 1)
    return data.reshape(height, width, depth).astype(np.float32) * (255.0 / maxval)


def resize(image, height, width):
    """Bilinear resize of (H, W, C) with half-pixel centres."""
    def matrix(n_out, n_in):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        m = np.zeros((n_out, n_in))
        m[np.arange(n_out), lo] += 1 - (pos - lo)
        m[np.arange(n_out), hi] += pos - lo
        return m
    rows, cols = matrix(height, image.shape[0]), matrix(width, image.shape[1])
    return np.einsum("ih,hwc,jw->ijc", rows, image, cols)


def run(args):
    from ..net.net import TEST, Net
    net = Net(args.model, TEST, weights=args.weights)
    if not net.inputs:
        raise CaffeLiteError("the model has no Input layer to feed (use a deploy "
                             "prototxt)", file=args.model)
    blob = net.blobs[net.inputs[0]]
    _, channels, height, width = blob.shape
    image = read_image(args.image, channels)
    scale = args.scale
    if scale is None:
        scale = 1.0 / 255 if image.max() > 1.0 else 1.0
    image = resize(image * scale, height, width)
    if args.invert == "yes" or (args.invert == "auto" and _light_background(image)):
        image = image.max() + image.min() - image
    blob.reshape(1, channels, height, width)
    net.reshape()
    blob.data[0] = image.transpose(2, 0, 1)                 # (H, W, C) -> (C, H, W)
    out = net.forward()
    probs = np.asarray(out[net.outputs[0]]).reshape(-1)
    labels = _labels(args.labels, len(probs))
    for k in np.argsort(-probs, kind="stable")[:args.top]:
        print(f"{probs[k]:.4f}  {labels[k]}")
    return 0


def _light_background(image):
    border = np.concatenate([image[0].ravel(), image[-1].ravel(),
                             image[:, 0].ravel(), image[:, -1].ravel()])
    return float(border.mean()) > float(image.mean())


def _labels(path, count):
    if not path:
        return [str(i) for i in range(count)]
    names = [line.strip() for line in open(path) if line.strip()]
    if len(names) < count:
        raise CaffeLiteError(f"{len(names)} labels for {count} classes", file=path)
    return names
