"""The MPI communicator of data-parallel training, through mpi4py (the ``mpi``
extra; with the PyPI ``mpich`` wheel no system MPI is needed).

No operation blocks forever. Each collective is preceded by an arrival check
(every rank sends a small message to every other and waits for theirs), and
the collective itself is non-blocking and polled; while a rank waits it answers
the others' "are you there?" probes. When the waiting exceeds the timeout, the
rank names the ranks that did not arrive, or else those that no longer answer,
in a DistributedError. (MPICH's mpiexec itself kills every rank as soon as one
is killed; the check covers a rank that hangs or left early.)
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
_ARRIVE_TAG, _PROBE_TAG, _ANSWER_TAG = 0x6CAF, 0x6CB0, 0x6CB1
_HOST = 64                       # bytes of a host name shown in errors


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
        self.rank: int = world.Get_rank()
        self.size: int = world.Get_size()
        self.timeout = timeout_seconds() if timeout is None else float(timeout)
        self.where = [f"rank {r}" for r in range(self.size)]
        self.comm = self._join(world)            # our messages apart from the user's
        self.pings = self._join(world)
        self.steps = 0
        self.arrive_seconds = 0.0            # waiting for the others (bench)
        self.collective_seconds = 0.0        # in the collectives proper (bench)
        pid, host = os.getpid(), socket.gethostname()[:_HOST]
        pids = self.allgather(pid, "the start")
        raw = np.zeros((self.size, _HOST), np.uint8)
        mine = np.frombuffer(host.encode("utf-8", "replace")[:_HOST].ljust(_HOST, b"\0"),
                             np.uint8)
        self._collective(self.comm.Iallgather(mine, raw), "the start", False)
        hosts = [bytes(h).rstrip(b"\0").decode("utf-8", "replace") for h in raw]
        self.where = [f"pid {p} on {h}" for p, h in zip(pids, hosts)]

    def _join(self, world: Any) -> Any:
        """A duplicate of the world communicator, made by every rank together."""
        comm, request = world.Idup()
        start = time.monotonic()
        while not request.Test():
            if time.monotonic() - start > self.timeout:
                raise DistributedError(
                    f"the other ranks did not start their solver within "
                    f"{self.timeout:g} s (rank {self.rank} waited): every rank started "
                    f"by mpiexec must build the solver ({TIMEOUT_VARIABLE})")
            time.sleep(0.001)
        return comm

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
        start = time.perf_counter()
        missing = self._wait(recvs, None if patient else self.timeout)
        self.arrive_seconds += time.perf_counter() - start
        if missing:
            raise DistributedError(
                f"{self._name(missing)} did not reach {what} within "
                f"{self.timeout:g} s: dead or hanging. Stopping ({self._limit()})")
        self._wait(dict(enumerate(sends)), None)
        behind = [r for r, buf in theirs.items() if buf[0] != self.steps]
        if behind:
            raise DistributedError(f"rank {behind[0]} is at step {theirs[behind[0]][0]} "
                                   f"while rank {self.rank} is at step {self.steps} "
                                   f"({what}): the ranks run different programs")

    def _collective(self, request: Any, what: str, patient: bool) -> None:
        start = time.perf_counter()
        late = self._wait({-1: request}, None if patient else self.timeout)
        self.collective_seconds += time.perf_counter() - start
        if late:
            silent = self._silent_ranks()
            who = (self._name(silent) + " stopped answering" if silent else
                   "every rank answers, but the exchange did not finish")
            raise DistributedError(f"{what}: {who} within {self.timeout:g} s. "
                                   f"Stopping ({self._limit()})")

    def _wait(self, requests: dict[int, Any], timeout: float | None) -> list[int]:
        """Poll ``requests`` ({rank: request}) until all are done, answering the
        others' probes meanwhile; the keys still pending after ``timeout``."""
        pending = dict(requests)
        start, pause = time.monotonic(), 0.0
        while True:
            for key in [k for k, req in pending.items() if req.Test()]:
                del pending[key]
            if not pending:
                return []
            self._answer_probes()
            waited = time.monotonic() - start
            if timeout is not None and waited > timeout:
                return sorted(pending)
            # poll at once for a while (a collective progresses only while it is
            # polled), yielding the core; then sleep a little between polls
            if waited > 0.2:
                pause = min(0.002, pause + 0.0001)
            time.sleep(pause)

    def _answer_probes(self) -> None:
        status = self.MPI.Status()
        while self.pings.Iprobe(source=self.MPI.ANY_SOURCE, tag=_PROBE_TAG, status=status):
            source = status.Get_source()
            self.pings.Recv(np.zeros(1, np.int64), source=source, tag=_PROBE_TAG)
            self.pings.Isend(np.array([self.rank], np.int64), dest=source, tag=_ANSWER_TAG)

    def _silent_ranks(self, grace: float = 3.0) -> list[int]:
        """Ask every other rank whether it is there; those that do not answer."""
        others = [r for r in range(self.size) if r != self.rank]
        for r in others:
            self.pings.Isend(np.array([self.rank], np.int64), dest=r, tag=_PROBE_TAG)
        answers = {r: self.pings.Irecv(np.zeros(1, np.int64), source=r, tag=_ANSWER_TAG)
                   for r in others}
        return self._wait(answers, min(grace, self.timeout))

    def _name(self, ranks: list[int]) -> str:
        return ", ".join(f"rank {r} ({self.where[r]})" for r in ranks)

    def _limit(self) -> str:
        return f"rank {self.rank} waited; the time limit is {TIMEOUT_VARIABLE}"

    def allreduce_sum(self, buffer: np.ndarray, what: str, patient: bool = False) -> None:
        """buffer := the sum of every rank's buffer (float32, in place)."""
        self.arrive(what, patient)
        self._collective(self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM),
                         what, patient)

    def broadcast(self, buffer: np.ndarray, what: str) -> None:
        """buffer := rank 0's buffer (in place)."""
        self.arrive(what)
        self._collective(self.comm.Ibcast(buffer, root=0), what, False)

    def allgather(self, value: int, what: str) -> list[int]:
        """Every rank's integer ``value``, in rank order."""
        self.arrive(what)
        out = np.zeros(self.size, np.int64)
        self._collective(self.comm.Iallgather(np.array([value], np.int64), out),
                         what, False)
        return [int(v) for v in out]

    def abort(self, code: int = 1) -> None:
        """End every rank now (after an error that the others cannot see)."""
        self.comm.Abort(code)
