"""Generated protobuf module for the Caffe schema (see tools/gen_proto.py)."""
