"""The MPI communicator of data-parallel training, through mpi4py (the ``mpi``
extra; with the PyPI ``mpich`` wheel no system MPI is needed).

Every collective is preceded by an arrival check: each rank sends a small
message to every other and waits for theirs, up to a timeout. A rank that died
or hangs is then named in a DistributedError instead of the others blocking
forever in the collective. (MPICH's mpiexec itself kills every rank as soon as
one is killed; the check covers a rank that hangs, or that left early.)
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any

import numpy as np

from ..errors import DependencyError, DistributedError, require

#: variables by which the MPI launchers (MPICH/Hydra, Open MPI, MVAPICH) tell a
#: process how many ranks were started
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
#: seconds a rank waits for the others at each step before naming the missing
TIMEOUT_VARIABLE = "CAFFE_LITE_MPI_TIMEOUT"
DEFAULT_TIMEOUT = 600.0
_ARRIVE_TAG = 0x6CAF


def launched_size() -> int:
    """How many ranks mpiexec started (1 when this process was not started
    by an MPI launcher)."""
    for name in SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return 1


def timeout_seconds() -> float:
    """CAFFE_LITE_MPI_TIMEOUT, or the default."""
    value = os.environ.get(TIMEOUT_VARIABLE)
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise DistributedError(f"{TIMEOUT_VARIABLE} must be a positive number of "
                               f"seconds, got '{value}'")
    return seconds


def _mpi() -> Any:
    """mpi4py's MPI module, or a DependencyError naming the ``mpi`` extra."""
    require("mpi4py", "mpi", f"training under mpiexec ({launched_size()} ranks)")
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as exc:
        raise DependencyError(f"mpi4py is installed but cannot load an MPI library "
                              f"({exc}); install one with: pip install "
                              f"'caffe-lite[mpi]'") from None
    return MPI


class Comm:
    """The world communicator with the few operations training needs, each
    checked for every rank's arrival (``timeout`` seconds, see module doc)."""

    def __init__(self, timeout: float | None = None) -> None:
        self.MPI = _mpi()
        world = self.MPI.COMM_WORLD
        self.comm = world.Dup()                       # our messages apart from the user's
        self.pings = world.Dup()
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()
        self.timeout = timeout_seconds() if timeout is None else float(timeout)
        self.steps = 0
        self.where = self.comm.allgather(f"pid {os.getpid()} on {socket.gethostname()}")

    def describe(self) -> str:
        """'rank 0: pid 12 on host, rank 1: ...' (MPICH names a dead process by pid)."""
        return ", ".join(f"rank {r}: {w}" for r, w in enumerate(self.where))

    def arrive(self, what: str, patient: bool = False) -> None:
        """Wait until every rank reached this same step; raise DistributedError
        naming those that did not within the timeout (``patient``: no timeout,
        for a step where rank 0 runs the test nets)."""
        self.steps += 1
        if self.size == 1:
            return
        mine = np.array([self.steps], np.int64)
        theirs = {r: np.zeros(1, np.int64) for r in range(self.size) if r != self.rank}
        sends = [self.pings.Isend(mine, dest=r, tag=_ARRIVE_TAG) for r in theirs]
        recvs = {r: self.pings.Irecv(buf, source=r, tag=_ARRIVE_TAG)
                 for r, buf in theirs.items()}
        start = time.monotonic()
        pause = 0.0
        while recvs:
            for r in [r for r, req in recvs.items() if req.Test()]:
                del recvs[r]
            if not recvs:
                break
            waited = time.monotonic() - start
            if not patient and waited > self.timeout:
                missing = ", ".join(f"rank {r} ({self.where[r]})" for r in sorted(recvs))
                raise DistributedError(
                    f"{missing} did not reach {what} within {self.timeout:g} s: it "
                    f"died or hangs. Stopping (rank {self.rank} waited; the time "
                    f"limit is {TIMEOUT_VARIABLE})")
            if waited > 0.01:                        # spin briefly, then sleep a little
                pause = min(0.002, pause + 0.0001)
                time.sleep(pause)
        self.MPI.Request.Waitall(sends)
        behind = [r for r, buf in theirs.items() if buf[0] != self.steps]
        if behind:
            raise DistributedError(f"rank {behind[0]} is at step {theirs[behind[0]][0]} "
                                   f"while rank {self.rank} is at step {self.steps} "
                                   f"({what}): the ranks run different programs")

    def allreduce_sum(self, buffer: np.ndarray, what: str, patient: bool = False) -> None:
        """buffer := the sum of every rank's buffer (float32, in place)."""
        self.arrive(what, patient)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)

    def broadcast(self, buffer: np.ndarray, what: str) -> None:
        """buffer := rank 0's buffer (in place)."""
        self.arrive(what)
        self.comm.Bcast(buffer, root=0)

    def allgather(self, value: Any, what: str) -> list[Any]:
        """Every rank's ``value`` (a small Python object), in rank order."""
        self.arrive(what)
        return list(self.comm.allgather(value))

    def abort(self, code: int = 1) -> None:
        """End every rank now (after an error that the others cannot see)."""
        self.comm.Abort(code)
