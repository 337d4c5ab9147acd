"""A numerical gradient checker for any layer (in the spirit of Caffe's
GradientChecker), run in float64.

The objective is sum_i <top_i, R_i> for fixed random R_i, so the analytic
gradient is what backward gives with top diffs R_i; it is compared with central
differences on every bottom element and every parameter element.
"""
import numpy as np
from google.protobuf import text_format

from caffe_lite.blob import Blob
from caffe_lite.layers.base import layer_class
from caffe_lite.proto import caffe_pb2


def layer_param(text, phase=caffe_pb2.TEST):
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    if not param.HasField("phase"):
        param.phase = phase
    return param


def make_layer(text, phase=caffe_pb2.TEST):
    param = layer_param(text, phase)
    return layer_class(param.type, param.name)(param)


def blobs_from(arrays, dtype=np.float64):
    out = []
    for a in arrays:
        a = np.asarray(a, dtype)
        b = Blob(a.shape, dtype=dtype)
        b.data[...] = a
        out.append(b)
    return out


def setup_layer(text, bottom_arrays, num_top=None, phase=caffe_pb2.TEST,
                dtype=np.float64):
    """Build and set up a layer over fresh blobs; returns (layer, bottom, top)."""
    layer = make_layer(text, phase)
    bottom = blobs_from(bottom_arrays, dtype)
    if num_top is None:
        num_top = len(layer.param.top) or layer.exact_num_top or layer.min_top or 1
    top = [Blob(dtype=dtype) for _ in range(num_top)]
    layer.set_up(bottom, top)
    return layer, bottom, top


def forward(text, bottom_arrays, num_top=None, phase=caffe_pb2.TEST, dtype=np.float32,
            params=None):
    """Set up and run a layer once; returns the tops' data (copies)."""
    layer, bottom, top = setup_layer(text, bottom_arrays, num_top, phase, dtype)
    for blob, value in zip(layer.blobs, params or []):
        blob.data[...] = value
    layer.run_forward(bottom, top)
    return [t.data.copy() for t in top]


def check_gradient(text, bottom_arrays, *, num_top=None, check_bottoms=None,
                   check_params=True, params=None, phase=caffe_pb2.TEST,
                   step=1e-5, rtol=1e-5, atol=1e-7, seed=0):
    """Raise AssertionError when backward disagrees with central differences."""
    layer, bottom, top = setup_layer(text, bottom_arrays, num_top, phase)
    for blob, value in zip(layer.blobs, params or []):
        blob.data[...] = value
    rng = np.random.default_rng(seed)
    layer.run_forward(bottom, top)
    weights = [rng.uniform(-1, 1, t.shape) for t in top]
    if check_bottoms is None:
        check_bottoms = list(range(len(bottom)))
    propagate = [i in check_bottoms for i in range(len(bottom))]
    for b in layer.blobs:
        b.diff[...] = 0
    layer.param_propagate_down = [bool(check_params)] * len(layer.blobs)
    for b in bottom:
        b.diff[...] = 0
    for t, w in zip(top, weights):      # last: a top may share a bottom's diff
        t.diff[...] = w
    layer.backward(top, propagate, bottom)
    analytic = [bottom[i].diff.copy() for i in check_bottoms]
    targets = [bottom[i] for i in check_bottoms]
    names = [f"bottom[{i}]" for i in check_bottoms]
    if check_params:
        analytic += [b.diff.copy() for b in layer.blobs]
        targets += list(layer.blobs)
        names += [f"param[{j}]" for j in range(len(layer.blobs))]

    def objective():
        layer.run_forward(bottom, top)
        return sum(float(np.sum(t.data * w)) for t, w in zip(top, weights))

    for name, target, grad in zip(names, targets, analytic):
        flat = target.data.reshape(-1)
        numeric = np.zeros(flat.size)
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + step
            plus = objective()
            flat[k] = orig - step
            minus = objective()
            flat[k] = orig
            numeric[k] = (plus - minus) / (2 * step)
        numeric = numeric.reshape(grad.shape)
        scale = max(1.0, np.max(np.abs(numeric)))
        if not np.allclose(grad, numeric, rtol=rtol, atol=atol * scale + 1e-6):
            worst = np.unravel_index(np.argmax(np.abs(grad - numeric)), grad.shape)
            raise AssertionError(
                f"{layer.type} gradient of {name} differs at {worst}: analytic "
                f"{grad[worst]:.8g}, numeric {numeric[worst]:.8g}")
