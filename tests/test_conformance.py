"""Every golden case from real Caffe under tests/data/conformance (layers, nets,
forks) replays with Caffe's numbers."""
import pytest

from caffe_lite.layers.base import layer_types
from conftest import CONFORMANCE
from conformance import load_case, replay

GROUPS = ("layers", "nets", "forks")
CASES = sorted(p for g in GROUPS for p in (CONFORMANCE / g).glob("*") if p.is_dir())

# Caffe's GEMM gives bit-identical outputs for identical receptive fields (the
# pad-100 border of FCN); numpy's OpenBLAS may differ there by one ulp, which flips
# exact ties in a later MAX pooling and routes those gradients to another cell.
# Forward must still match; the backward below the flipped ties cannot.
GEMM_TIE_CASES = {"nets/fcn8s_tiny": "pool4 argmax ties flipped by 1-ulp GEMM rounding"}


@pytest.mark.parametrize("case_dir", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_case(case_dir):
    meta, _ = load_case(case_dir)
    missing = sorted(set(meta["layer_types"]) - set(layer_types()))
    if missing:
        pytest.skip(f"layer types not implemented yet: {', '.join(missing)}")
    name = f"{case_dir.parent.name}/{case_dir.name}"
    if name not in GEMM_TIE_CASES:
        replay(case_dir)
        return
    replay(case_dir, check_backward=False)
    try:
        replay(case_dir)
    except AssertionError as exc:
        pytest.xfail(f"{GEMM_TIE_CASES[name]}: {exc}")
