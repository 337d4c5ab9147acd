"""Unpooling, Upsample and Interp (fork layers) and their kernels: naive loop
references, float64 gradient checks, errors."""
import re
from pathlib import Path

import numpy as np
import pytest
from conformance import build_net, load_case
from conftest import CONFORMANCE, ZOO, zoo_file
from layer_case import LayerCase, proto, rand, setup_layer
from ref_pooling import (
    ref_interp,
    ref_interp_backward,
    ref_unpool_max,
    ref_unpool_max_backward,
    ref_unpool_window,
    ref_unpool_window_backward,
)
from reference import ref_max_pool

import caffe_lite
from caffe_lite.errors import LayerError, UnknownLayerError
from caffe_lite.formats import parse_net_param
from caffe_lite.layers.base import layer_class, layer_types
from caffe_lite.net.passes import filter_by_state
from caffe_lite.ops.upsample import interp_matrix, scatter_last
from caffe_lite.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def unpool_text(params, mask=True, name="unpool"):
    return proto("Unpooling", f"unpooling_param {{ {params} }}", name=name,
                 bottoms=("x", "mask") if mask else ("x",))


def upsample_text(params):
    return proto("Upsample", f"upsample_param {{ {params} }}", name="up", bottoms=("x", "mask"))


def interp_text(params):
    return proto("Interp", f"interp_param {{ {params} }}", name="interp")


def first_only(n):
    """propagate_down: the data, never the mask."""
    return [True] + [False] * (n - 1)


# ==== scatter kernel =========================================================

def test_scatter_last_write_wins_with_many_duplicates():
    r = np.random.default_rng(0)
    x = r.standard_normal((2, 3, 200))
    index = r.integers(0, 17, (2, 3, 200))          # heavy duplication
    y = scatter_last(x, index, 20)
    expect = np.zeros((2, 3, 20))
    for n in range(2):
        for c in range(3):
            for i in range(200):
                expect[n, c, index[n, c, i]] = x[n, c, i]
    np.testing.assert_array_equal(y, expect)


def test_interp_matrix_rows_are_convex_weights():
    for n_in, n_out in [(5, 9), (9, 5), (1, 4), (4, 1), (60, 473)]:
        m = interp_matrix(n_in, n_out)
        assert m.shape == (n_out, n_in)
        np.testing.assert_allclose(m.sum(axis=1), 1, rtol=1e-6)
        assert (np.count_nonzero(m, axis=1) <= 2).all()


# ==== Unpooling ==============================================================

def pooled_with_mask(shape, k, s, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    y, mask = ref_max_pool(x, k, s, 0)
    return y.astype(np.float32), mask.astype(np.float32)


@pytest.mark.parametrize("shape, k, s, out", [((2, 3, 8, 8), 2, 2, 8), ((2, 2, 7, 9), 2, 2, (7, 9)),
                                              ((1, 2, 8, 8), 3, 2, 9)])
def test_unpool_max_with_mask(shape, k, s, out):
    out = (out, out) if np.isscalar(out) else out
    x, mask = pooled_with_mask(shape, k, s)
    x += np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)  # dups differ
    size = f"unpool_size: {out[0]}" if out[0] == out[1] else \
        f"unpool_h: {out[0]} unpool_w: {out[1]}"
    case = LayerCase(unpool_text(f"unpool: MAX kernel_size: {k} stride: {s} {size}"), [x, mask],
                     forward_rtol=0, forward_atol=0,
                     reference=lambda x, m: ref_unpool_max(x, m, out))
    (y,) = case.check_forward()
    dy = rand(*y.shape, seed=1).astype(np.float32)
    _, (dx, dmask), _ = case.run([dy], propagate_down=first_only(2))
    np.testing.assert_array_equal(dx, ref_unpool_max_backward(dy, mask, x.shape))
    assert not dmask.any()


def test_unpool_max_without_mask_clamps_and_collides():
    text = unpool_text("kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 3 unpool_h: 7 "
                       "unpool_w: 9", mask=False)
    case = LayerCase(text, [(2, 2, 5, 5)], seed=4, forward_rtol=0, forward_atol=0,
                     reference=lambda x: ref_unpool_max(x, None, (7, 9), stride=(2, 3)))
    (y,) = case.check_forward()
    dy = rand(*y.shape, seed=1).astype(np.float32)
    _, (dx,), _ = case.run([dy])
    np.testing.assert_array_equal(dx, ref_unpool_max_backward(dy, None, (2, 2, 5, 5), (2, 3)))


