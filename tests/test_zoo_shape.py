"""OpenCV's Softmax and reshape/slice test nets from the zoo (real Caffe outputs),
used where they sit in ../shared."""
import pytest

from caffe_lite.layers.base import layer_types
from conftest import SHARED_CONFORMANCE, zoo_file
from conformance import load_case, replay

CASES = ["opencv_layer_softmax", "opencv_reshape_and_slice_routines"]


@pytest.mark.parametrize("case", CASES)
def test_zoo_case(case):
    case_dir = SHARED_CONFORMANCE / "zoo" / case
    if not case_dir.exists():
        pytest.skip(f"zoo case {case} not available (../shared is absent)")
    meta, _ = load_case(case_dir)
    missing = sorted(set(meta["layer_types"]) - set(layer_types()))
    if missing:
        pytest.skip(f"layer types not implemented yet: {', '.join(missing)}")
    if meta.get("prototxt_in_case"):
        model = case_dir / meta["prototxt_in_case"]
    else:
        model = zoo_file(meta["model"])
    weights = zoo_file(meta["weights"]) if meta.get("weights") else None
    replay(case_dir, model=model, weights=weights)
