"""Account linking: join suspect accounts that share infrastructure into clusters.

Only *suspects* (accounts whose own score passed a bar) are linked, and only
through keys that a crowd of unrelated people does not share by accident:
a payment fingerprint, a near-duplicate template, and (for strong suspects)
an egress network. A NAT, a popular TLS fingerprint or a popular public
template alone therefore never glues ordinary customers together: ordinary
customers are not suspects, and TLS fingerprints are never a link key.

>>> links = {"a": ["pay:1"], "b": ["pay:1", "tpl:7"], "c": ["tpl:7"], "d": ["tpl:9"]}
>>> link_components(sorted(links), links.__getitem__)
[['a', 'b', 'c'], ['d']]
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

__all__ = ["link_components"]


def _find(parent: list[int], x: int) -> int:  # (typed in linking.pxd)
    """Root of ``x``'s set, halving the path on the way."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def _first_text(group: list) -> str:
    return str(group[0])


def link_components(
    members: Iterable[Any], keys_of: Callable[[Any], Iterable[Hashable]]
) -> list[list]:
    """Connected components of ``members`` joined by shared keys.

    Deterministic: components are sorted lists (by ``str``), ordered by their
    first member, whatever the order of ``members`` (which roots the union
    takes never shows in the result).
    """
    ordered = list(members)
    n = len(ordered)
    parent = list(range(n))  # union-find over positions in `ordered`
    owner_of_key: dict = {}
    for i in range(n):
        for key in keys_of(ordered[i]):
            j = owner_of_key.setdefault(key, i)
            if j != i:
                ra = _find(parent, i)
                rb = _find(parent, j)
                if ra != rb:
                    if rb < ra:
                        ra, rb = rb, ra
                    parent[rb] = ra
    groups: dict = {}
    for i in range(n):
        root = _find(parent, i)
        group = groups.get(root)
        if group is None:
            groups[root] = [ordered[i]]
        else:
            group.append(ordered[i])
    components = [sorted(g, key=str) for g in groups.values()]
    components.sort(key=_first_text)
    return components
