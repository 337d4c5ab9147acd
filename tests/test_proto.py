"""The schema: generated module in sync, upstream numbers intact, fork fields clash-free,
and every zoo prototxt parses."""
import configparser
import importlib.metadata
import importlib.util
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, text_format

from caffe_lite.proto import caffe_pb2

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "proto" / "caffe.proto"
GENERATED = ROOT / "caffe_lite" / "proto" / "caffe_pb2.py"
ZOO = Path(__file__).resolve().parents[2] / "shared" / "zoo"


def load_gen_proto():
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "tools" / "gen_proto.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


GEN = load_gen_proto()


# ---------------------------------------------------------------- (a) staleness

def normalize(messages):
    """Drop what differs only in spelling: json_name (the python generator omits it) and the
    text of float defaults (the runtime re-prints 0.999 as 0.999000013)."""
    FD = descriptor_pb2.FieldDescriptorProto
    for m in messages:
        for f in m.field:
            f.ClearField("json_name")
            if f.HasField("default_value") and f.type in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
                value = float(f.default_value)
                if f.type == FD.TYPE_FLOAT:
                    value = struct.unpack("<f", struct.pack("<f", value))[0]
                f.default_value = repr(value)
        normalize(m.nested_type)


def test_generated_module_matches_proto(tmp_path):
    """The schema embedded in caffe_pb2.py is proto/caffe.proto's. Any protoc will do:
    the descriptor set of caffe.proto is byte-identical from protoc 3.21.12 (the
    generator, grpcio-tools 1.53.2) and protoc 35.1 (grpcio-tools 1.85.1, the test
    extra's, which installs beside the newest protobuf)."""
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        pytest.skip("grpc_tools (grpcio-tools) is not installed, cannot recompile proto/caffe.proto")
    out = tmp_path / "caffe.pb"
    proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO.parent}",
                           f"--descriptor_set_out={out}", str(PROTO)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    embedded = descriptor_pb2.FileDescriptorProto.FromString(caffe_pb2.DESCRIPTOR.serialized_pb)
    for fdp in (compiled, embedded):
        normalize(fdp.message_type)
    assert compiled == embedded, "caffe_pb2.py is stale: run python tools/gen_proto.py"


def test_generated_module_is_what_gen_proto_writes(tmp_path):
    """Byte for byte what tools/gen_proto.py writes with its own grpcio-tools. That one
    needs protobuf < 5, so the newest-protobuf test environment cannot hold it; CI's
    lowest-protobuf venv installs it and runs this."""
    try:
        installed = importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != GEN.GRPCIO_TOOLS_VERSION:
        pytest.skip(f"needs grpcio-tools=={GEN.GRPCIO_TOOLS_VERSION} (tools/gen_proto.py's "
                    f"generator; it needs protobuf<5), found {installed}")
    proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO.parent}",
                           f"--python_out={tmp_path}", str(PROTO)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "caffe_pb2.py").read_bytes() == GENERATED.read_bytes(), \
        "caffe_pb2.py is not tools/gen_proto.py's output: rerun it (see its usage)"


def test_generated_module_runs_on_every_supported_runtime():
    """protoc >= 26 gates its gencode on the runtime's major version; protoc 3.21's does not."""
    text = GENERATED.read_text()
    assert "ValidateProtobufRuntimeVersion" not in text and "runtime_version" not in text, \
        "caffe_pb2.py refuses older protobuf runtimes: regenerate with tools/gen_proto.py"


def test_setup_cfg_protobuf_floor_is_gen_proto_s():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    requires = [r.strip() for r in cfg["options"]["install_requires"].splitlines() if r.strip()]
    assert [r for r in requires if re.match(r"protobuf\b", r)] == \
        [f"protobuf>={GEN.MIN_PROTOBUF_RUNTIME}"], \
        "setup.cfg's protobuf lower bound must be tools/gen_proto.py's MIN_PROTOBUF_RUNTIME"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "MIN_PROTOBUF_RUNTIME" in ci and "GRPCIO_TOOLS_VERSION" in ci, \
        ".ci/run must test the lowest protobuf that gen_proto.py names"


# ---------------------------------------------------------------- (b) numbers

