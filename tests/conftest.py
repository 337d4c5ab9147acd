"""Shared fixtures: where the reference material is, and skips when it is absent."""
from pathlib import Path

import pytest

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
