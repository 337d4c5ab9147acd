"""More than one process: data-parallel training over MPI and batch inference
over Dask.

- ``rank()`` / ``size()``: this process's place among the data-parallel ranks
  (Python layers read their share of the data with them; 0 and 1 alone).
- ``Comm``: the MPI communicator training uses (mpi4py, the ``mpi`` extra).
- ``run_dataset(...)``: a net over a whole data set, on Dask workers or in this
  process (dask.distributed, the ``dask`` extra), in input order.

``mpiexec -n N caffe-lite train --solver S`` (or a script that builds a Solver,
started by mpiexec) trains on N ranks; see distributed/parallel.py.
"""
from typing import Any

from ..data.shard import rank, size
from .mpi import Comm


def __getattr__(name: str) -> Any:
    # the inference side imports the net and pycaffe, which training (below
    # them) must not pull in when it imports this package
    if name in ("run_dataset", "open_inputs"):
        from . import dataset
        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["rank", "size", "Comm", "run_dataset", "open_inputs"]