def number(message, field):
    return getattr(caffe_pb2, message).DESCRIPTOR.fields_by_name[field].number


UPSTREAM = {
    "LayerParameter": dict(
        name=1, type=2, bottom=3, top=4, loss_weight=5, param=6, blobs=7, include=8, exclude=9,
        phase=10, propagate_down=11, transform_param=100, loss_param=101,
        accuracy_param=102, argmax_param=103, concat_param=104, contrastive_loss_param=105,
        convolution_param=106, data_param=107, dropout_param=108, dummy_data_param=109,
        eltwise_param=110, exp_param=111, hdf5_data_param=112, hdf5_output_param=113,
        hinge_loss_param=114, image_data_param=115, infogain_loss_param=116,
        inner_product_param=117, lrn_param=118, memory_data_param=119, mvn_param=120,
        pooling_param=121, power_param=122, relu_param=123, sigmoid_param=124,
        softmax_param=125, slice_param=126, tanh_param=127, threshold_param=128,
        window_data_param=129, python_param=130, prelu_param=131, spp_param=132,
        reshape_param=133, log_param=134, flatten_param=135, reduction_param=136,
        embed_param=137, tile_param=138, batch_norm_param=139, elu_param=140, bias_param=141,
        scale_param=142, input_param=143, crop_param=144, parameter_param=145,
        recurrent_param=146, swish_param=147, clip_param=148),
    "ParamSpec": dict(name=1, share_mode=2, lr_mult=3, decay_mult=4),
    "NetParameter": dict(name=1, layers=2, input=3, input_dim=4, force_backward=5, state=6,
                         debug_info=7, input_shape=8, layer=100),
    "NetState": dict(phase=1, level=2, stage=3),
    "NetStateRule": dict(phase=1, min_level=2, max_level=3, stage=4, not_stage=5),
    "BlobProto": dict(num=1, channels=2, height=3, width=4, data=5, diff=6, shape=7,
                      double_data=8, double_diff=9),
    "BlobShape": dict(dim=1),
    "V1LayerParameter": dict(bottom=2, top=3, name=4, type=5, blobs=6, blobs_lr=7,
                             weight_decay=8, include=32, exclude=33, loss_weight=35,
                             transform_param=36, loss_param=42, convolution_param=10,
                             pooling_param=19, layer=1),
    "PoolingParameter": dict(round_mode=13, global_pooling=12),
}


@pytest.mark.parametrize("message", sorted(UPSTREAM))
def test_upstream_field_numbers(message):
    got = {f: number(message, f) for f in UPSTREAM[message]}
    assert got == UPSTREAM[message]


def test_upstream_defaults_and_packing():
    fields = caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name
    for name in ("data", "diff", "double_data", "double_diff"):
        assert fields[name].GetOptions().packed, name
    assert caffe_pb2.BlobShape.DESCRIPTOR.fields_by_name["dim"].GetOptions().packed
    assert caffe_pb2.ParamSpec().lr_mult == 1 and caffe_pb2.ParamSpec().decay_mult == 1
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST
    assert (caffe_pb2.TRAIN, caffe_pb2.TEST) == (0, 1)


def test_v1_layer_type_values():
    T = caffe_pb2.V1LayerParameter.LayerType
    expected = dict(NONE=0, ACCURACY=1, CONCAT=3, CONVOLUTION=4, DATA=5, INNER_PRODUCT=14,
                    POOLING=17, RELU=18, SOFTMAX_LOSS=21, ELTWISE=25, SILENCE=36,
                    DECONVOLUTION=39, UNPOOLING=42, BN=43)
    assert {k: T.Value(k) for k in expected} == expected
    for fork_name in ("CROP", "ELTWISE_ACCURACY", "IMAGE_SEG_DATA", "WINDOW_SEG_DATA",
                      "INTERP", "MAT_WRITE", "SEG_ACCURACY"):
        assert T.Value(fork_name) >= 1000, fork_name
    assert len(set(T.values())) == len(T.values()), "duplicate V1 LayerType numbers"


