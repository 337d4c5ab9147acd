"""Text protobuf files (net and solver definitions) in and out.

Every net comes back upgraded to the V2 ``layer`` format, so nothing downstream ever
sees V0/V1 definitions. Parse errors carry file:line:column and quote the line.
"""
from __future__ import annotations

import os
import re
from typing import Any, TypeVar

from google.protobuf import text_format

from ..errors import CaffeLiteError, PrototxtError
from ..proto import caffe_pb2
from .atomic import atomic_write
from .upgrade import upgrade_net, upgrade_solver, upgraded

_M = TypeVar("_M")

_POSITION_PREFIX = re.compile(r"^\s*\d+:\d+\s*:\s*")


def read_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """The file's text, or a CaffeLiteError naming it."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise CaffeLiteError(f"cannot read {what}: {exc.strerror or exc}",
                             file=path) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise PrototxtError(f"{what} is not UTF-8 text (byte {exc.start})",
                            file=path, line=line) from exc


def parse_text_message(text: str, message: _M, filename: str = "<string>") -> _M:
    """text_format.Parse into ``message``; errors become PrototxtError(file:line:col)."""
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        line, column = exc.GetLine(), exc.GetColumn()
        detail = _POSITION_PREFIX.sub("", str(exc))
        lines = text.splitlines()
        if line is not None and 1 <= line <= len(lines):
            quoted = lines[line - 1]
            detail = detail.replace(f"'{quoted}': ", "", 1)   # protobuf's own quote
            indent = quoted[:max(column or 1, 1) - 1]
            caret = "".join(c if c == "\t" else " " for c in indent) + "^"
            detail += f"\n    {quoted}\n    {caret}"
        raise PrototxtError(detail, file=filename, line=line, column=column) from None
    return message


def parse_net_param(text: str, filename: str = "<string>") -> caffe_pb2.NetParameter:
    """A NetParameter from prototxt text, upgraded in place to the V2 format."""
    net = parse_text_message(text, caffe_pb2.NetParameter(), filename)
    return upgraded(net, upgrade_net, filename)


def read_net_param(path: str | os.PathLike[str]) -> caffe_pb2.NetParameter:
    """Read and upgrade a net definition (.prototxt)."""
    path = os.fspath(path)
    return parse_net_param(read_text(path, "network file"), path)


def parse_solver_param(text: str,
                       filename: str = "<string>") -> caffe_pb2.SolverParameter:
    """A SolverParameter from text, with solver_type upgraded to the type string.

    Net paths (net, train_net, test_net) are kept exactly as written.
    """
    solver = parse_text_message(text, caffe_pb2.SolverParameter(), filename)
    return upgraded(solver, upgrade_solver, filename)


def read_solver_param(path: str | os.PathLike[str]) -> caffe_pb2.SolverParameter:
    """Read a solver definition; like Caffe, a missing snapshot_prefix defaults to
    the solver file's path without extension, and a directory prefix gets the file's
    stem appended."""
    path = os.fspath(path)
    solver = parse_solver_param(read_text(path, "solver file"), path)
    if not solver.HasField("snapshot_prefix"):
        solver.snapshot_prefix = os.path.splitext(path)[0]
    elif os.path.isdir(solver.snapshot_prefix):
        stem = os.path.splitext(os.path.basename(path))[0]
        solver.snapshot_prefix = os.path.join(solver.snapshot_prefix, stem)
    return solver


def write_prototxt(message: Any, path: str | os.PathLike[str]) -> None:
    """Write any message as protobuf text, atomically."""
    text = text_format.MessageToString(message)
    with atomic_write(path, "w") as handle:
        handle.write(text)
