"""convolution_param's geometry: kernel, stride, pad and dilation as one int per
spatial axis, from any of the forms Caffe and the forks accept, with Caffe's checks.

Kept apart from conv.py because it is pure parameter parsing: the layers there call
``parse_geometry`` once in setup and work with the tuples (``layer`` serves only to
raise its errors). Accepted forms: the repeated field given once or once per
spatial axis, and ``<name>_h``/``<name>_w`` (2-D only). The forks' ``hole`` and
``filter_stride`` become dilation through formats/upgrade_forks.py first.
"""


def _axis_values(layer, cp, name, field, nd, default):
    """One value per spatial axis: ``<name>_h``/``<name>_w`` (2-D only) or the repeated
    ``field`` given once or once per axis; ``default`` when absent (None: required)."""
    values = list(getattr(cp, field))
    if name != "dilation" and (cp.HasField(name + "_h") or cp.HasField(name + "_w")):
        if nd != 2:
            raise layer.error(f"{name}_h and {name}_w can only be used for 2-D convolution "
                              f"(the input has {nd} spatial axes)")
        if values:
            raise layer.error(f"give either {field} or {name}_h/{name}_w, not both")
        values = [getattr(cp, name + "_h"), getattr(cp, name + "_w")]
    elif not values:
        if default is None and nd > 0:
            raise layer.error("the kernel size is required: set kernel_size or "
                              "kernel_h and kernel_w")
        values = [default] * nd
    elif len(values) == 1:
        values = values * nd
    elif len(values) != nd:
        raise layer.error(f"{field} must be given once or once per spatial axis ({nd}), "
                          f"got {len(values)} values")
    if name != "pad" and any(v <= 0 for v in values):
        raise layer.error(f"{field} must be > 0 on every spatial axis, got {values}")
    return tuple(int(v) for v in values)


def parse_geometry(layer, cp, nd):
    """(kernel, stride, pad, dilation) tuples with one int per spatial axis."""
    kernel = _axis_values(layer, cp, "kernel", "kernel_size", nd, None)
    stride = _axis_values(layer, cp, "stride", "stride", nd, 1)
    pad = _axis_values(layer, cp, "pad", "pad", nd, 0)
    dilation = _axis_values(layer, cp, "dilation", "dilation", nd, 1)
    return kernel, stride, pad, dilation
