"""The shared context of one simulation run: timeline, internet, identifiers, output."""

from __future__ import annotations

import random
from typing import Any

from .clock import HOUR_MS, format_ms, parse_rfc3339
from .network import Asn, Internet
from .sink import EventSink

__all__ = ["IdFactory", "World"]

# (UTC offset in hours, share of accounts): the Americas, Europe, Asia, Oceania.
# (UTC offset in hours, share of accounts): a customer base weighted to the
# Americas and Europe, with Asia and Oceania behind.
TIMEZONES = ((-8.0, 0.16), (-6.0, 0.08), (-5.0, 0.24), (-3.0, 0.04), (0.0, 0.10), (1.0, 0.16),
             (2.0, 0.05), (3.0, 0.02), (5.5, 0.05), (8.0, 0.04), (9.0, 0.04), (10.0, 0.02))
_SURGE_RAMP_MS = HOUR_MS
_SURGE_DECAY_MS = 6 * HOUR_MS


class IdFactory:
    """Opaque random identifiers, unique across the run."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def make(self, prefix: str, rng: random.Random, hex_digits: int = 12) -> str:
        while True:
            ident = f"{prefix}{rng.getrandbits(4 * hex_digits):0{hex_digits}x}"
            if ident not in self._used:
                self._used.add(ident)
                return ident

    def account(self, rng: random.Random) -> str:
        return self.make("acct_", rng)

    def org(self, rng: random.Random) -> str:
        return self.make("org_", rng)

    def api_key(self, rng: random.Random) -> str:
        return self.make("key_", rng, 16)

    def payment(self, rng: random.Random) -> str:
        return self.make("", rng, 32)


class World:
    """Timeline, internet, shared infrastructure and the event sink of one run."""

    def __init__(self, params: dict[str, dict[str, Any]], seed: int, sink: EventSink) -> None:
        run = params["run"]
        self.seed = seed
        self.params = params
        self.sink = sink
        self.start_ms = parse_rfc3339(run["start"])
        self.end_ms = self.start_ms + int(run["hours"] * HOUR_MS)
        self.release_ms = self.start_ms + int(run["release_h"] * HOUR_MS)
        self.new_model: str = run["new_model"]
        self.surge_factor: float = run["surge_factor"]
        self._surge_hold_ms = int(run["surge_hours"] * HOUR_MS)
        self.ids = IdFactory()
        self.internet = Internet(self.rng("internet"))
        self.proxy_pool = self._build_proxy_pool(params["proxy"])
        self.nat_ips: list[str] = []

    def rng(self, stream: str) -> random.Random:
        """An independent random stream, so groups do not perturb each other."""
        return random.Random(f"{self.seed}:{stream}")

    def at(self, hours: float) -> int:
        """Milliseconds of `hours` after the start of the run."""
        return self.start_ms + int(hours * HOUR_MS)

    def iso(self, ms: int) -> str:
        return format_ms(ms)

    def surge(self, t: int) -> float:
        """Global traffic multiplier: a surge after the new model's release."""
        d = t - self.release_ms
        if d < 0:
            return 1.0
        extra = self.surge_factor - 1.0
        if d < _SURGE_RAMP_MS:
            return 1.0 + extra * d / _SURGE_RAMP_MS
        d -= _SURGE_RAMP_MS + self._surge_hold_ms
        if d < 0:
            return self.surge_factor
        if d < _SURGE_DECAY_MS:
            return self.surge_factor - extra * d / _SURGE_DECAY_MS
        return 1.0

    def _build_proxy_pool(self, proxy: dict[str, Any]) -> list[tuple[str, int | None]]:
        """Egress addresses of the commercial proxy network: `pool_ips` hosts in
        `prefixes` /24s of `asns` ASNs."""
        rng = self.rng("proxy-network")
        asns: list[Asn] = [self.internet.new_asn("proxy", 2) for _ in range(max(1, proxy["asns"]))]
        prefixes = [(asns[i % len(asns)].number, asns[i % len(asns)].prefix24(rng))
                    for i in range(max(1, proxy["prefixes"]))]
        pool: list[tuple[str, int | None]] = []
        seen: set[str] = set()
        while len(pool) < max(1, proxy["pool_ips"]) and len(seen) < 254 * len(prefixes):
            asn, prefix = prefixes[rng.randrange(len(prefixes))]
            ip = f"{prefix}.{rng.randint(1, 254)}"
            if ip not in seen:
                seen.add(ip)
                pool.append((ip, asn))
        self.proxy_asns = sorted({a.number for a in asns})
        self.proxy_prefixes = sorted({f"{p}.0/24" for _, p in prefixes})
        return pool
