"""Synchronous data-parallel training, as Caffe's multi-GPU solvers: every rank
runs the same solver on its own share of the data (data/shard.py), and before
each update the gradients are summed over the ranks and scaled by
1 / solver_count, so every rank applies the same update to the same weights.

One allreduce per iteration, over one flat float32 buffer (a single bucket)
holding every param's diff, then the iteration's loss and the ranks' pending
signal requests: the reported loss is the mean over all ranks' batches, and a
SIGINT / SIGHUP on any rank acts on all of them at the same iteration.
"""
from __future__ import annotations

import random
import time
import zlib
from typing import Any

import numpy as np

from ..data import shard
from ..errors import DistributedError
from .mpi import Comm, launched_size

f32 = np.float32
# the solver's action names (solver/signals.py), as ranks agree on them
NONE, STOP, SNAPSHOT = "none", "stop", "snapshot"
_EXTRA = 3                       # loss, stop requests, snapshot requests


def join_if_launched(enabled: bool | None = None) -> DataParallel | None:
    """A DataParallel over MPI's world when mpiexec started more than one rank
    (``enabled`` None) or when asked (True); None for one process."""
    if enabled is False or (enabled is None and launched_size() <= 1):
        return None
    comm = Comm()
    if comm.size == 1:
        return None
    return DataParallel(comm)


class DataParallel:
    """The ranks' side of one Solver: seed, shard, gradient exchange, agreed
    actions and the snapshot check."""

    def __init__(self, comm: Comm) -> None:
        self.comm = comm
        self.rank, self.size = comm.rank, comm.size
        shard.set_shard(self.rank, self.size)
        self.buffer = np.zeros(0, f32)
        self.slices: list[slice] = []
        self.agreed: list[str] = []
        self.exchange_seconds = 0.0          # time spent in the allreduce (bench)

    def common_seed(self, seed: int) -> int:
        """The solver's random_seed, or when unset one drawn by rank 0: every
        rank builds its nets (weight fillers, data shuffling) from the same seed."""
        if seed >= 0:
            return seed
        drawn = random.SystemRandom().randrange(2 ** 31) if self.rank == 0 else 0
        return self.comm.allgather(drawn, "the random seed")[0]

    def attach(self, params: list[Any]) -> None:
        """Lay out the flat buffer over ``params`` (Blobs) and give every rank
        rank 0's weights."""
        offsets = np.cumsum([0] + [b.count for b in params])
        self.slices = [slice(int(a), int(b)) for a, b in zip(offsets[:-1], offsets[1:])]
        total = int(offsets[-1])
        self.buffer = np.zeros(total + _EXTRA, f32)
        data = self.buffer[:total]
        for blob, part in zip(params, self.slices):
            data[part] = blob.data.ravel()
        self.comm.broadcast(data, "the initial weights")
        for blob, part in zip(params, self.slices):
            blob.data.ravel()[...] = data[part]

    def exchange(self, params: list[Any], loss: np.float32, local_action: str,
                 iteration: int, patient: bool = False) -> np.float32:
        """Average the gradients and the loss over the ranks (one allreduce)
        and agree on the signal requests; returns the mean loss."""
        flat = self.buffer
        n = len(flat) - _EXTRA
        for blob, part in zip(params, self.slices):
            flat[part] = blob.diff.ravel()
        flat[n] = loss
        flat[n + 1] = local_action == STOP
        flat[n + 2] = local_action == SNAPSHOT
        start = time.perf_counter()
        self.comm.allreduce_sum(flat, f"iteration {iteration}", patient)
        self.exchange_seconds += time.perf_counter() - start
        scale = f32(1.0 / self.size)               # Caffe: diff *= 1 / solver_count
        grads = flat[:n]
        grads *= scale
        for blob, part in zip(params, self.slices):
            blob.diff.ravel()[...] = grads[part]
        if flat[n + 2] > 0:
            self.agreed.append(SNAPSHOT)
        if flat[n + 1] > 0:
            self.agreed.append(STOP)
        return f32(flat[n] * scale)

    def requested_action(self) -> str:
        """The next action the ranks agreed on (one per iteration, as Caffe
        serves one signal per iteration)."""
        return self.agreed.pop(0) if self.agreed else NONE

    def check_identical(self, arrays: list[np.ndarray], iteration: int) -> None:
        """Raise DistributedError when the ranks' weights (and solver history)
        differ: a CRC-32 of their bytes, gathered from every rank."""
        crc = 0
        for array in arrays:
            crc = zlib.crc32(np.ascontiguousarray(array).tobytes(), crc)
        sums = self.comm.allgather(crc, f"the snapshot check at iteration {iteration}")
        differ = [r for r, c in enumerate(sums) if c != sums[0]]
        if differ:
            raise DistributedError(
                f"at iteration {iteration} the weights of rank(s) "
                f"{', '.join(map(str, differ))} differ from rank 0's (checksums "
                f"{', '.join(f'{c:08x}' for c in sums)}): the ranks diverged")

    def abort(self, code: int = 1) -> None:
        self.comm.abort(code)
