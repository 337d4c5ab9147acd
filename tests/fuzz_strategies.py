"""Hypothesis strategies for fuzzing, shared by the quick test profile
(tests/test_fuzz.py) and the long one (tools/fuzz.py).

Four kinds of input, each with its own property check in ``check_*``:
- real zoo prototxts with random text mutations;
- nets composed from the layer catalogue, with parameters drawn from the protobuf
  schema itself (every field of the layer's ``*_param`` message is fair game);
- corrupted caffemodels (bytes flipped, cut, inserted, varints rewritten);
- mutated solver files.

The property is the same for all four: the input builds and runs (forward/backward,
a copy_from, two solver steps), or raises a CaffeLiteError. Anything else is a bug.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

import caffe_lite as caffe
from caffe_lite.formats import parse_net_param
from caffe_lite.layers.base import layer_class
from caffe_lite.proto import caffe_pb2

ZOO = Path(__file__).resolve().parents[1].parent / "shared" / "zoo"
SMALL_ZOO = ["bvlc_examples/mnist/lenet.prototxt", "mtcnn_kpzhang93/det1.prototxt",
             "mtcnn_kpzhang93/det2.prototxt", "bvlc_examples/cifar10/cifar10_quick.prototxt",
             "espcn/ESPCN_net.prototxt", "fsrcnn/FSRCNN_mat.prototxt"]
ZOO_TEXTS = [(ZOO / p).read_text() for p in SMALL_ZOO if (ZOO / p).exists()]

#: layers that read files, run user code or need a data set: their refusals are
#: tested elsewhere, and a random path could name a real file
SKIP_TYPES = {"Python", "Data", "HDF5Data", "HDF5Output", "ImageData", "WindowData",
              "DenseImageData", "ImageSegData", "MemoryData", "AnnotatedData",
              "WindowSegData", "MatWrite", "MatRead"}    # they read or write files
PARAM_FOR_TYPE = {"Deconvolution": "convolution_param", "Im2col": "convolution_param",
                  "ConvolutionDepthwise": "convolution_param",
                  "SoftmaxWithLoss": "softmax_param", "BN": "bn_param"}
NUMBERS = [0, 1, 2, 3, 5, -1]
FLOATS = [0.0, 0.5, 1.0, -1.0, 2.5, 1e-3]


def _param_field(type_name: str) -> str | None:
    """The LayerParameter field holding a type's parameters: by name, e.g.
    InnerProduct -> inner_product_param, or from PARAM_FOR_TYPE."""
    if type_name in PARAM_FOR_TYPE:
        return PARAM_FOR_TYPE[type_name]
    wanted = type_name.lower()
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.name[:-6].replace("_", "") == wanted:
            return field.name
    return None


CATALOGUE = sorted(t for t in caffe.layer_type_list() if t not in SKIP_TYPES)


# -- strategies -----------------------------------------------------------------------
@st.composite
def mutated_zoo_text(draw):
    """A zoo prototxt with one to four line-level mutations."""
    lines = draw(st.sampled_from(ZOO_TEXTS)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["drop", "dup", "number", "swap", "word"]))
        if kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "number":
            lines[i] = _replace_a_number(draw, lines[i])
        else:
            lines[i] += draw(st.sampled_from([" }", " {", ' top: "data"', ' bottom: "x"',
                                              ' type: "ReLU"', " kernel_size: 0"]))
    return "\n".join(lines)


def _replace_a_number(draw, line, big="100000"):
    value = draw(st.sampled_from(["0", "-1", "1", "2", "3", "7", big, "0.5", "-3.5",
                                  "1e9"]))
    words = line.split(" ")
    numeric = [n for n, w in enumerate(words) if w[:1].isdigit() or w[:1] == "-"]
    if numeric:
        words[draw(st.sampled_from(numeric))] = value
    return " ".join(words)


def _message(draw, message, descriptor, depth):
    """Set a random subset of a message's fields, values from small pools."""
    fields = list(descriptor.fields)
    for field in draw(st.lists(st.sampled_from(fields), max_size=4, unique=True)
                      if fields else st.just([])):
        repeated = field.is_repeated if hasattr(field, "is_repeated") else \
            field.label == field.LABEL_REPEATED
        for _ in range(draw(st.integers(1, 3)) if repeated else 1):
            if field.type == field.TYPE_MESSAGE:
                if depth >= 2:
                    break
                child = getattr(message, field.name).add() if repeated else \
                    getattr(message, field.name)
                child.SetInParent()
                _message(draw, child, field.message_type, depth + 1)
                continue
            value = _scalar(draw, field)
            if repeated:
                getattr(message, field.name).append(value)
            else:
                setattr(message, field.name, value)


