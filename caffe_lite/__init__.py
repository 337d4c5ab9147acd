"""caffe_lite: run Caffe networks in pure Python (numpy + protobuf).

``import caffe_lite as caffe`` gives the pycaffe surface: Net, Layer, TRAIN/TEST,
the solvers, io, NetSpec (layers/params), Classifier, Detector and the mode
switches. pycaffe's submodule names (``caffe.io``, ``caffe.net_spec``,
``caffe.draw``, ...) import as in pycaffe; they live in ``pycaffe/``.
"""
import importlib as _importlib
import sys as _sys

from .blob import Blob, set_memory_limit
from .errors import CaffeLiteError
from .layers.base import Layer
from .net import TEST, TRAIN, Net
from .ops.winograd import get_conv_algorithm, set_conv_algorithm
from .pycaffe import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    Classifier,
    Detector,
    NesterovSolver,
    NetSpec,
    RMSPropSolver,
    SGDSolver,
    get_solver,
    io,
    layers,
    params,
    to_proto,
)
from .pycaffe.runtime import (
    NCCL,
    Timer,
    has_nccl,
    init_log,
    layer_type_list,
    log,
    set_device,
    set_mode_cpu,
    set_mode_gpu,
    set_multiprocess,
    set_solver_count,
    set_solver_rank,
    solver_count,
    solver_rank,
)
from .rng import set_random_seed

__version__ = "0.2.0"

# pycaffe's module names: ``import caffe_lite.draw``, ``from caffe_lite.io import
# Transformer`` and the others find the modules that live in pycaffe/.
for _name in ("io", "net_spec", "coord_map", "classifier", "detector", "draw"):
    _sys.modules[f"{__name__}.{_name}"] = _importlib.import_module(
        f".pycaffe.{_name}", __name__)
draw = _sys.modules[f"{__name__}.draw"]
coord_map = _sys.modules[f"{__name__}.coord_map"]
net_spec = _sys.modules[f"{__name__}.net_spec"]
classifier = _sys.modules[f"{__name__}.classifier"]
detector = _sys.modules[f"{__name__}.detector"]

__all__ = ["Blob", "CaffeLiteError", "Layer", "Net", "TRAIN", "TEST", "SGDSolver",
           "NesterovSolver", "AdaGradSolver", "RMSPropSolver", "AdaDeltaSolver",
           "AdamSolver", "get_solver", "Classifier", "Detector", "NetSpec", "layers",
           "params", "to_proto", "io", "set_random_seed", "set_mode_cpu",
           "set_mode_gpu", "set_device", "layer_type_list", "init_log", "log",
           "solver_count", "set_solver_count", "solver_rank", "set_solver_rank",
           "set_multiprocess", "has_nccl", "NCCL", "Timer", "__version__",
           "set_memory_limit", "set_conv_algorithm", "get_conv_algorithm"]
