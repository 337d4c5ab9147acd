"""The ``caffe-lite`` command. Each subcommand lives in caffe_lite/commands/<name>.py
with ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.

Caffe's single-dash flag spelling (``-solver s.prototxt``) is accepted too.
"""
import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands
from .errors import CaffeLiteError


def _commands():
    found = {}
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):             # helpers the commands share
            continue
        found[info.name.replace("_", "-")] = importlib.import_module(
            f"{commands.__name__}.{info.name}")
    return found


def _caffe_style(argv):
    """-solver x -> --solver x (Caffe's gflags spelling); leaves -h and numbers."""
    out = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2 \
                and not arg[1].isdigit():
            arg = "-" + arg
        out.append(arg)
    return out


def build_parser():
    parser = argparse.ArgumentParser(
        prog="caffe-lite", description="Run Caffe networks in pure Python.")
    parser.add_argument("--version", action="version",
                        version=f"caffe-lite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in sorted(_commands().items()):
        aliases = [name.replace("-", "_")] if "-" in name else []    # Caffe's spelling
        p = sub.add_parser(name, aliases=aliases, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _commands().get(argv[0].replace("_", "-")) if argv else None
    if getattr(command, "RAW_ARGUMENTS", False):     # the arguments are a program's
        return command.run_raw(argv[1:])
    args = build_parser().parse_args(_caffe_style(argv))
    try:
        return args._run(args) or 0
    except CaffeLiteError as exc:
        print(f"caffe-lite {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
