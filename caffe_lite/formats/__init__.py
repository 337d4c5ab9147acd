"""Files in and out: prototxt text, caffemodel / HDF5 weights, mean binaryprotos,
and the upgrades of old (V0/V1, fork) definitions."""
from .atomic import atomic_write
from .blobs import SavedBlob, SavedLayer, StoredBlob, StoredLayer
from .caffemodel import (
                         blob_from_proto,
                         blob_to_proto,
                         open_weights,
                         read_blobproto,
                         read_caffemodel_param,
                         read_weights,
                         write_blobproto,
                         write_weights,
)
from .prototxt import (
                         parse_net_param,
                         parse_solver_param,
                         read_net_param,
                         read_solver_param,
                         write_prototxt,
)
from .upgrade import upgrade_net, upgrade_solver

__all__ = ["atomic_write", "SavedBlob", "SavedLayer", "StoredBlob", "StoredLayer",
           "blob_from_proto", "blob_to_proto", "open_weights", "read_blobproto", "read_caffemodel_param", "read_weights",
           "write_blobproto", "write_weights", "parse_net_param", "parse_solver_param",
           "read_net_param", "read_solver_param", "write_prototxt", "upgrade_net",
           "upgrade_solver"]
