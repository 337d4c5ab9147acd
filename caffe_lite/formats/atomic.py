"""Atomic file writes: readers never see a half-written weights or prototxt file."""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Any, Iterator

from ..errors import CaffeLiteError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield a file object; on success it replaces ``path`` in one step.

    The data goes to a temporary file in the same directory (so ``os.replace`` is a
    rename on one filesystem), is fsynced, then renamed. If the body raises, the
    temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CaffeLiteError(f"cannot write '{path}': directory '{directory}' "
                             f"does not exist", file=path)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".",
                                   suffix=os.path.basename(path) + ".tmp")
    except OSError as exc:
        raise CaffeLiteError(f"cannot write into '{directory}': {exc.strerror}",
                             file=path) from exc
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _keep_umask_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _keep_umask_permissions(tmp: str) -> None:
    """mkstemp creates 0600 files; give the result the usual umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
