"""Egress keys: which network an API call left from.

A *proxy key* names an egress network, not an address: residential and
datacenter proxy pools rotate addresses inside a prefix, so the key is the
announcing ASN plus the covering prefix (IPv4 /24, IPv6 /48):

>>> keyer = EgressKeyer()
>>> keyer.key("203.0.113.77", 64500)
'as64500/203.0.113.0/24'
>>> keyer.key("2001:db8:abcd:12::1", None)
'as?/2001:db8:abcd::/48'
"""

from __future__ import annotations

import ipaddress

__all__ = ["EgressKeyer"]


class EgressKeyer:
    """Map (client_ip, asn) to a proxy key, caching recent answers.

    Parameters
    ----------
    v4_prefix, v6_prefix
        Prefix lengths that define one egress network.
    cache_size
        Entries kept before the cache is cleared (addresses repeat a lot, so a
        plain dict that is dropped when full beats an LRU on the hot path).
    """

    def __init__(self, v4_prefix: int = 24, v6_prefix: int = 48, cache_size: int = 50_000):
        self.v4_prefix = v4_prefix
        self.v6_prefix = v6_prefix
        self.cache_size = cache_size
        self._cache: dict[str, tuple[int | None, str]] = {}

    def key(self, client_ip: str, asn: int | None) -> str:
        hit = self._cache.get(client_ip)
        if hit is not None and hit[0] == asn:
            return hit[1]
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        if self.v4_prefix == 24 and ":" not in client_ip:
            # the contract already validated the address: a /24 is its first three octets
            network = client_ip.rpartition(".")[0] + ".0/24"
        else:
            prefix = self.v4_prefix if ":" not in client_ip else self.v6_prefix
            network = str(ipaddress.ip_network(f"{client_ip}/{prefix}", strict=False))
        result = f"as{asn if asn is not None else '?'}/{network}"
        self._cache[client_ip] = (asn, result)
        return result

    def __getstate__(self) -> dict:
        # The cache is derivable; do not checkpoint it.
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state
