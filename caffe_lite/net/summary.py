"""What a net costs, layer by layer: top shapes, parameter count,
multiply-accumulates and activation memory (what netscope-style viewers show).

Everything comes from the shapes that setup and reshape give; nothing runs
forward and no weights are needed. Counting rules:

- MACs: Convolution = top count x (C_in/group x kernel volume); Deconvolution =
  bottom count x (C_out/group x kernel volume); InnerProduct = M x K x N. Other
  layers (pooling, ReLU, BatchNorm, Eltwise...) count 0: they do no
  multiply-accumulate work worth a GEMM.
- Memory: forward = bytes of the tops a layer creates (an in-place top creates
  nothing); forward+backward adds a gradient (diff) of the same size for each,
  except for layers that never back-propagate (Input, data layers, Accuracy).
- Parameters: every element of a layer's blobs (BatchNorm statistics too); in
  the totals a blob shared between layers counts once.
- Caffe's automatically inserted Split layers are not listed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..blob import Blob
from ..errors import CaffeLiteError
from ..layers.base import Layer


@dataclass
class LayerSummary:
    name: str
    type: str
    top_shapes: list[tuple[int, ...]]
    params: int
    macs: int
    memory_forward: int           # bytes
    memory_training: int          # bytes, forward + backward


@dataclass
class NetSummary:
    name: str
    layers: list[LayerSummary] = field(default_factory=list)
    params: int = 0
    macs: int = 0
    memory_forward: int = 0
    memory_training: int = 0

    def __str__(self) -> str:
        return format_table(self)


def _macs(layer: Layer, bottom: Sequence[Blob], top: Sequence[Blob]) -> int:
    if not layer.blobs:
        return 0
    weight = layer.blobs[0]
    if layer.type == "Convolution":       # weight (C_out, C_in/g, *kernel)
        return sum(t.count for t in top) * (weight.count // weight.shape[0])
    if layer.type == "Deconvolution":     # weight (C_in, C_out/g, *kernel)
        return sum(b.count for b in bottom) * (weight.count // weight.shape[0])
    if layer.type == "InnerProduct":      # (M, K) x (K, N)
        return bottom[0].count * int(layer.param.inner_product_param.num_output)
    return 0


def _is_auto_split(lp: Any) -> bool:
    return lp.type == "Split" and lp.name.endswith("_split") and \
        all(t.startswith(lp.name + "_") for t in lp.top)


def summarize(net: Any) -> NetSummary:
    """A NetSummary of a built Net (shapes as they are now; typed Any: net.py
    imports this module, so Net cannot be imported here)."""
    out = NetSummary(name=net.name)
    seen: set[int] = set()
    for li, layer in enumerate(net.layers):
        lp = net.param.layer[li]
        if _is_auto_split(lp):
            continue
        bottom, top = net.bottom_vecs[li], net.top_vecs[li]
        created = [t for t in top if not any(t is b for b in bottom)]
        forward = sum(t.count * t.dtype.itemsize for t in created)
        training = forward * (2 if layer.has_backward else 1)
        params = sum(b.count for b in layer.blobs)
        row = LayerSummary(name=layer.name, type=layer.type,
                           top_shapes=[tuple(t.shape) for t in top], params=params,
                           macs=int(_macs(layer, bottom, top)),
                           memory_forward=forward, memory_training=training)
        out.layers.append(row)
        out.params += sum(b.count for b in layer.blobs if id(b) not in seen)
        seen.update(id(b) for b in layer.blobs)
        out.macs += row.macs
        out.memory_forward += forward
        out.memory_training += training
    return out


def set_input_shapes(net_param: Any, shapes: Sequence[Sequence[int]]) -> None:
    """Give the net's Input layers new shapes, in order, before the net is built
    (so nothing is allocated at the old size)."""
    tops = [(lp, i) for lp in net_param.layer if lp.type == "Input"
            for i in range(len(lp.top))]
    if len(shapes) != len(tops):
        raise CaffeLiteError(f"{len(shapes)} input shape(s) given for the net's "
                             f"{len(tops)} input(s): "
                             f"{', '.join(lp.top[i] for lp, i in tops)}")
    for lp, i in tops:
        param = lp.input_param
        if len(param.shape) == 1 and len(lp.top) > 1:    # one shape for all tops
            param.shape.extend([param.shape[0]] * (len(lp.top) - 1))
        while len(param.shape) <= i:
            param.shape.add()
    for (lp, i), shape in zip(tops, shapes):
        del lp.input_param.shape[i].dim[:]
        lp.input_param.shape[i].dim.extend(int(d) for d in shape)


#: data layers that read files: summary stands Input layers in for them
FILE_DATA_TYPES = {"Data": "data_param", "ImageData": "image_data_param",
                   "HDF5Data": "hdf5_data_param", "WindowData": "window_data_param",
                   "AnnotatedData": "data_param", "DenseImageData": "dense_image_data_param",
                   "ImageSegData": "image_data_param", "WindowSegData": "window_data_param"}


def _data_shapes(lp: Any) -> list[list[int]] | None:
    """The tops' shapes a file-reading data layer will give, from its parameters
    alone (3 channels unless is_color is false), or None when only its files say."""
    param = getattr(lp, FILE_DATA_TYPES[lp.type])
    batch = param.batch_size
    crop = lp.transform_param.crop_size
    size = (crop, crop) if crop else (getattr(param, "new_height", 0),
                                      getattr(param, "new_width", 0))
    resize = lp.transform_param.resize_param
    if lp.type == "AnnotatedData" and not crop and lp.transform_param.HasField("resize_param"):
        size = (resize.height, resize.width)               # SSD resizes every image
    if lp.type == "HDF5Data" or not batch or not all(size):
        return None
    channels = 1 if getattr(param, "is_color", True) is False else 3
    shapes = [[batch, channels, *size]]
    for _ in lp.top[1:]:
        if lp.type == "AnnotatedData":          # boxes: (1, 1, boxes in the batch, 8)
            shapes.append([1, 1, 1, 8])
        elif lp.type in ("DenseImageData", "ImageSegData", "WindowSegData"):
            shapes.append([batch, 1, *size])
        else:
            shapes.append([batch])
    return shapes


def data_layers_as_inputs(net_param: Any) -> list[str]:
    """Replace every data layer that reads files by an Input layer of the shapes
    its parameters give, so a summary opens no database, list or mean file.
    Returns the names of those whose shapes only their files know (their Input
    has no shape yet: --input-shape gives it)."""
    unknown = []
    for lp in net_param.layer:
        if lp.type not in FILE_DATA_TYPES:
            continue
        shapes = _data_shapes(lp)
        keep = (list(lp.top), list(lp.include), list(lp.exclude), lp.name)
        lp.Clear()
        lp.name, lp.type = keep[3], "Input"
        lp.top.extend(keep[0])
        lp.include.extend(keep[1])
        lp.exclude.extend(keep[2])
        for shape in shapes or []:
            lp.input_param.shape.add().dim.extend(shape)
        if shapes is None:
            unknown.append(lp.name)
    return unknown


def _count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _bytes(n: float) -> str:
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def format_table(summary: NetSummary) -> str:
    """The summary as a text table with a totals line (exact totals below)."""
    head = ("layer", "type", "top shapes", "params", "MACs", "fwd mem", "fwd+bwd mem")
    rows = [head]
    for r in summary.layers:
        shapes = " ".join("x".join(map(str, s)) or "scalar" for s in r.top_shapes)
        rows.append((r.name, r.type, shapes, _count(r.params) if r.params else "-",
                     _count(r.macs) if r.macs else "-", _bytes(r.memory_forward),
                     _bytes(r.memory_training)))
    rows.append(("total", "", "", _count(summary.params), _count(summary.macs),
                 _bytes(summary.memory_forward), _bytes(summary.memory_training)))
    widths = [max(len(str(row[c])) for row in rows) for c in range(len(head))]
    lines = []
    for k, row in enumerate(rows):
        if k in (1, len(rows) - 1):
            lines.append("  ".join("-" * w for w in widths))
        lines.append("  ".join(str(v).ljust(w) if c < 3 else str(v).rjust(w)
                               for c, (v, w) in enumerate(zip(row, widths))).rstrip())
    lines.append(f"{summary.name or 'net'}: {summary.params:,} parameters, "
                 f"{summary.macs:,} multiply-accumulates, activations "
                 f"{summary.memory_forward:,} bytes forward, "
                 f"{summary.memory_training:,} bytes forward+backward")
    return "\n".join(lines)


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,3,224,224' -> (1, 3, 224, 224)."""
    try:
        shape = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise CaffeLiteError(f"input shape '{text}' is not a list of integers such "
                             f"as 1,3,224,224") from None
    if not shape or any(d < 0 for d in shape):
        raise CaffeLiteError(f"input shape '{text}' must list non-negative sizes")
    return shape


__all__ = ["LayerSummary", "NetSummary", "summarize",
           "format_table", "set_input_shapes", "parse_shape"]
