"""Net: layers wired over named blobs, run forward and backward over layer
ranges. Its state is one NetGraph, made by ``build_graph`` (graph.py) from the
NetParameter that ``passes.py`` filtered by state and gave Split layers;
pycaffe's attribute names read that graph. The scripting conveniences
(scripting.py) and weights in and out (weights.py) are functions of it."""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Generic, Iterable, NoReturn, Sequence, TypeVar, overload

import numpy as np
import numpy.typing as npt

from ..blob import Blob
from ..errors import CaffeLiteError, NetError
from ..formats import SavedLayer, read_net_param, upgrade_net
from ..layers.base import Layer
from ..ops import threads
from ..proto import caffe_pb2
from . import parallel, scripting, weights
from .graph import NetGraph, build_graph
from .lean import LeanMemory
from .passes import builtin_for_python_layers, filter_by_state, insert_splits
from .running import reshape_layers, run_backward, run_forward
from .summary import NetSummary, summarize

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST


def _phase(value: str | int) -> int:
    if isinstance(value, str):
        try:
            return {"TRAIN": TRAIN, "TEST": TEST}[value.upper()]
        except KeyError:
            raise CaffeLiteError(f"phase must be TRAIN or TEST, got '{value}'") from None
    if value not in (TRAIN, TEST):
        raise CaffeLiteError(f"phase must be caffe.TRAIN or caffe.TEST, got {value!r}")
    return int(value)


def _load_net_param(network: Any) -> tuple[Any, str | None]:
    if isinstance(network, caffe_pb2.NetParameter):
        param = caffe_pb2.NetParameter()
        param.CopyFrom(network)
        upgrade_net(param)
        return param, None
    path = os.fspath(network)
    return read_net_param(path), path


_T = TypeVar("_T")


class _FromGraph(Generic[_T]):
    """A read-only Net attribute that is a field of its graph: a property whose
    type (the annotation where it is declared) is the field's."""

    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.__doc__ = doc

    @overload
    def __get__(self, net: None, owner: type | None = None) -> _FromGraph[_T]: ...
    @overload
    def __get__(self, net: Net, owner: type | None = None) -> _T: ...
    def __get__(self, net: Net | None, owner: type | None = None) -> _T | _FromGraph[_T]:
        return self if net is None else getattr(net.graph, self.name)

    def __set__(self, net: Net, value: NoReturn) -> NoReturn:
        raise AttributeError(f"can't set attribute '{self.name}'")

    def __delete__(self, net: Net) -> NoReturn:
        raise AttributeError(f"can't delete attribute '{self.name}'")


def _from_graph(name: str, doc: str) -> _FromGraph[Any]:
    return _FromGraph(name, doc)


