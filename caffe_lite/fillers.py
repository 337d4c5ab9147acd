"""Weight fillers (FillerParameter ``type``), registered by name like layers."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .blob import Blob
from .errors import CaffeLiteError
from .rng import get_rng

#: a filler: (blob, FillerParameter) -> the values for blob.data
Filler = Callable[[Blob, Any], Any]

_FILLERS: dict[str, Filler] = {}


def register_filler(name: str) -> Callable[[Filler], Filler]:
    def decorate(fn: Filler) -> Filler:
        _FILLERS[name] = fn
        return fn
    return decorate


def fill(blob: Blob, filler_param: Any) -> None:
    """Fill ``blob.data`` in place as the FillerParameter says."""
    kind = filler_param.type
    try:
        filler = _FILLERS[kind]
    except KeyError:
        raise CaffeLiteError(f"unknown filler type '{kind}' (known: "
                             f"{', '.join(sorted(_FILLERS))})") from None
    if filler_param.sparse != -1 and kind != "gaussian":
        raise CaffeLiteError(f"filler '{kind}' does not support sparse")
    values = filler(blob, filler_param)
    blob.data[...] = values


def _fans(blob: Blob) -> tuple[int, int]:
    # Caffe uses the legacy 4-D view: fan_in = count / num, fan_out = count / channels
    count = blob.count
    return count // max(blob.num, 1), count // max(blob.channels, 1)


def _variance_n(blob: Blob, p: Any) -> float:
    fan_in, fan_out = _fans(blob)
    norm = p.variance_norm
    if norm == p.AVERAGE:
        n = (fan_in + fan_out) / 2.0
    else:
        n = fan_out if norm == p.FAN_OUT else fan_in
    if n <= 0:                  # Caffe divides by zero and fills inf/NaN
        raise CaffeLiteError(f"cannot fill a blob of shape {blob.shape} with the "
                             f"'{p.type}' filler: its fan-in/fan-out is 0")
    return n


@register_filler("constant")
def _constant(blob: Blob, p: Any) -> np.ndarray:
    return np.full(blob.shape, p.value, blob.dtype)


@register_filler("uniform")
def _uniform(blob: Blob, p: Any) -> np.ndarray:
    if p.min > p.max:
        raise CaffeLiteError(f"uniform filler min {p.min} is above max {p.max}")
    return get_rng().uniform(p.min, p.max, blob.shape)


@register_filler("gaussian")
def _gaussian(blob: Blob, p: Any) -> np.ndarray:
    if p.std < 0:               # Caffe aborts; 0 is allowed here (a constant fill)
        raise CaffeLiteError(f"gaussian filler std must be >= 0, got {p.std}")
    values = get_rng().normal(p.mean, p.std, blob.shape)
    if p.sparse < -1:
        raise CaffeLiteError(f"gaussian filler sparse must be >= -1, got {p.sparse}")
    if p.sparse >= 0:
        # sparse = expected number of non-zero inputs per output (shape[0] outputs)
        keep = get_rng().random(blob.shape) < p.sparse / blob.shape[0]
        values = values * keep
    return values


@register_filler("positive_unitball")
def _positive_unitball(blob: Blob, p: Any) -> np.ndarray:
    values = get_rng().uniform(0, 1, blob.shape).reshape(blob.num, -1)
    return (values / values.sum(axis=1, keepdims=True)).reshape(blob.shape)


@register_filler("xavier")
def _xavier(blob: Blob, p: Any) -> np.ndarray:
    scale = np.sqrt(3.0 / _variance_n(blob, p))
    return get_rng().uniform(-scale, scale, blob.shape)


@register_filler("msra")
def _msra(blob: Blob, p: Any) -> np.ndarray:
    return get_rng().normal(0.0, np.sqrt(2.0 / _variance_n(blob, p)), blob.shape)


@register_filler("bilinear")
def _bilinear(blob: Blob, p: Any) -> np.ndarray:
    """Bilinear upsampling kernel for every (out, in) pair; square 4-D blobs only."""
    if blob.num_axes != 4 or blob.shape[2] != blob.shape[3]:
        raise CaffeLiteError(f"bilinear filler needs a 4-D blob with a square kernel, "
                             f"got shape {blob.shape}")
    k = blob.shape[3]
    f = int(np.ceil(k / 2.0))
    c = (k - 1) / (2.0 * f)
    taps = 1 - np.abs(np.arange(k) / f - c)          # (K,)
    return np.broadcast_to(np.outer(taps, taps), blob.shape)
