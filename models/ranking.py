"""The one ordering the detectors rank by: largest value first, ties by key.

Template and task mixes, episode members by score, contributions to a score:
everything the engine ranks is a ``{key: value}`` mapping read strongest
first, with ties broken by the key so the order never depends on insertion
(the same input gives the same alerts). Compiled with the engine (see
:mod:`models._native`): the engine's typed methods, where a lambda is not
allowed, rank through these.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any

__all__ = ["by_value_desc", "by_value_desc_str", "ranked", "ranked_items"]


def by_value_desc(kv: tuple[Any, Any]) -> tuple[Any, Any]:
    """Sort key of a ``(key, value)`` pair: largest value first, ties by key."""
    return (-kv[1], kv[0])


def by_value_desc_str(kv: tuple[Any, Any]) -> tuple[Any, str]:
    """:func:`by_value_desc` for keys of mixed types (None among strings): ties by ``str(key)``."""
    return (-kv[1], str(kv[0]))


def ranked_items(values: Mapping) -> list:
    """``values``' ``(key, value)`` pairs, largest value first, ties by key."""
    return sorted(values.items(), key=by_value_desc)


def ranked(values: Mapping, limit: int | None = None) -> list:
    """``values``' keys, largest value first, ties by key (the first ``limit`` of them)."""
    # (negated pairs sort without a key function call per item; keys are unique)
    pairs = [(-value, key) for key, value in values.items()]
    if limit is not None and limit < len(pairs):
        pairs = heapq.nsmallest(limit, pairs)  # (== sorted(pairs)[:limit])
    else:
        pairs.sort()
    return [key for _, key in pairs]
