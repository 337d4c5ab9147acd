"""The output of a batch-inference run, shard by shard, so an interrupted run
resumes where it stopped.

A shard is one ``shard-NNNNN.npz`` (``keys``, the input keys of its rows, and
one array per blob, named as the blob), written atomically: it exists whole or not at all. ``manifest.json``
beside the shards says which run they belong to (model, weights, inputs, blobs,
batching, preprocessing) and whether the run is complete. The output is either
that folder itself, or an HDF5 file (datasets ``keys`` and one per blob)
assembled at the end from a ``<file>.parts`` folder, which is then removed.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

import numpy as np

from ..errors import CaffeLiteError, require
from ..formats.atomic import atomic_write

MANIFEST = "manifest.json"


def is_hdf5(path: str) -> bool:
    return path.lower().endswith((".h5", ".hdf5"))


class ShardStore:
    """Shards of one run under ``output`` (see the module docstring). An
    existing complete output, or another run's shards, is refused unless
    ``overwrite``; this run's own shards are kept and resumed."""

    def __init__(self, output: str | os.PathLike[str], run: dict[str, Any],
                 overwrite: bool = False) -> None:
        self.output = os.fspath(output)
        self.hdf5 = is_hdf5(self.output)
        self.folder = self.output + ".parts" if self.hdf5 else self.output
        self.run = run
        if self.hdf5:
            require("h5py", "hdf5", "an HDF5 output", file=self.output)
        if self.hdf5 and os.path.exists(self.output):
            if not overwrite:
                raise CaffeLiteError("the output exists; give --overwrite (overwrite="
                                     "True) to replace it", file=self.output)
            shutil.rmtree(self.folder, ignore_errors=True)
        self._claim_folder(overwrite)

    def _claim_folder(self, overwrite: bool) -> None:
        manifest = os.path.join(self.folder, MANIFEST)
        if os.path.isdir(self.folder) and os.listdir(self.folder):
            previous = self._read_manifest(manifest)
            if overwrite:
                self._remove_shards()
            elif previous is None:
                raise CaffeLiteError("the output folder exists and holds other files; "
                                     "give --overwrite or another folder",
                                     file=self.output)
            elif previous.get("complete"):
                raise CaffeLiteError("the output exists (a complete run); give "
                                     "--overwrite (overwrite=True) to replace it",
                                     file=self.output)
            elif previous.get("run") != self.run:
                differ = sorted(k for k in set(previous.get("run", {})) | set(self.run)
                                if previous.get("run", {}).get(k) != self.run.get(k))
                raise CaffeLiteError(f"the output holds the shards of another run "
                                     f"(it differs in: {', '.join(differ)}); give "
                                     f"--overwrite to start over", file=self.output)
        elif os.path.exists(self.folder) and not os.path.isdir(self.folder):
            if not overwrite:
                raise CaffeLiteError("the output exists and is not a folder; give "
                                     "--overwrite to replace it", file=self.output)
            os.remove(self.folder)
        os.makedirs(self.folder, exist_ok=True)
        self._remove_shards(leftovers_only=True)
        self._write_manifest(complete=False)

    @staticmethod
    def _read_manifest(path: str) -> dict[str, Any] | None:
        try:
            with open(path) as handle:
                value = json.load(handle)
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def _write_manifest(self, complete: bool) -> None:
        with atomic_write(os.path.join(self.folder, MANIFEST), "w") as handle:
            json.dump({"run": self.run, "complete": complete}, handle, indent=1)

    def _remove_shards(self, leftovers_only: bool = False) -> None:
        """The shards and manifest, and the temporary files a killed run left half
        written (atomic_write's); with ``leftovers_only``, those files alone."""
        for name in os.listdir(self.folder):
            ours = name == MANIFEST or (name.startswith("shard-") and name.endswith(".npz"))
            leftover = name.startswith(".") and name.endswith((".npz.tmp", MANIFEST + ".tmp"))
            if leftover or (ours and not leftovers_only):
                os.remove(os.path.join(self.folder, name))

    def path(self, index: int) -> str:
        return os.path.join(self.folder, f"shard-{index:05d}.npz")

    def done(self, count: int) -> set[int]:
        """The shards (of ``count``) already written."""
        return {i for i in range(count) if os.path.exists(self.path(i))}

    def write(self, index: int, keys: list[str], arrays: dict[str, np.ndarray]) -> None:
        with atomic_write(self.path(index)) as handle:
            contents: dict[str, Any] = {"keys": np.array(keys, dtype=str), **arrays}
            np.savez(handle, **contents)

    def read(self, index: int, blobs: list[str]) -> tuple[list[str], dict[str, np.ndarray]]:
        try:
            with np.load(self.path(index)) as f:
                return [str(k) for k in f["keys"]], {b: f[b] for b in blobs}
        except (OSError, KeyError, ValueError) as exc:
            raise CaffeLiteError(f"a shard of the output cannot be read ({exc}); give "
                                 f"--overwrite to start over", file=self.path(index)) \
                from None

    def finish(self, count: int, blobs: list[str]) -> None:
        """Mark the run complete; for an HDF5 output, assemble the file (written
        atomically) and remove the shards."""
        if not self.hdf5:
            self._write_manifest(complete=True)
            return
        h5py = require("h5py", "hdf5", "an HDF5 output", file=self.output)
        parts = [self.read(i, blobs) for i in range(count)]
        with atomic_write(self.output, "w+b") as handle, h5py.File(handle, "w") as f:
            keys = [k for part_keys, _ in parts for k in part_keys]
            f.create_dataset("keys", data=np.array(keys, dtype=object),
                             dtype=h5py.string_dtype())
            for blob in blobs:
                f.create_dataset(blob, data=np.concatenate([a[blob] for _, a in parts]))
        shutil.rmtree(self.folder, ignore_errors=True)
