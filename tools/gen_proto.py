# Minimum protobuf runtime for the generated caffe_pb2.py: 7.35.1
# (from its ValidateProtobufRuntimeVersion(PUBLIC, 7, 35, 1) call; grpcio-tools 1.85.1).
"""Regenerate caffe_lite/proto/caffe_pb2.py from proto/caffe.proto.

Usage: python tools/gen_proto.py

The generated module needs protobuf runtime >= MIN_PROTOBUF_RUNTIME (see the
ValidateProtobufRuntimeVersion call near the top of caffe_pb2.py); protoc from
grpcio-tools GRPCIO_TOOLS_VERSION emits that check.
"""
import importlib.metadata
import re
import sys
from pathlib import Path

GRPCIO_TOOLS_VERSION = "1.85.1"     # the grpcio-tools this script was last run with
MIN_PROTOBUF_RUNTIME = "7.35.1"     # what the generated caffe_pb2.py checks for

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "caffe_lite" / "proto"


def protoc(args):
    """Run grpc_tools' bundled protoc with its well-known-types include path."""
    import grpc_tools
    from grpc_tools import protoc as _protoc
    include = Path(grpc_tools.__file__).parent / "_proto"
    return _protoc.main(["protoc", f"-I{include}", *args])


def main():
    try:
        installed = importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        sys.exit("grpcio-tools is not installed: pip install grpcio-tools==" + GRPCIO_TOOLS_VERSION)
    if installed != GRPCIO_TOOLS_VERSION:
        print(f"warning: grpcio-tools {installed} is installed, this script expects "
              f"{GRPCIO_TOOLS_VERSION}; the generated code may need a different protobuf runtime",
              file=sys.stderr)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rc = protoc([f"-I{PROTO_DIR}", f"--python_out={OUT_DIR}", str(PROTO_DIR / "caffe.proto")])
    if rc != 0:
        sys.exit(f"protoc failed with exit code {rc}")
    out = OUT_DIR / "caffe_pb2.py"
    m = re.search(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+)",
                  out.read_text())
    if m:
        needed = ".".join(m.groups())
        if needed != MIN_PROTOBUF_RUNTIME:
            print(f"note: generated code now requires protobuf >= {needed} "
                  f"(MIN_PROTOBUF_RUNTIME says {MIN_PROTOBUF_RUNTIME}); update the constant",
                  file=sys.stderr)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
