"""Golden cases recorded from OpenCV's dnn module by tools/record_opencv_cases.py
(synthetic SSD heads with seeded weights) replay with the conformance harness; no cv2
needed here."""
import pytest
from conformance import load_case, replay
from conftest import DATA
from layer_case import assert_registered

CASES = sorted(p for p in (DATA / "opencv").glob("*") if p.is_dir())


def test_cases_are_present():
    assert len(CASES) >= 2


@pytest.mark.parametrize("case_dir", CASES, ids=lambda p: p.name)
def test_opencv_case(case_dir):
    meta, arrays = load_case(case_dir)
    assert_registered(meta["layer_types"])
    net = replay(case_dir)
    detections = net.blobs["detection_out"].data
    assert detections.shape == arrays["blob/detection_out"].shape == \
        (1, 1, meta["detections"], 7)
