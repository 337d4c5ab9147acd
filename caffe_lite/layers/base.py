"""The Layer contract shared by built-in layers and user Python layers, and the
registry that maps a prototxt ``type`` string to its class.

The net calls ``set_up`` once (a fixed sequence no layer overrides), then
``run_forward`` / ``backward`` each pass. A layer reads its prototxt parameters
once, in ``layer_setup``, into plain attributes.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from ..blob import Blob
from ..errors import CaffeLiteError, LayerError, UnknownLayerError

_REGISTRY: dict[str, type[Layer]] = {}

_LayerT = TypeVar("_LayerT", bound="type[Layer]")


def reused(array: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    """``array`` when it has ``like``'s shape and dtype, else a new empty one like it:
    a buffer a layer keeps from one forward to the next."""
    if array is None or array.shape != like.shape or array.dtype != like.dtype:
        return np.empty_like(like)
    return array


def kept_copy(buffer: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    """x copied into ``buffer`` (reused when it fits): an in-place layer's input,
    kept for its backward."""
    buffer = reused(buffer, x)
    np.copyto(buffer, x)
    return buffer


def register_layer(type_name: str) -> Callable[[_LayerT], _LayerT]:
    """Class decorator: make ``type_name`` buildable from a prototxt."""
    def decorate(cls: _LayerT) -> _LayerT:
        if type_name in _REGISTRY:
            raise CaffeLiteError(f"layer type '{type_name}' registered twice "
                                 f"({_REGISTRY[type_name].__name__} and {cls.__name__})")
        _REGISTRY[type_name] = cls
        cls.type_name = type_name
        return cls
    return decorate


def layer_types() -> list[str]:
    """Every registered layer type, sorted (the package imports every layer module
    before anyone can reach this function, so none is missing)."""
    return sorted(_REGISTRY)


def layer_class(type_name: str, layer_name: str | None = None) -> type[Layer]:
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise UnknownLayerError(
            f"unknown layer type '{type_name}' (known types: "
            f"{', '.join(sorted(_REGISTRY))})",
            layer=layer_name, layer_type=type_name) from None


class Layer:
    """Base of every layer.

    Subclasses declare their blob counts as class attributes, override
    ``layer_setup`` / ``reshape`` / ``forward`` / ``backward``, and never
    ``set_up``. Python layers (``caffe.Layer``) override ``setup`` instead of
    ``layer_setup``; both are called.
    """
    type_name: str | None = None
    exact_num_bottom: int | None = None
    min_bottom: int | None = None
    max_bottom: int | None = None
    exact_num_top: int | None = None
    min_top: int | None = None
    max_top: int | None = None
    equal_num_bottom_top = False
    #: create anonymous tops when the prototxt names fewer than required
    auto_top_blobs = False
    #: loss layers weigh top 0 by 1 unless loss_weight says otherwise
    is_loss = False
    #: Caffe layers without Backward_cpu (Accuracy, ArgMax, data layers...)
    has_backward = True
    #: the prototxt the net was read from (set by Net; None otherwise): a fallback
    #: base for relative file names in layer params
    net_file: str | None = None
    #: set where the layer's backward never runs (a layer that leads to no loss, a
    #: lean Net, the batch-parallel shadows): keep nothing for a gradient
    forward_only = False

    def __init__(self, param: Any, phase: int | None = None) -> None:
        self.param = param
        self.name = param.name
        self.type = param.type
        self.phase = param.phase if phase is None else phase
        self.blobs: list[Blob] = []
        self.param_propagate_down: list[bool] = []
        self.loss_weights: list[float] = []
        self.dtype: np.dtype[Any] = np.dtype(np.float32)
        # pycaffe gives Python layers their param_str before setup
        self.param_str = param.python_param.param_str if param.HasField("python_param") else ""

    # -- the fixed sequence ------------------------------------------------
    def set_up(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Check blob counts, set the layer up, size its tops, set loss weights."""
        self.check_blob_counts(bottom, top)
        if bottom:
            self.dtype = bottom[0].dtype
        self.layer_setup(bottom, top)
        self.setup(bottom, top)
        self.reshape(bottom, top)
        self.set_loss_weights(top)

    def check_blob_counts(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        nb, nt = len(bottom), len(top)

        def check(count: int, what: str, exact: int | None, low: int | None,
                  high: int | None) -> None:
            if exact is not None and count != exact:
                raise self.error(f"takes exactly {exact} {what} blob(s), got {count}")
            if low is not None and count < low:
                raise self.error(f"takes at least {low} {what} blob(s), got {count}")
            if high is not None and count > high:
                raise self.error(f"takes at most {high} {what} blob(s), got {count}")

        check(nb, "bottom", self.exact_num_bottom, self.min_bottom, self.max_bottom)
        check(nt, "top", self.exact_num_top, self.min_top, self.max_top)
        if self.equal_num_bottom_top and nb != nt:
            raise self.error(f"needs as many tops as bottoms, got {nb} bottom(s) and "
                             f"{nt} top(s)")

    def required_num_top(self) -> int:
        """How many tops an auto_top_blobs layer needs at least."""
        return self.exact_num_top or self.min_top or 0

    def set_loss_weights(self, top: Sequence[Blob]) -> None:
        weights = list(self.param.loss_weight)
        if weights and len(weights) != len(top):
            raise self.error(f"has {len(weights)} loss_weight value(s) but "
                             f"{len(top)} top(s)")
        if not weights:
            weights = [1.0 if (self.is_loss and i == 0) else 0.0 for i in range(len(top))]
        self.loss_weights = [float(w) for w in weights]
        for blob, weight in zip(top, self.loss_weights):
            if weight != 0:
                # As in Caffe, a top's loss weight lives in its diff; loss layers
                # read their gradient scale from top[0].diff in backward.
                blob.diff[...] = weight

    # -- what subclasses provide --------------------------------------------
    def layer_setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Read parameters and create/fill ``self.blobs`` (built-in layers)."""

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Python layers' hook (pycaffe's ``setup``)."""

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.reshape")

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, top: list[Blob], propagate_down: Sequence[bool],
                 bottom: list[Blob]) -> None:
        """Write bottom diffs where propagate_down; accumulate param diffs."""

    def allow_force_backward(self, bottom_index: int) -> bool:
        """False for bottoms that never take a gradient (labels, indices)."""
        return not self.is_loss or bottom_index != 1

    # -- called by the net --------------------------------------------------
    def run_forward(self, bottom: list[Blob], top: list[Blob]) -> float:
        """Reshape, forward, and return this layer's weighted loss."""
        self.reshape(bottom, top)
        self.forward(bottom, top)
        loss = 0.0
        for blob, weight in zip(top, self.loss_weights):
            if weight != 0:
                loss += weight * float(np.sum(blob.data, dtype=np.float64))
        return loss

    def error(self, message: str, blob: str | None = None) -> LayerError:
        """A LayerError that names this layer (raise it)."""
        return LayerError(message, layer=self.name, layer_type=self.type, blob=blob)

    def make_blob(self, shape: Sequence[int]) -> Blob:
        """A new parameter blob with this layer's dtype."""
        return Blob(shape, dtype=self.dtype)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}'>"
