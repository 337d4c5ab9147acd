"""``caffe-lite classify``: BVLC's ``python/classify.py`` as a command. Images go
through pycaffe's Classifier: loaded as RGB floats in [0, 1] (grayscale for a
one-channel net), scaled to ``--images-dim``, centre-cropped or oversampled (ten
crops, averaged), then channel-swapped (BGR by default, as Caffe nets expect),
multiplied by ``--raw-scale``, mean-subtracted and multiplied by
``--input-scale``. Every step applied is printed; nothing is inverted or
converted unless asked. The scores come from the net's probability output (a
Softmax top), never from another output such as a box regression, unless
``--output-blob`` names one.
"""
import glob
import os

import numpy as np

from ..errors import CaffeLiteError
from ._caffe_flags import apply_fast, note_gpu

HELP = "classify images with a trained net (BVLC's classify.py) and print the top classes"


def add_arguments(parser):
    parser.add_argument("input", help="an image, a .npy array of images (N x H x W x K or "
                                      "H x W x K, values in [0, 1]), or a folder")
    parser.add_argument("--model", required=True, help="deploy net (.prototxt)")
    parser.add_argument("--weights", required=True, help="trained weights (.caffemodel)")
    parser.add_argument("--output", metavar="NPY", help="save the scores here (.npy)")
    parser.add_argument("--fast", action="store_true",
                        help="Winograd for 3x3 stride-1 convolutions (about 1e-6 relative "
                             "from the exact path)")
    parser.add_argument("--output-blob", help="the blob to read (default: the net's "
                                              "probability output)")
    parser.add_argument("--images-dim", default=None, metavar="H,W",
                        help="size images are scaled to before cropping "
                             "(default: the net's input size)")
    parser.add_argument("--center-only", action="store_true",
                        help="use the centre crop only (default: the ten crops of "
                             "oversampling, mirrored ones included, averaged)")
    parser.add_argument("--mean-file", help="mean to subtract: .binaryproto or .npy "
                                            "(C x H x W, in the net's channel order)")
    parser.add_argument("--mean-values", metavar="V1,V2,...",
                        help="per-channel mean to subtract (net's channel order)")
    parser.add_argument("--raw-scale", type=float, default=255.0,
                        help="multiply the [0, 1] image by this first (default 255)")
    parser.add_argument("--input-scale", type=float, default=None,
                        help="multiply by this after subtracting the mean")
    parser.add_argument("--channel-swap", default="2,1,0",
                        help="the input channel order from RGB (default 2,1,0 = BGR, "
                             "as Caffe nets expect; 0,1,2 keeps RGB)")
    parser.add_argument("--invert", action="store_true",
                        help="invert the image first (1 - x): for dark-on-light "
                             "images given to a net trained on light-on-dark ones")
    parser.add_argument("--ext", default="jpg", help="image extension in a folder")
    parser.add_argument("--top", type=int, default=5, help="classes to show (default 5)")
    parser.add_argument("--labels", help="text file with one class name per line")
    parser.add_argument("--gpu", help="accepted for Caffe's command lines; runs on the CPU")


def _ints(text, what):
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise CaffeLiteError(f"{what} must be comma-separated integers, got '{text}'") \
            from None


def load_inputs(path, channels, ext):
    """(list of H x W x K float images in [0, 1], their names)."""
    from ..pycaffe import io
    if os.path.isdir(path):
        names = sorted(glob.glob(os.path.join(path, f"*.{ext}")))
        if not names:
            raise CaffeLiteError(f"no *.{ext} images in the folder", file=path)
    elif not os.path.exists(path):
        raise CaffeLiteError("no such input file", file=path)
    elif path.endswith(".npy"):
        array = np.load(path).astype(np.float32)
        images = list(array if array.ndim == 4 else array[None])
        return images, [f"{path}[{i}]" for i in range(len(images))]
    else:
        names = [path]
    images = [_read_netpbm(n, channels) if n.lower().endswith((".pgm", ".ppm"))
              else io.load_image(n, color=channels != 1) for n in names]
    return images, names


