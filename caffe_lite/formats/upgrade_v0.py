"""V0 nets (``layers { layer { type: "conv" ... } }``) to V1 (``layers { type:
CONVOLUTION convolution_param { ... } }``), following Caffe's upgrade_proto.cpp."""
import logging

from ..errors import PrototxtError
from ..proto import caffe_pb2
from ..proto.compat import is_repeated

log = logging.getLogger(__name__)
V1 = caffe_pb2.V1LayerParameter

# V0 type string -> V1 enum name.
V0_TYPES = {
    "accuracy": "ACCURACY", "bnll": "BNLL", "concat": "CONCAT", "conv": "CONVOLUTION",
    "data": "DATA", "dropout": "DROPOUT", "euclidean_loss": "EUCLIDEAN_LOSS",
    "flatten": "FLATTEN", "hdf5_data": "HDF5_DATA", "hdf5_output": "HDF5_OUTPUT",
    "im2col": "IM2COL", "images": "IMAGE_DATA", "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT", "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS", "pool": "POOLING",
    "relu": "RELU", "sigmoid": "SIGMOID", "softmax": "SOFTMAX",
    "softmax_loss": "SOFTMAX_LOSS", "split": "SPLIT", "tanh": "TANH",
    "window_data": "WINDOW_DATA",
}

_DATA_SOURCES = {"data": "data_param", "hdf5_data": "hdf5_data_param",
                 "images": "image_data_param", "window_data": "window_data_param"}
_ANY = "*"    # the field goes to the same place whatever the layer type

# V0 field -> {V0 type (or _ANY): "v1_param.field"}. A V0 field set on a type it
# has no entry for is dropped with a warning, as Caffe does.
V0_FIELDS = {
    "num_output": {"conv": "convolution_param.num_output",
                   "innerproduct": "inner_product_param.num_output"},
    "biasterm": {"conv": "convolution_param.bias_term",
                 "innerproduct": "inner_product_param.bias_term"},
    "weight_filler": {"conv": "convolution_param.weight_filler",
                      "innerproduct": "inner_product_param.weight_filler"},
    "bias_filler": {"conv": "convolution_param.bias_filler",
                    "innerproduct": "inner_product_param.bias_filler"},
    "pad": {"conv": "convolution_param.pad", "pool": "pooling_param.pad"},
    "kernelsize": {"conv": "convolution_param.kernel_size",
                   "pool": "pooling_param.kernel_size"},
    "group": {"conv": "convolution_param.group"},
    "stride": {"conv": "convolution_param.stride", "pool": "pooling_param.stride"},
    "pool": {"pool": "pooling_param.pool"},      # same enum numbers MAX/AVE/STOCHASTIC
    "dropout_ratio": {"dropout": "dropout_param.dropout_ratio"},
    "local_size": {"lrn": "lrn_param.local_size"},
    "alpha": {"lrn": "lrn_param.alpha"},
    "beta": {"lrn": "lrn_param.beta"},
    "k": {"lrn": "lrn_param.k"},
    "source": {**{t: f"{p}.source" for t, p in _DATA_SOURCES.items()},
               "infogain_loss": "infogain_loss_param.source"},
    "scale": {_ANY: "transform_param.scale"},
    "meanfile": {_ANY: "transform_param.mean_file"},
    "batchsize": {t: f"{p}.batch_size" for t, p in _DATA_SOURCES.items()},
    "cropsize": {_ANY: "transform_param.crop_size"},
    "mirror": {_ANY: "transform_param.mirror"},
    "rand_skip": {"data": "data_param.rand_skip", "images": "image_data_param.rand_skip"},
    "shuffle_images": {"images": "image_data_param.shuffle"},
    "new_height": {"images": "image_data_param.new_height"},
    "new_width": {"images": "image_data_param.new_width"},
    "concat_dim": {"concat": "concat_param.concat_dim"},
    "det_fg_threshold": {"window_data": "window_data_param.fg_threshold"},
    "det_bg_threshold": {"window_data": "window_data_param.bg_threshold"},
    "det_fg_fraction": {"window_data": "window_data_param.fg_fraction"},
    "det_context_pad": {"window_data": "window_data_param.context_pad"},
    "det_crop_mode": {"window_data": "window_data_param.crop_mode"},
    "hdf5_output_param": {"hdf5_output": "hdf5_output_param"},
}