@pytest.mark.parametrize("method", ["AVE", "TILE"])
@pytest.mark.parametrize("params, out", [("kernel_size: 2 stride: 2 unpool_h: 8 unpool_w: 9", (8, 9)),
                                         ("kernel_size: 3 stride: 2 unpool_size: 8", (8, 8)),
                                         ("kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 2 "
                                          "unpool_h: 6 unpool_w: 8", (6, 8))])
def test_unpool_ave_and_tile(method, params, out):
    kernel, stride = _geometry(params)
    case = LayerCase(unpool_text(f"unpool: {method} {params}", mask=False), [(2, 3, 3, 4)],
                     seed=5)
    x = case.bottoms[0].astype(np.float32)
    layer, bottom, top = case.setup(np.float32)
    for _ in range(2):                    # a second forward gives the same (fork: doubles)
        layer.run_forward(bottom, top)
        np.testing.assert_allclose(top[0].data, ref_unpool_window(
            x, kernel, stride, out, method == "AVE"), rtol=1e-6, atol=1e-6)
    dy = np.random.default_rng(6).standard_normal(top[0].shape).astype(np.float32)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, ref_unpool_window_backward(
        dy, kernel, stride, x.shape), rtol=1e-5, atol=1e-6)


def _geometry(params):
    f = dict(zip(params.split()[::2], map(int, params.split()[1::2])))
    k = (f["kernel_size:"],) * 2 if "kernel_size:" in f else (f["kernel_h:"], f["kernel_w:"])
    s = (f["stride:"],) * 2 if "stride:" in f else (f["stride_h:"], f["stride_w:"])
    return k, s


@pytest.mark.parametrize("params", ["unpool: AVE kernel_size: 3 stride: 2 unpool_size: 8",
                                    "unpool: MAX kernel_size: 2 stride: 2 unpool_h: 7 unpool_w: 9"])
def test_unpool_gradient(params):
    LayerCase(unpool_text(params, mask=False), [(1, 2, 4, 4)], seed=7).check_gradient()


def test_unpool_max_mask_gradient():
    _, mask = pooled_with_mask((1, 2, 6, 6), 2, 2)       # no duplicate indices
    LayerCase(unpool_text("kernel_size: 2 stride: 2 unpool_size: 6"), [mask.shape, mask],
              seed=8, check_bottoms=[0]).check_gradient()


@pytest.mark.parametrize("params, mask, message", [
    ("unpool: MAX stride: 2 unpool_size: 8", True, "needs a kernel"),
    ("unpool: MAX kernel_size: 2 stride: 2", True, "needs the output size"),
    ("unpool: MAX kernel_size: 2 unpool_size: 8 unpool_h: 8 unpool_w: 8", True,
     "needs the output size"),
    ("unpool: MAX kernel_size: 2 unpool_size: 8 pad: 1", True, "only pad 0"),
    ("unpool: AVE kernel_size: 2 stride: 2 unpool_size: 8", True, "only MAX unpooling"),
    ("unpool: AVE kernel_size: 2 stride: 2 unpool_size: 5", False, "start outside"),
    ("unpool: FIXED kernel_size: 2 stride: 2 unpool_size: 8", False, "not implemented"),
])
def test_unpool_errors(params, mask, message):
    arrays = [np.zeros((1, 1, 4, 4))] + ([np.zeros((1, 1, 4, 4))] if mask else [])
    with pytest.raises(LayerError, match=message) as info:
        setup_layer(unpool_text(params, mask, name="u1"), arrays)
    assert info.value.layer == "u1"


@pytest.mark.parametrize("text", [unpool_text("kernel_size: 2 stride: 2 unpool_size: 8"),
                                  upsample_text("scale: 2")])
def test_mask_shape_and_range_errors(text):
    with pytest.raises(LayerError, match="mask has shape") as info:
        setup_layer(text, [np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 4, 3))])
    assert info.value.blob == "mask"
    for bad in (64, -1, np.nan):
        mask = np.zeros((1, 2, 4, 4))
        mask[0, 1, 2, 3] = bad
        layer, bottom, top = setup_layer(text, [np.zeros(mask.shape), mask])
        with pytest.raises(LayerError, match="outside the 8x8 output"):
            layer.run_forward(bottom, top)
        assert not top[0].data.any()             # checked before scattering


