"""pycaffe's scripting conveniences on a Net: feed inputs and top diffs by name,
run whole data sets batch by batch."""
import numpy as np

from .errors import NetError


class NetScripting:
    """Mixed into Net: forward/backward with keyword blobs, forward_all,
    forward_backward_all (pycaffe's pycaffe.py additions, as real methods)."""

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """pycaffe's forward: feed inputs by name, return the outputs' data."""
        blobs = list(blobs or [])
        start_i = self._layer_index(start) if start is not None else 0
        if end is not None:
            end_i = self._layer_index(end)
            wanted = self.top_names[end] + blobs
        else:
            end_i = len(self.layers) - 1
            wanted = self.outputs + blobs
        if kwargs:
            if set(kwargs) != set(self.inputs):
                raise NetError(f"input blob arguments {sorted(kwargs)} do not match "
                               f"the net inputs {self.inputs}", file=self.source)
            for name, value in kwargs.items():
                self._feed(self.blobs[name], name, value, "data")
        self.forward_range(start_i, end_i)
        return {name: self.blobs[name].data for name in dict.fromkeys(wanted)}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """pycaffe's backward: set output diffs by name, return input diffs."""
        diffs = list(diffs or [])
        start_i = self._layer_index(start) if start is not None else len(self.layers) - 1
        if end is not None:
            end_i = self._layer_index(end)
            wanted = self.bottom_names[end] + diffs
        else:
            end_i = 0
            wanted = self.inputs + diffs
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise NetError(f"top diff arguments {sorted(kwargs)} do not match the "
                               f"net outputs {self.outputs}", file=self.source)
            for name, value in kwargs.items():
                self._feed(self.blobs[name], name, value, "diff")
        self.backward_range(start_i, end_i)
        return {name: self.blobs[name].diff for name in dict.fromkeys(wanted)}

    def _feed(self, blob, name, value, what):
        value = np.asarray(value)
        if value.shape != blob.shape:
            raise NetError(f"{what} of shape {value.shape} does not fit the blob's "
                           f"shape {blob.shape} (reshape the blob first)",
                           file=self.source, blob=name)
        getattr(blob, what)[...] = value

    def forward_all(self, blobs=None, **kwargs):
        """Run forward over inputs of any batch count, batch by batch."""
        outs = {name: [] for name in dict.fromkeys(self.outputs + list(blobs or []))}
        batch = self.blobs[self.inputs[0]].shape[0] if self.inputs else 1
        total = len(next(iter(kwargs.values()))) if kwargs else batch
        for start in range(0, total, batch):
            chunk = {}
            for name, value in kwargs.items():
                part = np.asarray(value[start:start + batch])
                if len(part) < batch:          # pad the last batch, drop later
                    pad = np.zeros((batch - len(part),) + part.shape[1:], part.dtype)
                    part = np.concatenate([part, pad])
                chunk[name] = part
            result = self.forward(blobs, **chunk)
            for name in outs:
                outs[name].extend(result[name].copy())
        return {name: np.asarray(values[:total]) for name, values in outs.items()}

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """Forward and backward batch by batch; returns (outputs, input diffs)."""
        fwd_in = {k: v for k, v in kwargs.items() if k in self.inputs}
        bwd_in = {k: v for k, v in kwargs.items() if k in self.outputs}
        outs = {n: [] for n in dict.fromkeys(self.outputs + list(blobs or []))}
        grads = {n: [] for n in dict.fromkeys(self.inputs + list(diffs or []))}
        batch = self.blobs[self.inputs[0]].shape[0] if self.inputs else 1
        total = len(next(iter(fwd_in.values()))) if fwd_in else batch
        for start in range(0, total, batch):
            f = self.forward(blobs, **{k: v[start:start + batch] for k, v in fwd_in.items()})
            b = self.backward(diffs, **{k: v[start:start + batch] for k, v in bwd_in.items()})
            for n in outs:
                outs[n].extend(f[n].copy())
            for n in grads:
                grads[n].extend(b[n].copy())
        return ({n: np.asarray(v) for n, v in outs.items()},
                {n: np.asarray(v) for n, v in grads.items()})

    def set_input_arrays(self, data, labels, layer_index=0):
        """Feed a MemoryData layer (pycaffe's set_input_arrays)."""
        layer = self.layers[layer_index]
        if layer.type != "MemoryData":
            raise NetError("set_input_arrays needs a MemoryData layer",
                           layer=layer.name, layer_type=layer.type)
        layer.reset(data, labels)
