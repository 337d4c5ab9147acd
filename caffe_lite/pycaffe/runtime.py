"""pycaffe's process-wide functions (its ``_caffe`` module), for a CPU-only,
single-process runner: the layer type list, glog-style logging, the mode and
device switches, the multi-GPU solver counters and NCCL, and Timer."""
import logging
import time

from ..errors import CaffeLiteError
from ..layers.base import layer_types

_log = logging.getLogger("caffe_lite")
_MODE = {"mode": "CPU", "solver_count": 1, "solver_rank": 0, "multiprocess": False}


def layer_type_list():
    """Every registered layer type, sorted (pycaffe's layer_type_list)."""
    return sorted(layer_types())


def init_log(level=0, stderr=True):
    """Caffe's glog set-up: log INFO (0), WARNING (1) or ERROR (2) and above."""
    levels = {0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR, 3: logging.CRITICAL}
    logging.basicConfig(level=levels.get(int(level), logging.INFO),
                        format="%(levelname).1s%(asctime)s %(name)s] %(message)s")
    _log.setLevel(levels.get(int(level), logging.INFO))


def log(message):
    """One INFO line to the log, as pycaffe's caffe.log."""
    _log.info("%s", message)


def set_mode_cpu():
    _MODE["mode"] = "CPU"


def set_mode_gpu():
    raise CaffeLiteError("caffe_lite runs on the CPU only (numpy); there is no GPU "
                         "mode. Call caffe.set_mode_cpu() or leave the mode unset.")


def set_device(device_id):
    """Accepted for compatibility; only device 0 (the CPU) exists."""
    if int(device_id) != 0:
        raise CaffeLiteError(f"device {device_id} does not exist: caffe_lite runs "
                             f"on the CPU only")


def solver_count():
    return _MODE["solver_count"]


def set_solver_count(count):
    _MODE["solver_count"] = int(count)


def solver_rank():
    return _MODE["solver_rank"]


def set_solver_rank(rank):
    _MODE["solver_rank"] = int(rank)


def set_multiprocess(multiprocess):
    _MODE["multiprocess"] = bool(multiprocess)


def has_nccl():
    """False: there is no GPU, so no NCCL."""
    return False


class NCCL:
    """pycaffe's NCCL (multi-GPU gradient exchange): not available on the CPU."""

    def __init__(self, *args, **kwargs):
        raise CaffeLiteError("NCCL needs GPUs; caffe_lite runs on the CPU only")

    @staticmethod
    def new_uid():
        raise CaffeLiteError("NCCL needs GPUs; caffe_lite runs on the CPU only")


class Timer:
    """pycaffe's Timer: start(), stop(), and ``ms`` for the last interval."""

    def __init__(self):
        self._start = None
        self.ms = 0.0

    def start(self):
        self._start = time.perf_counter()

    def stop(self):
        if self._start is not None:
            self.ms = (time.perf_counter() - self._start) * 1000.0
            self._start = None


__all__ = ["layer_type_list", "init_log", "log", "set_mode_cpu", "set_mode_gpu",
           "set_device", "solver_count", "set_solver_count", "solver_rank",
           "set_solver_rank", "set_multiprocess", "has_nccl", "NCCL", "Timer"]
