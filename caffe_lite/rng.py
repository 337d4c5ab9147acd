"""The one random generator behind fillers, dropout and data shuffling.

Caffe's own RNG stream cannot be reproduced; what matters is that
``set_random_seed`` makes a run repeatable.
"""
from __future__ import annotations

import numpy as np

_rng = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    global _rng
    _rng = np.random.default_rng(int(seed))


def get_rng() -> np.random.Generator:
    return _rng
