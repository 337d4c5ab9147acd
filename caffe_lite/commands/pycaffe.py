"""``caffe-lite pycaffe script.py args...``: run an unmodified pycaffe program
(``import caffe`` gives caffe_lite; Python layers allowed). ``-m module`` runs a
module, as ``python -m`` does. The arguments after the command belong to the
program, so they reach it untouched (``RAW_ARGUMENTS``)."""
import argparse

from ..pycaffe.runner import run as run_program

HELP = "run an unmodified pycaffe script (import caffe gives caffe_lite)"
RAW_ARGUMENTS = True


def add_arguments(parser):
    parser.add_argument("program", nargs=argparse.REMAINDER,
                        help="script.py [args...] or -m module [args...]")


def run(args):
    return run_program(args.program)


def run_raw(argv):
    return run_program(argv)
