"""Filling a LayerParameter from NetSpec keyword arguments, as pycaffe's
assign_proto does: each keyword is routed to the layer's ``<type>_param``
message or to the LayerParameter itself, lists fill repeated fields and dicts
fill messages. Anything the schema has no place for is a NetSpecError that
names the layer type and lists the valid names."""
import numpy as np

from ..errors import NetSpecError
from ..proto import caffe_pb2
from ..proto.compat import is_repeated

_LAYER_FIELDS = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name


def netspec_error(type_name, message):
    return NetSpecError(f"L.{type_name}: {message}", layer_type=type_name)


def _param_fields_by_type():
    """{'Convolution': 'convolution_param', 'ReLU': 'relu_param', ...}: the type
    name is the message name without 'Parameter', as pycaffe derives it."""
    routes = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            message = field.message_type.name
            if message.endswith("Parameter"):
                routes[message[:-len("Parameter")]] = field.name
    return routes


_PARAM_FIELD = _param_fields_by_type()
#: types whose parameters live in other types' messages, tried in order
_BORROWED = {"Deconvolution": ["convolution_param"], "Im2col": ["convolution_param"],
             "RNN": ["recurrent_param"], "LSTM": ["recurrent_param"],
             "SoftmaxWithLoss": ["softmax_param", "loss_param"]}


def _messages_for(type_name):
    """The ``*_param`` messages a type's flat keywords may fill: its own, the
    ones it borrows, and loss_param for every loss."""
    names = [_PARAM_FIELD[type_name]] if type_name in _PARAM_FIELD else []
    names += _BORROWED.get(type_name, [])
    if type_name.endswith("Loss") and "loss_param" not in names:
        names.append("loss_param")
    return names


def route_keyword(type_name, key):
    """Which message a keyword belongs to: a LayerParameter field name, or None
    for the LayerParameter itself."""
    if key.endswith("param") and key in _LAYER_FIELDS:
        return None
    messages = _messages_for(type_name)
    for message in messages:
        if key in _LAYER_FIELDS[message].message_type.fields_by_name:
            return message
    if key in _LAYER_FIELDS:
        return None
    generic = sorted(n for n in _LAYER_FIELDS if not n.endswith("_param")
                     and n not in ("type", "bottom", "top", "blobs"))
    valid = "".join(
        f"{m} fields: {', '.join(sorted(_LAYER_FIELDS[m].message_type.fields_by_name))}; "
        for m in messages)
    raise netspec_error(type_name,
                        f"no parameter named '{key}'. Valid names: {valid}layer "
                        f"fields: {', '.join(generic)}, or any <type>_param message")


def assign_proto(message, name, value, type_name):
    """Set ``message.name`` from a Python value (pycaffe's assign_proto): a list
    fills a repeated field, a scalar becomes a one-item list, a dict fills a
    message."""
    field = message.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        raise netspec_error(type_name,
                     f"{message.DESCRIPTOR.name} has no field '{name}' (fields: "
                     f"{', '.join(sorted(message.DESCRIPTOR.fields_by_name))})")
    try:
        if is_repeated(field):
            values = list(value) if isinstance(value, (list, tuple, np.ndarray)) \
                else [value]
            container = getattr(message, name)
            for item in values:
                if field.message_type is not None:
                    _fill(container.add(), item, type_name, name)
                else:
                    container.append(_scalar(item))
        elif field.message_type is not None:
            _fill(getattr(message, name), value, type_name, name)
        else:
            setattr(message, name, _scalar(value))
    except (TypeError, ValueError) as exc:
        raise netspec_error(type_name, f"cannot set {message.DESCRIPTOR.name}.{name} to "
                                f"{value!r}: {exc}") from None


def _scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def _fill(message, value, type_name, name):
    if isinstance(value, dict):
        for key, item in value.items():
            assign_proto(message, key, item, type_name)
    elif isinstance(value, type(message)):
        message.MergeFrom(value)
    else:
        raise netspec_error(type_name, f"{name} is a {message.DESCRIPTOR.name} message: "
                                f"give it as a dict, got {value!r}")
