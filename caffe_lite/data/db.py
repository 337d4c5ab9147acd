"""Caffe's key-value record stores: LMDB (the ``lmdb`` extra) and LevelDB
(``plyvel``), read in key order and written in transactions, as caffe::db does.

Records are serialized Datum messages; keys sort in insertion order because
Caffe's tools write them as ``%08d_<name>``.
"""
from __future__ import annotations

import os
from typing import Any

from ..errors import CaffeLiteError, require

BACKENDS = ("lmdb", "leveldb")


def backend_name(value):
    """DataParameter.DB enum (LEVELDB = 0, LMDB = 1) or a name -> 'lmdb'/'leveldb'."""
    if isinstance(value, str):
        name = value.lower()
    else:
        name = {0: "leveldb", 1: "lmdb"}.get(int(value), str(value))
    if name not in BACKENDS:
        raise CaffeLiteError(f"unknown database backend '{value}' (use lmdb or leveldb)")
    return name


class RecordReader:
    """Read-only view of a database: ``len()``, ``records()`` yielding
    (key, value) bytes in key order from the first record, and ``get(key)``."""

    def __init__(self, path, backend):
        self.path = os.fspath(path)
        self.backend = backend_name(backend)
        if not os.path.exists(self.path):
            raise CaffeLiteError(f"{self.backend} database does not exist",
                                 file=self.path)
        try:
            self._handle = _open_shared(self.path, self.backend)
            if self.backend == "lmdb":
                self._count = self._handle.stat()["entries"]
            else:
                self._count = sum(1 for _ in self._handle.iterator(include_value=False))
        except CaffeLiteError:
            raise
        except Exception as exc:                 # lmdb.Error / plyvel.Error
            raise CaffeLiteError(f"cannot open the {self.backend} database: {exc}",
                                 file=self.path) from None

    def __len__(self):
        return self._count

    def records(self):
        if self.backend == "lmdb":
            with self._handle.begin(buffers=False) as txn:
                yield from txn.cursor().iternext()
        else:
            yield from self._handle.iterator()

    def get(self, key):
        """The value stored under ``key`` (bytes), or None."""
        if self.backend == "lmdb":
            with self._handle.begin(buffers=False) as txn:
                return txn.get(key)
        return self._handle.get(key)

    def close(self):
        _close_shared(self.path, self.backend)


# py-lmdb and LevelDB allow one open handle per database and process, so the
# readers of one database (a train and a test net) share it.
_OPEN: dict[tuple[str, str], Any] = {}


def _open_shared(path, backend):
    key = (backend, os.path.realpath(path))
    if key not in _OPEN:
        if backend == "lmdb":
            lmdb = require("lmdb", "lmdb", "reading LMDB databases", file=path)
            handle = lmdb.open(path, readonly=True, lock=False, readahead=False,
                               subdir=os.path.isdir(path))
        else:
            plyvel = require("plyvel", "leveldb", "reading LevelDB databases", file=path)
            handle = plyvel.DB(path, create_if_missing=False)
        _OPEN[key] = [handle, 0]
    _OPEN[key][1] += 1
    return _OPEN[key][0]


def _close_shared(path, backend):
    key = (backend, os.path.realpath(path))
    entry = _OPEN.get(key)
    if entry:
        entry[1] -= 1
        if entry[1] == 0:
            entry[0].close()
            del _OPEN[key]


class RecordWriter:
    """A new database (Caffe refuses an existing one). ``put(key, value)``
    buffers; records are committed every ``commit_every`` puts and on close."""

    def __init__(self, path, backend, commit_every=1000):
        self.path = os.fspath(path)
        self.backend = backend_name(backend)
        self.commit_every = commit_every
        self._pending = []
        if os.path.exists(self.path):
            raise CaffeLiteError(f"{self.backend} database already exists; remove it "
                                 f"or choose another name", file=self.path)
        if self.backend == "lmdb":
            lmdb = require("lmdb", "lmdb", "writing LMDB databases")
            os.makedirs(self.path)
            self._env = lmdb.open(self.path, map_size=1 << 26)
            self._map_full = lmdb.MapFullError
        else:
            plyvel = require("plyvel", "leveldb", "writing LevelDB databases")
            self._db = plyvel.DB(self.path, create_if_missing=True, error_if_exists=True)

    def put(self, key, value):
        self._pending.append((key.encode() if isinstance(key, str) else key, value))
        if len(self._pending) >= self.commit_every:
            self.commit()

    def commit(self):
        if self.backend == "lmdb":
            while True:
                try:
                    with self._env.begin(write=True) as txn:
                        for key, value in self._pending:
                            txn.put(key, value)
                    break
                except self._map_full:           # grow the map, as Caffe does
                    self._env.set_mapsize(self._env.info()["map_size"] * 2)
        else:
            with self._db.write_batch() as batch:
                for key, value in self._pending:
                    batch.put(key, value)
        self._pending = []

    def close(self):
        self.commit()
        if self.backend == "lmdb":
            self._env.close()
        else:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
