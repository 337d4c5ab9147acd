"""The peers of tools/bench.py: a built caffe_lite Net replayed by OpenCV dnn (from the
prototxt and the caffemodel caffe_lite saved) and by PyTorch (functional ops over the
same graph and the same weights), plus the load and memory probes the bench needs.

The PyTorch side interprets the net's layer list with torch.nn.functional, the way a
hand-written port's forward would run, with BatchNorm + Scale pairs fused into one
batch_norm call as nn.BatchNorm2d(affine=True) does. Only the layer types of the
bench nets are mapped; any other type raises NotImplementedError.
"""
import os
import time

import numpy as np

# ==== load and memory probes ===================================================

_TICK = os.sysconf("SC_CLK_TCK")


def _busy_seconds():
    """CPU seconds all processes spent busy since boot (from /proc/stat)."""
    with open("/proc/stat") as handle:
        fields = handle.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


class LoadMeter:
    """Cores used by *other* processes while a row runs: the machine's busy time
    minus this process's own CPU time (all its threads), over the wall time."""

    def __init__(self):
        self.start()

    def start(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), _busy_seconds(), _own_seconds()

    def other_cores(self):
        wall = time.perf_counter() - self.t0
        other = (_busy_seconds() - self.busy0) - (_own_seconds() - self.own0)
        return max(0.0, other) / max(wall, 1e-9)


def _own_seconds():
    t = os.times()
    return t.user + t.system


def _status_kib(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakRSS:
    """Peak resident memory added by a block: VmHWM after it minus VmRSS before it,
    with the high-water mark reset first (/proc/self/clear_refs, Linux)."""

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            self.resettable = True
        except OSError:
            self.resettable = False
        self.before = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc):
        self.mib = (_status_kib("VmHWM") - self.before) / 1024 if self.resettable else None


# ==== OpenCV dnn ===============================================================

def opencv_net(prototxt, caffemodel, threads):
    import cv2
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def opencv_forward(net, x, output):
    net.setInput(x)
    return net.forward(output)


# ==== PyTorch ==================================================================

class TorchReplay:
    """The caffe_lite net's layers as torch.nn.functional calls on the same weights.
    ``train``: parameters require grad (for a train step); Dropout then drops."""

    def __init__(self, net, train=False):
        import torch
        self.torch = torch
        self.train = train
        self.params = []
        self.steps = []
        layers = list(zip(net._layer_names, net.layers))
        skip = set()
        for i, (name, layer) in enumerate(layers):
            if i in skip:
                continue
            bottoms, tops = net.bottom_names[name], net.top_names[name]
            fused = None
            if layer.type == "BatchNorm" and i + 1 < len(layers):
                nxt_name, nxt = layers[i + 1]
                if nxt.type == "Scale" and net.bottom_names[nxt_name] == tops:
                    fused, tops = nxt, net.top_names[nxt_name]
                    skip.add(i + 1)
            self.steps.append((self._op(layer, fused), bottoms, tops))

    def tensor(self, array, grad=False):
        t = self.torch.from_numpy(np.ascontiguousarray(array, np.float32).copy())
        if grad and self.train:
            t.requires_grad_(True)
            self.params.append(t)
        return t

    def _op(self, layer, scale=None):   # noqa: C901 (one branch per layer type)
        F = self.torch.nn.functional
        torch = self.torch
        kind, p = layer.type, layer.param
        if kind == "Input":
            return None
        if kind in ("Convolution", "Deconvolution"):
            w = self.tensor(layer.blobs[0].data, True)
            b = self.tensor(layer.blobs[1].data, True) if layer.bias_term else None
            geo = dict(stride=layer.stride, padding=layer.pad, dilation=layer.dilation,
                       groups=layer.group)
            if kind == "Convolution":
                return lambda x: F.conv2d(x, w, b, **geo)
            return lambda x: F.conv_transpose2d(x, w, b, **geo)
        if kind == "InnerProduct":
            w = self.tensor(layer.blobs[0].data, True)
            b = self.tensor(layer.blobs[1].data, True) if len(layer.blobs) > 1 else None
            return lambda x: F.linear(x.flatten(1), w, b)
        if kind == "ReLU":
            return lambda x: F.relu(x, inplace=not self.train)
        if kind == "Pooling":
            win = layer.windows
            k, s, pad = tuple(win.kernel), tuple(win.stride), tuple(win.pad)
            if layer.method == 0:    # MAX
                return lambda x: F.max_pool2d(x, k, s, pad, ceil_mode=win.ceil)
            return lambda x: F.avg_pool2d(x, k, s, pad, ceil_mode=win.ceil)
        if kind == "LRN":
            lp = p.lrn_param
            return lambda x: F.local_response_norm(x, lp.local_size, lp.alpha, lp.beta, lp.k)
        if kind == "Concat":
            axis = p.concat_param.axis
            return lambda *xs: torch.cat(xs, axis)
        if kind == "Eltwise":
            return lambda a, b: a + b
        if kind == "Split":
            return lambda x: x
        if kind == "Dropout":
            ratio = p.dropout_param.dropout_ratio
            return lambda x: F.dropout(x, ratio, training=self.train)
        if kind == "Softmax":
            return lambda x: F.softmax(x, 1)
        if kind == "Crop":
            axis, offsets = p.crop_param.axis, list(p.crop_param.offset)
            return lambda x, ref: _crop(x, ref, axis, offsets)
        if kind == "BatchNorm":
            factor = float(layer.blobs[2].data[0]) or 1.0
            mean = self.tensor(layer.blobs[0].data / factor)
            var = self.tensor(layer.blobs[1].data / factor)
            eps = p.batch_norm_param.eps
            gamma = beta = None
            if scale is not None:
                gamma = self.tensor(scale.blobs[0].data, True)
                beta = self.tensor(scale.blobs[1].data, True) if len(scale.blobs) > 1 else None
            return lambda x: F.batch_norm(x, mean, var, gamma, beta, False, 0.0, eps)
        if kind == "Scale":
            g = self.tensor(layer.blobs[0].data, True).reshape(1, -1, 1, 1)
            b = self.tensor(layer.blobs[1].data, True).reshape(1, -1, 1, 1) \
                if len(layer.blobs) > 1 else None
            return lambda x: x * g + b if b is not None else x * g
        if kind == "SoftmaxWithLoss":
            return lambda x, label: F.cross_entropy(x.flatten(1), label.long())
        raise NotImplementedError(f"the PyTorch replay has no mapping for {kind}")

    def forward(self, feeds):
        """feeds: blob name -> tensor; returns every blob."""
        blobs = dict(feeds)
        for op, bottoms, tops in self.steps:
            if op is None:
                continue
            out = op(*(blobs[b] for b in bottoms))
            for top in tops:                 # Split: every top is the same tensor
                blobs[top] = out
        return blobs


def _crop(x, ref, axis, offsets):
    slices = [slice(None)] * x.dim()
    for a in range(axis, x.dim()):
        off = offsets[0] if len(offsets) == 1 else offsets[a - axis] if offsets else 0
        slices[a] = slice(off, off + ref.shape[a])
    return x[tuple(slices)]


def torch_train_step(replay, optimizer, feeds, loss_blob):
    optimizer.zero_grad(set_to_none=False)
    loss = replay.forward(feeds)[loss_blob]
    loss.backward()
    optimizer.step()
    return float(loss)