def _read_netpbm(path, channels):
    """Binary PGM (P5) / PPM (P6), 8 or 16 bit, as H x W x K floats in [0, 1]
    (read here, so the LeNet example needs no Pillow)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    fields, pos = [], 0
    while len(fields) < 4 and pos < len(raw):
        while raw[pos:pos + 1].isspace():
            pos += 1
        if raw[pos:pos + 1] == b"#":
            pos = raw.index(b"\n", pos)
            continue
        end = pos
        while end < len(raw) and not raw[end:end + 1].isspace():
            end += 1
        fields.append(raw[pos:end])
        pos = end
    if len(fields) < 4 or fields[0] not in (b"P5", b"P6"):
        raise CaffeLiteError("only binary PGM (P5) / PPM (P6) files are supported",
                             file=path)
    width, height, maxval = (int(f) for f in fields[1:])
    depth = 1 if fields[0] == b"P5" else 3
    dtype = ">u2" if maxval > 255 else "u1"
    try:
        data = np.frombuffer(raw, dtype, height * width * depth, pos + 1)
    except ValueError:
        raise CaffeLiteError("the file is shorter than its header says", file=path) \
            from None
    image = data.reshape(height, width, depth).astype(np.float32) / maxval
    if depth != channels:
        image = (image.mean(axis=2, keepdims=True) if channels == 1
                 else np.repeat(image, channels, axis=2))
    return image


def probability_output(net, model):
    """The output blob a Softmax layer produces (the class probabilities)."""
    producers = {}
    for layer in net.layers:
        for top in net.top_names[layer.name]:
            producers[top] = layer.type
    softmax = [name for name in net.outputs if producers.get(name) == "Softmax"]
    if len(softmax) == 1:
        return softmax[0]
    raise CaffeLiteError(
        f"the net's outputs are {', '.join(net.outputs)}, of which "
        f"{len(softmax)} come from a Softmax layer: name the scores to read with "
        f"--output-blob", file=model)


def read_mean(args, channels):
    """The mean to subtract, in the net's channel order, and how it was read."""
    if args.mean_file and args.mean_values:
        raise CaffeLiteError("give --mean-file or --mean-values, not both")
    if args.mean_values:
        values = np.array([float(v) for v in args.mean_values.split(",")], np.float32)
        if len(values) != channels:
            raise CaffeLiteError(f"--mean-values has {len(values)} values for a "
                                 f"{channels}-channel input")
        return values, f"per-channel mean {values.tolist()} subtracted"
    if args.mean_file:
        from ..pycaffe import io
        if args.mean_file.endswith(".npy"):
            mean = np.load(args.mean_file).astype(np.float32)
        else:
            mean = io.load_binaryproto(args.mean_file)
        mean = mean.reshape(mean.shape[-3:]) if mean.ndim >= 3 else mean
        return mean, f"mean image {args.mean_file} {tuple(mean.shape)} subtracted"
    return None, "no mean subtracted"


def run(args):
    from ..pycaffe import Classifier
    from ..pycaffe.classifier import make_transformer
    note_gpu(args)
    apply_fast(args)
    swap = None if args.channel_swap.lower() in ("none", "") else \
        _ints(args.channel_swap, "--channel-swap")
    net = Classifier(args.model, args.weights)
    if not net.inputs:
        raise CaffeLiteError("the model has no Input layer to feed (use a deploy "
                             "prototxt)", file=args.model)
    in_ = net.inputs[0]
    _, channels, height, width = net.blobs[in_].data.shape
    if channels == 1 or swap == list(range(channels)):
        swap = None
    if swap is not None and len(swap) != channels:
        raise CaffeLiteError(f"--channel-swap {args.channel_swap} does not fit the "
                             f"net's {channels}-channel input")
    image_dims = _ints(args.images_dim, "--images-dim") if args.images_dim else [height,
                                                                                 width]
    mean, mean_step = read_mean(args, channels)
    blob = args.output_blob or probability_output(net, args.model)
    if blob not in net.blobs:
        raise CaffeLiteError(f"the net has no blob '{blob}'", file=args.model)
    net.image_dims = image_dims
    net.transformer = make_transformer(net, mean, args.input_scale, args.raw_scale, swap)
    images, names = load_inputs(args.input, channels, args.ext)
    if args.invert:
        images = [1.0 - image for image in images]
    kind = "RGB" if channels == 3 else f"{channels}-channel"
    steps = [f"loaded {len(images)} image(s) as {kind} floats in [0, 1]",
             "inverted: x -> 1 - x" if args.invert else "not inverted",
             f"scaled to {image_dims[0]} x {image_dims[1]}",
             f"centre crop {height} x {width}" if args.center_only else
             f"ten {height} x {width} crops (corners, centre, mirrored), averaged",
             f"channels reordered {swap} (RGB -> BGR)" if swap == [2, 1, 0] else
             f"channels reordered {swap}" if swap else "channel order kept",
             f"multiplied by {args.raw_scale:g} (raw scale)",
             mean_step]
    if args.input_scale is not None:
        steps.append(f"multiplied by {args.input_scale:g} (input scale)")
    print("Preprocessing:\n" + "".join(f"  {step}\n" for step in steps), end="")
    scores = net.predict(images, oversample=not args.center_only, blob=blob)
    scores = scores.reshape(len(images), -1)
    print(f"Scores from '{blob}' ({scores.shape[1]} values per image):")
    labels = _labels(args.labels, scores.shape[1])
    for name, row in zip(names, scores):
        if len(names) > 1:
            print(f"{name}:")
        for k in np.argsort(-row, kind="stable")[:args.top]:
            print(f"{row[k]:.4f}  {labels[k]}")
    if args.output:
        np.save(args.output, scores)
        print(f"Saved {scores.shape} scores to {args.output}")
    return 0


def _labels(path, count):
    if not path:
        return [str(i) for i in range(count)]
    with open(path) as handle:
        names = [line.strip() for line in handle if line.strip()]
    if len(names) < count:
        raise CaffeLiteError(f"{len(names)} labels for {count} classes", file=path)
    return names
