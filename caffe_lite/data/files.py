"""Files that layers name in their parameters: where Caffe looks for them, and
blob files (.binaryproto) read as arrays, so layers never reach into formats/."""
import os

import numpy as np

from ..errors import CaffeLiteError
from ..formats import read_blobproto


def find_file(path, *bases):
    """``path`` if it exists as given (Caffe: relative to the CWD), else the first
    existing ``base/path``; the name as given when none exists."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    for base in bases:
        if base:
            candidate = os.path.join(os.path.dirname(os.path.abspath(base)), path)
            if os.path.exists(candidate):
                return candidate
    return path


def read_blob_file(path, error, what="blob file"):
    """A .binaryproto BlobProto as a float32 array; failures become ``error(msg)``
    (the calling layer's own error, so it names the layer)."""
    if not os.path.exists(path):
        raise error(f"the {what} {path} does not exist")
    try:
        return np.asarray(read_blobproto(path), np.float32)
    except (OSError, CaffeLiteError) as exc:
        raise error(f"cannot read the {what} {path}: "
                    f"{getattr(exc, 'message', exc)}") from None
