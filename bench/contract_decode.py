"""Benchmark: the api_call decoder against a loop that only reads and parses lines.

Generates ~200k realistic synthetic api_call v1 events (seeded), serialises
them as JSON Lines in memory, then times three loops over the same lines:

- ``orjson.loads`` alone (the floor: read a line, parse it);
- :func:`models.contract.decode_api_call` (read, parse, validate, build the event);

and prints microseconds per event and the decoder's speed as a share of the
floor's. The engine's budget is that decoding plus everything after it keeps
at least 15% of the floor's speed.

Run: ``.venv/bin/python bench/contract_decode.py [--events N] [--seed S] [--repeat R]``
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.contract import decode_api_call, format_rfc3339  # noqa: E402

FEATURES = ("tools", "code", "vision", "computer_use", "long_context", "json_mode", "reasoning")
TASKS = ("coding", "reasoning", "data_analysis", "rubric_grading", "rewrite", "chat", "agentic")
MODELS = ("frontier-2025-10", "frontier-2026-02", "frontier-mini-2026-01")
PATHS = ("api", "api", "api", "chat", "cloud", "agent", "other")
USER_AGENTS = (
    "python-httpx/0.27.0",
    "OpenAI/Python 1.40.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
    "node-fetch/3.3.2",
    "curl/8.5.0",
)


def make_events(n: int, seed: int) -> list[bytes]:
    """``n`` api_call v1 lines: a few thousand accounts, IPs and templates, ms timestamps."""
    rng = random.Random(seed)
    accounts = [f"acct-{i:07d}" for i in range(5000)]
    created = {a: format_rfc3339(1.6e9 + rng.randrange(0, 60_000_000)) for a in accounts}
    ips = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
           for _ in range(3000)]
    ips += [f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}" for _ in range(1000)]
    templates = [rng.getrandbits(64) for _ in range(500)]
    t = 1772791200.0
    lines = []
    for i in range(n):
        t += rng.expovariate(50.0)
        account = rng.choice(accounts)
        event = {
            "v": 1,
            "event_id": f"evt-{seed:04d}-{i:010d}",
            "ts": format_rfc3339(t),
            "account_id": account,
            "org_id": f"org-{hash(account) % 900:05d}" if rng.random() < 0.7 else None,
            "api_key_id": f"key-{account[5:]}-{rng.randrange(3)}",
            "access_path": rng.choice(PATHS),
            "client_ip": rng.choice(ips),
            "asn": rng.choice((13335, 16509, 14061, 64512, 7922)),
            "tls_fingerprint": f"t13d1516h2_{rng.getrandbits(48):012x}_{rng.randrange(4):012x}",
            "user_agent": rng.choice(USER_AGENTS),
            "payment_fingerprint": f"pm_{rng.getrandbits(40):010x}",
            "account_created_at": created[account],
            "model": rng.choice(MODELS),
            "features": rng.sample(FEATURES, rng.randrange(0, 4)),
            "task": rng.choice(TASKS),
            "prompt_simhash": f"{rng.choice(templates) ^ (1 << rng.randrange(64)):016x}",
            "cot_elicitation": round(rng.random() ** 3, 4),
            "input_tokens": rng.randrange(20, 8000),
            "output_tokens": rng.randrange(1, 4000),
            "status": 200 if rng.random() < 0.97 else rng.choice((400, 429, 500)),
            "latency_ms": rng.randrange(80, 30000),
        }
        lines.append(orjson.dumps(event) + b"\n")
    return lines


def time_loop(data: bytes, parse) -> float:
    """Seconds to read every line of ``data`` and hand it to ``parse``."""
    start = time.perf_counter()
    for line in io.BytesIO(data):
        parse(line)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="best of R runs")
    args = parser.parse_args()

    lines = make_events(args.events, args.seed)
    data = b"".join(lines)
    n = len(lines)
    print(f"{n} events, mean {len(data) / n:.0f} bytes/line")

    # Warm the decoder's memo tables once, as a long-running consumer would be.
    for line in lines[:1000]:
        decode_api_call(line)
    loads = min(time_loop(data, orjson.loads) for _ in range(args.repeat))
    decode = min(time_loop(data, decode_api_call) for _ in range(args.repeat))
    print(f"read + orjson.loads      {loads / n * 1e6:6.2f} us/event")
    print(f"read + decode_api_call   {decode / n * 1e6:6.2f} us/event")
    print(f"decode speed / loads speed = {loads / decode:.1%}")


if __name__ == "__main__":
    main()
