"""Writing api_call v1 lines: one dict per call, orjson, large chunks, dirty lines.

Everything a call needs that is not about who sent it or what it asked
(event id, timestamp text, status, latency, the rare missing classifier
output) is decided here, from the calling group's own random stream.
"""

from __future__ import annotations

import bisect
import math
import queue
import random
import threading
from collections import Counter
from pathlib import Path
from typing import IO, Any

import orjson

from .clock import MINUTE_SUFFIXES, format_ms

__all__ = ["BAD_KINDS", "EventSink", "STATUS_NORMAL", "STATUS_THROTTLED"]

_DUMP = orjson.dumps
_NEWLINE = orjson.OPT_APPEND_NEWLINE
# Lines go into one bytearray, written out at about a megabyte: keeping thousands of
# line objects alive instead makes every allocation a slow trip to the system.
_FLUSH_BYTES = 1 << 20

# Cumulative probabilities of status 200, then 429, then 500 (the rest is 400).
STATUS_NORMAL = (0.988, 0.994, 0.997)
STATUS_THROTTLED = (0.955, 0.990, 0.994)  # a batch job at its rate limit
# Generation speed, milliseconds per output token.
_MS_PER_TOKEN = {"claude-sim-2": 12.0, "claude-sim-3": 18.0, "claude-sim-3-mini": 8.0,
                 "claude-sim-4": 22.0}

BAD_KINDS = ("not_json", "missing_field", "wrong_type", "out_of_range", "bad_version",
             "duplicate_id", "raw_text")
_BAD_WEIGHTS = (0.2, 0.2, 0.2, 0.15, 0.05, 0.1, 0.1)
RAW_TEXT_MARKER = "SIMULATED-RAW-TEXT"

# Identity tuple: (account_id, org_id, account_created_at).
Ident = tuple[str, str | None, str | None]
# Client profile tuple: (access_path, api_key_id, tls_fingerprint, user_agent, payment_fingerprint).
Profile = tuple[str, str | None, str | None, str | None, str | None]


