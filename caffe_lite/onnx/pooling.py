"""Caffe's pooling windows in ONNX: Pooling, SPP and ROIPooling. Caffe's output
size rounding becomes explicit end pads, its AVE divisor (the window clipped to the
padded input) a constant factor, and ONNX's flat MaxPool indices Caffe's per-plane
mask."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..proto import caffe_pb2
from .builder import GraphBuilder, NoMapping, Step
from .layers import converts, emit


@converts("ROIPooling")
def roi_pooling(b: GraphBuilder, step: Step) -> None:
    """ONNX's MaxRoiPool: rows [batch, x1, y1, x2, y2] in image pixels, as Caffe's."""
    layer = step.layer
    rois = b.reshape(step.inputs[1], (step.in_shapes[1][0], 5), step, "rois")
    emit(b, step, "MaxRoiPool", [step.inputs[0], rois],
         pooled_shape=[layer.pooled_h, layer.pooled_w],
         spatial_scale=float(layer.spatial_scale))


def pool_end_pads(in_hw: tuple[int, ...], out_hw: tuple[int, ...], kernel: Any,
                  stride: Any, pad: Any) -> list[int]:
    """Explicit end pads that make floor-mode windows reproduce Caffe's output size:
    the last window starts inside the input (Caffe drops one that would start in
    the padding) and may run past it (its ceil rounding)."""
    ends = []
    for size, out, k, s, p in zip(in_hw, out_hw, kernel, stride, pad):
        end = max(0, (out - 1) * s + k - size - p)
        if (size + p + end - k) // s + 1 != out or end >= k:
            raise NoMapping(f"pooling geometry {size} -> {out} (kernel {k}, stride {s}, "
                            f"pad {p}) has no explicit-pad equivalent")
        ends.append(end)
    return ends


def ave_divisor_factor(in_hw: tuple[int, ...], out_hw: tuple[int, ...], kernel: Any,
                       stride: Any, pad: Any) -> np.ndarray:
    """(OH, OW) factors k_h k_w / Caffe's divisor: Caffe divides each window's sum by
    its size clipped to the padded input [-p, H + p), padding counted, overhang not."""
    factors = []
    for size, out, k, s, p in zip(in_hw, out_hw, kernel, stride, pad):
        start = np.arange(out) * s - p
        factors.append(k / (np.minimum(start + k, size + p) - start))
    return np.outer(factors[0], factors[1]).astype(np.float32)


def pool(b: GraphBuilder, step: Step, x: str, windows: Any, in_shape: tuple[int, ...],
         out_shape: tuple[int, ...], out: str | None = None, mask: str | None = None,
         what: str = "pool") -> str:
    """MAX or AVE pooling with Caffe's windows: explicit end pads for its rounding,
    and for AVE a constant that turns ONNX's k_h k_w divisor into Caffe's. With
    ``mask``, also Caffe's mask (h W + w per plane, as a float)."""
    P = caffe_pb2.PoolingParameter
    if windows.method == P.STOCHASTIC:
        raise NoMapping("STOCHASTIC pooling has no ONNX operator")
    out = out or b.unique(f"{step.name}/{what}")
    ends = pool_end_pads(in_shape[2:], out_shape[2:], windows.kernel, windows.stride,
                         windows.pad)
    geometry = dict(kernel_shape=list(windows.kernel), strides=list(windows.stride),
                    pads=list(windows.pad) + ends)
    if windows.method == P.MAX:
        if mask is None:
            return b.node("MaxPool", [x], [out], step.name, **geometry)[0]
        index = b.unique(f"{step.name}/indices")           # flat over (N, C, H, W)
        b.node("MaxPool", [x], [out, index], step.name, **geometry)
        plane = b.const(plane_offsets(in_shape), f"{step.name}/plane_offsets", np.int64)
        local = b.op("Sub", [index, plane], step, "plane_index")   # Caffe's h W + w
        b.node("Cast", [local], [mask], f"{step.name}/mask", to=b.onnx.TensorProto.FLOAT)
        return out
    factor = ave_divisor_factor(in_shape[2:], out_shape[2:], windows.kernel,
                                windows.stride, windows.pad)
    if np.all(factor == 1):
        return b.node("AveragePool", [x], [out], step.name, count_include_pad=1,
                      **geometry)[0]
    mean = b.op("AveragePool", [x], step, f"{what}_window_mean", count_include_pad=1,
                **geometry)
    return b.node("Mul", [mean, b.const(factor, f"{step.name}/{what}_divisor_factor")],
                  [out], step.name)[0]


@converts("Pooling")
def pooling(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    P = caffe_pb2.PoolingParameter
    if layer.global_pooling and len(step.outputs) == 1 and layer.method != P.STOCHASTIC:
        emit(b, step, "GlobalMaxPool" if layer.method == P.MAX else "GlobalAveragePool",
             [step.inputs[0]])
        return
    pool(b, step, step.inputs[0], layer.windows, step.in_shapes[0], step.out_shapes[0],
         out=step.outputs[0], mask=step.outputs[1] if len(step.outputs) > 1 else None)


@converts("SPP")
def spp(b: GraphBuilder, step: Step) -> None:
    """One pooling per pyramid level, each flattened, concatenated."""
    layer = step.layer
    in_shape = step.in_shapes[0]
    if layer.height == 1:
        pool(b, step, step.inputs[0], layer.levels[0], in_shape, layer.out_shapes[0],
             out=step.outputs[0])
        return
    flat = []
    for level, (windows, shape) in enumerate(zip(layer.levels, layer.out_shapes)):
        y = pool(b, step, step.inputs[0], windows, in_shape, shape, what=f"level{level}")
        flat.append(b.reshape(y, (in_shape[0], -1), step, f"level{level}_flat"))
    emit(b, step, "Concat", flat, axis=1)


def plane_offsets(shape: tuple[int, ...], plane: int | None = None) -> np.ndarray:
    """(N, C, 1, 1) start of each (n, c) plane in a flat (N, C, H, W) index."""
    N, C = shape[:2]
    plane = int(np.prod(shape[2:])) if plane is None else plane
    return (np.arange(N * C, dtype=np.int64) * plane).reshape(N, C, 1, 1)
