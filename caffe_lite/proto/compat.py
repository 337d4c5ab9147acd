"""Descriptor queries that read the same on every supported protobuf runtime
(4.21 to the newest): the spelling of some changed between majors."""
from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor


def is_repeated(field: Any) -> bool:
    """True for a repeated field. ``FieldDescriptor.is_repeated`` only exists
    on newer runtimes and ``FieldDescriptor.label`` is gone from protobuf 7."""
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)
