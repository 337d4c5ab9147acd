"""Blob: an N-D array of data plus an equally shaped array of gradients (diff).

Like Caffe's Blob, a blob keeps its memory when reshaped to the same or a smaller
count (values are then reinterpreted in the new shape) and gets fresh zeros when
it grows. ``data`` and ``diff`` are numpy views into that memory, so
``blob.data[...] = x`` writes into the net.
"""
import numpy as np

from .errors import CaffeLiteError

MAX_AXES = 32


class Blob:
    __slots__ = ("_shape", "_count", "_data_buf", "_diff_buf", "dtype")

    def __init__(self, shape=(), dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self._shape = ()
        self._count = 0
        self._data_buf = np.zeros(0, self.dtype)
        self._diff_buf = np.zeros(0, self.dtype)
        self.reshape(shape)

    # -- shape -------------------------------------------------------------
    def reshape(self, *shape):
        """reshape(2, 3) or reshape((2, 3)) or reshape([2, 3])."""
        if len(shape) == 1 and not np.isscalar(shape[0]):
            shape = shape[0]
        shape = tuple(int(d) for d in shape)
        if len(shape) > MAX_AXES:
            raise CaffeLiteError(f"blob shape {shape} has more than {MAX_AXES} axes")
        if any(d < 0 for d in shape):
            raise CaffeLiteError(f"blob shape {shape} has a negative dimension")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count > self._data_buf.size:
            self._data_buf = np.zeros(count, self.dtype)
            self._diff_buf = np.zeros(count, self.dtype)
        self._shape = shape
        self._count = count

    @property
    def shape(self):
        return self._shape

    @property
    def count(self):
        return self._count

    @property
    def num_axes(self):
        return len(self._shape)

    def count_range(self, start, end=None):
        """Product of the dimensions in [start, end)."""
        return int(np.prod(self._shape[start:end], dtype=np.int64))

    def canonical_axis(self, axis):
        n = len(self._shape)
        if not -n <= axis < max(n, 1):
            raise CaffeLiteError(f"axis {axis} out of range for a {n}-axis blob "
                                 f"of shape {self._shape}")
        return axis + n if axis < 0 else axis

    def legacy_shape(self, index):
        """Caffe's LegacyShape: 4-D view padded with leading 1s."""
        n = len(self._shape)
        if index >= n or index < -n:
            return 1
        return self._shape[index]

    num = property(lambda self: self.legacy_shape(0))
    channels = property(lambda self: self.legacy_shape(1))
    height = property(lambda self: self.legacy_shape(2))
    width = property(lambda self: self.legacy_shape(3))

    # -- contents ----------------------------------------------------------
    @property
    def data(self):
        return self._data_buf[:self._count].reshape(self._shape)

    @data.setter
    def data(self, value):
        self._assign(self.data, value, "data")

    @property
    def diff(self):
        return self._diff_buf[:self._count].reshape(self._shape)

    @diff.setter
    def diff(self, value):
        self._assign(self.diff, value, "diff")

    def _assign(self, target, value, what):
        value = np.asarray(value)
        if value.shape != target.shape and value.size != 1:
            raise CaffeLiteError(f"cannot assign an array of shape {value.shape} to "
                                 f"the {what} of a blob of shape {self._shape}")
        target[...] = value

    def share_data(self, other):
        """Use other's data memory (Caffe's ShareData); shapes must agree in count."""
        if other.count != self.count:
            raise CaffeLiteError(f"cannot share data of a blob of shape {other.shape} "
                                 f"with one of shape {self.shape}")
        self._data_buf = other._data_buf

    def share_diff(self, other):
        if other.count != self.count:
            raise CaffeLiteError(f"cannot share diff of a blob of shape {other.shape} "
                                 f"with one of shape {self.shape}")
        self._diff_buf = other._diff_buf

    def __repr__(self):
        return f"Blob(shape={self._shape}, dtype={self.dtype.name})"