def test_mask_bottoms_take_no_forced_gradient():
    for text in (unpool_text("kernel_size: 2 stride: 2 unpool_size: 8"), upsample_text("")):
        layer, _, _ = setup_layer(text, [np.zeros((1, 1, 4, 4))] * 2)
        assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)


# ==== Upsample ===============================================================

@pytest.mark.parametrize("params, shape, out", [
    ("scale: 2", (2, 3, 8, 6), (8, 6)),
    ("", (2, 3, 8, 6), (8, 6)),
    ("scale: 2 pad_out_h: true pad_out_w: true", (2, 3, 7, 9), (7, 9)),
    ("upsample_h: 7 upsample_w: 9 scale: 3", (2, 3, 7, 9), (7, 9)),
    ("scale_h: 2 scale_w: 3", (1, 2, 8, 9), (8, 9)),
])
def test_upsample(params, shape, out):
    k = (2, 3) if "scale_w: 3" in params else (2, 2)
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    pooled, mask = ref_max_pool(x, k, k, 0)
    pooled = pooled.astype(np.float32)
    case = LayerCase(upsample_text(params), [pooled, mask], forward_rtol=0, forward_atol=0,
                     reference=lambda x, m: ref_unpool_max(x, m, out))
    (y,) = case.check_forward()
    assert y.shape[2:] == out
    dy = rand(*y.shape, seed=1).astype(np.float32)
    _, (dx, dmask), _ = case.run([dy], propagate_down=first_only(2))
    np.testing.assert_array_equal(dx, ref_unpool_max_backward(dy, mask, pooled.shape))
    assert not dmask.any()


def test_upsample_follows_input_size():
    layer, bottom, top = setup_layer(upsample_text("scale: 2"), [np.zeros((1, 1, 3, 3))] * 2)
    assert top[0].shape == (1, 1, 6, 6)
    for b in bottom:
        b.reshape(1, 1, 5, 4)
    layer.reshape(bottom, top)
    assert top[0].shape == (1, 1, 10, 8)


def test_upsample_gradient():
    _, mask = pooled_with_mask((1, 2, 6, 4), 2, 2)
    LayerCase(upsample_text("scale: 2"), [mask.shape, mask], seed=10,
              check_bottoms=[0]).check_gradient()


@pytest.mark.parametrize("params, message", [
    ("scale: 1", "> 1"), ("scale: 3 pad_out_h: true", "needs scale_h == 2"),
    ("scale: 2 scale_h: 2 scale_w: 2", "not both"), ("upsample_h: 1 upsample_w: 4", "> 1"),
])
def test_upsample_errors(params, message):
    with pytest.raises(LayerError, match=message):
        setup_layer(upsample_text(params), [np.zeros((1, 1, 4, 4))] * 2)


# ==== Interp =================================================================

INTERP = [  # params, input shape, output shape, pad_beg, pad_end
    ("zoom_factor: 3", (2, 2, 5, 4), (13, 10), 0, 0),
    ("shrink_factor: 2", (2, 2, 9, 8), (5, 4), 0, 0),
    ("shrink_factor: 2 zoom_factor: 3", (1, 2, 9, 10), (13, 13), 0, 0),
    ("height: 11 width: 10", (2, 2, 5, 7), (11, 10), 0, 0),
    ("height: 4 width: 7", (1, 2, 11, 10), (4, 7), 0, 0),
    ("height: 4 width: 1", (1, 2, 1, 6), (4, 1), 0, 0),
    ("zoom_factor: 2 pad_beg: -1 pad_end: -2", (1, 2, 8, 9), (9, 11), -1, -2),
    ("zoom_factor: 1 pad_beg: -1 pad_end: -1", (1, 2, 7, 8), (5, 6), -1, -1),
    ("height: 9 width: 9 zoom_factor: 1", (1, 1, 4, 4), (4, 4), 0, 0),  # factor wins
]


