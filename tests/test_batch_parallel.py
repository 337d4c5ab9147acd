"""Batch-parallel inference (net/parallel.py): a TEST net's forward over a batch
runs one slice per thread, each slice exactly as a serial net of that batch size
runs it on one BLAS thread."""
import os
import signal
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import caffe_lite as caffe
from caffe_lite.errors import CaffeLiteError
from caffe_lite.formats import parse_net_param
from caffe_lite.net import parallel
from caffe_lite.ops import threads

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="batch-parallel forward needs 2 CPUs")

@pytest.fixture(autouse=True)
def small_nets_split_too(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_VALUES", 0)


# every kind of layer the inference nets of the bench use, with a branch (Split),
# a channel Concat, in-place BatchNorm/Scale/ReLU and a residual Eltwise
NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 5 dim: 3 dim: 15 dim: 15 } } }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "c1" top: "c1" }
layer { name: "sc1" type: "Scale" bottom: "c1" top: "c1"
        scale_param { bias_term: true filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "a" type: "Convolution" bottom: "c1" top: "a"
        convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "b" type: "Convolution" bottom: "c1" top: "b"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 group: 2 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "cat" }
layer { name: "sum" type: "Eltwise" bottom: "cat" bottom: "c1" top: "sum" }
layer { name: "lrn" type: "LRN" bottom: "sum" top: "lrn" lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 } }
layer { name: "pool" type: "Pooling" bottom: "lrn" top: "pool" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "drop" type: "Dropout" bottom: "pool" top: "pool" }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def make(text=NET, batch=5, seed=3, **kwargs):
    caffe.set_random_seed(seed)
    net = caffe.Net(parse_net_param(text), caffe.TEST, **kwargs)
    net.blobs["data"].reshape(batch, 3, 15, 15)
    net.reshape()
    bn = net.params["bn1"]
    bn[0].data[...] = np.linspace(-1, 1, 8)
    bn[1].data[...] = np.linspace(0.5, 2, 8)
    bn[2].data[...] = 1.5
    return net


def images(batch, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 3, 15, 15)).astype(np.float32)


def forward_in_parallel(net, x):
    with threadpool_limits(2):
        net.forward(data=x)
    assert net._state_in_shadows, "the forward should have run in parallel"
    return {name: blob.data.copy() for name, blob in net.blobs.items()}


def serial_slices(x, slices):
    """Each slice through its own net of that batch size, serially, on one BLAS thread."""
    out = {}
    with threadpool_limits(1):
        for n0, n1 in slices:
            net = make(batch=n1 - n0)
            net.forward(data=x[n0:n1])
            assert not net._state_in_shadows
            for name, blob in net.blobs.items():
                out.setdefault(name, []).append(blob.data.copy())
    return {name: np.concatenate(parts) for name, parts in out.items()}


def test_each_slice_is_exactly_a_serial_forward_of_it():
    x = images(5)
    net = make()
    got = forward_in_parallel(net, x)
    slices = net._parallel.slices(5)
    assert slices == [(0, 2), (2, 5)]               # uneven: 5 images on 2 threads
    want = serial_slices(x, slices)
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_parameters_changed_between_forwards_are_seen():
    x = images(4, seed=1)
    net = make(batch=4)
    forward_in_parallel(net, x)
    net.params["c1"][0].data[...] *= -0.5                            # in place
    net.params["ip"][1].data[...] = np.arange(4)
    got = forward_in_parallel(net, x)["prob"]
    with threadpool_limits(1):
        reference = make(batch=2)
        reference.params["c1"][0].data[...] *= -0.5
        reference.params["ip"][1].data[...] = np.arange(4)
        want = np.concatenate([reference.forward(data=x[:2])["prob"].copy(),
                               reference.forward(data=x[2:])["prob"].copy()])
    np.testing.assert_array_equal(got, want)


def test_a_new_batch_size_is_split_again():
    net = make(batch=4)
    forward_in_parallel(net, images(4))
    net.blobs["data"].reshape(7, 3, 15, 15)
    x = images(7, seed=2)
    got = forward_in_parallel(net, x)
    want = serial_slices(x, [(0, 3), (3, 7)])
    np.testing.assert_array_equal(got["prob"], want["prob"])


