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


def link_components(
    members: Iterable[Any], keys_of: Callable[[Any], Iterable[Hashable]]
) -> list[list]:
    """Connected components of ``members`` joined by shared keys.

    Deterministic: components are sorted lists, ordered by their first member.
    """
    parent: dict = {}

    def find(x):
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    owner_of_key: dict = {}
    ordered = list(members)
    for m in ordered:
        parent[m] = m
    for m in ordered:
        for key in keys_of(m):
            other = owner_of_key.setdefault(key, m)
            if other != m:
                ra, rb = find(m), find(other)
                if ra != rb:
                    if str(rb) < str(ra):
                        ra, rb = rb, ra
                    parent[rb] = ra
    groups: dict = {}
    for m in ordered:
        groups.setdefault(find(m), []).append(m)
    components = [sorted(g, key=str) for g in groups.values()]
    components.sort(key=lambda g: str(g[0]))
    return components
