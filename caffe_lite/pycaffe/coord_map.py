"""pycaffe's ``caffe.coord_map``: how the spatial coordinates of one NetSpec top
relate to another's, so FCN-style nets can align a score map with the input by a
Crop whose offset is computed rather than guessed (``crop(top_from, top_to)``).

A map is ``(axis, a, b)``: input coordinate ``x`` lands at output coordinate
``a * x + b`` (the centre of the window that covers it) on every spatial axis
from ``axis`` on (``a`` and ``b`` are arrays, one value per axis, or scalars when
the same on all). ``axis`` None means the layer does not care (pointwise
layers). The maps per layer type:

- Convolution, Pooling, Im2col with stride s, pad p and effective kernel
  k = d (K - 1) + 1: ``(axis, 1/s, (p - (k - 1)/2) / s)``;
- Deconvolution: the inverse, ``(axis, s, (k - 1)/2 - p)``;
- Crop at ``offset``: ``(axis - 1, 1, -offset)`` (only its first bottom is mapped);
- pointwise layers: the identity ``(None, 1, 0)``.

The maps read the keywords a layer call was given (``fn.params``), in either
spelling: ``kernel_size=3`` or ``convolution_param=dict(kernel_size=3)``.
"""
import numpy as np

from ..errors import AxisMismatchException, CropError, DisconnectedTopsError, UndefinedMapException
from .net_spec import layers as L

PASS_THROUGH_LAYERS = ["AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise",
                       "ELU", "Log", "LRN", "Exp", "MVN", "Power", "ReLU", "PReLU",
                       "Scale", "Sigmoid", "Split", "TanH", "Threshold"]


def _param_dict(fn, message):
    """The layer call's keywords for ``message``: ``message=dict(...)`` when given,
    else the flat keywords."""
    given = fn.params.get(message)
    return dict(given) if isinstance(given, dict) else fn.params


def _array(value, default):
    return np.array(default if value is None else value, ndmin=1)


def conv_params(fn):
    """(axis, stride, effective kernel extent, pad) of a Convolution,
    Deconvolution, Im2col or Pooling call, as arrays per spatial axis."""
    message = "pooling_param" if fn.type_name == "Pooling" else "convolution_param"
    params = _param_dict(fn, message)
    legacy = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"} & set(params)
    if legacy:
        raise CropError(f"coordinate maps need kernel_size/stride/pad, not the "
                        f"_h/_w forms ({', '.join(sorted(legacy))})",
                        layer_type=fn.type_name)
    if "kernel_size" not in params:
        raise UndefinedMapException(f"{fn.type_name} call without kernel_size "
                                    f"(global pooling has no coordinate map)",
                                    layer_type=fn.type_name)
    kernel = _array(params["kernel_size"], 1)
    dilation = _array(params.get("dilation"), 1)
    return (params.get("axis", 1), _array(params.get("stride"), 1),
            (kernel - 1) * dilation + 1, _array(params.get("pad"), 0))


def crop_params(fn):
    """(axis, offsets) of a Crop call; the axis defaults to 2 (spatial crop)."""
    params = _param_dict(fn, "crop_param")
    return params.get("axis", 2), _array(params.get("offset"), 0)


def coord_map(fn):
    """The (axis, a, b) map of one layer call, from its input to its output."""
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, stride, extent, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (extent - 1) / 2) / stride
    if fn.type_name == "Deconvolution":
        axis, stride, extent, pad = conv_params(fn)
        return axis, stride, (extent - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset
    raise UndefinedMapException(layer_type=fn.type_name)


def compose(base_map, next_map):
    """``base_map`` followed by ``next_map``: scales multiply, and the second
    shift is scaled by the first scale."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is not None and ax2 is not None and ax1 != ax2:
        raise AxisMismatchException(f"cannot compose maps over axis {ax1} and {ax2}")
    return (ax2 if ax1 is None else ax1), a1 * a2, a1 * b2 + b1


def inverse(coord_map):
    """The map in the other direction (input to output)."""
    ax, a, b = coord_map
    return ax, 1 / a, -b / a


def _mapped_bottoms(top):
    """The inputs a top's coordinates come from: all of them, but only the first
    of a Crop (its second input gives only the size)."""
    inputs = top.fn.inputs
    return inputs[:1] if top.fn.type_name == "Crop" else inputs


def _ancestors(top):
    """(ancestor top, map from its coordinates to ``top``'s), nearest first
    (breadth first), walking down through the layers that have a map."""
    maps, pending = {top: (None, 1, 0)}, [top]
    while pending:
        current = pending.pop(0)
        yield current, maps[current]
        try:
            step = coord_map(current.fn)
        except UndefinedMapException:
            continue
        for bottom in _mapped_bottoms(current):
            if bottom not in maps:
                maps[bottom] = compose(maps[current], step)
                pending.append(bottom)


def coord_map_from_to(top_from, top_to):
    """The map (axis, a, b) that takes a coordinate of ``top_from`` to the
    matching coordinate of ``top_to``, through their nearest common ancestor."""
    from_maps = dict(_ancestors(top_from))
    for ancestor, to_map in _ancestors(top_to):
        if ancestor in from_maps:
            return compose(to_map, inverse(from_maps[ancestor]))
    raise DisconnectedTopsError(
        f"no chain of spatial layers joins {top_from!r} and {top_to!r} (a layer "
        f"such as InnerProduct on the way has no coordinate map)")


def crop(top_from, top_to):
    """A Crop layer call that cuts ``top_from`` to ``top_to``'s extent at the
    offsets their coordinate map gives."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    a, b = np.asarray(a), np.asarray(b)
    if not (a == 1).all():
        raise CropError(f"the tops' scales differ (a = {a}): a crop cannot align them")
    if not (b <= 0).all():
        raise CropError(f"the offset would be negative (b = {b}): {top_from!r} is "
                        f"smaller than {top_to!r}")
    if not (np.round(b) == b).all():
        raise CropError(f"the offset is not a whole number (b = {b})")
    return L.Crop(top_from, top_to, crop_param=dict(
        axis=ax + 1, offset=[int(v) for v in -np.round(b).astype(int)]))


__all__ = ["PASS_THROUGH_LAYERS", "UndefinedMapException", "AxisMismatchException",
           "conv_params", "crop_params", "coord_map", "compose", "inverse",
           "coord_map_from_to", "crop"]