FORK_FIELDS = [
    ("LayerParameter", "unpooling_param"), ("LayerParameter", "upsample_param"),
    ("LayerParameter", "interp_param"), ("LayerParameter", "bn_param"),
    ("V1LayerParameter", "unpooling_param"), ("V1LayerParameter", "upsample_param"),
    ("V1LayerParameter", "interp_param"), ("V1LayerParameter", "bn_param"),
    ("PoolingParameter", "ceil_mode"), ("ConvolutionParameter", "hole"),
]


@pytest.mark.parametrize("message,field", FORK_FIELDS)
def test_fork_field_numbers_are_unique(message, field):
    desc = getattr(caffe_pb2, message).DESCRIPTOR
    n = desc.fields_by_name[field].number
    assert [f.name for f in desc.fields if f.number == n] == [field]
    assert n > 1000, f"{message}.{field} = {n} is in the range upstream and the forks use"


def test_every_message_has_unique_numbers():
    def walk(desc):
        numbers = [f.number for f in desc.fields]
        assert len(numbers) == len(set(numbers)), desc.full_name
        for nested in desc.nested_types:
            walk(nested)
    for desc in caffe_pb2.DESCRIPTOR.message_types_by_name.values():
        walk(desc)


def test_fork_messages():
    u = caffe_pb2.UnpoolingParameter()
    assert (u.unpool, u.stride, u.pad) == (u.MAX, 1, 0)
    assert [number("UnpoolingParameter", f) for f in ("unpool", "kernel_size", "stride", "pad",
            "engine", "unpool_size", "unpool_h", "unpool_w")] == [1, 2, 3, 4, 11, 12, 13, 14]
    assert caffe_pb2.UpsampleParameter().scale == 2
    i = caffe_pb2.InterpParameter()
    assert (i.zoom_factor, i.shrink_factor, i.pad_beg, i.pad_end) == (1, 1, 0, 0)
    bn = caffe_pb2.BNParameter()
    assert bn.bn_mode == bn.LEARN and abs(bn.momentum - 0.9) < 1e-7


# ---------------------------------------------------------------- (c) the zoo

# Files that are not valid prototxt as published; each must still FAIL to parse.
BROKEN = {
    "modelzoo_archive/poolmean/poolmean.prototxt": "a closing quote is missing upstream",
    "modelzoo_archive/yearbook/deploy.prototxt": "unquoted path placeholder (source: /PATH/...)",
    "modelzoo_archive/yearbook/train_val.prototxt": "unquoted path placeholder (source: /PATH/...)",
    "modelzoo_archive/mixture_dcnn/base_model.prototxt": "bare NUM_OUTPUTS template placeholder",
}
# Not a net or a solver.
OTHER_MESSAGE = {"mobilenet_ssd/create_lmdb_code_labelmap.prototxt": "LabelMap"}
TEMPLATE = re.compile(r"\$\{[A-Z_]+\}")   # DeepLab-v1 shell-template placeholders


def zoo_files():
    if not ZOO.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"reference zoo {ZOO} is absent"))]
    return [pytest.param(p, id=p.relative_to(ZOO).as_posix()) for p in sorted(ZOO.rglob("*.prototxt"))]


def parse_any(text):
    """Parse as NetParameter, then as SolverParameter; return the message or raise the first error."""
    try:
        return text_format.Merge(text, caffe_pb2.NetParameter())
    except text_format.ParseError as net_error:
        try:
            return text_format.Merge(text, caffe_pb2.SolverParameter())
        except text_format.ParseError:
            raise net_error from None


@pytest.mark.parametrize("path", zoo_files())
def test_zoo_prototxt_parses(path):
    rel = path.relative_to(ZOO).as_posix()
    text = path.read_text(encoding="utf-8", errors="replace")
    if rel in BROKEN:
        with pytest.raises(text_format.ParseError):
            parse_any(text)
        return
    if rel in OTHER_MESSAGE:
        msg = text_format.Merge(text, getattr(caffe_pb2, OTHER_MESSAGE[rel])())
        assert msg.ListFields()
        return
    if TEMPLATE.search(text):
        text = TEMPLATE.sub("1", text)   # unquoted ones are ints (num_output); quoted stay strings
    msg = parse_any(text)
    assert msg.ListFields(), f"{rel} parsed to an empty message"