def _scalar(draw, field):
    if field.type == field.TYPE_BOOL:
        return draw(st.booleans())
    if field.type == field.TYPE_ENUM:
        return draw(st.sampled_from([v.number for v in field.enum_type.values]))
    if field.type in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
        return draw(st.sampled_from(FLOATS))
    if field.type in (field.TYPE_STRING, field.TYPE_BYTES):
        value = draw(st.sampled_from(["", "x", "data", "constant", "gaussian", "xavier"]))
        return value.encode() if field.type == field.TYPE_BYTES else value
    unsigned = field.type in (field.TYPE_UINT32, field.TYPE_UINT64, field.TYPE_FIXED32,
                              field.TYPE_FIXED64)
    return draw(st.sampled_from([n for n in NUMBERS if n >= 0] if unsigned else NUMBERS))


def _counts(cls, low_default, pick):
    exact = cls.exact_num_bottom if low_default == "bottom" else cls.exact_num_top
    low = (cls.min_bottom if low_default == "bottom" else cls.min_top) or 1
    high = (cls.max_bottom if low_default == "bottom" else cls.max_top) or max(low, 3)
    return exact if exact is not None else pick(low, high)


@st.composite
def catalogue_net(draw):
    """An Input of a random small shape, then one to four layers of any registered
    type (but the file-reading ones) wired to earlier blobs, with random params."""
    net = caffe_pb2.NetParameter(name="fuzz")
    axes = draw(st.integers(1, 4))
    dims = [draw(st.integers(1, 3))] + [draw(st.integers(1, 6)) for _ in range(axes - 1)]
    inp = net.layer.add(name="input", type="Input", top=["data"])
    inp.input_param.shape.add(dim=dims)
    if draw(st.booleans()):
        inp.top.append("label")
        inp.input_param.shape.add(dim=[dims[0]])
    blobs = list(inp.top)
    for index in range(draw(st.integers(1, 4))):
        type_name = draw(st.sampled_from(CATALOGUE))
        cls = layer_class(type_name)
        layer = net.layer.add(name=f"l{index}", type=type_name)

        def pick(low, high):
            return draw(st.integers(low, min(high, low + 2)))
        num_bottom = _counts(cls, "bottom", pick)
        layer.bottom.extend(draw(st.sampled_from(blobs)) for _ in range(num_bottom))
        num_top = _counts(cls, "top", pick)
        layer.top.extend(f"l{index}_{k}" for k in range(num_top))
        if draw(st.integers(0, 5)) == 0 and num_top == 1 and num_bottom == 1:
            layer.top[0] = layer.bottom[0]                    # in place
        blobs.extend(t for t in layer.top if t not in blobs)
        field = _param_field(type_name)
        if field is not None and draw(st.integers(0, 3)) > 0:
            param = getattr(layer, field)
            param.SetInParent()
            _message(draw, param, param.DESCRIPTOR, 0)
    return net


SOLVER_TEXT = """net: "{net}"
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
max_iter: 2
display: 1
snapshot_prefix: "{prefix}"
"""
SOLVER_LINES = ['type: "Adam"', 'type: "Nesterov"', 'type: "AdaGrad"', 'type: "RMSProp"',
                'type: "AdaDelta"', 'type: "Bogus"', 'lr_policy: "step"', 'stepsize: 0',
                'lr_policy: "multistep"', 'stepvalue: 1', 'lr_policy: "poly"',
                'lr_policy: "sigmoid"', 'clip_gradients: 1', 'iter_size: 2',
                'regularization_type: "L1"', 'regularization_type: "L3"', 'delta: 0',
                'momentum2: 0.999', 'test_iter: 1', 'test_interval: 1', 'average_loss: 3',
                'snapshot: 1', 'snapshot_format: HDF5', 'rms_decay: 0.98', 'base_lr: -1',
                'momentum: 1.5', 'iter_size: 0', 'max_iter: -3', 'net: "missing.prototxt"',
                'lr_policy: "exp"', "gamma: 2", "power: -4", "}"]
