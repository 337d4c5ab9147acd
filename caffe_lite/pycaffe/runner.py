"""Run unmodified pycaffe programs: ``import caffe`` (and ``caffe.io``,
``caffe.proto.caffe_pb2``, ``from caffe import layers as L`` ...) resolve to
caffe_lite, and Python layers are allowed, because the person runs their own
code.

    caffe-lite pycaffe script.py args...        # or: python -m caffe_lite.pycaffe
    caffe-lite pycaffe -m pytest tests/         # a module, as python -m
    import caffe_lite.pycaffe as p; p.install_as_caffe()     # in a notebook
"""
import os
import runpy
import sys

from ..net.graph import ALLOW_PYTHON_LAYERS_VARIABLE

#: pycaffe's module names, each the caffe_lite module that stands in for it
PYCAFFE_MODULES = ("io", "net_spec", "coord_map", "classifier", "detector", "draw",
                   "pycaffe", "proto", "proto.caffe_pb2")


def install_as_caffe(allow_python_layers=True):
    """Make ``import caffe`` and pycaffe's submodules give caffe_lite's."""
    top = __name__.split(".")[0]          # caffe_lite, imported before this module
    sys.modules["caffe"] = sys.modules[top]
    for name in PYCAFFE_MODULES:
        sys.modules[f"caffe.{name}"] = sys.modules[f"{top}.{name}"]
    if allow_python_layers:
        os.environ[ALLOW_PYTHON_LAYERS_VARIABLE] = "1"
    return sys.modules[top]


def run(argv):
    """``[script.py | -m module] args...`` as python would run them, with
    sys.argv[0] the script (or module) and the rest its own arguments."""
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    install_as_caffe()
    if argv[0] == "-m":
        if len(argv) < 2:
            print("caffe-lite pycaffe: -m needs a module name", file=sys.stderr)
            return 2
        sys.argv = [argv[1]] + list(argv[2:])
        runner = lambda: runpy.run_module(argv[1], run_name="__main__",  # noqa: E731
                                          alter_sys=True)
    else:
        script = argv[0]
        if not os.path.exists(script):
            print(f"caffe-lite pycaffe: no such script: {script}", file=sys.stderr)
            return 2
        sys.argv = list(argv)
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runner = lambda: runpy.run_path(script, run_name="__main__")  # noqa: E731
    try:
        runner()
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    return 0
