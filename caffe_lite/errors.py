"""Errors that caffe_lite raises for bad input.

Every error says where the problem is: the file (and line/column for prototxt), the
layer (name and type) and the blob, so a user never has to read a numpy traceback.
"""
from __future__ import annotations

import os
from typing import Any, TypeVar

_E = TypeVar("_E", bound="CaffeLiteError")


class CaffeLiteError(Exception):
    """Base class of every error caffe_lite raises on purpose."""

    def __init__(self, message: str, *, file: str | os.PathLike[str] | None = None,
                 line: int | None = None, column: int | None = None,
                 layer: str | None = None, layer_type: str | None = None,
                 blob: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.layer = layer
        self.layer_type = layer_type
        self.blob = blob
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file is not None:
            loc = str(self.file)
            if self.line is not None:
                loc += f":{self.line}"
                if self.column is not None:
                    loc += f":{self.column}"
            where.append(loc)
        if self.layer is not None:
            where.append(f"layer '{self.layer}'" +
                         (f" ({self.layer_type})" if self.layer_type else ""))
        if self.blob is not None:
            where.append(f"blob '{self.blob}'")
        return (", ".join(where) + ": " if where else "") + self.message

    def with_context(self: _E, **context: Any) -> _E:
        """Fill in context that was unknown where the error was raised."""
        for key, value in context.items():
            if getattr(self, key, None) is None:
                setattr(self, key, value)
        self.args = (self._format(),)
        return self

    def __str__(self) -> str:
        return self._format()


class PrototxtError(CaffeLiteError):
    """A text protobuf file that does not parse or does not fit the schema."""


class ModelFileError(CaffeLiteError):
    """A binary weights / solverstate / mean file that is truncated or not Caffe's."""


class BlobShapeError(ModelFileError, ValueError):
    """A BlobProto whose values do not fit its shape (pycaffe: ValueError)."""


class NetError(CaffeLiteError):
    """A network whose wiring is wrong: missing bottoms, bad in-place use, ..."""


class LayerError(CaffeLiteError):
    """A layer whose parameters or input shapes are invalid."""


class UnknownLayerError(NetError):
    """A layer type that no registered implementation provides."""


class WeightsError(CaffeLiteError):
    """Weights that do not fit the net (blob count or shape mismatch)."""


class SolverError(CaffeLiteError):
    """An invalid solver definition or snapshot."""


class NetSpecError(CaffeLiteError, AttributeError):
    """A NetSpec layer call or parameter name that the schema has no place for."""


class NetSpecInputError(CaffeLiteError, TypeError):
    """A NetSpec layer called with something that is not a Top."""


class PreprocessError(CaffeLiteError, ValueError):
    """Preprocessing settings or arrays that do not fit the net's inputs."""


class ImageError(CaffeLiteError, OSError):
    """An image file that cannot be opened or decoded."""


# pycaffe's coord_map errors (its tests catch RuntimeError and AssertionError)
class UndefinedMapException(CaffeLiteError):
    """A layer type whose coordinate map is not defined (InnerProduct, ...)."""

    def __init__(self, message: str = "no coordinate map is defined for this layer",
                 **context: Any) -> None:
        super().__init__(message, **context)


class AxisMismatchException(CaffeLiteError):
    """Two maps over different spatial axes cannot be composed."""


class DisconnectedTopsError(CaffeLiteError, RuntimeError):
    """No chain of mappable layers joins the two tops (pycaffe: RuntimeError)."""


class CropError(CaffeLiteError, AssertionError):
    """A computed crop that cannot be done: scales differ, or the offset is
    negative or fractional (pycaffe asserts these)."""


class MemoryLimitError(CaffeLiteError):
    """A net (or file) that would need more memory than the limit allows,
    refused before that memory is taken (caffe_lite.set_memory_limit)."""

    def __init__(self, message: str, *, needed: int = 0, limit: int = 0,
                 **context: Any) -> None:
        self.needed, self.limit = needed, limit
        super().__init__(message, **context)


class DistributedError(CaffeLiteError):
    """A failure among the processes of a distributed run: a rank that died or
    hangs, parameters that differ between ranks, a Dask scheduler that does not
    answer."""


class DependencyError(CaffeLiteError):
    """An optional dependency (extra) that is needed but not installed."""


class ExportError(CaffeLiteError):
    """A net that cannot be exported (to ONNX): its layers, phase or inputs."""


class VerificationError(ExportError):
    """An export whose outputs differ from the net's own forward; ``verification``
    holds the per-output differences."""

    def __init__(self, message: str, *, verification: Any = None,
                 **context: Any) -> None:
        self.verification = verification
        super().__init__(message, **context)


class DuplicateLayerNameWarning(UserWarning):
    """A net whose layers share a name: Caffe runs it, and so do we."""


def require(module_name: str, extra: str, purpose: str,
            file: str | os.PathLike[str] | None = None) -> Any:
    """Import an optional dependency, or explain which extra installs it (and
    which file needed it, when one did)."""
    import importlib
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise DependencyError(
            f"{purpose} needs the Python package '{module_name}', which is not "
            f"installed; install it with: pip install 'caffe-lite[{extra}]'",
            file=os.fspath(file) if file is not None else None) from exc
