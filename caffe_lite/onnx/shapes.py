"""Caffe layers that move, pick or reduce values -> ONNX: Concat, Slice, Flatten,
Reshape, Permute, ShuffleChannel, Tile, Crop, BatchReindex, Reduction, ArgMax.
Every target shape is the static one the built net gave."""
from __future__ import annotations

import numpy as np

from ..proto import caffe_pb2
from .builder import GraphBuilder, Step
from .layers import affine, converts, emit, finish


@converts("Concat")
def concat(b: GraphBuilder, step: Step) -> None:
    emit(b, step, "Concat", list(step.inputs), axis=int(step.layer.concat_axis))


@converts("Slice")
def slice_layer(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    axis = int(layer.slice_axis)
    sizes = [shape[axis] for shape in step.out_shapes]
    if len(step.outputs) == 1:
        b.node("Identity", [step.inputs[0]], step.outputs, step.name)
        return
    b.node("Split", [step.inputs[0], b.ints(sizes, f"{step.name}/sizes")], step.outputs,
           step.name, axis=axis)


@converts("Flatten", "Reshape")
def reshape(b: GraphBuilder, step: Step) -> None:
    b.reshape(step.inputs[0], step.out_shapes[0], step, out=step.outputs[0])


@converts("Permute")
def permute(b: GraphBuilder, step: Step) -> None:
    emit(b, step, "Transpose", [step.inputs[0]], perm=list(step.layer.order))


@converts("ShuffleChannel")
def shuffle_channel(b: GraphBuilder, step: Step) -> None:
    shape, g = step.in_shapes[0], int(step.layer.group)
    grouped = b.reshape(step.inputs[0], (shape[0], g, shape[1] // g) + shape[2:], step,
                        "groups")
    order = [0, 2, 1] + list(range(3, len(shape) + 1))
    swapped = b.op("Transpose", [grouped], step, "swap", perm=order)
    b.reshape(swapped, step.out_shapes[0], step, out=step.outputs[0])


@converts("Tile")
def tile(b: GraphBuilder, step: Step) -> None:
    shape, out = step.in_shapes[0], step.out_shapes[0]
    repeats = [o // i for i, o in zip(shape, out)]
    emit(b, step, "Tile", [step.inputs[0], b.ints(repeats, f"{step.name}/repeats")])


@converts("Crop")
def crop(b: GraphBuilder, step: Step) -> None:
    region = step.layer.region
    axes = [i for i, r in enumerate(region) if r != slice(0, step.in_shapes[0][i])]
    if not axes:
        b.node("Identity", [step.inputs[0]], step.outputs, step.name)
        return
    emit(b, step, "Slice", [step.inputs[0],
                            b.ints([region[a].start for a in axes], f"{step.name}/starts"),
                            b.ints([region[a].stop for a in axes], f"{step.name}/ends"),
                            b.ints(axes, f"{step.name}/axes")])


@converts("BatchReindex")
def batch_reindex(b: GraphBuilder, step: Step) -> None:
    index = b.op("Cast", [step.inputs[1]], step, "index", to=b.onnx.TensorProto.INT64)
    emit(b, step, "Gather", [step.inputs[0], index], axis=0)


@converts("Reduction")
def reduction(b: GraphBuilder, step: Step) -> None:
    layer = step.layer
    R = caffe_pb2.ReductionParameter
    ops = {R.SUM: "ReduceSum", R.ASUM: "ReduceL1", R.SUMSQ: "ReduceSumSquare",
           R.MEAN: "ReduceMean"}
    shape = step.in_shapes[0]
    axis = len(step.out_shapes[0])                 # top keeps the axes before `axis`
    rows = b.reshape(step.inputs[0], tuple(shape[:axis]) + (-1,), step, "rows")
    y = b.reduce(ops[layer.op], rows, [axis], step, "reduce", keepdims=0)
    coeff = float(layer.param.reduction_param.coeff)
    finish(b, step, affine(b, step, y, coeff, 0.0))


@converts("ArgMax")
def argmax(b: GraphBuilder, step: Step) -> None:
    """TopK on the input reversed along the axis: TopK breaks a tie by the lower
    index, Caffe's (value, index) sort by the higher, and reversing swaps the two."""
    layer = step.layer
    shape = step.in_shapes[0]
    x, axis = step.inputs[0], getattr(layer, "axis", 1)
    if not layer.has_axis:
        x = b.reshape(x, (shape[0], -1), step, "rows")                 # (N, D)
    size = shape[axis] if layer.has_axis else int(np.prod(shape[1:]))
    flipped = b.op("Slice", [x, b.ints([-1], f"{step.name}/starts"),
                             b.ints([-size - 1], f"{step.name}/ends"),
                             b.ints([axis], f"{step.name}/axes"),
                             b.ints([-1], f"{step.name}/steps")], step, "reversed")
    values, reversed_index = b.unique(f"{step.name}/values"), b.unique(f"{step.name}/rindex")
    b.node("TopK", [flipped, b.ints([layer.top_k], f"{step.name}/k")],
           [values, reversed_index], f"{step.name}/topk", axis=axis, largest=1, sorted=1)
    last = b.const(np.int64(size - 1), f"{step.name}/last", np.int64)
    index = b.op("Sub", [last, reversed_index], step, "index")
    index = b.op("Cast", [index], step, "float_index", to=b.onnx.TensorProto.FLOAT)
    if layer.has_axis:
        b.node("Identity", [values if layer.out_max_val else index], step.outputs,
               step.name)
        return
    k = layer.top_k
    parts = [b.reshape(index, (shape[0], 1, k), step, "index_row")]
    if layer.out_max_val:
        parts.append(b.reshape(values, (shape[0], 1, k), step, "value_row"))
    joined = parts[0] if len(parts) == 1 else b.op("Concat", parts, step, "rows", axis=1)
    b.reshape(joined, step.out_shapes[0], step, out=step.outputs[0])
