"""``caffe-lite summary net.prototxt``: one row per layer with its top shapes,
parameter count, multiply-accumulates and activation memory, then totals."""
import argparse

from ..errors import CaffeLiteError
from ..formats import read_net_param
from ..net import Net
from ..net.summary import parse_shape, set_input_shapes, summarize

HELP = "print each layer's output shapes, parameters, MACs and memory, with totals"


def _shape(text):
    try:
        return parse_shape(text)
    except CaffeLiteError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser):
    parser.add_argument("net", help="network prototxt")
    parser.add_argument("--weights", help="caffemodel to load (checks that it fits)")
    parser.add_argument("--input-shape", nargs="+", type=_shape, metavar="SHAPE",
                        help="new shape for each net input in order, e.g. 1,3,224,224")
    parser.add_argument("--phase", choices=("TRAIN", "TEST"), default="TEST",
                        type=str.upper, help="net phase (default TEST)")
    parser.add_argument("--level", type=int, default=0, help="net state level")
    parser.add_argument("--stage", action="append", default=[],
                        help="net state stage (repeat for several)")


def summarize_file(path, phase="TEST", input_shapes=None, weights=None, **net_kwargs):
    """Build the net in ``path`` (optionally with new input shapes) and summarize it."""
    param = read_net_param(path)
    if input_shapes:
        set_input_shapes(param, input_shapes)
    try:
        net = Net(param, phase, weights=weights, **net_kwargs)
    except CaffeLiteError as exc:
        exc.with_context(file=str(path))
        raise
    return summarize(net)


def run(args):
    summary = summarize_file(args.net, phase=args.phase, input_shapes=args.input_shape,
                             weights=args.weights, level=args.level, stages=args.stage)
    print(summary)
    return 0
