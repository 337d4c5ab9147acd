"""NetSpec: write a net in Python the way pycaffe does (``caffe.NetSpec``,
``caffe.layers as L``, ``caffe.params as P``) and get a NetParameter back.

``L.<Type>(*bottoms, ntop=1, in_place=False, **params)`` returns a Top (a tuple
of Tops when ntop > 1, the layer itself when ntop == 0). Keyword params go to
the layer's ``<type>_param`` message when it has that field and to the
LayerParameter otherwise (name, loss_weight, include, param, any ``*_param``).
Lists fill repeated fields, dicts fill messages. Unnamed tops and layers get
pycaffe's automatic names, ``<Type><k>`` counted per type, so scripts give the
same prototxt as with pycaffe.
"""
import sys
from collections import Counter, OrderedDict

from ..errors import NetSpecError, NetSpecInputError
from ..proto import caffe_pb2
from .net_spec_keywords import assign_proto, netspec_error, route_keyword


class Top:
    """One output blob of a layer (output ``n`` of ``fn``)."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """A NetParameter with every layer needed to compute this top."""
        return to_proto(self)

    def __repr__(self):
        return f"<Top {self.n} of {self.fn.type_name}>"


class Function:
    """One layer: its type, its input Tops and its parameters."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for index, item in enumerate(inputs):
            if not isinstance(item, Top):
                # pycaffe's exact words: its tests match them
                raise NetSpecInputError(f"{type_name} input {index} is not a Top "
                                        f"(type is {type(item)})")
        self.inputs = tuple(inputs)
        params = dict(params)
        self.ntop = int(params.pop("ntop", 1))
        self.in_place = bool(params.pop("in_place", False))
        if self.in_place and not self.inputs:
            raise netspec_error(type_name, "in_place needs a bottom")
        # kept as given (coord_map reads them); checked when the layer is made
        self.params = params
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _top_name(self, top, names, autonames):
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = top.fn.type_name + str(autonames[top.fn.type_name])
        return names[top]

    def _layer_name(self, names, autonames):
        if self not in names:
            if self.ntop > 0:
                names[self] = self._top_name(self.tops[0], names, autonames)
            else:
                autonames[self.type_name] += 1
                names[self] = self.type_name + str(autonames[self.type_name])
        return names[self]

    def _make_layer(self, layers, names, autonames):
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(layers[t.fn].top[t.n] for t in self.inputs)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._top_name(t, names, autonames) for t in self.tops)
        layer.name = self._layer_name(names, autonames)
        try:
            for key, value in self.params.items():
                target = route_keyword(self.type_name, key)
                message = getattr(layer, target) if target else layer
                assign_proto(message, key, value, self.type_name)
        except NetSpecError as exc:
            exc.with_context(layer=layer.name)
            raise
        return layer

    def to_proto(self):
        return to_proto(self)


def _emit(node, layers, names, autonames):
    """Add ``node``'s layer after every layer it depends on (depth first, inputs
    in order), without recursion so deep nets do not hit Python's limit."""
    stack = [(node.fn if isinstance(node, Top) else node, False)]
    while stack:
        fn, inputs_done = stack.pop()
        if fn in layers:
            continue
        if inputs_done:
            layers[fn] = fn._make_layer(layers, names, autonames)
            continue
        stack.append((fn, True))
        stack.extend((t.fn, False) for t in reversed(fn.inputs) if t.fn not in layers)


def to_proto(*tops):
    """A NetParameter holding every layer needed to compute ``tops``, with
    automatic names for all blobs and layers."""
    layers, names, autonames = OrderedDict(), {}, Counter()
    for top in tops:
        _emit(top, layers, names, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class NetSpec:
    """Tops assigned as attributes (``n.conv1 = L.Convolution(n.data, ...)``)
    name their blobs and layers; ``to_proto()`` returns the whole net."""

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(f"NetSpec has no top named '{name}' (defined: "
                                 f"{', '.join(self.tops) or 'none'})") from None

    __setitem__ = __setattr__

    def __getitem__(self, name):
        return self.tops[name]

    def __contains__(self, name):
        return name in self.tops

    def to_proto(self):
        names = {top: name for name, top in self.tops.items()}
        layers, autonames = OrderedDict(), Counter()
        for top in self.tops.values():
            _emit(top, layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """``L.<Type>(...)``: any attribute is a layer type."""

    def __getattr__(self, type_name):
        if type_name.startswith("__"):
            raise AttributeError(type_name)
        # caffe.layers shadows the caffe_lite.layers package, so let
        # ``import caffe_lite.layers.conv as conv`` still find the module
        module = sys.modules.get(f"{__name__.split('.')[0]}.layers.{type_name}")
        if module is not None:
            return module

        def layer_fn(*bottoms, **params):
            fn = Function(type_name, bottoms, params)
            if fn.ntop == 0:
                return fn
            return fn.tops[0] if fn.ntop == 1 else fn.tops
        layer_fn.__name__ = type_name
        return layer_fn


class _EnumScope:
    """``P.Pooling``: the enum values of PoolingParameter as attributes."""

    def __init__(self, name):
        self._name = name
        self._message = getattr(caffe_pb2, name + "Parameter", None) or \
            getattr(caffe_pb2, name, None)

    def __getattr__(self, value_name):
        if value_name.startswith("__"):
            raise AttributeError(value_name)
        try:
            return getattr(self._message, value_name)
        except AttributeError:
            pass
        known = sorted(v.name for e in getattr(getattr(self._message, "DESCRIPTOR",
                                                       None), "enum_types", ())
                       for v in e.values)
        raise NetSpecError(f"P.{self._name} has no value '{value_name}'" +
                           (f" (values: {', '.join(known)})" if known else
                            f" (the schema has no message {self._name}Parameter)"))


class Parameters:
    """``P.<Type>.<VALUE>``: enum constants, e.g. ``P.Pooling.MAX``."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _EnumScope(name)


layers = Layers()
params = Parameters()