@pytest.mark.parametrize("params, shape, out, beg, end", INTERP)
def test_interp_against_reference(params, shape, out, beg, end):
    case = LayerCase(interp_text(params), [shape], seed=11,
                     reference=lambda x: ref_interp(x, out, beg, end))
    (y,) = case.check_forward()
    assert y.shape[2:] == out
    dy = rand(*y.shape, seed=1).astype(np.float32)
    _, (dx,), _ = case.run([dy])
    np.testing.assert_allclose(dx, ref_interp_backward(dy, shape, beg, end),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("params, shape", [("zoom_factor: 2 pad_beg: -1", (1, 2, 4, 5)),
                                           ("height: 3 width: 7", (1, 1, 5, 4))])
def test_interp_gradient(params, shape):
    LayerCase(interp_text(params), [shape], seed=12).check_gradient()


@pytest.mark.parametrize("params, message", [
    ("zoom_factor: 2 pad_beg: 1", "cropping only"), ("zoom_factor: 2 pad_end: 2", "cropping only"),
    ("height: 5", "both height and width"), ("", "both height and width"),
    ("shrink_factor: 0", ">= 1"), ("height: 5 width: 5 pad_beg: -3 pad_end: -2", "positive"),
])
def test_interp_errors(params, message):
    with pytest.raises(LayerError, match=message) as info:
        setup_layer(interp_text(params), [np.zeros((1, 1, 5, 5))])
    assert info.value.layer == "interp"


@pytest.mark.parametrize("case", [
    "interp_zoom", "interp_shrink", "interp_size_mixed", "interp_crop_zoom",
    "interp_degenerate", "unpool_max_mask_k3s2_overlap", "unpool_ave_k3s2_overlap",
    "unpool_tile_k3s2_overlap", "unpool_max_nomask", "upsample_custom_mask"])
def test_forward_is_bit_identical_to_the_fork(case):
    """The golden tolerance is 1e-5; these kernels follow the fork's float32 order."""
    case_dir = CONFORMANCE / "forks" / case
    meta, arrays = load_case(case_dir)
    net = build_net(case_dir, meta)
    for name in meta["inputs"]:
        net.blobs[name].data[...] = arrays["input/" + name]
    net.forward()
    for key, value in arrays.items():
        if key.startswith("blob/"):
            np.testing.assert_array_equal(net.blobs[key[5:]].data, value, err_msg=key)


# ==== the segmentation zoo builds ============================================
# Every net definition of the forks that use these layers parses, upgrades and builds.
# Layers that only a fork has and nobody implements (its data readers, MatWrite,
# accuracy variants, Python layers without permission) give ONE UnknownLayerError
# naming all of them; where they are only data readers, Input layers stand in.

ZOO_DIRS = ("deconvnet", "segnet", "enet", "pspnet", "deeplab_v1_largefov", "fcn")
LABEL_TOPS = {"label", "seg-label", "sem", "geo"}
SLOW_NETS = ("pspnet/", "fcn/voc-fcn", "fcn/pascalcontext", "fcn/siftflow", "fcn/nyud",
             "deconvnet/DeconvNet", "deconvnet/0")   # VGG/ResNet-sized weight fills


def _zoo_nets():
    if not ZOO.exists():
        return []
    paths = (p for d in ZOO_DIRS for p in sorted((ZOO / d).rglob("*.prototxt")))
    return [str(p.relative_to(ZOO)) for p in paths if "solver" not in p.name]


def _load_zoo(relative):
    """Parse and upgrade; DeepLab's run-script placeholders get plausible values."""
    text = zoo_file(relative).read_text()
    text = text.replace("${NUM_LABELS}", "21")
    text = re.sub(r"\$\{(\w+)\}", lambda m: m.group(1).lower(), text)
    param = parse_net_param(text, relative)
    for lp in param.layer:           # MatWrite's list is elsewhere; it writes only when run
        if lp.type == "MatWrite":
            lp.mat_write_param.ClearField("source")
    return param


def _phase(relative):
    return TRAIN if "train" in Path(relative).name else TEST


def _unbuildable(param, phase):
    known = set(layer_types())
    kept = filter_by_state(param, caffe_pb2.NetState(phase=phase)).layer
    return [lp for lp in kept if lp.type not in known or lp.type == "Python"]


# The forks' image-list readers are implemented (tests/test_seg_data.py trains on them),
# but the zoo nets name data sets that are not here: Input layers stand in for them.
SEG_READERS = {"DenseImageData", "ImageSegData", "WindowSegData"}


def _replaced(param, phase):
    """The unbuildable layers plus the readers whose data is elsewhere."""
    kept = filter_by_state(param, caffe_pb2.NetState(phase=phase)).layer
    return _unbuildable(param, phase) + [lp for lp in kept if lp.type in SEG_READERS
                                         and lp.type in layer_types()]


# Fork layers nobody implements (by design, not "yet"): sinks, metrics, the fork's data
# readers and Python layers. Any other type missing from the registry fails the test.
FORK_ONLY = {"Python",
             "GeometricCrop"}    # FCN's early V1 CROP (test_duplicate_layer_names.py)


def _drop_sinks(param, missing):
    """Drop the unbuildable layers that read blobs but feed nothing (metrics, writers);
    the data readers among them are replaced by Input layers later. Returns the types
    of the unbuildable layers that other layers read from."""
    read = {b for lp in param.layer for b in lp.bottom if b not in lp.top}
    inner = {lp.type for lp in missing if lp.bottom and set(lp.top) & read}
    sinks = {lp.name for lp in missing if lp.bottom}
    kept = [lp for lp in param.layer if lp.name not in sinks]
    del param.layer[:]
    param.layer.extend(kept)
    return inner


def _with_inputs(param, phase, layers, size):
    """The net for ``phase`` with its data readers replaced by Input layers: data
    (1, 3, H, W), labels (1, 1, H, W)."""
    param = filter_by_state(param, caffe_pb2.NetState(phase=phase))
    names = {lp.name for lp in layers}
    for lp in param.layer:
        if lp.name in names:
            tops = list(lp.top)
            lp.Clear()
            lp.name, lp.type = tops[0] + "_input", "Input"
            lp.top.extend(tops)
            for top in tops:
                lp.input_param.shape.add().dim.extend(
                    [1, 1 if top in LABEL_TOPS else 3, *size])
    return param


def _zoo_params(relative):
    return pytest.param(relative, id=relative, marks=[pytest.mark.slow] if any(
        relative.startswith(s) for s in SLOW_NETS) else [])


@pytest.mark.parametrize("relative", _zoo_nets())
def test_zoo_net_names_every_layer_it_cannot_build(relative):
    param = _load_zoo(relative)
    missing = _unbuildable(param, _phase(relative))
    if not missing:
        return                               # builds: see test_zoo_net_builds
    with pytest.raises(UnknownLayerError) as info:
        caffe_lite.Net(param, _phase(relative))
    message = str(info.value)
    assert f"cannot build {len(missing)} layer(s)" in message
    assert all(f"'{lp.name}'" in message for lp in missing)


@pytest.mark.parametrize("relative", [_zoo_params(r) for r in _zoo_nets()])
def test_zoo_net_builds(relative):
    param, phase = _load_zoo(relative), _phase(relative)
    missing = _unbuildable(param, phase)
    unknown = {lp.type for lp in missing} - FORK_ONLY
    assert not unknown, f"layer types missing from the registry: {sorted(unknown)}"
    inner = _drop_sinks(param, missing)
    missing = _replaced(param, phase)
    if inner:       # the registry is fine (above); the net needs a fork-only layer inside
        pytest.skip(f"fork-only layer types inside the net, never implemented by design: "
                    f"{sorted(inner)} (test_zoo_net_names_every_layer_it_cannot_build checks "
                    f"the error)")
    size = {"deconvnet": (224, 224), "segnet": (360, 480),
            "deeplab_v1_largefov": (65, 65)}.get(relative.split("/")[0], (64, 64))
    net = caffe_lite.Net(_with_inputs(param, phase, missing, size), phase)
    assert net.layers and all(b.count > 0 for b in net.blobs.values())


@pytest.mark.parametrize("relative, phase, blob, shape", [
    ("deeplab_v1_largefov/test.prototxt", TEST, "fc8_interp", (1, 21, 65, 65)),
    ("deeplab_v1_largefov/train.prototxt", TRAIN, "label_shrink", (1, 1, 9, 9))])
def test_deeplab_interp_builds_without_its_fork_sinks(relative, phase, blob, shape):
    """DeepLab-v1: drop the sinks nobody implements to build its Interp layers: fc8
    zoomed by 8 at test time, the label shrunk by 8 for training."""
    # its SOFTMAX_LOSS has no top
    assert phase == TEST or layer_class("SoftmaxWithLoss").auto_top_blobs
    param = _load_zoo(relative)
    _drop_sinks(param, _unbuildable(param, phase))
    net = caffe_lite.Net(_with_inputs(param, phase, _replaced(param, phase), (65, 65)), phase)
    assert net.blobs[blob].shape == shape
