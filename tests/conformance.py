"""Replay of the golden cases recorded with real BVLC Caffe (see
tests/data/conformance/README.md for the format)."""
import json
from pathlib import Path

import numpy as np

import caffe_lite as caffe


def load_case(case_dir):
    case_dir = Path(case_dir)
    meta = json.loads((case_dir / "case.json").read_text())
    arrays = np.load(case_dir / "io.npz")
    return meta, {k: arrays[k] for k in arrays.files}


def split_param_key(key, prefix):
    """'param/<layer>/<i>' -> (layer, i); the layer name may contain '/'."""
    rest = key[len(prefix) + 1:]
    layer, _, index = rest.rpartition("/")
    return layer, int(index)


def tolerance(meta):
    return meta.get("rtol", 1e-4), meta.get("atol", 1e-5)


def assert_close(actual, expected, rtol, atol, what):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, \
        f"{what}: shape {actual.shape}, expected {expected.shape}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    if not np.allclose(actual, expected, rtol=rtol, atol=atol * scale):
        err = np.max(np.abs(actual - expected))
        raise AssertionError(f"{what}: max abs error {err:g} (rtol {rtol}, "
                             f"atol {atol} x {scale:g})")


def build_net(case_dir, meta, model=None, weights=None):
    case_dir = Path(case_dir)
    model = model or case_dir / "net.prototxt"
    if weights is None and (case_dir / "weights.caffemodel").exists():
        weights = case_dir / "weights.caffemodel"
    return caffe.Net(str(model), meta["phase"], level=meta.get("level", 0),
                     stages=meta.get("stages", []),
                     weights=str(weights) if weights else None)


def replay(case_dir, model=None, weights=None, check_backward=True):
    """Build, feed, forward (and backward) a case; compare every recorded array."""
    meta, z = load_case(case_dir)
    rtol, atol = tolerance(meta)
    net = build_net(case_dir, meta, model, weights)
    for name in meta["inputs"]:
        value = z["input/" + name]
        if net.blobs[name].shape != value.shape:
            net.blobs[name].reshape(value.shape)
        net.blobs[name].data[...] = value
    if meta.get("input_reshape"):
        net.reshape()
    for key, value in z.items():
        if key.startswith("param_before_forward/"):
            layer, i = split_param_key(key, "param_before_forward")
            assert_close(net.params[layer][i].data, value, rtol, atol, key)
    net.forward()
    for key, value in z.items():
        if key.startswith("blob/"):
            name = key[5:]
            exact = value.dtype.kind in "iu"
            assert_close(net.blobs[name].data, value, 0 if exact else rtol,
                         0 if exact else atol, key)
        elif key.startswith("param/"):
            layer, i = split_param_key(key, "param")
            assert_close(net.params[layer][i].data, value, rtol, atol, key)
    if not (meta.get("backward") and check_backward):
        return net
    for key, value in z.items():
        if key.startswith("top_diff/"):
            net.blobs[key[9:]].diff[...] = value
    net.backward()
    for key, value in z.items():
        if key.startswith("diff/"):
            assert_close(net.blobs[key[5:]].diff, value, rtol, atol, key)
        elif key.startswith("param_diff/"):
            layer, i = split_param_key(key, "param_diff")
            assert_close(net.params[layer][i].diff, value, rtol, atol, key)
    return net
