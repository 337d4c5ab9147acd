"""The passes that turn a NetParameter into what the Net builds, each on its own:
phase/level/stage filtering, automatic Split insertion (with Caffe's names), and
built-in layers for Python layers that have one (py-faster-rcnn's proposals)."""
import ast
import warnings

from ..errors import NetError
from ..proto import caffe_pb2


def state_meets_rule(state, rule):
    """Whether a NetState satisfies one NetStateRule (Caffe's StateMeetsRule)."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    if any(s in stages for s in rule.not_stage):
        return False
    return True


def filter_by_state(net_param, state):
    """Keep the layers whose include/exclude rules admit ``state``."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    for layer in net_param.layer:
        if layer.include and layer.exclude:
            raise NetError("give either include or exclude rules, not both",
                           layer=layer.name, layer_type=layer.type)
        if layer.include:
            keep = any(state_meets_rule(state, r) for r in layer.include)
        else:
            keep = not any(state_meets_rule(state, r) for r in layer.exclude)
        if keep:
            out.layer.add().CopyFrom(layer)
    return out


def split_layer_name(blob, layer, top_index):
    return f"{blob}_{layer}_{top_index}_split"


def split_blob_name(blob, layer, top_index, split_index):
    return f"{blob}_{layer}_{top_index}_split_{split_index}"


def insert_splits(net_param):
    """Give every top consumed more than once (a loss counts as a use) a Split
    layer whose tops feed the consumers one each, as Caffe does."""
    last_producer = {}        # blob name -> (layer index, top index)
    source_of_bottom = {}     # (layer index, bottom index) -> (layer, top)
    uses = {}                 # (layer, top) -> number of consumers
    loss_weight_of = {}
    for i, layer in enumerate(net_param.layer):
        for j, name in enumerate(layer.bottom):
            if name not in last_producer:
                raise NetError(f"unknown bottom blob '{name}' (no earlier layer "
                               f"produces it)", layer=layer.name,
                               layer_type=layer.type, blob=name)
            src = last_producer[name]
            source_of_bottom[(i, j)] = src
            uses[src] = uses.get(src, 0) + 1
        for j, name in enumerate(layer.top):
            last_producer[name] = (i, j)
        for j in range(min(len(layer.loss_weight), len(layer.top))):
            if layer.loss_weight[j]:
                uses[(i, j)] = uses.get((i, j), 0) + 1
                loss_weight_of[(i, j)] = layer.loss_weight[j]

    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    next_split = {}
    for i, layer in enumerate(net_param.layer):
        new = out.layer.add()
        new.CopyFrom(layer)
        for j, name in enumerate(layer.bottom):
            src = source_of_bottom[(i, j)]
            if uses[src] > 1:
                k = next_split.get(src, 0)
                next_split[src] = k + 1
                new.bottom[j] = split_blob_name(name, net_param.layer[src[0]].name,
                                                src[1], k)
        for j, name in enumerate(layer.top):
            count = uses.get((i, j), 0)
            if count <= 1:
                continue
            weight = loss_weight_of.get((i, j), 0.0)
            split = out.layer.add()
            split.name = split_layer_name(name, layer.name, j)
            split.type = "Split"
            split.bottom.append(name)
            for k in range(count):
                split.top.append(split_blob_name(name, layer.name, j, k))
                if weight:
                    split.loss_weight.append(weight if k == 0 else 0.0)
            if weight:
                # the loss now flows through the split's first top
                del new.loss_weight[:]
                next_split[(i, j)] = 1
    return out


# py-faster-rcnn's Python proposal layer -> the built-in Proposal. Its module is
# rarely installed, and the built-in does the same steps; its test settings are
# the cfg.TEST ones (RPN_PRE_NMS_TOP_N 6000, POST 300), TRAIN's cfg.TRAIN ones.
PYTHON_PROPOSAL = ("rpn.proposal_layer", "ProposalLayer")
PROPOSAL_TOP_N = {caffe_pb2.TRAIN: (12000, 2000), caffe_pb2.TEST: (6000, 300)}


def builtin_for_python_layers(net_param, phase):
    """Python layers with a built-in twin run as the built-in, with one warning
    each: py-faster-rcnn's ProposalLayer becomes Proposal (its param_str, a dict
    literal with or without braces, gives feat_stride and scales). A new
    NetParameter; the argument is left alone."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    for layer in out.layer:
        python = layer.python_param
        if layer.type != "Python" or (python.module, python.layer) != PYTHON_PROPOSAL:
            continue
        options = _param_str_dict(layer, python.param_str)
        pre, post = PROPOSAL_TOP_N.get(phase, PROPOSAL_TOP_N[caffe_pb2.TEST])
        proposal = layer.proposal_param
        proposal.feat_stride = int(options.get("feat_stride", 16))
        proposal.scale.extend(float(s) for s in options.get("scales", (8, 16, 32)))
        proposal.pre_nms_topn, proposal.post_nms_topn = pre, post
        layer.ClearField("python_param")
        layer.type = "Proposal"
        warnings.warn(f"layer '{layer.name}': Python {'.'.join(PYTHON_PROPOSAL)} runs as "
                      f"the built-in Proposal (feat_stride {proposal.feat_stride}, "
                      f"top {pre} / {post}, NMS {proposal.nms_thresh:g})", stacklevel=3)
    return out


def _param_str_dict(layer, text):
    text = text.strip()
    if not text:
        return {}
    try:
        value = ast.literal_eval(text if text.startswith("{") else "{" + text + "}")
    except (ValueError, SyntaxError) as exc:
        raise NetError(f"param_str {text!r} is not a dict literal ({exc})",
                       layer=layer.name, layer_type=layer.type) from None
    if not isinstance(value, dict):
        raise NetError(f"param_str {text!r} is not a dict literal", layer=layer.name,
                       layer_type=layer.type)
    return value
