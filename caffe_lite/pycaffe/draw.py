"""pycaffe's ``caffe.draw``: a NetParameter as a graphviz picture. Layers are
coloured boxes labelled with their key parameters, blobs are grey ovals, and
edges from a layer to its tops carry the output count.

pydot (the 'draw' extra) builds the graph; graphviz's ``dot`` program renders
it. Unlike pycaffe, a layer that works in place writes a new oval of its blob,
so the picture stays a top-to-bottom chain instead of a tangle of cycles.
"""
import os

from ..errors import CaffeLiteError, DependencyError, require
from ..proto import caffe_pb2

LAYER_STYLE = {"shape": "box", "style": "filled", "fillcolor": "#6495ED"}
NEURON_LAYER_STYLE = {"shape": "box", "style": "filled", "fillcolor": "#90EE90"}
BLOB_STYLE = {"shape": "ellipse", "style": "filled", "fillcolor": "#E0E0E0"}
LAYER_COLORS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050",
                "Pooling": "#FF9900", "Unpooling": "#FF9900",
                "InnerProduct": "#CC33FF"}


def _pydot():
    return require("pydot", "draw", "drawing a net")


def _enum_name(enum, value):
    return enum.Name(value) if value in enum.values() else str(value)


def _first(param, name, default):
    """Axis 0 of a kernel_size/stride/pad field (repeated or not, or its _h form)."""
    value = getattr(param, name)
    if hasattr(value, "extend"):
        if len(value):
            return value[0]
    elif param.HasField(name):
        return value
    h_name = name.replace("_size", "") + "_h"
    if h_name in param.DESCRIPTOR.fields_by_name and param.HasField(h_name):
        return getattr(param, h_name)
    return default


def _details(layer):
    """The key parameters shown in a layer's box."""
    t = layer.type
    if t in ("Convolution", "Deconvolution", "Pooling", "Unpooling"):
        param = {"Pooling": layer.pooling_param, "Unpooling": layer.unpooling_param}.get(
            t, layer.convolution_param)
        if t == "Pooling" and param.global_pooling:
            return ["global"]
        out = [f"kernel size: {_first(param, 'kernel_size', 1)}",
               f"stride: {_first(param, 'stride', 1)}", f"pad: {_first(param, 'pad', 0)}"]
        if t in ("Convolution", "Deconvolution") and layer.convolution_param.group > 1:
            out.append(f"group: {layer.convolution_param.group}")
        if t == "Unpooling" and param.HasField("unpool_size"):
            out.append(f"out size: {param.unpool_size}")
        return out
    if t == "Eltwise":
        return [_enum_name(caffe_pb2.EltwiseParameter.EltwiseOp,
                           layer.eltwise_param.operation)]
    if t == "Crop":
        offsets = ", ".join(map(str, layer.crop_param.offset))
        return [f"axis: {layer.crop_param.axis}"] + ([f"offset: {offsets}"] if offsets else [])
    if t == "Interp":
        p = layer.interp_param
        return [f"{f}: {getattr(p, f)}" for f in ("zoom_factor", "shrink_factor",
                                                  "height", "width") if p.HasField(f)]
    return []


def get_layer_label(layer, rankdir, display_lrm=False):
    """Name, (type), key parameters: on one line when the graph runs top to
    bottom (width is free), one per line when it runs left to right."""
    separator = " " if rankdir in ("TB", "BT") else r"\n"      # dot's line break
    kind = layer.type
    if kind == "Pooling":
        kind += " " + _enum_name(caffe_pb2.PoolingParameter.PoolMethod,
                                 layer.pooling_param.pool)
    parts = [layer.name, f"({kind})"] + _details(layer)
    if display_lrm and layer.type in ("Convolution", "Deconvolution", "InnerProduct"):
        mults = [p.lr_mult for p in layer.param][:2]
        mults += [1.0] * (2 - len(mults))
        if any(mults):
            parts.append("lr mult: %.1f, %.1f" % tuple(mults))
    return separator.join(parts)


def get_edge_label(layer):
    """What flows out of a layer: the output count, or the batch size of data."""
    if layer.type == "Data":
        return f"Batch {layer.data_param.batch_size}"
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return ""


def _included(layer, phase):
    """pycaffe's rule: only the phase of include/exclude rules is looked at."""
    if phase is None:
        return True
    if layer.include:
        return any(rule.phase == phase for rule in layer.include)
    return not any(rule.phase == phase for rule in layer.exclude)


def _v2(net):
    if len(net.layers) and not len(net.layer):      # V1 'layers' -> upgrade a copy
        from ..formats import upgrade_net
        upgraded = caffe_pb2.NetParameter()
        upgraded.CopyFrom(net)
        upgrade_net(upgraded)
        return upgraded
    return net


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None,
                    display_lrm=False):
    """A pydot.Dot of the net (layers of ``phase`` only, or all when None)."""
    pydot = _pydot()
    net = _v2(caffe_net)
    graph = pydot.Dot(net.name or "Net", graph_type="digraph", rankdir=rankdir)
    versions = {}                          # blob -> how many ovals it has so far

    def blob_node(name, new):
        if new or name not in versions:
            versions[name] = versions.get(name, 0) + 1
            node_id = f"{name}_blob" + (f"_{versions[name]}" if versions[name] > 1 else "")
            graph.add_node(pydot.Node(node_id, label=name, **BLOB_STYLE))
        count = versions[name]
        return f"{name}_blob" + (f"_{count}" if count > 1 else "")

    for layer in net.layer:
        if not _included(layer, phase):
            continue
        node_id = f"{layer.name}_{layer.type}"
        in_place = len(layer.bottom) == 1 and list(layer.top) == list(layer.bottom)
        style = dict(NEURON_LAYER_STYLE if in_place else LAYER_STYLE)
        if not in_place:
            style["fillcolor"] = LAYER_COLORS.get(layer.type, style["fillcolor"])
        graph.add_node(pydot.Node(node_id, label=get_layer_label(layer, rankdir,
                                                                 display_lrm), **style))
        for bottom in layer.bottom:
            graph.add_edge(pydot.Edge(blob_node(bottom, False), node_id))
        edge_label = get_edge_label(layer) if label_edges else ""
        for top in layer.top:
            target = blob_node(top, new=top in versions)
            graph.add_edge(pydot.Edge(node_id, target, **(
                {"label": edge_label} if edge_label else {})))
    return graph


def draw_net(caffe_net, rankdir, ext="png", phase=None, display_lrm=False):
    """The picture as bytes in format ``ext`` (png, svg, pdf...; dot/raw give
    the graphviz source, which needs no graphviz)."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    if ext in ("dot", "gv", "raw"):
        return graph.to_string().encode()
    known = getattr(graph, "formats", None)
    if known and ext not in known:
        raise CaffeLiteError(f"cannot draw to a '.{ext}' file; formats: dot, "
                             f"{', '.join(sorted(known))}")
    try:
        return graph.create(format=ext)
    except FileNotFoundError:
        raise DependencyError("drawing needs graphviz's 'dot' program, which is not "
                              "installed (e.g. apt-get install graphviz); a '.dot' "
                              "output file needs no graphviz") from None
    except AssertionError as exc:        # pydot's report of a failed dot run
        reason = [line for line in str(exc).splitlines() if line.strip()][-1]
        raise CaffeLiteError(f"graphviz's dot could not write '{ext}': "
                             f"{reason.strip()[:300]}") from None


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Draw the net into ``filename``; its extension picks the format."""
    ext = os.path.splitext(os.fspath(filename))[1].lstrip(".").lower() or "png"
    data = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    with open(filename, "wb") as f:
        f.write(data)
