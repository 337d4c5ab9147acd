"""The ONNX graph under construction: nodes, initializers and value names.

Values keep Caffe's blob names. A blob that several layers write (in-place
layers) is one ONNX value per write, since ONNX values are assigned once: the
last write keeps the blob's own name (that is the value Caffe's net.blobs shows
after a forward), earlier ones are named ``<blob>@<layer>``. Initializers are
``<layer>.<role>`` (``fc7.weight``), helper values ``<layer>/<what>``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ExportError


class NoMapping(Exception):
    """A layer (or a setting of it) that no ONNX graph computes faithfully."""


@dataclass
class Step:
    """One Caffe layer being converted: its ONNX input and output value names and
    the blob shapes the built net gave them."""
    layer: Any
    inputs: list[str]
    outputs: list[str]
    in_shapes: list[tuple[int, ...]]
    out_shapes: list[tuple[int, ...]]
    top_data: list[np.ndarray] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.layer.param.name)

    @property
    def lp(self) -> Any:
        return self.layer.param


class GraphBuilder:
    """Collects nodes and initializers; hands out unique value names."""

    def __init__(self, onnx: Any, opset: int, writes: Counter[str]) -> None:
        self.onnx, self.helper = onnx, onnx.helper
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.used: set[str] = set()
        self.node_names: set[str] = set()         # a namespace of their own
        self.current: dict[str, str] = {}         # blob -> its latest ONNX value
        self.writes_left = Counter(writes)        # blob -> writes still to come
        self.reserved = set(writes)               # blob names: never a helper's

    # -- names -----------------------------------------------------------------
    def unique(self, name: str) -> str:
        candidate, k = name, 1
        while candidate in self.used or candidate in self.reserved:
            candidate, k = f"{name}_{k}", k + 1
        self.used.add(candidate)
        return candidate

    def define(self, blob: str, layer_name: str) -> str:
        """The ONNX name of the value a layer writes into ``blob``."""
        self.writes_left[blob] -= 1
        last = self.writes_left[blob] <= 0
        if last and blob not in self.used:
            self.used.add(blob)
            name = blob
        else:
            name = self.unique(f"{blob}@{layer_name}")
        self.current[blob] = name
        return name

    def graph_input(self, blob: str) -> str:
        """An Input layer's top: always the blob's own name (in-place layers that
        write it later get ``<blob>@<layer>``)."""
        self.writes_left[blob] -= 1
        self.used.add(blob)
        self.current[blob] = blob
        return blob

    def value(self, blob: str) -> str:
        return self.current[blob]

    def alias(self, blob: str, value: str) -> None:
        """``blob`` is the same value as ``value`` (Split, Dropout at test time)."""
        self.writes_left[blob] -= 1
        self.current[blob] = value

    # -- graph pieces ----------------------------------------------------------
    def node(self, op: str, inputs: list[str], outputs: list[str], name: str,
             **attrs: Any) -> list[str]:
        unique, k = name, 1
        while unique in self.node_names:
            unique, k = f"{name}_{k}", k + 1
        self.node_names.add(unique)
        self.nodes.append(self.helper.make_node(op, inputs, outputs, name=unique, **attrs))
        return outputs

    def op(self, op: str, inputs: list[str], step: Step, what: str, **attrs: Any) -> str:
        """A node with one output: a helper value named after the layer."""
        out = self.unique(f"{step.name}/{what}")
        self.node(op, inputs, [out], f"{step.name}/{what}", **attrs)
        return out

    def const(self, array: Any, name: str, dtype: Any = np.float32) -> str:
        name = self.unique(name)
        array = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, values: Any, name: str) -> str:
        return self.const(np.asarray(values, np.int64).reshape(-1), name, np.int64)

    def reshape(self, x: str, shape: Any, step: Step, what: str = "reshape",
                out: str | None = None) -> str:
        target = self.ints(shape, f"{step.name}/{what}_shape")
        if out is None:
            return self.op("Reshape", [x, target], step, what)
        self.node("Reshape", [x, target], [out], f"{step.name}/{what}")
        return out

    def reduce(self, op: str, x: str, axes: list[int], step: Step, what: str,
               keepdims: int = 1) -> str:
        """Reduce* over ``axes``: an attribute before opset 18, an input from 18 on
        (ReduceSum took an input already at 13)."""
        if self.opset >= 18 or op == "ReduceSum":
            return self.op(op, [x, self.ints(axes, f"{step.name}/{what}_axes")], step,
                           what, keepdims=keepdims)
        return self.op(op, [x], step, what, axes=axes, keepdims=keepdims)

    def scalar(self, value: float, step: Step, what: str) -> str:
        return self.const(np.float32(value), f"{step.name}/{what}")

    def error(self, message: str) -> ExportError:
        return ExportError(message)
