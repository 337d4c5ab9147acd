"""Lean inference (Net(..., lean=True)): intermediate blobs share memory, the
outputs are the same numbers as with every blob kept, and what a lean net
cannot do (backward, reading dropped blobs, starting mid-net) is refused."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import caffe_lite as caffe
from caffe_lite.errors import CaffeLiteError, NetError
from caffe_lite.formats import parse_net_param

# branches (Split), in place (ReLU), shared memory (Flatten), a join (Concat)
NET = """layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } } }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "a" type: "Convolution" bottom: "c1" top: "a"
        convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "b" type: "Convolution" bottom: "c1" top: "b"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "cat" }
layer { name: "pool" type: "Pooling" bottom: "cat" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "flat" type: "Flatten" bottom: "pool" top: "flat" }
layer { name: "ip" type: "InnerProduct" bottom: "flat" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def pair(text=NET, **lean_args):
    """(a net keeping every blob, a lean one) with the same weights."""
    caffe.set_random_seed(1)
    full = caffe.Net(parse_net_param(text), caffe.TEST)
    caffe.set_random_seed(1)
    lean = caffe.Net(parse_net_param(text), caffe.TEST, lean=True, **lean_args)
    return full, lean


def data_memory(net):
    """Bytes of distinct memory behind the net's blobs' data."""
    buffers = {id(b._data_buf): b._data_buf for b in net.blobs.values()}
    return sum(buf.nbytes for buf in buffers.values())


def serial():
    """One BLAS thread: the full net's forward is then serial like the lean one's (a
    batch-parallel forward may round its smaller GEMMs differently, see net/parallel.py)."""
    return threadpool_limits(1)


def test_lean_outputs_equal_the_full_nets_with_less_memory():
    full, lean = pair(keep=["a"])
    x = np.random.default_rng(0).standard_normal(full.blobs["data"].shape, np.float32)
    with serial():
        want = full.forward(data=x)
        for _ in range(2):                               # reused memory stays right
            got = lean.forward(data=x, blobs=["a"])
            np.testing.assert_array_equal(got["prob"], want["prob"])
            np.testing.assert_array_equal(got["a"], full.blobs["a"].data)
    np.testing.assert_array_equal(lean.blobs["data"].data, x)
    assert lean.lean and not full.lean
    assert data_memory(lean) < 0.75 * data_memory(full)
    # lifetimes that overlap never share: c1 is read by "b" after "a" is written
    assert not np.shares_memory(lean.blobs["c1"].data, lean.blobs["a"].data)


def lifetimes(net):
    """name -> (first layer, last layer) that touches the blob."""
    spans = {}
    for li, (bottoms, tops) in enumerate(zip(net.bottom_vecs, net.top_vecs)):
        for blob in tops + bottoms:
            for name, named in net.blobs.items():
                if named is blob:
                    spans[name] = (spans.get(name, (li, li))[0], li)
    return spans


def shared_pairs(net):
    names = list(net.blobs)
    return {(x, y) for i, x in enumerate(names) for y in names[i + 1:]
            if np.shares_memory(net.blobs[x]._data_buf, net.blobs[y]._data_buf)}


@pytest.mark.parametrize("text", [
    NET, NET + 'layer { name: "s" type: "Sigmoid" bottom: "prob" top: "s" }'],
    ids=["prob_output", "prob_consumed"])
def test_blobs_share_memory_only_when_their_lifetimes_do_not_overlap(text):
    full, lean = pair(text)
    spans = lifetimes(lean)
    planned = shared_pairs(lean) - shared_pairs(full)       # Flatten's share is its own
    assert planned
    for x, y in planned:
        (a, b), (c, d) = spans[x], spans[y]
        assert b < c or d < a, (x, spans[x], y, spans[y])


def test_a_bigger_batch_after_reshape_is_planned_again():
    full, lean = pair()
    for net in (full, lean):
        net.blobs["data"].reshape(5, 3, 12, 12)
        net.reshape()
    x = np.random.default_rng(1).standard_normal((5, 3, 12, 12))
    with serial():
        np.testing.assert_array_equal(lean.forward(data=x)["prob"], full.forward(data=x)["prob"])
    assert data_memory(lean) < 0.75 * data_memory(full)


def test_what_a_lean_net_cannot_do_is_refused():
    _, lean = pair()
    with pytest.raises(NetError, match="forward only"):
        lean.backward()
    with pytest.raises(NetError, match=r"blobs=\['c1'\].*keep="):
        lean.forward(blobs=["c1"])
    with pytest.raises(NetError, match="layer 'pool'.*first layer"):
        lean.forward(start="pool")
    with pytest.raises(NetError, match="keep=.*'nope'"):
        caffe.Net(parse_net_param(NET), caffe.TEST, lean=True, keep=["nope"])
    with pytest.raises(CaffeLiteError, match="lean=True"):
        caffe.Net(parse_net_param(NET), caffe.TEST, keep=["a"])


def test_the_default_net_keeps_every_blob():
    full, _ = pair()
    full.forward(data=np.ones(full.blobs["data"].shape))
    buffers = [b._data_buf for b in full.blobs.values()]
    shared = sum(np.shares_memory(x, y) for i, x in enumerate(buffers) for y in buffers[i + 1:])
    # only as Caffe shares: Flatten's top over its bottom, and a Split's two tops
    # over their bottom (three pairs among the three blobs)
    assert [layer.type for layer in full.layers].count("Split") == 1
    assert shared == 1 + 3


def test_a_zoo_net_runs_lean(zoo_path):
    path = zoo_path("squeezenet/v1.1/deploy.prototxt")
    caffe.set_random_seed(2)
    full = caffe.Net(str(path), caffe.TEST)
    caffe.set_random_seed(2)
    lean = caffe.Net(str(path), caffe.TEST, lean=True)
    for net in (full, lean):
        net.blobs["data"].reshape(1, 3, 67, 67)
        net.reshape()
    x = np.random.default_rng(2).uniform(-50, 50, (1, 3, 67, 67))
    want, got = full.forward(data=x), lean.forward(data=x)
    assert want.keys() == got.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    assert data_memory(lean) < 0.5 * data_memory(full)
