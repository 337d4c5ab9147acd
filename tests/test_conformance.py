"""Every golden case from real Caffe under tests/data/conformance (layers, nets,
forks) replays with Caffe's numbers."""
import pytest

from caffe_lite.layers.base import layer_types
from conftest import CONFORMANCE
from conformance import load_case, replay

GROUPS = ("layers", "nets", "forks")
CASES = sorted(p for g in GROUPS for p in (CONFORMANCE / g).glob("*") if p.is_dir())


@pytest.mark.parametrize("case_dir", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_case(case_dir):
    meta, _ = load_case(case_dir)
    missing = sorted(set(meta["layer_types"]) - set(layer_types()))
    if missing:
        pytest.skip(f"layer types not implemented yet: {', '.join(missing)}")
    replay(case_dir)
