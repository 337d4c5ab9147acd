"""Blob: an N-D array of data plus an equally shaped array of gradients (diff).

Like Caffe's Blob, a blob keeps its memory when reshaped to the same or a smaller
count (values are then reinterpreted in the new shape) and gets fresh zeros when
it grows. ``data`` and ``diff`` are numpy views into that memory, so
``blob.data[...] = x`` writes into the net.

Memory is taken with np.zeros, whose large blocks the OS maps lazily: a blob's
pages become resident when first written. A filler's values are computed when the
data is first read (``fill_later``), and never when all of it is replaced first
(``data_for_overwrite``, as weights loading does), so building a net takes time
proportional to its layers, not to its sizes.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np
import numpy.typing as npt

from .errors import CaffeLiteError, MemoryLimitError

MAX_AXES = 32

#: what reshape takes: sizes as separate arguments or one sequence of them
ShapeLike = Union[int, Sequence[int]]

MEMORY_LIMIT_VARIABLE = "CAFFE_LITE_MEMORY_LIMIT"
_limit: dict[str, int | None] = {"bytes": None}     # None: from the environment
_budgets: list[list[int]] = []                     # [bytes so far] per open budget


def set_memory_limit(limit: int | str | None) -> None:
    """The most bytes a net's blobs may take (data and diff), checked as a net is
    built, before its memory is taken. An int, a size such as "8G" or "512M", or
    None for the default: CAFFE_LITE_MEMORY_LIMIT, else the available memory."""
    _limit["bytes"] = None if limit is None else parse_size(limit)


def memory_limit() -> int:
    """The limit in force, in bytes."""
    if _limit["bytes"] is not None:
        return _limit["bytes"]
    if os.environ.get(MEMORY_LIMIT_VARIABLE):
        return parse_size(os.environ[MEMORY_LIMIT_VARIABLE])
    return _available_memory()


def parse_size(value: int | str) -> int:
    """123, "123", "64K", "512M", "8G", "1T" (powers of 1024) -> bytes."""
    if isinstance(value, int):
        return value
    text = str(value).strip().upper().rstrip("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise CaffeLiteError(f"not a memory size: {value!r} (e.g. 8G, 512M)") from None


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62                                  # unknown: no limit


@contextlib.contextmanager
def memory_budget() -> Iterator[list[int]]:
    """Count the bytes blobs grow by while it is open (a net's construction) and
    refuse, before allocating, the growth that would pass the memory limit."""
    _budgets.append([0])
    try:
        yield _budgets[-1]
    finally:
        _budgets.pop()


def _charge(nbytes: int, shape: tuple[int, ...]) -> None:
    if not _budgets:
        return
    total = _budgets[-1][0] + nbytes
    limit = memory_limit()
    if total > limit:
        raise MemoryLimitError(f"a blob of shape {shape} would bring the net to "
                               f"{total:,} bytes, over the memory limit of {limit:,}",
                               needed=total, limit=limit)
    _budgets[-1][0] = total


class Blob:
    __slots__ = ("_shape", "_count", "_data_buf", "_diff_buf", "dtype", "_pending")

    def __init__(self, shape: Sequence[int] = (), dtype: npt.DTypeLike = np.float32) -> None:
        self.dtype = np.dtype(dtype)
        self._shape: tuple[int, ...] = (-1,)      # no shape yet: the reshape below sets it
        self._count = 0
        self._data_buf = np.zeros(0, self.dtype)
        self._diff_buf = np.zeros(0, self.dtype)
        self._pending: Callable[[], Any] | None = None
        self.reshape(shape)

    # -- shape -------------------------------------------------------------
    def reshape(self, *dims: ShapeLike) -> None:
        """reshape(2, 3) or reshape((2, 3)) or reshape([2, 3])."""
        if len(dims) == 1 and type(dims[0]) is tuple and dims[0] == self._shape:
            return                       # unchanged (each layer reshapes every forward)
        given: Any = dims[0] if len(dims) == 1 and not np.isscalar(dims[0]) else dims
        shape = tuple(int(d) for d in given)
        if len(shape) > MAX_AXES:
            raise CaffeLiteError(f"blob shape {shape} has more than {MAX_AXES} axes")
        if any(d < 0 for d in shape):
            raise CaffeLiteError(f"blob shape {shape} has a negative dimension")
        if self._pending is not None and shape != self._shape:
            self._run_pending()          # the values as filled, then reinterpreted
        count = 1
        for d in shape:                  # Python ints: no int64 overflow
            count *= d
        if count > self._data_buf.size:
            nbytes = 2 * count * self.dtype.itemsize            # data and diff
            if nbytes > memory_limit():
                raise MemoryLimitError(f"a blob of shape {shape} needs {nbytes:,} bytes, "
                                       f"over the memory limit of {memory_limit():,}",
                                       needed=nbytes, limit=memory_limit())
            _charge(2 * (count - self._data_buf.size) * self.dtype.itemsize, shape)
            self._data_buf = np.zeros(count, self.dtype)
            self._diff_buf = np.zeros(count, self.dtype)
        self._shape = shape
        self._count = count

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def count(self) -> int:
        return self._count

    @property
    def num_axes(self) -> int:
        return len(self._shape)

    def count_range(self, start: int, end: int | None = None) -> int:
        """Product of the dimensions in [start, end)."""
        return math.prod(self._shape[start:end])

    def canonical_axis(self, axis: int) -> int:
        n = len(self._shape)
        if not -n <= axis < n:
            raise CaffeLiteError(f"axis {axis} out of range for a {n}-axis blob "
                                 f"of shape {self._shape}")
        return axis + n if axis < 0 else axis

    def legacy_shape(self, index: int) -> int:
        """Caffe's LegacyShape: 4-D view padded with leading 1s."""
        n = len(self._shape)
        if index >= n or index < -n:
            return 1
        return self._shape[index]

    @property
    def num(self) -> int:
        return self.legacy_shape(0)

    @property
    def channels(self) -> int:
        return self.legacy_shape(1)

    @property
    def height(self) -> int:
        return self.legacy_shape(2)

    @property
    def width(self) -> int:
        return self.legacy_shape(3)

    # -- contents ----------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        if self._pending is not None:
            self._run_pending()
        return self._data_buf[:self._count].reshape(self._shape)

    @data.setter
    def data(self, value: npt.ArrayLike) -> None:
        self._assign(value, "data")

    def data_for_overwrite(self) -> np.ndarray:
        """The data array, for a caller that replaces every value: a pending fill
        is dropped, not computed."""
        self._pending = None
        return self._data_buf[:self._count].reshape(self._shape)

    def fill_later(self, values: Callable[[], Any]) -> None:
        """Set the data to ``values()`` (anything that broadcasts to the shape) when
        it is first read; forgotten if all of it is replaced before then."""
        self._pending = values

    def _run_pending(self) -> None:
        values, self._pending = self._pending, None
        assert values is not None
        self._data_buf[:self._count].reshape(self._shape)[...] = values()

    @property
    def diff(self) -> np.ndarray:
        return self._diff_buf[:self._count].reshape(self._shape)

    @diff.setter
    def diff(self, value: npt.ArrayLike) -> None:
        self._assign(value, "diff")

    def _assign(self, value: npt.ArrayLike, what: str) -> None:
        array = np.asarray(value)
        if array.shape != self._shape and array.size != 1:
            raise CaffeLiteError(f"cannot assign an array of shape {array.shape} to "
                                 f"the {what} of a blob of shape {self._shape}")
        target = self.data_for_overwrite() if what == "data" else self.diff
        target[...] = array

    def share_data(self, other: Blob) -> None:
        """Use other's data memory (Caffe's ShareData); shapes must agree in count."""
        if other.count != self.count:
            raise CaffeLiteError(f"cannot share data of a blob of shape {other.shape} "
                                 f"with one of shape {self.shape}")
        if other._pending is not None:
            other._run_pending()
        self._pending = None
        self._data_buf = other._data_buf

    def shares_data_with(self, other: Blob) -> bool:
        return self._data_buf is other._data_buf

    def use_memory(self, buffer: np.ndarray) -> None:
        """Keep the data in ``buffer`` (1-D, at least count values), which other
        blobs may use too (lean inference); growing past it takes fresh memory."""
        if buffer.ndim != 1 or buffer.dtype != self.dtype or buffer.size < self._count:
            raise CaffeLiteError(f"a buffer of {buffer.size} {buffer.dtype} values "
                                 f"cannot hold a blob of shape {self._shape}")
        if self._pending is not None:
            self._run_pending()
            buffer[:self._count] = self._data_buf[:self._count]
        self._data_buf = buffer

    def share_diff(self, other: Blob) -> None:
        if other.count != self.count:
            raise CaffeLiteError(f"cannot share diff of a blob of shape {other.shape} "
                                 f"with one of shape {self.shape}")
        self._diff_buf = other._diff_buf

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with its values: a pending fill is computed first."""
        if self._pending is not None:
            self._run_pending()
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"Blob(shape={self._shape}, dtype={self.dtype.name})"
