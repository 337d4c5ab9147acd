"""The pycaffe scripting surface, under pycaffe's own module names: io,
net_spec, classifier, detector, draw. ``caffe_lite.pycaffe`` is also pycaffe's
``caffe.pycaffe`` module: Net and the solver classes."""
from ..net import Net
from ..solver.classes import (
                              AdaDeltaSolver,
                              AdaGradSolver,
                              AdamSolver,
                              NesterovSolver,
                              RMSPropSolver,
                              SGDSolver,
                              get_solver,
)
from . import io
from .classifier import Classifier
from .detector import Detector
from .net_spec import NetSpec, layers, params, to_proto
from .runner import install_as_caffe

__all__ = ["Net", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
           "AdaDeltaSolver", "AdamSolver", "get_solver", "io", "Classifier",
           "Detector", "NetSpec", "layers", "params", "to_proto", "install_as_caffe"]
