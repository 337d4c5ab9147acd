"""``caffe-lite summary net.prototxt``: one row per layer with its top shapes,
parameter count, multiply-accumulates and activation memory, then totals."""
import argparse

from ..errors import CaffeLiteError
from ..formats import read_net_param
from ..net import Net
from ..net.passes import filter_by_state
from ..net.summary import data_layers_as_inputs, parse_shape, set_input_shapes, summarize
from ..proto import caffe_pb2

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
    """Build the net in ``path`` (optionally with new input shapes) and summarize it.
    Data layers that read files become Input layers of the shapes their parameters
    give: a summary opens no database, image list or mean file."""
    param = read_net_param(path)
    param = filter_by_state(param, _state(phase, net_kwargs))    # this phase's layers
    unknown = data_layers_as_inputs(param)
    if input_shapes:
        set_input_shapes(param, input_shapes)
    elif unknown:
        raise CaffeLiteError(f"the data layer(s) {', '.join(unknown)} take their shapes "
                             f"from their files, which a summary does not open: give "
                             f"the net's input shapes with --input-shape", file=str(path))
    try:
        net = Net(param, phase, weights=weights, **net_kwargs)
    except CaffeLiteError as exc:
        exc.with_context(file=str(path))
        raise
    return summarize(net)


def _state(phase, net_kwargs):
    return caffe_pb2.NetState(phase=caffe_pb2.Phase.Value(str(phase).upper())
                              if isinstance(phase, str) else phase,
                              level=net_kwargs.get("level", 0),
                              stage=net_kwargs.get("stages") or [])


def run(args):
    summary = summarize_file(args.net, phase=args.phase, input_shapes=args.input_shape,
                             weights=args.weights, level=args.level, stages=args.stage)
    print(summary)
    return 0
