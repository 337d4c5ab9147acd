"""Threads for the numpy work BLAS does not spread over the cores.

numpy runs everything but BLAS on one core: im2col, col2im, pooling, the
elementwise layers. Work split into independent parts (slices of a batch) runs
here one part per thread, each thread with BLAS on one thread of its own, which
keeps every core busy and gives GEMMs that one thread runs as fast per core as
BLAS's own threads do (often faster, for the thin GEMMs of convolutions).

BLAS's thread count is read and set with threadpoolctl (the optional extra
``fast``). Without it, with BLAS on one thread, or with ``enabled`` set to
False, everything runs serially, as the numpy-only path. A part never splits
again: code running on a worker sees ``in_worker()`` and stays serial.

``pinned()`` keeps BLAS on one thread for a whole stretch of work (a batch-parallel
forward): after a call on two threads, OpenBLAS's second thread keeps spinning for
a while, and workers started meanwhile share a core with it. Inside, ``matmul``
splits a large GEMM over the workers instead.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

__all__ = ["enabled", "threads", "in_worker", "run_parts", "split", "pinned", "matmul"]

_T = TypeVar("_T")

#: False keeps everything serial (the numpy-only path, as without threadpoolctl)
enabled = True


class _Blas:
    """numpy's BLAS through threadpoolctl, found once; no controller without it."""

    def __init__(self) -> None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            self.controller = None
            return
        self.controller = ThreadpoolController().select(user_api="blas")

    def threads(self) -> int:
        if self.controller is None or not self.controller.lib_controllers:
            return 1
        return max(lib.num_threads for lib in self.controller.lib_controllers)

    def one_thread(self) -> Any:
        assert self.controller is not None
        return self.controller.limit(limits=1)


_blas: _Blas | None = None
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_local = threading.local()
_pinned = 0          # the thread count while BLAS is pinned to one thread, else 0


def _the_blas() -> _Blas:
    global _blas
    if _blas is None:
        _blas = _Blas()
    return _blas


def threads() -> int:
    """Parts work is split into: BLAS's own thread count (OPENBLAS_NUM_THREADS and
    the like set it), at most the CPUs this process may use; 1 when not ``enabled``
    and on a worker."""
    if not enabled or in_worker():
        return 1
    if _pinned:
        return _pinned
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(_the_blas().threads(), cpus or 1)


def in_worker() -> bool:
    return getattr(_local, "worker", False)


def _as_worker(fn: Callable[[], _T]) -> _T:
    _local.worker = True
    try:
        return fn()
    finally:
        _local.worker = False


def run_parts(parts: Sequence[Callable[[], _T]]) -> list[_T]:
    """Each part on a thread of its own, BLAS on one thread meanwhile; their results
    in order. Serial for one part, or where threads() is 1."""
    if len(parts) < 2 or threads() < 2:
        return [part() for part in parts]
    global _pool, _pool_pid
    if _pool is None or _pool._max_workers < len(parts) or _pool_pid != os.getpid():
        # a forked child has the pool but not its threads: it makes its own
        _pool, _pool_pid = ThreadPoolExecutor(len(parts), thread_name_prefix="caffe_lite"), os.getpid()
    with nullcontext() if _pinned else _the_blas().one_thread():
        jobs = [_pool.submit(_as_worker, part) for part in parts]
        wait(jobs)                     # all done before BLAS gets its threads back
    return [job.result() for job in jobs]


@contextmanager
def pinned() -> Iterator[None]:
    """BLAS on one thread while the block runs, threads() unchanged: the block's
    parallel work goes through run_parts and matmul. Nested blocks do nothing."""
    global _pinned
    count = threads()
    if count < 2 or _pinned:
        yield
        return
    with _the_blas().one_thread():
        _pinned = count
        try:
            yield
        finally:
            _pinned = 0


#: multiply-adds from which matmul splits a GEMM over the threads
MIN_SPLIT_MACS = 4_000_000


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """np.matmul(a, b, out=out); while BLAS is pinned(), split over the worker threads
    by out's columns or rows, whichever are more (each value computed as np.matmul
    computes it)."""
    count = threads() if _pinned else 1
    if count < 2 or out.size * a.shape[-1] < MIN_SPLIT_MACS:
        return np.matmul(a, b, out=out)
    if out.shape[-1] >= out.shape[-2]:
        pieces = [(a, b[..., p], out[..., p]) for p in split(out.shape[-1], count)]
    else:
        pieces = [(a[..., p, :], b, out[..., p, :]) for p in split(out.shape[-2], count)]
    run_parts([partial(np.matmul, x, y, out=o) for x, y, o in pieces])
    return out


def split(n: int, parts: int) -> list[slice]:
    """range(n) cut into ``parts`` slices as even as can be (none empty)."""
    parts = max(1, min(parts, n))
    edges = [n * k // parts for k in range(parts + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
