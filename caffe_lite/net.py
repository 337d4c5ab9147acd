"""Net: layers wired over named blobs, built from a NetParameter in named passes
(filter by state and insert splits in net_passes.py; wire, decide backward and share
params in net_build.py), run forward and backward over layer ranges. pycaffe's
conveniences are in net_scripting.py, weights in and out in net_weights.py."""
import os
from collections import OrderedDict

import numpy as np

from .errors import CaffeLiteError, NetError
from .net_passes import filter_by_state, insert_splits
from .net_build import NetBuild
from .net_scripting import NetScripting
from .net_weights import NetWeights
from .proto import caffe_pb2

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST


def _phase(value):
    if isinstance(value, str):
        try:
            return {"TRAIN": TRAIN, "TEST": TEST}[value.upper()]
        except KeyError:
            raise CaffeLiteError(f"phase must be TRAIN or TEST, got '{value}'") from None
    if value not in (TRAIN, TEST):
        raise CaffeLiteError(f"phase must be caffe.TRAIN or caffe.TEST, got {value!r}")
    return int(value)


def _load_net_param(network):
    if isinstance(network, caffe_pb2.NetParameter):
        param = caffe_pb2.NetParameter()
        param.CopyFrom(network)
        from .formats.upgrade import upgrade_net
        upgrade_net(param)
        return param, None
    from .formats import read_net_param
    path = os.fspath(network)
    return read_net_param(path), path


class Net(NetBuild, NetScripting, NetWeights):
    """pycaffe's Net: ``Net(network_file, phase, level=0, stages=None,
    weights=None)`` or the legacy ``Net(network_file, weights_file, phase)``.

    ``network_file`` may also be a NetParameter. Python layers run only with
    ``allow_python_layers=True`` since a prototxt would otherwise execute code.
    """

    def __init__(self, network_file, *args, level=0, stages=None, weights=None,
                 phase=None, allow_python_layers=False, dtype=np.float32):
        args = list(args)
        if args and isinstance(args[0], (str, os.PathLike)) and not (
                isinstance(args[0], str) and args[0].upper() in ("TRAIN", "TEST")):
            weights = args.pop(0)            # legacy (prototxt, caffemodel, phase)
        if args:
            phase = args.pop(0)
        if args:
            level = args.pop(0)
        if args:
            stages = args.pop(0)
        if args:
            raise CaffeLiteError("Net() takes network_file, phase[, level, stages]")
        if phase is None:
            raise CaffeLiteError("Net() needs a phase: caffe.TRAIN or caffe.TEST")
        self.allow_python_layers = allow_python_layers
        self.dtype = np.dtype(dtype)
        param, self.source = _load_net_param(network_file)
        param.state.phase = _phase(phase)
        param.state.level = int(level)
        del param.state.stage[:]
        param.state.stage.extend(stages or [])
        self._init(param)
        if weights is not None:
            self.copy_from(weights)

    # -- construction passes -------------------------------------------------
    def _init(self, param):
        self.name = param.name
        self.phase = param.state.phase
        try:
            filtered = filter_by_state(param, param.state)
            self._check_layer_types(filtered)
            self.param = insert_splits(filtered)
        except CaffeLiteError as exc:
            raise exc.with_context(file=self.source)
        self.force_backward = param.force_backward
        self._wire_layers()
        self._decide_backward()
        self._share_params()

    # -- pycaffe views -----------------------------------------------------
    @property
    def params(self):
        return OrderedDict((layer.name, layer.blobs)
                           for layer in self.layers if layer.blobs)

    @property
    def layer_dict(self):
        return OrderedDict(zip(self._layer_names, self.layers))

    @property
    def _blob_names(self):
        """pycaffe's private name list, which scripts and draw tools read."""
        return list(self.blobs)

    def summary(self):
        """Per-layer top shapes, parameters, MACs and memory (see summary.py)."""
        from .summary import summarize
        return summarize(self)

    def _layer_index(self, name):
        try:
            return self._layer_names.index(name)
        except ValueError:
            raise NetError(f"no layer named '{name}' in the net", layer=name) from None

    # -- running -------------------------------------------------------------
    def forward_range(self, start=0, end=None):
        """Run layers start..end inclusive and return the summed loss."""
        end = len(self.layers) - 1 if end is None else end
        loss = 0.0
        for li in range(start, end + 1):
            loss += self._run_layer_forward(li)
        return loss

    def _run_layer_forward(self, li):
        layer = self.layers[li]
        try:
            return layer.run_forward(self.bottom_vecs[li], self.top_vecs[li])
        except CaffeLiteError as exc:
            raise exc.with_context(layer=layer.name, layer_type=layer.type)

    def backward_range(self, start=None, end=0):
        start = len(self.layers) - 1 if start is None else start
        for li in range(start, end - 1, -1):
            if self.layer_need_backward[li]:
                layer = self.layers[li]
                try:
                    layer.backward(self.top_vecs[li], self.bottom_need_backward[li],
                                   self.bottom_vecs[li])
                except CaffeLiteError as exc:
                    raise exc.with_context(layer=layer.name, layer_type=layer.type)

    def forward_backward(self):
        """One training pass: forward, then backward; returns the loss."""
        loss = self.forward_range()
        self.backward_range()
        return loss

    def reshape(self):
        for li, layer in enumerate(self.layers):
            layer.reshape(self.bottom_vecs[li], self.top_vecs[li])

    def clear_param_diffs(self):
        for blob in self.learnable_params:
            blob.diff[...] = 0
