# Minimum protobuf runtime for the generated caffe_pb2.py: 4.21.6
# (protoc 3.21.12 from grpcio-tools 1.53.2: the protobuf-python 4.21 generation of gencode).
"""Regenerate caffe_lite/proto/caffe_pb2.py from proto/caffe.proto.

Usage (grpcio-tools GRPCIO_TOOLS_VERSION needs protobuf < 5, so give it a
throwaway venv rather than the development one):

    python -m venv /tmp/gen-proto
    /tmp/gen-proto/bin/pip install grpcio-tools==1.53.2
    /tmp/gen-proto/bin/python tools/gen_proto.py

Why this protoc: grpcio-tools GRPCIO_TOOLS_VERSION bundles protoc 3.21.12, whose
Python gencode (AddSerializedFile + google.protobuf.internal.builder, no runtime
version check) imports on every protobuf runtime from MIN_PROTOBUF_RUNTIME up to
the newest (7.x). protoc 26 and later emit ValidateProtobufRuntimeVersion(...),
which refuses any runtime older than the protoc, so their output would cut the
supported range down to one major. MIN_PROTOBUF_RUNTIME is the lowest runtime
grpcio-tools GRPCIO_TOOLS_VERSION itself accepts, so CI can test that runtime
with this very generator installed (tests/test_proto.py then regenerates
byte for byte); setup.cfg's `protobuf>=` must equal it (a test checks).
"""
import importlib.metadata
import sys
from pathlib import Path

GRPCIO_TOOLS_VERSION = "1.53.2"     # bundles protoc 3.21.12
MIN_PROTOBUF_RUNTIME = "4.21.6"     # the lowest protobuf the generated caffe_pb2.py is tested on

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "caffe_lite" / "proto"


def protoc(args):
    """Run grpc_tools' bundled protoc with its well-known-types include path."""
    import grpc_tools
    from grpc_tools import protoc as _protoc
    include = Path(grpc_tools.__file__).parent / "_proto"
    return _protoc.main(["protoc", f"-I{include}", *args])


def generate(out_dir):
    """Write caffe_pb2.py into out_dir with the installed grpc_tools; return its path."""
    rc = protoc([f"-I{PROTO_DIR}", f"--python_out={out_dir}", str(PROTO_DIR / "caffe.proto")])
    if rc != 0:
        sys.exit(f"protoc failed with exit code {rc}")
    return Path(out_dir) / "caffe_pb2.py"


def main():
    try:
        installed = importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != GRPCIO_TOOLS_VERSION:
        sys.exit(f"grpcio-tools {installed or 'is not installed'}: this script needs exactly "
                 f"grpcio-tools=={GRPCIO_TOOLS_VERSION} (protoc 3.21.12), whose gencode runs on "
                 f"protobuf >= {MIN_PROTOBUF_RUNTIME}; see the usage at the top of {__file__}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = generate(OUT_DIR)
    if "ValidateProtobufRuntimeVersion" in out.read_text():
        sys.exit(f"{out} checks the protobuf runtime version: it was not made by protoc 3.21")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
