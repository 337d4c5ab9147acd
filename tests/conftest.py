"""Shared fixtures: where the reference material is, and skips when it is absent.

Under pytest-xdist every core already runs a worker, so each worker's BLAS keeps
to one thread: OpenBLAS threads that outnumber the cores spin against each other
(measured: 100 LeNet training steps took 2.4 s with the default threads beside a
busy core, 0.74 s with one).
"""
import os
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

if os.environ.get("PYTEST_XDIST_WORKER"):
    threadpool_limits(limits=1, user_api="blas")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
CONFORMANCE = DATA / "conformance"
SHARED = ROOT.parent / "shared"
ZOO = SHARED / "zoo"
SHARED_CONFORMANCE = SHARED / "conformance" / "visible"


def zoo_file(relative):
    """A path inside ../shared/zoo, or skip the test when it is not there."""
    path = ZOO / relative
    if not path.exists():
        pytest.skip(f"reference zoo file {relative} not available (../shared/zoo is "
                    f"absent outside the development checkout)")
    return path


@pytest.fixture
def zoo_path():
    return zoo_file
