"""The passes that build a Net from a filtered, split NetParameter: check the layer
types, wire each layer to its named blobs and set it up, decide which layers and
bottoms need backward (Caffe's rules), and share parameters by ParamSpec name."""
from collections import OrderedDict

from .blob import Blob
from .errors import CaffeLiteError, NetError, UnknownLayerError
from .layers.base import layer_class, layer_types
from .proto import caffe_pb2


class NetBuild:
    """Mixed into Net: the construction passes, called in order by Net._init."""

    def _check_layer_types(self, param):
        """One error listing every layer this net cannot build, not just the first."""
        known = set(layer_types())
        problems = []
        for lp in param.layer:
            if lp.type == "Python" and not self.allow_python_layers:
                problems.append(f"'{lp.name}' (Python layer importing module "
                                f"'{lp.python_param.module}': pass "
                                f"allow_python_layers=True to run it)")
            elif lp.type not in known:
                problems.append(f"'{lp.name}' (type '{lp.type}')")
        if problems:
            raise UnknownLayerError(
                f"cannot build {len(problems)} layer(s): " + "; ".join(problems) +
                f". Known types: {', '.join(sorted(known))}", file=self.source)

    def _wire_layers(self):
        """Create each layer, connect it to its named blobs and set it up."""
        self.layers = []
        self._layer_names = []
        self.blobs = OrderedDict()
        self.bottom_vecs, self.top_vecs = [], []
        self.bottom_names, self.top_names = OrderedDict(), OrderedDict()
        self.inputs = []
        self.blob_loss_weights = OrderedDict()
        self.bottom_need_backward = []
        self.layer_need_backward = []
        self.param_specs = []                  # per layer, per param blob
        self._blob_need_backward = {}
        self._available = set()                # produced and not yet consumed
        for lp in self.param.layer:
            if not lp.HasField("phase"):
                lp.phase = self.phase
            if lp.name in self._layer_names:
                raise self._error(NetError, lp, "duplicate layer name (weights are "
                                  "matched by layer name, so names must be unique)")
            layer = layer_class(lp.type, lp.name)(lp)
            layer.net_file = self.source     # resolves relative file params
            bottoms, bottom_need = self._connect_bottoms(lp)
            tops = self._connect_tops(lp, layer)
            try:
                layer.set_up(bottoms, tops)
            except CaffeLiteError as exc:
                raise exc.with_context(file=self.source, layer=lp.name,
                                       layer_type=lp.type)
            for name, weight in zip(lp.top, layer.loss_weights):
                self.blob_loss_weights[name] = weight
            specs = self._param_specs(lp, layer)
            # learnable params, or a bottom that needs backward, make the layer need it
            need = any(layer.param_propagate_down) or \
                any(self._blob_need_backward[n] for n in lp.bottom)
            if need:
                for name in lp.top:
                    self._blob_need_backward[name] = True
            self.layers.append(layer)
            self._layer_names.append(lp.name)
            self.bottom_vecs.append(bottoms)
            self.top_vecs.append(tops)
            self.bottom_names[lp.name] = list(lp.bottom)
            self.top_names[lp.name] = list(lp.top)
            self.bottom_need_backward.append(bottom_need)
            self.layer_need_backward.append(need)
            self.param_specs.append(specs)
        # outputs: produced and never consumed, in name order (Caffe keeps a std::set)
        self.outputs = sorted(self._available)

    def _error(self, cls, lp, message, blob=None):
        return cls(message, file=self.source, layer=lp.name, layer_type=lp.type,
                   blob=blob)

    def _connect_bottoms(self, lp):
        """The layer's bottom blobs, and whether each needs a gradient."""
        if lp.propagate_down and len(lp.propagate_down) != len(lp.bottom):
            raise self._error(NetError, lp, f"propagate_down has "
                              f"{len(lp.propagate_down)} entries for "
                              f"{len(lp.bottom)} bottoms")
        bottoms, need = [], []
        for i, name in enumerate(lp.bottom):
            if name not in self._available:
                raise self._error(NetError, lp, "unknown bottom blob" + (
                    " (it was produced but already consumed by an earlier layer)"
                    if name in self.blobs else ""), blob=name)
            self._available.discard(name)
            bottoms.append(self.blobs[name])
            propagate = lp.propagate_down[i] if lp.propagate_down else True
            need.append(self._blob_need_backward[name] and propagate)
        return bottoms, need

    def _connect_tops(self, lp, layer):
        """New blobs for the tops, or the bottom's blob for an in-place top."""
        tops = []
        for i, name in enumerate(lp.top):
            if i < len(lp.bottom) and lp.bottom[i] == name:
                if not getattr(layer, "allows_in_place", False):
                    raise self._error(NetError, lp, "this layer type cannot run in "
                                      "place (its top and bottom must be different "
                                      "blobs)", blob=name)
                blob = self.blobs[name]
            elif name in self.blobs:
                raise self._error(NetError, lp, "top blob produced by more than one "
                                  "layer", blob=name)
            else:
                blob = self.blobs[name] = Blob(dtype=self.dtype)
                self._blob_need_backward[name] = False
            if lp.type == "Input":
                self.inputs.append(name)
            self._available.add(name)
            tops.append(blob)
        while layer.auto_top_blobs and len(tops) < layer.required_num_top():
            tops.append(Blob(dtype=self.dtype))     # anonymous, as in Caffe
        return tops

    def _param_specs(self, lp, layer):
        """One ParamSpec per param blob (defaults past the given ones); a param
        with lr_mult 0 gets no gradient."""
        if len(lp.param) > len(layer.blobs):
            raise self._error(NetError, lp, f"{len(lp.param)} param specs for "
                              f"{len(layer.blobs)} parameter blobs")
        specs = [lp.param[k] if k < len(lp.param) else caffe_pb2.ParamSpec()
                 for k in range(len(layer.blobs))]
        layer.param_propagate_down = [s.lr_mult != 0 for s in specs]
        return specs

    def _decide_backward(self):
        """Skip backward for layers that do not lead to a loss (Caffe's rules),
        then apply force_backward."""
        under_loss, skip_backprop = set(), set()
        for li in reversed(range(len(self.layers))):
            layer, lp = self.layers[li], self.param.layer[li]
            contributes, skip_down = False, True
            for ti in range(len(self.top_vecs[li])):
                name = lp.top[ti] if ti < len(lp.top) else None    # None: anonymous top
                if layer.loss_weights[ti] or name in under_loss:
                    contributes = True
                if name not in skip_backprop:
                    skip_down = False
                if contributes and not skip_down:
                    break
            if self.layer_need_backward[li] and skip_down:
                self.layer_need_backward[li] = False
                self.bottom_need_backward[li] = [False] * len(lp.bottom)
            if not contributes:
                self.layer_need_backward[li] = False
            for bi, name in enumerate(lp.bottom):
                if contributes:
                    under_loss.add(name)
                else:
                    self.bottom_need_backward[li][bi] = False
                if not self.bottom_need_backward[li][bi]:
                    skip_backprop.add(name)
        if self.force_backward:
            for li, layer in enumerate(self.layers):
                self.layer_need_backward[li] = True
                self.bottom_need_backward[li] = [
                    need or layer.allow_force_backward(bi)
                    for bi, need in enumerate(self.bottom_need_backward[li])]
                layer.param_propagate_down = [True] * len(layer.blobs)
        for li, layer in enumerate(self.layers):
            if not layer.has_backward:
                self.layer_need_backward[li] = False

    def _share_params(self):
        """One Blob per ParamSpec name; collect learnable params with lr/decay."""
        self.learnable_params, self.params_lr, self.params_weight_decay = [], [], []
        self.param_display_names = []
        owners = {}                      # spec name -> (layer idx, param idx, blob)
        for li, layer in enumerate(self.layers):
            for pi, spec in enumerate(self.param_specs[li]):
                blob = layer.blobs[pi]
                if spec.name and spec.name in owners:
                    owner_li, owner_pi, owner_blob = owners[spec.name]
                    strict = spec.share_mode != caffe_pb2.ParamSpec.PERMISSIVE
                    if (strict and owner_blob.shape != blob.shape) or \
                            owner_blob.count != blob.count:
                        raise NetError(
                            f"shared param '{spec.name}' has shape {blob.shape} here "
                            f"but {owner_blob.shape} in its owner layer "
                            f"'{self._layer_names[owner_li]}'", file=self.source,
                            layer=layer.name, layer_type=layer.type)
                    layer.blobs[pi] = owner_blob
                    k = self.learnable_params.index(owner_blob)
                    if spec.HasField("lr_mult"):
                        self.params_lr[k] = spec.lr_mult
                    if spec.HasField("decay_mult"):
                        self.params_weight_decay[k] = spec.decay_mult
                    continue
                if spec.name:
                    owners[spec.name] = (li, pi, blob)
                self.learnable_params.append(blob)
                self.params_lr.append(spec.lr_mult)
                self.params_weight_decay.append(spec.decay_mult)
                self.param_display_names.append(spec.name or f"{layer.name}[{pi}]")