def test_backward_after_a_parallel_forward_is_the_serial_ones():
    """The layers' forward state is in the shadows, so backward runs the forward
    again on the net itself first: the diffs equal those after a serial forward."""
    x = images(4, seed=4)
    dy = np.random.default_rng(5).standard_normal((4, 4)).astype(np.float32)
    nets = []
    for run_parallel in (True, False):
        net = make(text=NET + "force_backward: true", batch=4)
        with threadpool_limits(2 if run_parallel else 1):
            net.forward(data=x)
            assert net._state_in_shadows == run_parallel
        with threadpool_limits(1):
            net.backward(prob=dy)
        assert not net._state_in_shadows
        nets.append(net)
    for name in ("data", "c1", "cat", "pool"):
        np.testing.assert_array_equal(nets[0].blobs[name].diff, nets[1].blobs[name].diff)
    np.testing.assert_array_equal(nets[0].params["c1"][0].diff, nets[1].params["c1"][0].diff)


def layer_index(net, name):
    return list(net._layer_names).index(name)


@pytest.mark.parametrize("change,stop_at", [
    (("bottom: \"ip\" top: \"prob\" }", "bottom: \"ip\" top: \"prob\" softmax_param { axis: 0 } }"),
     "prob"),                                         # a Softmax over the batch axis
    (("bottom: \"ip\" top: \"prob\" }", "bottom: \"ip\" top: \"prob\" loss_weight: 1 }"),
     "prob"),                                         # a loss
    (("inner_product_param { num_output: 4", "inner_product_param { num_output: 64"),
     "ip"),                                           # a classifier head heavier than its input
    (("layer { name: \"bn1\" type: \"BatchNorm\" bottom: \"c1\" top: \"c1\" }",
      "layer { name: \"bn1\" type: \"BatchNorm\" bottom: \"c1\" top: \"c1\" "
      "batch_norm_param { use_global_stats: false } }"),
     "bn1"),                                          # batch statistics
])
def test_the_segment_stops_where_the_images_mix(change, stop_at):
    """The layers before run a slice per thread, the rest serially on the whole batch."""
    text = NET.replace(*change)
    assert text != NET
    x = images(5)
    nets = [make(text), make(text)]
    start, stop = parallel.parallel_segment(nets[0].graph)
    assert (start, stop) == (1, layer_index(nets[0], stop_at))
    with threadpool_limits(2):
        nets[0].forward(data=x)
        assert nets[0]._state_in_shadows
        threads.enabled = False
        try:
            nets[1].forward(data=x)
        finally:
            threads.enabled = True
        assert not nets[1]._state_in_shadows
    for name, blob in nets[1].blobs.items():
        np.testing.assert_allclose(nets[0].blobs[name].data, blob.data, rtol=1e-5, atol=1e-6,
                                   err_msg=name)


def test_data_layers_run_first_then_the_segment():
    text = NET.replace(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 5 dim: 3 dim: 15 dim: 15 } } }',
        'layer { name: "data" type: "DummyData" top: "data" dummy_data_param { '
        'shape { dim: 5 dim: 3 dim: 15 dim: 15 } data_filler { type: "gaussian" std: 1 } } }')
    net = caffe.Net(parse_net_param(text), caffe.TEST)
    assert parallel.parallel_segment(net.graph) == (1, len(net.layers))
    with threadpool_limits(2):
        net.forward()
    assert net._state_in_shadows
    x = net.blobs["data"].data.copy()
    with threadpool_limits(1):
        reference = make(batch=5)
        for name in reference.params:
            for mine, theirs in zip(reference.params[name], net.params[name]):
                mine.data[...] = theirs.data
        want = reference.forward(data=x)["prob"]
    np.testing.assert_allclose(net.blobs["prob"].data, want, rtol=1e-5, atol=1e-6)


def test_train_nets_lean_nets_and_single_images_stay_serial():
    assert parallel.parallel_segment(
        caffe.Net(parse_net_param(NET), caffe.TRAIN).graph) == (0, 0)
    lean = make(lean=True)
    one = make(batch=1)
    with threadpool_limits(2):
        lean.forward(data=images(5))
        one.forward(data=images(1))
    assert not lean._state_in_shadows and not one._state_in_shadows


def test_a_net_too_small_to_gain_stays_serial(monkeypatch):
    net = make()
    monkeypatch.setattr(parallel, "MIN_VALUES", sum(b.count for b in net.blobs.values()) + 1)
    with threadpool_limits(2):
        net.forward(data=images(5))
    assert not net._state_in_shadows


def test_one_blas_thread_means_serial():
    net = make()
    with threadpool_limits(1):
        assert threads.threads() == 1
        net.forward(data=images(5))
    assert not net._state_in_shadows


