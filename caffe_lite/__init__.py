"""caffe_lite: run Caffe networks in pure Python (numpy + protobuf).

``import caffe_lite as caffe`` gives the pycaffe surface: Net, Layer, TRAIN/TEST,
the solvers, io, NetSpec (layers/params) and the mode switches.
"""
from .blob import Blob
from .errors import CaffeLiteError
from .layers.base import Layer
from .net import Net, TRAIN, TEST
from .rng import set_random_seed
from . import io                 # caffe.io, as in pycaffe

__version__ = "0.1.0"

_MODE = "CPU"


def set_mode_cpu():
    global _MODE
    _MODE = "CPU"


def set_mode_gpu():
    raise CaffeLiteError("caffe_lite runs on the CPU only (numpy); there is no GPU "
                         "mode. Call caffe.set_mode_cpu() or leave the mode unset.")


def set_device(device_id):
    """Accepted for compatibility; only device 0 (the CPU) exists."""
    if int(device_id) != 0:
        raise CaffeLiteError(f"device {device_id} does not exist: caffe_lite runs "
                             f"on the CPU only")


def _optional_submodules():
    # Later modules (solvers, io, net_spec, ...) attach here when present.
    import importlib
    names = {}
    for module, attrs in (
            ("solvers", ("SGDSolver", "NesterovSolver", "AdaGradSolver",
                         "RMSPropSolver", "AdaDeltaSolver", "AdamSolver",
                         "get_solver")),
            ("net_spec", ("NetSpec", "layers", "params", "to_proto")),
            ("classifier", ("Classifier",)),
            ("detector", ("Detector",))):
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module}":
                raise
            continue
        for attr in attrs:
            if hasattr(mod, attr):
                names[attr] = getattr(mod, attr)
    return names


globals().update(_optional_submodules())
