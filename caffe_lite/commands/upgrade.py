"""``caffe-lite upgrade``: rewrite old (V0/V1, fork-spelled) nets, weights or solvers
in the current format, like Caffe's upgrade_net_proto_text/_binary and
upgrade_solver_proto_text tools."""
import logging
import sys

from ..formats import prototxt, upgrade
from ..formats.atomic import atomic_write
from ..formats.caffemodel import read_caffemodel_param
from ..proto import caffe_pb2

HELP = "upgrade an old net prototxt, caffemodel or solver to the current format"

BINARY_EXTENSIONS = (".caffemodel", ".binaryproto", ".pb")


def add_arguments(parser):
    parser.add_argument("input", help="file in an old format")
    parser.add_argument("output", help="where to write the upgraded file")
    parser.add_argument("--format", choices=("auto", "text", "binary", "solver"),
                        default="auto",
                        help="net prototxt (text), caffemodel (binary) or solver "
                             "prototxt; auto: binary for .caffemodel, else text")


def run(args):
    kind = args.format
    if kind == "auto":
        kind = "binary" if args.input.lower().endswith(BINARY_EXTENSIONS) else "text"
    with _WarningCounter() as problems:
        if kind == "solver":
            message = prototxt.parse_text_message(
                prototxt.read_text(args.input, "solver file"),
                caffe_pb2.SolverParameter(), args.input)
            changed = upgrade.upgrade_solver(message)
        else:
            message = _read_net(args.input, binary=kind == "binary")
            changed = upgrade.upgrade_net(message)
    if not changed:
        print(f"note: {args.input} is already in the latest format", file=sys.stderr)
    if kind == "binary":
        with atomic_write(args.output) as handle:
            handle.write(message.SerializeToString())
    else:
        prototxt.write_prototxt(message, args.output)
    print(f"wrote the upgraded {kind} file to {args.output}", file=sys.stderr)
    if problems.count:
        print(f"error: {problems.count} problem(s) while upgrading (see above); "
              f"the output may be incomplete", file=sys.stderr)
        return 1
    return 0


def _read_net(path, binary):
    if binary:
        return read_caffemodel_param(path, upgrade=False)
    return prototxt.parse_text_message(prototxt.read_text(path, "network file"),
                                       caffe_pb2.NetParameter(), path)


class _WarningCounter(logging.Handler):
    """Prints and counts the warnings the upgrade steps log (fields with no new
    home), as Caffe's tools print theirs."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0
        self.logger = logging.getLogger("caffe_lite.formats")

    def emit(self, record):
        self.count += 1
        print(f"warning: {record.getMessage()}", file=sys.stderr)

    def __enter__(self):
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