def test_an_error_in_a_thread_names_the_layer(monkeypatch):
    from caffe_lite.layers.softmax import SoftmaxLayer

    def fail(layer, bottom, top):
        raise layer.error("no luck")
    monkeypatch.setattr(SoftmaxLayer, "forward", fail)
    with threadpool_limits(2), pytest.raises(CaffeLiteError, match="layer 'prob'.*no luck"):
        make().forward(data=images(5))


# -- one op over threads: convolution's batch, one part per thread ---------------

@pytest.mark.parametrize("C,Cout,size,kernel,group", [
    (4, 6, 9, 3, 1),       # small maps: the batch folds into one GEMM per part
    (3, 4, 40, 3, 1),      # large maps: per image
    (6, 6, 12, 3, 6),      # depthwise
    (8, 5, 10, 1, 1),      # pointwise
])
def test_a_convolution_split_over_threads_is_each_part_serially(monkeypatch, C, Cout, size,
                                                                kernel, group):
    from caffe_lite.ops import conv_gemm
    monkeypatch.setattr(conv_gemm, "MIN_THREADED_MACS", 0)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, C, size, size)).astype(np.float32)
    w = rng.standard_normal((Cout, C // group, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(Cout).astype(np.float32)
    dy = rng.standard_normal((5, Cout, size, size)).astype(np.float32)
    geometry = dict(stride=1, pad=kernel // 2, group=group)
    calls = []
    monkeypatch.setattr(threads, "run_parts", lambda parts, run=threads.run_parts: (
        calls.append(len(parts)), run(parts))[1])
    with threadpool_limits(2):
        y = conv_gemm.conv_forward(x, w, b, **geometry)
        dx, dw, db = conv_gemm.conv_backward(x, w, dy, **geometry)
    assert calls == [2, 2]
    with threadpool_limits(1):
        parts = [(x[:2], dy[:2]), (x[2:], dy[2:])]
        want_y = np.concatenate([conv_gemm.conv_forward(xp, w, b, **geometry) for xp, _ in parts])
        grads = [conv_gemm.conv_backward(xp, w, dyp, **geometry) for xp, dyp in parts]
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(dx, np.concatenate([g[0] for g in grads]))
    np.testing.assert_array_equal(dw, grads[0][1] + grads[1][1])
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-5)


def test_a_forked_child_splits_with_threads_of_its_own():
    """A process forked after a parallel forward has the pool but not its threads."""
    net = make()
    forward_in_parallel(net, images(5))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the child: forward, report, exit
        try:
            got = forward_in_parallel(net, images(5, seed=9))
            os.write(write, b"ok" if np.isfinite(got["prob"]).all() else b"bad")
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 60
    while os.waitpid(pid, os.WNOHANG) == (0, 0):   # a child waiting on dead threads hangs
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's forward hung")
        time.sleep(0.05)
    assert os.read(read, 2) == b"ok"


def numpy_blas(libraries):
    """numpy's own BLAS among threadpoolctl's libraries (numba's compiler may load
    scipy's as well, which numpy's GEMMs never use)."""
    return [lib for lib in libraries if lib["user_api"] == "blas" and "numpy" in lib["filepath"]]


def test_pinned_blas_keeps_the_thread_count_and_matmul_splits_exactly(monkeypatch):
    """Inside pinned() BLAS runs on one thread, threads() still counts the workers,
    and matmul's parts (by columns or by rows) give np.matmul's values."""
    monkeypatch.setattr(threads, "MIN_SPLIT_MACS", 0)
    from threadpoolctl import threadpool_info
    rng = np.random.default_rng(4)
    with threadpool_limits(2):
        count = threads.threads()
        with threads.pinned():
            assert threads.threads() == count == 2
            assert all(lib["num_threads"] == 1 for lib in numpy_blas(threadpool_info()))
            for m, n in ((3, 40), (40, 3)):
                a = rng.standard_normal((m, 17)).astype(np.float32)
                b = rng.standard_normal((17, n)).astype(np.float32)
                out = np.empty((m, n), np.float32)
                threads.matmul(a, b, out=out)
                np.testing.assert_array_equal(out, np.matmul(a, b))
        assert any(lib["num_threads"] == 2 for lib in numpy_blas(threadpool_info()))


def test_a_parallel_forward_runs_with_blas_pinned(monkeypatch):
    """The segment and the layers after it run with BLAS on one thread (no BLAS
    thread of its own spinning beside the workers)."""
    seen = []
    real = threads.matmul
    monkeypatch.setattr(threads, "matmul", lambda a, b, out: seen.append(
        threads._pinned) or real(a, b, out=out))
    net = make()
    forward_in_parallel(net, images(5))
    assert seen and all(count == 2 for count in seen)
