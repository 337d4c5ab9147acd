"""Memory and size limits: a net that would need more memory than the limit is
refused while it is built, before that memory is taken, naming the largest
blobs and the total; the limit is configurable in code and by environment."""
import pytest

import caffe_lite as caffe
from caffe_lite.blob import memory_limit, parse_size
from caffe_lite.errors import MemoryLimitError
from caffe_lite.formats import parse_net_param

NET = """layer { name: "data" type: "Input" top: "x" input_param { shape { dim: %d dim: 3 dim: 64 dim: 64 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "y"
        convolution_param { num_output: 64 kernel_size: 3 pad: 1 } }
layer { name: "big" type: "InnerProduct" bottom: "y" top: "z"
        inner_product_param { num_output: 1000 } }
"""


@pytest.fixture(autouse=True)
def default_limit():
    yield
    caffe.set_memory_limit(None)


def test_a_net_over_the_limit_is_refused_naming_its_largest_blobs():
    caffe.set_memory_limit("64M")
    with pytest.raises(MemoryLimitError) as info:
        caffe.Net(parse_net_param(NET % 8), caffe.TEST)   # the 262144 x 1000 weights: 2 GB
    message = str(info.value)
    assert "layer 'big' (InnerProduct)" in message
    assert "over the memory limit of 67,108,864" in message
    assert "'y' (8, 64, 64, 64)" in message and "'x' (8, 3, 64, 64)" in message
    assert info.value.limit == 64 << 20


def test_under_the_limit_it_builds():
    caffe.set_memory_limit("64M")
    net = caffe.Net(parse_net_param((NET % 1).replace("num_output: 1000", "num_output: 10")),
                    caffe.TEST)
    assert net.blobs["z"].shape == (1, 10)


def test_absurd_shapes_are_refused_without_a_raw_numpy_error():
    net = parse_net_param('layer { name: "d" type: "Input" top: "x" '
                          'input_param { shape { dim: 100000 dim: 100000 dim: 100000 } } }')
    with pytest.raises(MemoryLimitError, match=r"layer 'd'.*\(100000, 100000, 100000\)"):
        caffe.Net(net, caffe.TEST)


def test_the_environment_sets_the_default(monkeypatch):
    monkeypatch.setenv("CAFFE_LITE_MEMORY_LIMIT", "512M")
    assert memory_limit() == 512 << 20
    caffe.set_memory_limit(1000)
    assert memory_limit() == 1000
    assert [parse_size(v) for v in ("64K", "2g", "1.5M", 7)] == [65536, 2 << 30,
                                                                  1572864, 7]
    with pytest.raises(caffe.CaffeLiteError, match="not a memory size"):
        parse_size("lots")