TINY_TRAIN_NET = """layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 }
    data_filler { type: "gaussian" } data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


@st.composite
def mutated_solver_lines(draw):
    """The lines of a small solver file, then added, replaced or dropped lines."""
    lines = SOLVER_TEXT.strip().splitlines()
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["add", "drop", "number"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "add":
            lines.insert(i, draw(st.sampled_from(SOLVER_LINES)))
        elif kind == "drop" and i > 0:                # keep the net line
            del lines[i]
        else:       # a valid iter_size or max_iter of 100000 is work, not a hang
            lines[i] = _replace_a_number(draw, lines[i], big="100")
    return lines


HOSTILE_VARINTS = [b"\xff\xff\xff\xff\x0f", b"\x80" * 9 + b"\x01",
                   b"\x3a\xff\xff\xff\x7f", b"\x2a\xf0\xff\xff\xff\x0f"]


@st.composite
def corrupted_bytes(draw, data: bytes):
    """``data`` with one to three byte-level corruptions."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "varint", "zero"]))
        i = draw(st.integers(0, max(len(buf) - 1, 0)))
        if kind == "flip" and buf:
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del buf[i:]
        elif kind == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "varint":                       # a long, huge length or tag
            buf[i:i + 1] = draw(st.sampled_from(HOSTILE_VARINTS))
        elif buf:
            buf[i:i + 4] = b"\0\0\0\0"
    return bytes(buf)


# -- the property, one check per kind of input ----------------------------------------
def run_net(net):
    for name in net.inputs:
        blob = net.blobs[name]
        blob.data[...] = np.random.default_rng(0).integers(0, 2, blob.shape) \
            if name == "label" else np.random.default_rng(0).random(blob.shape)
    net.forward()
    net.backward()


def check_net_text(text: str) -> str:
    """Build and run a net given as prototxt text; 'ran' or the error class name."""
    try:
        run_net(caffe.Net(parse_net_param(text), caffe.TEST))
    except caffe.CaffeLiteError as exc:
        return type(exc).__name__
    return "ran"


def check_net_param(param) -> str:
    try:
        run_net(caffe.Net(param, caffe.TRAIN))
    except caffe.CaffeLiteError as exc:
        return type(exc).__name__
    return "ran"


def small_caffemodel(folder: str) -> tuple[str, bytes]:
    """(prototxt path, caffemodel bytes) of a small conv net with random weights."""
    proto = os.path.join(folder, "small.prototxt")
    Path(proto).write_text(
        'layer { name: "in" type: "Input" top: "data" '
        'input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } } }\n'
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
        'convolution_param { num_output: 3 kernel_size: 3 '
        'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" '
        'inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }\n')
    weights = os.path.join(folder, "small.caffemodel")
    caffe.Net(proto, caffe.TEST).save(weights)
    return proto, Path(weights).read_bytes()


def check_caffemodel(proto: str, data: bytes, folder: str) -> str:
    path = os.path.join(folder, "corrupt.caffemodel")
    Path(path).write_bytes(data)
    try:
        net = caffe.Net(proto, caffe.TEST)
        net.copy_from(path)
        net.forward()
    except caffe.CaffeLiteError as exc:
        return type(exc).__name__
    return "ran"


def check_solver(lines: list[str], folder: str) -> str:
    net_path = os.path.join(folder, "train.prototxt")
    if not os.path.exists(net_path):
        Path(net_path).write_text(TINY_TRAIN_NET)
    text = "\n".join(lines).replace("{net}", net_path).replace(
        "{prefix}", os.path.join(folder, "snap")).replace(
        '"missing.prototxt"', f'"{folder}/missing.prototxt"')
    solver_path = os.path.join(folder, "solver.prototxt")
    Path(solver_path).write_text(text)
    try:
        solver = caffe.get_solver(solver_path)
        solver.step(2)
    except caffe.CaffeLiteError as exc:
        return type(exc).__name__
    return "ran"


def scratch_folder() -> str:
    return tempfile.mkdtemp(prefix="caffe-lite-fuzz-")
