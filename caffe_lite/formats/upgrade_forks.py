"""Fork spellings of master parameters, rewritten in place: pooling ``ceil_mode``
(a bool at master's round_mode number in the forks; false means FLOOR) and dilation
written as DeepLab-v1's ``hole`` or ParseNet's ``filter_stride``."""
from ..errors import PrototxtError
from ..proto import caffe_pb2


def upgrade_fork_params(net):
    """Fork spellings of master parameters: pooling ``ceil_mode`` (false means
    round_mode FLOOR) and dilation written as DeepLab ``hole`` / ParseNet
    ``filter_stride``."""
    changed = False
    for layer in net.layer:
        if layer.HasField("pooling_param"):
            changed |= _upgrade_ceil_mode(layer)
        if layer.HasField("convolution_param"):
            changed |= upgrade_fork_dilation(layer)
    return changed


def upgrade_fork_dilation(layer):
    """convolution_param's ``hole`` / ``filter_stride`` -> dilation, in place (also
    used by the conv layers, which may be built from an un-upgraded param)."""
    changed = _upgrade_dilation(layer, "hole")
    return _upgrade_dilation(layer, "filter_stride") or changed


def _upgrade_ceil_mode(layer):
    pool = layer.pooling_param
    if not pool.HasField("ceil_mode"):
        return False
    if pool.HasField("round_mode"):
        raise PrototxtError("pooling_param sets both ceil_mode (fork) and round_mode",
                            layer=layer.name, layer_type=layer.type)
    if not pool.ceil_mode:
        pool.round_mode = caffe_pb2.PoolingParameter.FLOOR
    pool.ClearField("ceil_mode")
    return True


def _upgrade_dilation(layer, name):
    conv = layer.convolution_param
    fields = (name, name + "_h", name + "_w")
    if not any(conv.HasField(f) for f in fields):
        return False
    if len(conv.dilation):
        raise PrototxtError(f"convolution_param sets both {name} (fork) and dilation",
                            layer=layer.name, layer_type=layer.type)
    if conv.HasField(name + "_h") or conv.HasField(name + "_w"):
        dims = [getattr(conv, name + "_h") or 1, getattr(conv, name + "_w") or 1]
    else:
        dims = [getattr(conv, name)]
    if any(d != 1 for d in dims):
        conv.dilation.extend(dims if dims[0] != dims[-1] else dims[:1])
    for f in fields:
        conv.ClearField(f)
    return True
