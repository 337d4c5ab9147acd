"""Python layers (type "Python"): a user class, found by module and class name,
that follows the same Layer contract as the built-in layers (pycaffe's
``caffe.Layer``: setup, reshape, forward, backward, ``self.blobs``,
``param_str``, ``phase``).

python_param fields read: module, layer, param_str; share_in_parallel is
accepted (there is one process). The Net builds Python layers only with
``allow_python_layers=True``, since importing the module runs its code.
"""
import importlib

from ..blob import Blob
from ..errors import LayerError
from .base import Layer, register_layer


class BlobVector(list):
    """A Python layer's param blobs as pycaffe shows them: a list with add_blob."""

    def __init__(self, layer, blobs=()):
        super().__init__(blobs)
        self._layer = layer

    def add_blob(self, *shape):
        """Append a zero-filled blob of the given shape (pycaffe's add_blob)."""
        self.append(Blob(shape, dtype=self._layer.dtype))


@register_layer("Python")
class PythonLayer(Layer):
    """Stands in the registry for every user class: constructing it imports
    ``python_param.module`` and returns an instance of ``python_param.layer``,
    made as pycaffe makes it, from the LayerParameter alone."""

    def __new__(cls, param, phase=None):
        user_class = _user_class(param)
        if phase is not None and param.phase != phase:
            param.phase = phase
        layer = user_class(param)
        if type(layer.blobs) is list:
            layer.blobs = BlobVector(layer, layer.blobs)
        if not hasattr(layer, "allows_in_place"):
            layer.allows_in_place = True        # Caffe lets any layer run in place
        return layer


def _user_class(param):
    """The class python_param names, checked to be a caffe_lite Layer."""
    p = param.python_param
    where = dict(layer=param.name, layer_type=param.type)
    if not p.module or not p.layer:
        raise _error("python_param needs both 'module' and 'layer'", where)
    try:
        module = importlib.import_module(p.module)
    except ImportError as exc:
        raise _error(f"cannot import Python layer module '{p.module}': {exc}",
                     where) from exc
    except SyntaxError as exc:
        raise _error(f"Python layer module '{p.module}' has a syntax error: {exc}",
                     where) from exc
    user_class = getattr(module, p.layer, None)
    if user_class is None:
        raise _error(f"module '{p.module}' ({getattr(module, '__file__', '?')}) has "
                     f"no attribute '{p.layer}'", where)
    if not (isinstance(user_class, type) and issubclass(user_class, Layer)):
        raise _error(f"'{p.module}.{p.layer}' must be a class derived from "
                     f"caffe_lite.Layer (caffe.Layer)", where)
    return user_class


def _error(message, where):
    return LayerError(message, **where)