class Net:
    """pycaffe's Net: ``Net(network_file, phase, level=0, stages=None,
    weights=None)`` or the legacy ``Net(network_file, weights_file, phase)``.

    ``network_file`` may also be a NetParameter. Python layers run only with
    ``allow_python_layers=True`` or the environment variable
    CAFFE_LITE_ALLOW_PYTHON_LAYERS=1, since a prototxt would otherwise execute
    code.

    ``lean=True`` makes an inference-only net whose intermediate blobs share
    memory (see lean.py): inputs, outputs and the blobs named in ``keep`` hold
    their values after a forward, the others do not; backward is refused.
    """

    graph: NetGraph

    def __init__(self, network_file: str | os.PathLike[str] | caffe_pb2.NetParameter,
                 *positional: Any, level: int = 0, stages: Sequence[str] | None = None,
                 weights: str | os.PathLike[str] | None = None,
                 phase: int | str | None = None, allow_python_layers: bool | None = None,
                 dtype: npt.DTypeLike = np.float32, lean: bool = False,
                 keep: Iterable[str] | None = None) -> None:
        args = list(positional)
        if args and isinstance(args[0], (str, os.PathLike)) and not (
                isinstance(args[0], str) and args[0].upper() in ("TRAIN", "TEST")):
            weights = args.pop(0)            # legacy (prototxt, caffemodel, phase)
        if args:
            phase = args.pop(0)
        if args:
            level = args.pop(0)
        if args:
            stages = args.pop(0)
        if args:
            raise CaffeLiteError("Net() takes network_file, phase[, level, stages]")
        if isinstance(level, (str, os.PathLike)) and not str(level).lstrip("-").isdigit():
            raise CaffeLiteError(
                f"Net()'s argument after the phase is the level (an int), got "
                f"{str(level)!r}: pass weights by name, Net(prototxt, phase, "
                f"weights={str(level)!r}), or in pycaffe's legacy order "
                f"Net(prototxt, weights, phase)")
        if isinstance(stages, str):
            stages = [stages]
        if phase is None:
            raise CaffeLiteError("Net() needs a phase: caffe.TRAIN or caffe.TEST")
        param, source = _load_net_param(network_file)
        param.state.phase = _phase(phase)
        param.state.level = int(level)
        del param.state.stage[:]
        param.state.stage.extend(stages or [])
        try:
            filtered = insert_splits(builtin_for_python_layers(
                filter_by_state(param, param.state), param.state.phase))
        except CaffeLiteError as exc:
            exc.with_context(file=source)
            raise
        self.graph = build_graph(filtered, source, allow_python_layers, dtype)
        self._dtype = dtype
        self._parallel: parallel.BatchParallel | None = None
        self._state_in_shadows = False
        self._lean: LeanMemory | None = None
        if weights is not None:
            self.copy_from(weights)
        if keep is not None and not lean:
            raise CaffeLiteError("keep= names the blobs a lean net keeps: pass "
                                 "lean=True too", file=source)
        if lean:
            keep = [keep] if isinstance(keep, str) else list(keep or [])
            scripting.check_blob_names(self, keep, "keep")
            self._lean = LeanMemory(self.graph, keep)
            self._lean.apply()

    # -- pycaffe's attributes: the graph's fields -------------------------------
    blobs: _FromGraph[OrderedDict[str, Blob]] = _from_graph(
        "blobs", "OrderedDict of blob name -> Blob, in creation order")
    layers: _FromGraph[list[Layer]] = _from_graph(
        "layers", "the Layer objects, in execution order")
    inputs: _FromGraph[list[str]] = _from_graph("inputs", "names of the Input layers' tops")
    outputs: _FromGraph[list[str]] = _from_graph(
        "outputs", "blobs produced and never consumed, sorted")
    bottom_names: _FromGraph[OrderedDict[str, list[str]]] = _from_graph(
        "bottom_names", "layer name -> its bottom blob names")
    top_names: _FromGraph[OrderedDict[str, list[str]]] = _from_graph(
        "top_names", "layer name -> its top blob names")
    blob_loss_weights: _FromGraph[OrderedDict[str, float]] = _from_graph(
        "blob_loss_weights", "blob name -> loss weight")
    _layer_names: _FromGraph[list[str]] = _from_graph(
        "layer_names", "layer names, in execution order")
    param: _FromGraph[caffe_pb2.NetParameter] = _from_graph(
        "param", "the NetParameter built: filtered, with Splits")
    source: _FromGraph[str | None] = _from_graph(
        "source", "the prototxt file, when built from one")
    bottom_vecs: _FromGraph[list[list[Blob]]] = _from_graph(
        "bottom_vecs", "per layer, its bottom Blobs")
    top_vecs: _FromGraph[list[list[Blob]]] = _from_graph(
        "top_vecs", "per layer, its top Blobs")
    layer_need_backward: _FromGraph[list[bool]] = _from_graph(
        "layer_need_backward", "per layer")
    bottom_need_backward: _FromGraph[list[list[bool]]] = _from_graph(
        "bottom_need_backward", "per layer, per bottom")
    learnable_params: _FromGraph[list[Blob]] = _from_graph(
        "learnable_params", "distinct learnable Blobs")
    params_lr: _FromGraph[list[float]] = _from_graph(
        "params_lr", "lr_mult per learnable param")
    params_weight_decay: _FromGraph[list[float]] = _from_graph(
        "params_weight_decay", "decay_mult per learnable param")
    param_display_names: _FromGraph[list[str]] = _from_graph(
        "param_display_names", "a name per learnable param, for logs")

    @property
    def name(self) -> str:
        return self.graph.param.name

    @property
    def lean(self) -> bool:
        """Whether intermediate blobs share memory (``Net(..., lean=True)``)."""
        return self._lean is not None

    @property
    def phase(self) -> int:
        return self.graph.param.state.phase

    @property
    def params(self) -> OrderedDict[str, list[Blob]]:
        """OrderedDict of layer name -> its parameter Blobs (layers with some)."""
        return OrderedDict((layer.name, layer.blobs)
                           for layer in self.layers if layer.blobs)

    @property
    def layer_dict(self) -> OrderedDict[str, Layer]:
        return OrderedDict(zip(self._layer_names, self.layers))

    @property
    def _blob_names(self) -> list[str]:
        """pycaffe's private name list, which scripts and draw tools read."""
        return list(self.blobs)

    def summary(self) -> NetSummary:
        """Per-layer top shapes, parameters, MACs and memory (see summary.py)."""
        return summarize(self)

    def _layer_index(self, name: str) -> int:
        try:
            return self._layer_names.index(name)
        except ValueError:
            raise NetError(f"no layer named '{name}' in the net", layer=name) from None

    # -- running -----------------------------------------------------------------
    def forward_range(self, start: int = 0, end: int | None = None) -> float:
        """Run layers start..end inclusive and return the summed loss."""
        end = len(self.layers) - 1 if end is None else end
        if self._lean is not None and start > 0:
            raise NetError("a lean net runs forward from its first layer: the "
                           "blobs an inner layer reads may hold other data",
                           file=self.source, layer=self._layer_names[start])
        if start == 0 and end == len(self.layers) - 1:
            loss = self._forward_in_parallel()
            if loss is not None:
                return loss
        self._state_in_shadows = False
        return run_forward(self.graph, start, end)

    def _forward_in_parallel(self) -> float | None:
        """The whole forward with its segment as slices of the batch on threads
        (parallel.py); None where that does not apply (nothing has run)."""
        if self._lean is not None or threads.threads() < 2:
            return None
        if self._parallel is None:
            graph, dtype = self.graph, self._dtype
            self._parallel = parallel.BatchParallel(
                graph, lambda: build_graph(graph.param, graph.source, None, dtype))
        ran = self._parallel.forward_all()
        if ran is None:
            return None
        loss, self._state_in_shadows = ran
        return loss

    def backward_range(self, start: int | None = None, end: int = 0) -> None:
        """Run backward for layers start..end inclusive, top to bottom."""
        start = len(self.layers) - 1 if start is None else start
        if self._lean is not None:
            raise NetError("a lean net runs forward only (its intermediate blobs "
                           "share memory); build it without lean=True to run "
                           "backward", file=self.source)
        if self._state_in_shadows:               # the layers' forward state is there
            self._state_in_shadows = False
            assert self._parallel is not None
            run_forward(self.graph, self._parallel.segment[0], len(self.layers) - 1)
        run_backward(self.graph, start, end)

    def forward_backward(self) -> float:
        """One training pass: forward, then backward; returns the loss."""
        loss = self.forward_range()
        self.backward_range()
        return loss

    def reshape(self) -> None:
        reshape_layers(self.graph, 0, len(self.layers) - 1)
        if self._lean is not None:
            self._lean.apply()               # buffers for the new shapes

    def clear_param_diffs(self) -> None:
        for blob in self.learnable_params:
            blob.diff[...] = 0

    # -- pycaffe's scripting conveniences (scripting.py) -------------------------
    def forward(self, blobs: Iterable[str] | None = None, start: str | None = None,
                end: str | None = None, **kwargs: npt.ArrayLike) -> dict[str, np.ndarray]:
        """Feed inputs by name (keywords), run, return the outputs' data by name."""
        if self._lean is not None and blobs is not None:
            blobs = list(blobs)
            lost = [n for n in blobs if n not in self._lean.keep and
                    n not in self.inputs and n not in self.outputs]
            if lost:
                raise NetError(f"blobs={lost}: a lean net keeps only its inputs, "
                               f"outputs and the blobs named in keep=",
                               file=self.source, blob=lost[0])
        return scripting.forward(self, blobs, start, end, **kwargs)

    def backward(self, diffs: Iterable[str] | None = None, start: str | None = None,
                 end: str | None = None, **kwargs: npt.ArrayLike) -> dict[str, np.ndarray]:
        """Set output diffs by name (keywords), run backward, return input diffs."""
        return scripting.backward(self, diffs, start, end, **kwargs)

    def forward_all(self, blobs: Iterable[str] | None = None,
                    **kwargs: scripting.Batches) -> dict[str, np.ndarray]:
        """Forward over inputs of any batch count, batch by batch."""
        return scripting.forward_all(self, blobs, **kwargs)

    def forward_backward_all(
            self, blobs: Iterable[str] | None = None, diffs: Iterable[str] | None = None,
            **kwargs: scripting.Batches) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Forward and backward batch by batch; returns (outputs, input diffs)."""
        return scripting.forward_backward_all(self, blobs, diffs, **kwargs)

    def set_input_arrays(self, data: np.ndarray, labels: np.ndarray,
                         layer_index: int = 0) -> None:
        """Feed a MemoryData layer."""
        return scripting.set_input_arrays(self, data, labels, layer_index)

    # -- weights in and out (weights.py) -----------------------------------------
    def copy_from(self, weights_file: str | os.PathLike[str]) -> None:
        """Copy blobs from a .caffemodel (or .h5) into layers of the same name."""
        weights.copy_from(self.graph, weights_file)

    def copy_from_layers(self, saved_layers: Iterable[SavedLayer],
                         source: str | None = None) -> None:
        weights.copy_from_layers(self.graph, saved_layers, source)

    def share_with(self, other: Net) -> None:
        """Use other's param blobs for layers of the same name (test nets)."""
        weights.share_with(self.graph, other.graph)

    def to_proto(self, write_diff: bool = False) -> caffe_pb2.NetParameter:
        """The net as a NetParameter with its blobs (slow for big nets: prefer save)."""
        return weights.to_proto(self.graph, write_diff)

    def save(self, path: str | os.PathLike[str], fmt: str | None = None) -> None:
        """Write the weights as a binary .caffemodel (or HDF5 for .h5)."""
        weights.save(self.graph, path, fmt)

    def save_hdf5(self, path: str | os.PathLike[str]) -> None:
        weights.save(self.graph, path, fmt="hdf5")

    def load_hdf5(self, path: str | os.PathLike[str]) -> None:
        weights.copy_from(self.graph, path)
