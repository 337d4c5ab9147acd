"""``caffe-lite draw net.prototxt out.png``: a picture of the net through
graphviz (pycaffe's draw_net.py)."""
from ..formats import read_net_param
from ..proto import caffe_pb2
from ..pycaffe import draw

HELP = "draw a net as a graph (png, svg, pdf, ... or dot) with graphviz"


def add_arguments(parser):
    parser.add_argument("net", help="network prototxt")
    parser.add_argument("output", help="picture to write; its extension picks the format")
    parser.add_argument("--rankdir", default="LR",
                        help="graph direction: LR (left to right, default), TB, BT, RL")
    parser.add_argument("--phase", default="ALL", type=str.upper,
                        choices=("TRAIN", "TEST", "ALL"),
                        help="draw the layers of this phase only (default ALL)")
    parser.add_argument("--display-lrm", "--display_lrm", action="store_true",
                        help="show the learning rate multipliers of learning layers")


def run(args):
    net = read_net_param(args.net)
    phase = None if args.phase == "ALL" else getattr(caffe_pb2, args.phase)
    draw.draw_net_to_file(net, args.output, args.rankdir, phase, args.display_lrm)
    print(f"drew {args.net} to {args.output}")
    return 0
