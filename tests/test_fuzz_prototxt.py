"""Property-based fuzzing (Hypothesis, a fixed-seed quick profile): real zoo
prototxts with random text mutations either build and run forward/backward, or
raise a CaffeLiteError. No other exception."""
import numpy as np
import pytest
from conftest import ZOO

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis (the test extra) missing")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import caffe_lite as caffe  # noqa: E402
from caffe_lite.formats import parse_net_param  # noqa: E402

SMALL = ["bvlc_examples/mnist/lenet.prototxt", "mtcnn_kpzhang93/det1.prototxt",
         "mtcnn_kpzhang93/det2.prototxt", "bvlc_examples/cifar10/cifar10_quick.prototxt",
         "espcn/ESPCN_net.prototxt", "fsrcnn/FSRCNN_mat.prototxt"]
TEXTS = [(ZOO / p).read_text() for p in SMALL if (ZOO / p).exists()]


@st.composite
def mutated(draw):
    lines = draw(st.sampled_from(TEXTS)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["drop", "dup", "number", "swap", "word"]))
        if kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "number":
            value = draw(st.sampled_from(["0", "-1", "1", "2", "3", "7", "100000",
                                          "0.5", "-3.5", "1e9"]))
            words = lines[i].split(" ")
            k = [n for n, w in enumerate(words) if w[:1].isdigit() or w[:1] == "-"]
            if k:
                words[draw(st.sampled_from(k))] = value
            lines[i] = " ".join(words)
        else:
            lines[i] += draw(st.sampled_from([" }", " {", ' top: "data"', " bottom: \"x\"",
                                              ' type: "ReLU"', " kernel_size: 0"]))
    return "\n".join(lines)


@pytest.mark.skipif(not TEXTS, reason="../shared/zoo is absent")
@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_zoo_prototxts_build_and_run_or_raise_caffe_lite_errors(text):
    caffe.set_memory_limit("256M")
    try:
        net = caffe.Net(parse_net_param(text), caffe.TEST)
        for name in net.inputs:
            net.blobs[name].data[...] = np.random.default_rng(0).random(
                net.blobs[name].shape)
        net.forward()
        net.backward()
    except caffe.CaffeLiteError:
        pass
    finally:
        caffe.set_memory_limit(None)


# -- what the fuzzer found ------------------------------------------------------------
@pytest.mark.parametrize("filler", ["xavier", "msra"])
def test_a_zero_fan_in_fill_is_an_error_not_a_division_by_zero(filler):
    from caffe_lite.blob import Blob
    from caffe_lite.fillers import fill
    from caffe_lite.proto import caffe_pb2
    with pytest.raises(caffe.CaffeLiteError, match="fan-in/fan-out is 0"):
        fill(Blob((4, 0, 3, 3)), caffe_pb2.FillerParameter(type=filler))
