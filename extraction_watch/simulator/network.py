"""The simulated internet: autonomous systems, IP prefixes and client software.

`Internet` is built once per seed from its own random stream, so every group
of accounts draws its addresses from the same world. Client software
(`client_for_path`) carries a JA4-like TLS fingerprint and a User-Agent; the
official SDKs and browsers have fixed fingerprints shared by thousands of
accounts, as in real traffic.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from dataclasses import dataclass, field

__all__ = ["Asn", "Internet", "client_for_path", "cumulative", "custom_client", "official_client"]

# First octets never used for simulated public addresses (private, shared,
# loopback, link-local, documentation-heavy, multicast and reserved space).
_RESERVED_FIRST_OCTETS = frozenset({0, 10, 100, 127, 169, 172, 192, 198, 203} | set(range(224, 256)))
# Well-known hosting and cloud networks (public ASNs; only the numbers are used).
_HOSTING_ASNS = (16509, 14618, 15169, 8075, 14061, 24940, 16276, 63949, 20473, 396982,
                 13335, 45102, 37963, 31898, 51167, 197540, 9009, 60781, 46606, 36352)
_WORDS = ("acme", "nova", "pixel", "orbit", "lumen", "delta", "quill", "cobalt", "ember",
          "atlas", "maple", "zenith", "harbor", "vector", "tandem", "juniper", "sable")


@dataclass
class Asn:
    """An autonomous system and the address blocks it announces."""

    number: int
    kind: str  # residential, mobile, hosting, campus, enterprise, proxy
    v4_blocks: list[tuple[int, int]] = field(default_factory=list)  # /16s as (a, b)
    v6_prefix: str = ""  # 48-bit prefix, e.g. "2a02:1f3c:9d00"

    def ipv4(self, rng: random.Random) -> str:
        a, b = self.v4_blocks[int(rng.random() * len(self.v4_blocks))]
        return f"{a}.{b}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def ipv6(self, rng: random.Random) -> str:
        iface = rng.getrandbits(32)
        return f"{self.v6_prefix}:{rng.getrandbits(16):x}::{iface >> 16:x}:{iface & 0xFFFF:x}"

    def prefix24(self, rng: random.Random) -> str:
        """A random /24 inside this ASN, as 'a.b.c'."""
        a, b = self.v4_blocks[int(rng.random() * len(self.v4_blocks))]
        return f"{a}.{b}.{rng.randrange(256)}"


class Internet:
    """A seeded population of ASNs with unique /16 blocks.

    >>> net = Internet(random.Random(7))
    >>> ip, asn = net.residential_ip(random.Random(1))
    >>> ip.count(".") == 3 or ":" in ip, isinstance(asn, int)
    (True, True)
    """

    def __init__(self, rng: random.Random, residential: int = 160, mobile: int = 24) -> None:
        self._rng = rng
        self._used_numbers: set[int] = set()
        self._used_blocks: set[tuple[int, int]] = set()
        self.residential = [self.new_asn("residential", rng.randint(2, 6)) for _ in range(residential)]
        self.mobile = [self.new_asn("mobile", rng.randint(2, 4)) for _ in range(mobile)]
        self.hosting = [self.new_asn("hosting", rng.randint(3, 8), number=n) for n in _HOSTING_ASNS]
        # Zipf-like market shares: a few big ISPs and clouds, a long tail.
        self._residential_cum = cumulative([1.0 / (i + 1) ** 0.9 for i in range(residential)])
        self._mobile_cum = cumulative([1.0 / (i + 1) for i in range(mobile)])
        self._hosting_cum = cumulative([1.0 / (i + 1) ** 0.8 for i in range(len(self.hosting))])

    def new_asn(self, kind: str, blocks: int, number: int | None = None) -> Asn:
        """A fresh ASN of `kind` with `blocks` unused /16s."""
        rng = self._rng
        if number is None:
            while True:
                number = rng.randint(1000, 64000) if rng.random() < 0.6 else rng.randint(131072, 399999)
                if number not in self._used_numbers and number not in _HOSTING_ASNS:
                    break
        self._used_numbers.add(number)
        asn = Asn(number, kind, v6_prefix=f"2{rng.choice('4568a')}{rng.getrandbits(8):02x}:"
                                          f"{rng.getrandbits(16):x}:{rng.getrandbits(16):x}")
        while len(asn.v4_blocks) < blocks:
            block = (rng.randint(1, 223), rng.randrange(256))
            if block[0] not in _RESERVED_FIRST_OCTETS and block not in self._used_blocks:
                self._used_blocks.add(block)
                asn.v4_blocks.append(block)
        return asn

    def pick_residential(self, rng: random.Random) -> Asn:
        return self.residential[bisect.bisect(self._residential_cum, rng.random())]

    def pick_mobile(self, rng: random.Random) -> Asn:
        return self.mobile[bisect.bisect(self._mobile_cum, rng.random())]

    def pick_hosting(self, rng: random.Random) -> Asn:
        return self.hosting[bisect.bisect(self._hosting_cum, rng.random())]

    def residential_ip(self, rng: random.Random, ipv6_share: float = 0.15) -> tuple[str, int]:
        asn = self.pick_residential(rng)
        ip = asn.ipv6(rng) if rng.random() < ipv6_share else asn.ipv4(rng)
        return ip, asn.number

    def mobile_ip(self, rng: random.Random, ipv6_share: float = 0.3) -> tuple[str, int]:
        asn = self.pick_mobile(rng)
        ip = asn.ipv6(rng) if rng.random() < ipv6_share else asn.ipv4(rng)
        return ip, asn.number

    def hosting_ip(self, rng: random.Random, ipv6_share: float = 0.05) -> tuple[str, int]:
        asn = self.pick_hosting(rng)
        ip = asn.ipv6(rng) if rng.random() < ipv6_share else asn.ipv4(rng)
        return ip, asn.number


def cumulative(weights: list[float]) -> list[float]:
    """Cumulative, normalised weights for `bisect` picks."""
    total = sum(weights)
    out, acc = [], 0.0
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0 + 1e-9  # bisect never runs off the end
    return out


def _ja4(seed_text: str, ciphers: int, extensions: int, alpn: str) -> str:
    digest = hashlib.sha256(seed_text.encode()).hexdigest()
    return f"t13d{ciphers:02d}{extensions:02d}{alpn}_{digest[:12]}_{digest[12:24]}"


def random_ja4(rng: random.Random) -> str:
    """A JA4-like fingerprint of some uncommon client build."""
    return (f"t13d{rng.randint(8, 40):02d}{rng.randint(8, 20):02d}{rng.choice(('h2', 'h1', '00'))}"
            f"_{rng.getrandbits(48):012x}_{rng.getrandbits(48):012x}")


# name: (TLS fingerprint, User-Agent variants). Seed-independent, like real software.
_OFFICIAL: dict[str, tuple[str, tuple[str, ...]]] = {
    "sdk-python": (_ja4("sdk-python/httpx", 18, 12, "h1"),
                   tuple(f"anthropic-sim-python/{v}" for v in
                         ("0.39.0", "0.40.0", "0.42.0", "0.45.2", "0.49.0"))),
    "sdk-typescript": (_ja4("sdk-typescript/node", 17, 14, "h2"),
                       tuple(f"anthropic-sim-typescript/{v}" for v in
                             ("0.30.1", "0.32.1", "0.36.3", "0.39.0"))),
    "sdk-java": (_ja4("sdk-java/okhttp", 15, 12, "h2"),
                 ("anthropic-sim-java/1.2.0", "anthropic-sim-java/2.0.1")),
    "requests": (_ja4("python/openssl", 18, 12, "h1"),
                 ("python-requests/2.31.0", "python-requests/2.32.3")),
    "curl": (_ja4("curl/openssl", 31, 10, "h2"), ("curl/7.81.0", "curl/8.5.0", "curl/8.7.1")),
    "go": (_ja4("go/crypto-tls", 13, 10, "h2"), ("Go-http-client/2.0", "Go-http-client/1.1")),
    "chrome": (_ja4("chrome/boringssl", 15, 16, "h2"),
               tuple(f"Mozilla/5.0 ({os}) AppleWebKit/537.36 (KHTML, like Gecko) "
                     f"Chrome/{v}.0.0.0 Safari/537.36"
                     for os in ("Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7",
                                "X11; Linux x86_64")
                     for v in (132, 133, 134))),
    "edge": (_ja4("chrome/boringssl", 15, 16, "h2"),
             ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/133.0.0.0 Safari/537.36 Edg/133.0.0.0",)),
    "safari": (_ja4("safari/securetransport", 20, 14, "h2"),
               ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
                "(KHTML, like Gecko) Version/18.3 Safari/605.1.15",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) AppleWebKit/605.1.15 "
                "(KHTML, like Gecko) Version/18.3 Mobile/15E148 Safari/604.1")),
    "firefox": (_ja4("firefox/nss", 17, 16, "h2"),
                ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:135.0) Gecko/20100101 Firefox/135.0",
                 "Mozilla/5.0 (X11; Linux x86_64; rv:135.0) Gecko/20100101 Firefox/135.0")),
    "agent-cli": (_ja4("agent-cli/node", 17, 14, "h2"),
                  tuple(f"claude-sim-cli/1.0.{v} (external, cli)" for v in (21, 24, 28, 31, 33))),
    "cloud-gateway": (_ja4("cloud-gateway/java", 12, 11, "h2"),
                      ("cloud-sim-gateway/2.1", "cloud-sim-gateway/2.3")),
}

# Which software reaches each access path, with market shares; "custom" is an
# in-house client with its own fingerprint.
_PATH_CLIENTS: dict[str, tuple[tuple[str, float], ...]] = {
    "api": (("sdk-python", 0.42), ("sdk-typescript", 0.24), ("requests", 0.08), ("go", 0.06),
            ("sdk-java", 0.05), ("curl", 0.03), ("custom", 0.12)),
    "chat": (("chrome", 0.58), ("safari", 0.24), ("firefox", 0.10), ("edge", 0.08)),
    "agent": (("agent-cli", 0.9), ("sdk-typescript", 0.1)),
    "cloud": (("cloud-gateway", 1.0),),
    "other": (("custom", 0.5), ("requests", 0.3), ("curl", 0.2)),
}
_PATH_CUM = {path: (tuple(n for n, _ in opts), cumulative([w for _, w in opts]))
             for path, opts in _PATH_CLIENTS.items()}


def official_client(name: str, rng: random.Random) -> tuple[str, str]:
    """(TLS fingerprint, User-Agent) of an official client, one version picked."""
    tls, agents = _OFFICIAL[name]
    return tls, agents[int(rng.random() * len(agents))]


def custom_client(rng: random.Random) -> tuple[str, str]:
    """An in-house client: its own fingerprint and product token."""
    ua = f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}/{rng.randint(0, 4)}.{rng.randint(0, 20)}"
    return random_ja4(rng), ua


def client_for_path(path: str, rng: random.Random) -> tuple[str, str]:
    """(TLS fingerprint, User-Agent) of the software an ordinary customer uses on `path`."""
    names, cum = _PATH_CUM[path]
    name = names[bisect.bisect(cum, rng.random())]
    if name == "custom":
        return custom_client(rng)
    return official_client(name, rng)
