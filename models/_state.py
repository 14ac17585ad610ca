"""Pickling of the engine's state classes by their field lists.

AccountState, GroupState, templates and the Engine pickle as ``(restore function,
field values)``, the same from the compiled build (where they are C structs, which
pickle cannot read by default) and the pure-Python one, so a checkpoint moves
between the builds. Each module keeps its own named restore function (a pickle
refers to it by name) and shares these two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = ["field_values", "restore_fields"]

T = TypeVar("T")


def field_values(obj: Any, names: Sequence[str]) -> tuple:
    """``obj``'s values of ``names``, in that order."""
    return tuple([getattr(obj, name) for name in names])


def restore_fields(cls: type[T], names: Sequence[str], values: tuple) -> T:
    """A new ``cls`` (its ``__init__`` not run) with ``names`` set to ``values``."""
    obj = cls.__new__(cls)  # type: ignore[call-overload]
    for name, value in zip(names, values, strict=True):
        setattr(obj, name, value)
    return obj
