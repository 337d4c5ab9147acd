"""``caffe-lite export --onnx deploy.prototxt --weights w.caffemodel -o model.onnx``:
write the net as an ONNX model, then run it in onnxruntime and compare every output
with caffe_lite's forward (non-zero exit and ``*.unverified.onnx`` on a mismatch).
``--check-only`` re-verifies an existing file."""
import os
import sys

import numpy as np

from ..errors import CaffeLiteError, ExportError, VerificationError
from ..formats.prototxt import parse_text_message, read_text
from ..formats.upgrade import upgrade_net, upgraded
from ..net import Net
from ..net.passes import filter_by_state
from ..net.summary import FILE_DATA_TYPES, parse_shape
from ..proto import caffe_pb2

HELP = "export a net to ONNX and verify the file against caffe_lite's own forward"


def add_arguments(parser):
    parser.add_argument("net", help="deploy prototxt")
    parser.add_argument("--onnx", action="store_true",
                        help="export to ONNX (the only format, and the default)")
    parser.add_argument("--weights", help="caffemodel (or .h5) to load")
    parser.add_argument("-o", "--output", help="the .onnx file (default: the "
                        "prototxt's name with .onnx)")
    parser.add_argument("--input", action="append", default=[], metavar="NAME:SPEC",
                        help="an input's shape (data:1,3,224,224) or a .npy array to "
                             "verify on as well (data:image.npy); repeat per input")
    parser.add_argument("--phase", choices=("TRAIN", "TEST"), default="TEST",
                        type=str.upper, help="net phase (default TEST; TRAIN nets are "
                                             "refused)")
    parser.add_argument("--level", type=int, default=0, help="net state level")
    parser.add_argument("--stage", action="append", default=[],
                        help="net state stage (repeat for several)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--rtol", type=float, default=1e-4,
                        help="largest accepted relative difference (default 1e-4)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random verification input (default 0)")
    parser.add_argument("--check-only", action="store_true",
                        help="verify an existing -o file; write nothing")


def parse_inputs(specs):
    """['data:1,3,8,8', 'im:x.npy'] -> ({name: shape}, {name: array})."""
    shapes, arrays = {}, {}
    for spec in specs:
        name, sep, value = spec.rpartition(":")
        if not sep or not name:
            raise ExportError(f"--input '{spec}' is not NAME:SHAPE or NAME:FILE.npy")
        if value.endswith(".npy"):
            try:
                arrays[name] = np.load(value, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ExportError(f"cannot read the array for input '{name}': {exc}",
                                  file=value) from exc
            shapes[name] = arrays[name].shape
        else:
            shapes[name] = parse_shape(value)
    return shapes, arrays


def load_net(path, phase="TEST", weights=None, shapes=None, level=0, stages=()):
    """Build the net to export: TEST phase, Input layers only, every input shaped."""
    if str(phase).upper() == "TRAIN":
        raise ExportError("a TRAIN-phase net is not exported: use the deploy prototxt, "
                          "or --phase TEST", file=path)
    shapes = dict(shapes or {})
    param = _read(path, shapes)
    state = caffe_pb2.NetState(phase=caffe_pb2.TEST, level=level, stage=list(stages))
    param = filter_by_state(param, state)
    readers = [f"'{lp.name}' ({lp.type})" for lp in param.layer
               if lp.type in FILE_DATA_TYPES]
    if readers:
        raise ExportError(f"the data layer(s) {', '.join(readers)} read training files: "
                          f"this is a train/test prototxt; export the deploy prototxt, "
                          f"whose Input layers take the data", file=path)
    _shape_inputs(param, shapes, path)
    try:
        return Net(param, caffe_pb2.TEST, weights=weights)
    except CaffeLiteError as exc:
        exc.with_context(file=str(path))
        raise


def _read(path, shapes):
    """The upgraded NetParameter; legacy ``input:`` names without dims (which the
    upgrade drops) take their --input shapes first, or are asked for."""
    raw = parse_text_message(read_text(path, "network file"), caffe_pb2.NetParameter(),
                             str(path))
    if len(raw.input) and not (len(raw.input_shape) or len(raw.input_dim)):
        _ask_for([name for name in raw.input if name not in shapes], path)
        for name in raw.input:
            raw.input_shape.add().dim.extend(int(d) for d in shapes.pop(name))
    return upgraded(raw, upgrade_net, str(path))


def _ask_for(unshaped, path):
    if unshaped:
        example = " ".join(f"--input {name}:1,3,224,224" for name in unshaped)
        raise ExportError(f"the net's input(s) {', '.join(unshaped)} have no shape in "
                          f"the prototxt: give each one, e.g. {example}", file=path)


def _shape_inputs(param, shapes, path):
    """Give Input tops the --input shapes; ask for the ones still without a shape."""
    known, unshaped = [], []
    for lp in param.layer:
        if lp.type != "Input":
            continue
        p = lp.input_param
        if len(p.shape) == 1 and len(lp.top) > 1:          # one shape for every top
            p.shape.extend([p.shape[0]] * (len(lp.top) - 1))
        while len(p.shape) < len(lp.top):
            p.shape.add()
        for top, shape in zip(lp.top, p.shape):
            known.append(top)
            if top in shapes:
                del shape.dim[:]
                shape.dim.extend(int(d) for d in shapes.pop(top))
            elif not shape.dim:
                unshaped.append(top)
    if shapes:
        raise ExportError(f"--input names {sorted(shapes)}, but the net's inputs are "
                          f"{known}", file=path)
    _ask_for(unshaped, path)


def run(args):
    from .. import onnx as onnx_export  # the optional extra, imported on use
    output = args.output or os.path.splitext(args.net)[0] + ".onnx"
    shapes, arrays = parse_inputs(args.input)
    net = load_net(args.net, args.phase, args.weights, shapes, args.level, args.stage)
    feeds = [arrays] if arrays else []
    if arrays and set(arrays) != set(net.inputs):
        raise ExportError(f"--input arrays are given for {sorted(arrays)}; give one for "
                          f"every input {list(net.inputs)} (or only shapes)")
    if args.check_only:
        if not os.path.exists(output):
            raise ExportError("--check-only needs an existing model (-o)", file=output)
        result = onnx_export.verify(net, output, inputs=feeds, rtol=args.rtol,
                                    seed=args.seed)
    else:
        if args.weights is None:
            print("note: no --weights, the export holds the fillers' initial weights",
                  file=sys.stderr)
        try:
            result = onnx_export.export(net, output, opset=args.opset, inputs=feeds,
                                        rtol=args.rtol, seed=args.seed)
        except VerificationError as exc:
            print(exc.verification.format())
            raise
    print(result.format())
    if not result.ok:
        print(f"caffe-lite export: {output} does not match the net (relative "
              f"tolerance {args.rtol:g})", file=sys.stderr)
        return 1
    print(f"{'verified' if args.check_only else 'wrote'} {output}: every output within "
          f"relative tolerance {args.rtol:g}")
    return 0
