"""Which share of every training data source this process reads: Caffe's
solver_rank / solver_count. Under data-parallel training (``mpiexec -n N``)
rank r of N takes items r, r + N, r + 2N, ... of each source, counted in the
source's own order across epochs (so a batch that does not divide the data set
wraps around as in one process). N ranks with batch B together read exactly
the items one process with batch N*B reads, which is why their averaged
gradients equal its gradient.

The data layers call ``own_items`` on their item stream; Python layers ask
``rank()`` / ``size()`` (also ``caffe_lite.distributed.rank()`` / ``size()``).
Test nets are not sharded: only rank 0 tests, over the whole test set.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Iterator, TypeVar

from ..errors import CaffeLiteError

T = TypeVar("T")
_STATE = {"rank": 0, "size": 1}


def rank() -> int:
    """This process's rank among the data-parallel solvers (0 alone)."""
    return _STATE["rank"]


def size() -> int:
    """How many data-parallel solvers share the data (1 alone)."""
    return _STATE["size"]


def set_shard(rank: int, size: int) -> None:
    """Declare this process rank ``rank`` of ``size``; data layers built from
    now on read only their share."""
    rank, size = int(rank), int(size)
    if size < 1 or not 0 <= rank < size:
        raise CaffeLiteError(f"a shard needs 0 <= rank < size, got rank {rank} of {size}")
    _STATE["rank"], _STATE["size"] = rank, size


def own_items(stream: Iterable[T], sharded: bool = True) -> Iterator[T]:
    """The items of ``stream`` that belong to this rank (all when alone, or
    when ``sharded`` is false, as for a test net)."""
    if not sharded or _STATE["size"] == 1:
        return iter(stream)
    return itertools.islice(stream, _STATE["rank"], None, _STATE["size"])
