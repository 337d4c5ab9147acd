"""A tiny trainable net for solver tests that needs no other layer family:
``SolverTestQuadratic`` holds two params W (3, 4) and b (4,) and outputs
loss = 0.5 * |W - T|^2 + 0.5 * |b - s|^2 for the target t = [T.ravel(), s]
(16 values from an Input blob), so the gradient is (W - T, b - s)."""
import numpy as np
from google.protobuf import text_format

from caffe_lite.layers import base
from caffe_lite.proto import caffe_pb2

SHAPES = [(3, 4), (4,)]
TARGET_SIZE = 16


class QuadraticLayer(base.Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    is_loss = True

    def layer_setup(self, bottom, top):
        if not self.blobs:
            self.blobs = [self.make_blob(s) for s in SHAPES]
            for k, blob in enumerate(self.blobs):        # deterministic start
                blob.data[...] = np.linspace(-1, 1 + k, blob.count).reshape(blob.shape)

    def reshape(self, bottom, top):
        top[0].reshape(())

    def _targets(self, bottom):
        t = bottom[0].data.ravel()
        return t[:12].reshape(3, 4), t[12:16]

    def forward(self, bottom, top):
        total = 0.0
        for blob, target in zip(self.blobs, self._targets(bottom)):
            total += 0.5 * float(np.sum((blob.data - target) ** 2))
        top[0].data[...] = total

    def backward(self, top, propagate_down, bottom):
        scale = top[0].diff.flat[0]
        for k, (blob, target) in enumerate(zip(self.blobs, self._targets(bottom))):
            if self.param_propagate_down[k]:
                blob.diff[...] += scale * (blob.data - target)


if "SolverTestQuadratic" not in base._REGISTRY:
    base.register_layer("SolverTestQuadratic")(QuadraticLayer)


NET = """
name: "quadratic"
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 16 } } }
layer { name: "quad" type: "SolverTestQuadratic" bottom: "t" top: "loss"
        param { lr_mult: %(lr0)s decay_mult: %(d0)s }
        param { lr_mult: %(lr1)s decay_mult: %(d1)s } }
"""


def net_text(lr_mults=(1, 2), decay_mults=(1, 0)):
    return NET % {"lr0": lr_mults[0], "lr1": lr_mults[1],
                  "d0": decay_mults[0], "d1": decay_mults[1]}


def solver_param(text="", lr_mults=(1, 2), decay_mults=(1, 0), with_test=False):
    """A SolverParameter with the quadratic net inline (net_param)."""
    param = text_format.Parse(text, caffe_pb2.SolverParameter())
    text_format.Parse(net_text(lr_mults, decay_mults), param.net_param)
    if not param.HasField("base_lr"):
        param.base_lr = 0.1
    if not param.HasField("lr_policy"):
        param.lr_policy = "fixed"
    if not param.HasField("max_iter"):
        param.max_iter = 10
    if with_test and not param.test_iter:
        param.test_iter.append(2)
        if not param.HasField("test_interval"):
            param.test_interval = 5
    return param


def targets(it):
    """The target fed at iteration ``it`` (varies, so gradients vary)."""
    rng = np.random.default_rng(100 + it)
    return rng.uniform(-1, 1, TARGET_SIZE).astype(np.float32)


def initial_params():
    return [np.linspace(-1, 1 + k, int(np.prod(s))).reshape(s).astype(np.float32)
            for k, s in enumerate(SHAPES)]