class _ChunkWriter:
    """Writes chunks to a file from a background thread, so the kernel's copy
    overlaps the generation of the next chunk; a bounded queue keeps memory flat."""

    def __init__(self, path: Path) -> None:
        self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed by the thread
        self._queue: queue.Queue[bytearray | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="simulator-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            while (chunk := self._queue.get()) is not None:
                if self._error is None:
                    try:
                        self._file.write(chunk)
                    except BaseException as exc:  # reported by put() or close()
                        self._error = exc
        finally:
            self._file.close()

    def put(self, chunk: bytearray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class EventSink:
    """Buffers api_call lines and writes them in chunks; counts events per group."""

    def __init__(self, path: Path, groups: list[str], bad_rate: float, seed: int) -> None:
        self._writer = _ChunkWriter(path)
        self._buf = bytearray()
        self.groups = groups
        self.counts = [0] * len(groups)
        self.seen: set[str] = set()  # accounts with at least one call; callers add to it
        self.bad: Counter[str] = Counter()
        self._minute = -1
        self._ts_prefix = ""
        self._bad_rate = bad_rate
        self._bad_rng = random.Random(f"{seed}:dirty-lines")
        self._bad_cum = [sum(_BAD_WEIGHTS[: i + 1]) / sum(_BAD_WEIGHTS) for i in range(len(BAD_KINDS))]
        self._countdown = self._next_bad_gap()

    def _next_bad_gap(self) -> int:
        if self._bad_rate <= 0:
            return -1
        u = 1.0 - self._bad_rng.random()
        return 1 + int(math.log(u) / math.log1p(-self._bad_rate))

    def call(
        self,
        rng: random.Random,
        group: int,
        t: int,
        ident: Ident,
        prof: Profile,
        ip: str,
        asn: int | None,
        model: str,
        task: str,
        features: tuple[str, ...],
        simhash: int,
        cot: float,
        tin: int,
        tout: int,
        status_cut: tuple[float, float, float] = STATUS_NORMAL,
    ) -> None:
        """Write one call made at `t` (ms) by `ident` through `prof`."""
        r = rng.random()
        if r < status_cut[0]:
            status = 200
            latency = int((220.0 + tin * 0.01 + tout * _MS_PER_TOKEN[model]) * (0.7 + 0.6 * rng.random()))
        else:
            tout = 0
            if r < status_cut[1]:
                status, latency = 429, 12 + int(rng.random() * 60)
            elif r < status_cut[2]:
                status, latency = 500, 200 + int(rng.random() * 20_000)
            else:
                status, latency = 400, 8 + int(rng.random() * 40)
        r = rng.random()
        # The upstream classifiers occasionally time out or see no text at all.
        cot_out: float | None = None if r < 0.002 else int(cot * 1000.0 + 0.5) / 1000.0
        hash_out: str | None = None if 0.002 <= r < 0.004 else f"{simhash:016x}"
        minute = t // 60_000
        if minute != self._minute:
            self._minute = minute
            self._ts_prefix = format_ms(minute * 60_000)[:17]
        ev = {
            "v": 1,
            "event_id": f"{rng.getrandbits(128):032x}",
            "ts": self._ts_prefix + MINUTE_SUFFIXES[t - minute * 60_000],
            "account_id": ident[0],
            "org_id": ident[1],
            "api_key_id": prof[1],
            "access_path": prof[0],
            "client_ip": ip,
            "asn": asn,
            "tls_fingerprint": prof[2],
            "user_agent": prof[3],
            "payment_fingerprint": prof[4],
            "account_created_at": ident[2],
            "model": model,
            "features": features,
            "task": task,
            "prompt_simhash": hash_out,
            "cot_elicitation": cot_out,
            "input_tokens": tin,
            "output_tokens": tout,
            "status": status,
            "latency_ms": latency,
        }
        line = _DUMP(ev, None, _NEWLINE)
        buf = self._buf
        buf += line
        self.counts[group] += 1
        if self._countdown > 0:
            self._countdown -= 1
            if self._countdown == 0:
                self._inject(ev, line)
                self._countdown = self._next_bad_gap()
        if len(buf) >= _FLUSH_BYTES:
            self._writer.put(buf)
            self._buf = bytearray()

    def _inject(self, ev: dict[str, Any], line: bytes) -> None:
        """Append one malformed (or raw-text) line derived from the event just written."""
        rng = self._bad_rng
        kind = BAD_KINDS[min(bisect.bisect(self._bad_cum, rng.random()), len(BAD_KINDS) - 1)]
        bad = dict(ev)
        bad["event_id"] = f"{rng.getrandbits(128):032x}"
        out: bytes
        if kind == "not_json":
            choice = rng.randrange(3)
            if choice == 0:  # a partial write
                out = line[: rng.randint(5, len(line) - 10)] + b"\n"
            elif choice == 1:
                out = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
            else:
                out = b'{"v": 1, "event_id": ' + bad["event_id"].encode() + b", ts: NaN}\n"
        elif kind == "missing_field":
            del bad[rng.choice(("v", "event_id", "ts", "account_id", "access_path", "client_ip",
                                "model", "features", "input_tokens", "output_tokens", "status"))]
            out = _DUMP(bad, option=_NEWLINE)
        elif kind == "wrong_type":
            field: str
            value: Any
            field, value = rng.choice((
                ("input_tokens", str(ev["input_tokens"])), ("asn", f"AS{ev['asn']}"),
                ("features", ",".join(ev["features"]) or "none"), ("status", str(ev["status"])),
                ("cot_elicitation", "high"), ("account_id", 12345), ("ts", 1772755200),
                ("latency_ms", [ev["latency_ms"]]), ("event_id", None),
            ))
            bad[field] = value
            out = _DUMP(bad, option=_NEWLINE)
        elif kind == "out_of_range":
            field, value = rng.choice((
                ("cot_elicitation", 1.7), ("cot_elicitation", -0.2), ("input_tokens", -5),
                ("output_tokens", -1), ("status", 999), ("latency_ms", -1),
                ("access_path", "satellite"), ("prompt_simhash", "zz-not-a-hash"),
                ("features", ["tools"] * 17), ("ts", "2026-13-45T99:00:00.000Z"),
                ("client_ip", "999.12.0.1"),
            ))
            bad[field] = value
            out = _DUMP(bad, option=_NEWLINE)
        elif kind == "bad_version":
            bad["v"] = 2
            out = _DUMP(bad, option=_NEWLINE)
        elif kind == "duplicate_id":
            out = line  # an at-least-once producer retrying the previous event
        else:
            bad["prompt"] = f"{RAW_TEXT_MARKER} please think step by step about case {rng.randrange(10**6)}"
            out = _DUMP(bad, option=_NEWLINE)
        self._buf += out
        self.bad[kind] += 1

    def close(self) -> None:
        if self._buf:
            self._writer.put(self._buf)
            self._buf = bytearray()
        self._writer.close()

    @property
    def events(self) -> int:
        return sum(self.counts)
