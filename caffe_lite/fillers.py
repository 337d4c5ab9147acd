"""Weight fillers (FillerParameter ``type``), registered by name like layers.

A filler checks its parameters against the blob when the net is built and
returns a recipe; the blob computes the values from it when its data is first
read (``Blob.fill_later``), or never, when weights replace them first. A random
filler draws a seed from the global generator at build time and makes its
values from its own generator of that seed, so the values do not depend on when
(or whether) other blobs are filled.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .blob import Blob
from .errors import CaffeLiteError
from .rng import get_rng

#: the values for a blob's data, given a random generator (anything that
#: broadcasts to the blob's shape)
Recipe = Callable[[np.random.Generator], Any]
#: a filler: (blob, FillerParameter) -> its recipe, after checking the parameters
Filler = Callable[[Blob, Any], Recipe]

_FILLERS: dict[str, Filler] = {}
_RANDOM: set[str] = set()


def register_filler(name: str, random: bool = True) -> Callable[[Filler], Filler]:
    def decorate(fn: Filler) -> Filler:
        _FILLERS[name] = fn
        if random:
            _RANDOM.add(name)
        return fn
    return decorate


def fill(blob: Blob, filler_param: Any) -> None:
    """Fill ``blob.data`` as the FillerParameter says, when it is first read.
    Bad parameters are refused now."""
    kind = filler_param.type
    try:
        filler = _FILLERS[kind]
    except KeyError:
        raise CaffeLiteError(f"unknown filler type '{kind}' (known: "
                             f"{', '.join(sorted(_FILLERS))})") from None
    if filler_param.sparse != -1 and kind != "gaussian":
        raise CaffeLiteError(f"filler '{kind}' does not support sparse")
    recipe = filler(blob, filler_param)
    if kind in _RANDOM:
        seed = int(get_rng().integers(2 ** 63))
        blob.fill_later(lambda: recipe(np.random.default_rng(seed)))
    else:
        blob.fill_later(lambda: recipe(get_rng()))


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


@register_filler("constant", random=False)
def _constant(blob: Blob, p: Any) -> Recipe:
    value = p.value
    return lambda rng: value


@register_filler("uniform")
def _uniform(blob: Blob, p: Any) -> Recipe:
    if p.min > p.max:
        raise CaffeLiteError(f"uniform filler min {p.min} is above max {p.max}")
    if not np.isfinite(p.max - p.min):    # numpy refuses it, when the values are made
        raise CaffeLiteError(f"uniform filler range {p.min}..{p.max} is not finite")
    low, high, shape = p.min, p.max, blob.shape
    return lambda rng: rng.uniform(low, high, shape)


@register_filler("gaussian")
def _gaussian(blob: Blob, p: Any) -> Recipe:
    if p.std < 0:               # Caffe aborts; 0 is allowed here (a constant fill)
        raise CaffeLiteError(f"gaussian filler std must be >= 0, got {p.std}")
    if p.sparse < -1:
        raise CaffeLiteError(f"gaussian filler sparse must be >= -1, got {p.sparse}")
    mean, std, sparse, shape = p.mean, p.std, p.sparse, blob.shape

    def recipe(rng: np.random.Generator) -> np.ndarray:
        values = rng.normal(mean, std, shape)
        if sparse >= 0:
            # sparse = expected number of non-zero inputs per output (shape[0] outputs)
            values *= rng.random(shape) < sparse / shape[0]
        return values
    return recipe


@register_filler("positive_unitball")
def _positive_unitball(blob: Blob, p: Any) -> Recipe:
    shape, rows = blob.shape, blob.num

    def recipe(rng: np.random.Generator) -> np.ndarray:
        values = rng.uniform(0, 1, shape).reshape(rows, -1)
        return (values / values.sum(axis=1, keepdims=True)).reshape(shape)
    return recipe


@register_filler("xavier")
def _xavier(blob: Blob, p: Any) -> Recipe:
    scale, shape = np.sqrt(3.0 / _variance_n(blob, p)), blob.shape
    return lambda rng: rng.uniform(-scale, scale, shape)


@register_filler("msra")
def _msra(blob: Blob, p: Any) -> Recipe:
    std, shape = np.sqrt(2.0 / _variance_n(blob, p)), blob.shape
    return lambda rng: rng.normal(0.0, std, shape)


@register_filler("bilinear", random=False)
def _bilinear(blob: Blob, p: Any) -> Recipe:
    """Bilinear upsampling kernel for every (out, in) pair; square 4-D blobs only."""
    if blob.num_axes != 4 or blob.shape[2] != blob.shape[3]:
        raise CaffeLiteError(f"bilinear filler needs a 4-D blob with a square kernel, "
                             f"got shape {blob.shape}")
    k = blob.shape[3]
    f = int(np.ceil(k / 2.0))
    c = (k - 1) / (2.0 * f)
    taps = 1 - np.abs(np.arange(k) / f - c)          # (K,)
    kernel = np.outer(taps, taps)
    return lambda rng: kernel


# ParseNet's fork (weiliu89/caffe branch fcn) names the same kernel "bilinear_upsampling"
register_filler("bilinear_upsampling")(_bilinear)
