"""``caffe-lite device_query``: what Caffe's ``caffe device_query`` prints for a
GPU, for the one device caffe_lite runs on: the CPU, the BLAS numpy calls, and
its threads."""
import os
import platform
import sys

import numpy as np

from ._caffe_flags import add_caffe_flags

HELP = "show the CPU, the BLAS library and its threads (Caffe's device_query)"


def add_arguments(parser):
    add_caffe_flags(parser)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas():
    """(name and version, threads) of numpy's BLAS: threadpoolctl when it is
    installed, else numpy's build configuration and the usual variables."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                name = f"{pool.get('internal_api')} {pool.get('version')}"
                extra = f" ({pool['architecture']} kernels)" if pool.get("architecture") else ""
                return name + extra, str(pool.get("num_threads"))
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        name = f"{blas.get('name')} {blas.get('version')}"
    except Exception:                        # numpy's config format is not fixed
        name = "unknown"
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(variable):
            return name, f"{os.environ[variable]} (from {variable})"
    return name, f"up to {os.cpu_count()} (the library's default)"


def run(args):
    blas, threads = _blas()
    rows = [("Device", "CPU (caffe_lite has no GPU mode)"),
            ("Processor", _cpu_name()),
            ("Cores", str(os.cpu_count())),
            ("Python", sys.version.split()[0]),
            ("numpy", np.__version__),
            ("BLAS", blas),
            ("BLAS threads", threads)]
    for key, value in rows:
        print(f"{key + ':':<14}{value}")
    return 0