def net_is_v0(net):
    return any(layer.HasField("layer") for layer in net.layers)


def upgrade_v0_padding(net):
    """Fold V0 "padding" layers into the pad of the conv/pool layer they feed (in place).

    Returns True when a padding layer was removed.
    """
    original = list(net.layers)
    last_producer = {name: -1 for name in net.input}   # blob -> index in original
    kept = []
    for i, conn in enumerate(original):
        v0 = conn.layer
        if v0.type != "padding":
            kept.append(_copy(conn))
        for j, blob in enumerate(conn.bottom):
            if blob not in last_producer:
                raise PrototxtError(f"V0 layer '{v0.name}' takes unknown blob '{blob}'",
                                    layer=v0.name, layer_type=v0.type, blob=blob)
            source_index = last_producer[blob]
            if source_index < 0 or original[source_index].layer.type != "padding":
                continue
            source = original[source_index]
            if v0.type not in ("conv", "pool"):
                raise PrototxtError("a V0 padding layer can only feed a conv or pool "
                                    "layer", layer=v0.name, layer_type=v0.type, blob=blob)
            if len(conn.bottom) != 1 or len(source.bottom) != 1 or len(source.top) != 1:
                raise PrototxtError("a V0 padding layer and the layer it feeds must "
                                    "each have one bottom (and padding one top)",
                                    layer=v0.name, layer_type=v0.type, blob=blob)
            kept[-1].layer.pad = source.layer.pad
            kept[-1].bottom[j] = source.bottom[0]
        for blob in conn.top:
            last_producer[blob] = i
    del net.layers[:]
    net.layers.extend(kept)
    return len(kept) != len(original)


def upgrade_v0_to_v1(net):
    """V0 ``layers { layer {...} }`` -> V1 ``layers { type: ENUM xxx_param {...} }``
    in place, after folding padding layers. Like Caffe, only name, input, input_dim and
    force_backward of the net are kept. Returns False when some field had no V1 home
    (it is dropped with a warning), True otherwise."""
    upgrade_v0_padding(net)
    old = caffe_pb2.NetParameter()
    old.CopyFrom(net)
    net.Clear()
    if old.HasField("name"):
        net.name = old.name
    compatible = True
    for conn in old.layers:
        compatible &= _upgrade_v0_layer(conn, net.layers.add())
    net.input.extend(old.input)
    net.input_dim.extend(old.input_dim)
    if old.HasField("force_backward"):
        net.force_backward = old.force_backward
    return compatible


def _upgrade_v0_layer(conn, out):
    out.bottom.extend(conn.bottom)
    out.top.extend(conn.top)
    if not conn.HasField("layer"):
        return True
    v0 = conn.layer
    if v0.HasField("name"):
        out.name = v0.name
    if v0.HasField("type"):
        if v0.type not in V0_TYPES:
            raise PrototxtError(f"unknown V0 layer type '{v0.type}'", layer=v0.name,
                                layer_type=v0.type)
        out.type = V1.LayerType.Value(V0_TYPES[v0.type])
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    compatible = True
    for field, value in v0.ListFields():
        targets = V0_FIELDS.get(field.name)
        if targets is None:
            continue          # name, type, blobs..., or fields Caffe ignores (new_num)
        target = targets.get(v0.type, targets.get(_ANY))
        if target is None:
            log.warning("V0 layer '%s': parameter %s does not apply to type '%s'; "
                        "dropped", v0.name, field.name, v0.type)
            compatible = False
            continue
        _assign(out, target, value)
    return compatible


def _assign(message, dotted, value):
    *parents, name = dotted.split(".")
    for parent in parents:
        message = getattr(message, parent)
    field = message.DESCRIPTOR.fields_by_name[name]
    if is_repeated(field):
        getattr(message, name).append(value)
    elif field.message_type is not None:
        getattr(message, name).CopyFrom(value)
    else:
        setattr(message, name, value)


def _copy(message):
    out = type(message)()
    out.CopyFrom(message)
    return out
