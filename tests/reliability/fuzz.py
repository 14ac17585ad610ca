"""Bad (and odd but valid) api_call payloads, drawn with Hypothesis, mixed into valid traffic.

Every payload is built from a real event of the stream (its *anchor*) and is
placed right after it, so its fate is known by construction:

* decoder faults (``not_utf8``, ``not_json``, NaN/Infinity, nesting deeper than
  orjson's 1024 levels, ``not_object``, a future or malformed ``v``, missing
  fields, wrong types, out-of-range values, huge strings, malformed timestamps
  and addresses) have one expected dead-letter reason each;
* engine faults use the anchor's account (so, on Kafka, the anchor's
  partition): a copy of the anchor is a ``duplicate``; an event more than the
  5-minute lateness behind the anchor is ``late`` (the anchor's time is the
  largest its partition, and the whole stream, has seen so far); an event more
  than a day beyond the *end* of the stream is ``time_out_of_range`` whatever
  the interleaving of partitions;
* odd but valid inputs are processed: an event up to the lateness behind its
  anchor (out of order within the bound), unknown extra fields, raw-text
  fields (dropped), deep nesting or huge strings inside fields nobody reads.

The payloads are drawn by a ``@given`` function with ``derandomize=True``, so
the same stream gives the same payloads on every run (same Hypothesis
version); nothing reads ``strategy.example()``. Hypothesis also mixes literals
found in the project's modules loaded at the time into a few of its draws, so
the tests call :func:`generate_isolated`, which draws in a fresh interpreter
that has loaded only this module's imports: the same payloads whether the
suite runs alone or inside the whole test session.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from models.contract import (
    API_CALL_FIELDS,
    MAX_PAYLOAD_BYTES,
    RAW_TEXT_FIELDS,
    format_rfc3339,
    parse_rfc3339,
)

__all__ = ["BAD_KINDS", "KINDS", "Fuzzed", "Mixed", "generate", "generate_isolated", "mix"]

_ROOT = Path(__file__).resolve().parents[2]

LATENESS_S = 300.0          # EngineConfig.lateness_s
MAX_FUTURE_S = 86400.0      # EngineConfig.max_future_s
ORJSON_MAX_DEPTH = 1024     # deeper documents are not JSON to orjson
_T_END = parse_rfc3339("9999-12-31T23:59:59.999Z")
# keep payload sizes clear of the 1 MiB limit (a file line also carries its "\n")
_SIZE_MARGIN = 4096

# kind -> reason a payload of that kind gets; None: it must be processed.
# (Some kinds produce payloads of several fates: the payload carries its own.)
KINDS = (
    "not_utf8", "not_json", "nan_infinity", "deep_nesting", "not_object", "future_version",
    "missing_field", "wrong_type", "out_of_range", "huge_string", "bad_timestamp", "bad_ip",
    "far_past", "late", "far_future", "duplicate", "out_of_order_ok", "extra_fields",
)
BAD_KINDS = tuple(k for k in KINDS if k not in ("out_of_order_ok", "extra_fields"))

_REQUIRED = ("v", "event_id", "ts", "account_id", "access_path", "client_ip", "model",
             "features", "input_tokens", "output_tokens", "status")
# field -> (kind, required, low, high) as in models/contract.py's rule table
_FIELDS: dict[str, tuple[str, bool, Any, Any]] = {
    "event_id": ("str", True, 1, 128), "ts": ("ts", True, None, None),
    "account_id": ("str", True, 1, 128), "org_id": ("str", False, 1, 128),
    "api_key_id": ("str", False, 1, 128), "access_path": ("enum", True, None, None),
    "client_ip": ("ip", True, None, None), "asn": ("int", False, 0, 2**63 - 1),
    "tls_fingerprint": ("str", False, 0, 128), "user_agent": ("str", False, 0, 512),
    "payment_fingerprint": ("str", False, 0, 128), "account_created_at": ("ts", False, None, None),
    "model": ("str", True, 1, 128), "features": ("features", True, 16, 32),
    "task": ("str", False, 1, 32), "prompt_simhash": ("hex16", False, None, None),
    "cot_elicitation": ("unit", False, 0, 1), "input_tokens": ("int", True, 0, 2**63 - 1),
    "output_tokens": ("int", True, 0, 2**63 - 1), "status": ("int", True, 100, 599),
    "latency_ms": ("int", False, 0, 2**63 - 1),
}
_STR_FIELDS = tuple(f for f, r in _FIELDS.items() if r[0] == "str")
_INT_FIELDS = tuple(f for f, r in _FIELDS.items() if r[0] == "int")


@dataclass(frozen=True)
class Fuzzed:
    kind: str
    payload: bytes
    expected: str | None      # dead-letter reason, or None: processed
    anchor: int               # index of the valid line it follows


@dataclass
class Mixed:
    lines: list[bytes]                 # valid and fuzzed payloads in stream order
    expected: list[str | None]         # per line: dead-letter reason or None
    kinds: list[str | None]            # per line: the fuzz kind, None for simulated events
    fuzzed: list[Fuzzed]

    def counts(self) -> dict[str, Any]:
        bad = Counter(f.kind for f in self.fuzzed if f.expected is not None)
        odd = Counter(f.kind for f in self.fuzzed if f.expected is None)
        reasons = Counter(f.expected for f in self.fuzzed if f.expected is not None)
        return {"lines": len(self.lines),
                "valid": sum(1 for e in self.expected if e is None),
                "bad": sum(bad.values()), "bad_by_kind": dict(sorted(bad.items())),
                "bad_by_reason": dict(sorted(reasons.items())),
                "odd_valid": sum(odd.values()), "odd_valid_by_kind": dict(sorted(odd.items())),
                "payload_sha256": hashlib.sha256(b"\n".join(self.lines)).hexdigest()}


# ------------------------------------------------------------------ strategies

_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=40)
# what orjson writes as it is: 64-bit integers, finite floats (it writes NaN and inf as null)
_INT = st.integers(-(2**63), 2**64 - 1)
_FLOAT = st.floats(allow_nan=False, allow_infinity=False)
_JSON_SCALARS = st.none() | st.booleans() | _INT | _FLOAT | _TEXT
_JSON = st.recursive(_JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=12)
_INVALID_UTF8 = st.sampled_from([
    b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xc3\x28", b"\xe2\x28\xa1",
    b"\xe2\x82", b"\xf0\x28\x8c\xbc", b"\xf0\x90\x28\xbc", b"\xf8\xa1\xa1\xa1\xa1",
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xe0\x80\xaf"])


def _dumps(obj: dict[str, Any], raw: dict[str, bytes] | None = None) -> bytes:
    """orjson, then literal JSON text for placeholders (NaN, deep nesting)."""
    out = orjson.dumps(obj)
    for marker, text in (raw or {}).items():
        out = out.replace(orjson.dumps(marker), text)
    return out


def _nested(depth: int, style: str) -> bytes:
    if style == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


class _Draw:
    """One payload of each kind from one Hypothesis example."""

    def __init__(self, data: Any, lines: Sequence[bytes], stream_end: float, serial: int) -> None:
        self.data = data
        self.lines = lines
        self.stream_end = stream_end
        self.serial = serial

    def draw(self, strategy: Any) -> Any:
        return self.data.draw(strategy)

    def turn(self, every: int) -> int:
        """This example's turn among ``every`` (0 .. every-1), from its position alone:
        the rare classes a test relies on come round on turn 0, 1, ... whatever
        Hypothesis draws (its derandomized draws differ between checkouts)."""
        return (self.serial // len(KINDS)) % every

    def index(self, low: int, high: int) -> int:
        """An integer in [low, high] for bounds that depend on the anchor: drawn as a
        fraction, so that every draw has the same constraints whatever the anchor
        (Hypothesis requires that of a derandomized run)."""
        return low + (self.draw(st.integers(0, 1 << 20)) * (high - low)) // (1 << 20)

    def base(self, anchor: int) -> dict[str, Any]:
        """The anchor event with a fresh event id (so a payload accepted by
        mistake is processed, never a duplicate that would hide the mistake)."""
        event = orjson.loads(self.lines[anchor])
        event["event_id"] = f"fz-{self.serial:08d}"
        return event

    # -- decoder faults
    def not_utf8(self, anchor: int) -> tuple[bytes, str | None]:
        if self.draw(st.integers(0, 5)) == 0:  # a binary blob
            blob = self.draw(st.binary(min_size=0, max_size=200))
            payload = blob + self.draw(_INVALID_UTF8)
        else:
            line = _dumps(self.base(anchor))
            at = self.index(0, len(line))
            payload = line[:at] + self.draw(_INVALID_UTF8) + line[at:]
        return payload.replace(b"\n", b"\xff").replace(b"\r", b"\xfe"), "not_utf8"

    def not_json(self, anchor: int) -> tuple[bytes, str | None]:
        line = _dumps(self.base(anchor))
        form = self.draw(st.sampled_from(["truncated", "trailing", "html", "python", "bare",
                                          "fragment"]))
        if form == "truncated":  # a partial write: every strict prefix of an object
            payload = line[: self.index(1, len(line) - 1)]
        elif form == "trailing":  # anything non-blank after the object
            payload = line + self.draw(st.sampled_from(list(",}]x;#{\"0"))).encode() \
                + self.draw(_TEXT).encode()
        elif form == "html":
            payload = b"<html><body>" + self.draw(_TEXT).encode() + b"</body></html>"
        elif form == "python":  # repr() of the dict: single quotes, None, True
            payload = repr(orjson.loads(line)).encode()
        elif form == "bare":  # unquoted keys
            payload = b"{" + b",".join(f"{k}: {orjson.dumps(v).decode()}".encode()
                                        for k, v in orjson.loads(line).items()) + b"}"
        else:
            payload = self.draw(st.sampled_from([b"{", b"[", b"]", b"}", b'"unterminated',
                                                 b"{,}", b"[1,]", b"tru", b"nul", b"'x'"]))
        return payload, "not_json"

    def nan_infinity(self, anchor: int) -> tuple[bytes, str | None]:
        event = self.base(anchor)
        field = self.draw(st.sampled_from(["cot_elicitation", "input_tokens", "output_tokens",
                                           "status", "latency_ms", "asn", "v", "x_score"]))
        literal = self.draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"nan",
                                             b"inf", b"1e999", b"-1e400", b"1E+309"]))
        event[field] = "@@literal@@"
        return _dumps(event, {"@@literal@@": literal}), "not_json"

    def deep_nesting(self, anchor: int) -> tuple[bytes, str | None]:
        event = self.base(anchor)
        style = self.draw(st.sampled_from(["list", "object"]))
        where = self.draw(st.sampled_from(["extra", "raw_text", "features", "model", "status"]))
        field = {"extra": "x_tree", "raw_text": "messages"}.get(where, where)
        # (every example makes the same draws, whichever are used: Hypothesis requires
        # it, and turn() then picks without changing what is drawn)
        too_deep = self.draw(st.booleans())
        deep = self.draw(st.integers(ORJSON_MAX_DEPTH, 20_000))  # too deep for our parsers
        # the enclosing object is one level: the value may have 1023 (at least 2: an
        # empty list is a valid "features")
        shallow = self.draw(st.integers(2, ORJSON_MAX_DEPTH - 1))
        turn = self.turn(4)
        if turn < 3:  # each outcome comes round (see turn())
            too_deep = turn == 0
            where = ("model", "model", "extra")[turn]
            field = {"extra": "x_tree"}.get(where, where)
        if too_deep:
            depth = deep
            expected: str | None = "not_json"
        else:
            depth = shallow
            expected = None if where in ("extra", "raw_text") else "wrong_type"
        event[field] = "@@deep@@"
        return _dumps(event, {"@@deep@@": _nested(depth, style)}), expected

    def not_object(self, anchor: int) -> tuple[bytes, str | None]:
        if self.draw(st.booleans()):
            value: Any = [orjson.loads(self.lines[anchor])]  # an event wrapped in an array
        else:
            value = self.draw(st.one_of(_JSON_SCALARS, st.lists(_JSON, max_size=5)))
        return orjson.dumps(value), "not_object"

    def future_version(self, anchor: int) -> tuple[bytes, str | None]:
        event = self.base(anchor)
        event["v"] = self.draw(st.one_of(
            st.just(2), st.integers(2, 2**63 - 1), st.integers(-(2**63), 0), st.just(1.0),
            st.just("1"), st.just("v1"), st.booleans(), st.none(), st.just([1]),
            _FLOAT))
        if event["v"] == 2 and self.draw(st.booleans()):  # a v2 producer adds fields
            event.update(self.draw(st.dictionaries(_TEXT.map(lambda s: "v2_" + s), _JSON,
                                                   max_size=3)))
        return _dumps(event), "unsupported_version"

    def missing_field(self, anchor: int) -> tuple[bytes, str | None]:
        event = self.base(anchor)
        gone = self.draw(st.lists(st.sampled_from(_REQUIRED), min_size=1, max_size=3,
                                  unique=True))
        for name in gone:
            del event[name]
        event.update(self._extra_fields())
        return _dumps(event), "missing_field"

    def wrong_type(self, anchor: int) -> tuple[bytes, str | None]:
        event = self.base(anchor)
        field = self.draw(st.sampled_from(sorted(_FIELDS)))
        kind, required, _, _ = _FIELDS[field]
        others = {
            "str": _INT | _FLOAT | st.booleans()
            | st.lists(_TEXT, max_size=2) | st.dictionaries(_TEXT, _TEXT, max_size=2),
            "int": _FLOAT | st.booleans() | _TEXT
            | st.lists(_INT, max_size=2) | st.integers(2**64, 2**80).map(float),
            "unit": _TEXT | st.booleans() | st.lists(st.floats(0, 1), max_size=2)
            | st.dictionaries(_TEXT, st.floats(0, 1), max_size=2),
            "features": _TEXT | _INT | st.dictionaries(_TEXT, _TEXT, max_size=2)
            | st.lists(_INT | st.none() | st.booleans(), min_size=1, max_size=3),
        }.get(kind, _INT | _FLOAT | st.booleans() | st.lists(_TEXT, max_size=2))
        if required:
            others = others | st.none()
        value = self.draw(others)
        if kind == "features" and isinstance(value, list):
            value = self.draw(st.lists(st.sampled_from(["tools", "vision"]), max_size=3)) \
                + value  # valid items first, then a non-string one
        event[field] = value
        return _dumps(event), "wrong_type"

    def out_of_range(self, anchor: int) -> tuple[bytes, str | None]:
        event = self.base(anchor)
        field = self.draw(st.sampled_from(sorted(f for f, r in _FIELDS.items()
                                                 if r[0] not in ("ts", "ip"))))
        kind, _, low, high = _FIELDS[field]
        if kind == "str":
            if low > 0 and self.draw(st.booleans()):
                value: Any = ""
            else:
                value = self.draw(st.text(st.characters(codec="utf-8"), min_size=high + 1,
                                          max_size=high + 40))
        elif kind == "int":
            value = self.draw(st.integers(high + 1, 2**64 - 1) | st.integers(-(2**63), low - 1))
        elif kind == "unit":
            value = self.draw(st.floats(1.0, 1e300, exclude_min=True)
                              | st.floats(-1e300, -1e-9) | st.integers(2, 10**9))
        elif kind == "enum":
            value = self.draw(st.sampled_from(["API", "web", "", "batch", "api "]) | _TEXT.map(
                lambda s: "x" + s))
        elif kind == "hex16":
            value = self.draw(st.sampled_from(["ABCDEF0123456789", "0123456789abcde",
                                               "0123456789abcdef0", "0x23456789abcdef",
                                               "g123456789abcdef", ""]))
        else:  # features: too many, an empty item, an item too long
            form = self.draw(st.integers(0, 2))
            if form == 0:
                value = self.draw(st.lists(st.sampled_from(["tools", "vision"]), min_size=17,
                                           max_size=40))
            elif form == 1:
                value = ["tools", ""]
            else:
                value = [self.draw(st.text(st.characters(codec="utf-8"), min_size=33,
                                           max_size=80))]
        event[field] = value
        return _dumps(event), "out_of_range"

    def huge_string(self, anchor: int) -> tuple[bytes, str | None]:
        event = self.base(anchor)
        where = self.draw(st.sampled_from(
            [*_STR_FIELDS, "ts", "client_ip", "access_path", "features", "x_blob", "prompt",
             "completion"]))
        # sizes in bytes; Hypothesis favours the ends of a range, so the rare classes
        # sit in its middle
        cls = self.draw(st.integers(0, 63))
        # (every example makes the same draws, whichever is used: see deep_nesting)
        over = self.draw(st.integers(MAX_PAYLOAD_BYTES + _SIZE_MARGIN, MAX_PAYLOAD_BYTES + 300_000))
        large = self.draw(st.integers(10_000, 200_000))
        small = self.draw(st.integers(600, 10_000))
        turn = self.turn(8)  # each class comes round (see turn())
        if turn == 0:
            cls = 5
        elif turn == 1:
            where, cls = "x_blob", 0
        elif turn == 2:
            where, cls = "model", 0
        if cls in (5, 21, 37, 53):        # over the 1 MiB payload limit
            size = over
        elif cls in (9, 13, 25, 29, 41, 57):  # tens to hundreds of kilobytes
            size = large
        else:
            size = small
        char = self.draw(st.sampled_from(["a", "Z", "0", " ", "é", "語", "\u2028", "🙂"]))
        length = max(600, size // len(char.encode()))  # over every field's limit (512)
        value = char * length
        event[where] = [value] if where == "features" else value
        payload = _dumps(event)
        if len(payload) > MAX_PAYLOAD_BYTES - _SIZE_MARGIN:
            while len(payload) <= MAX_PAYLOAD_BYTES + _SIZE_MARGIN:
                event[where] = event[where] + value[:_SIZE_MARGIN] if where != "features" \
                    else [event[where][0] + value[:_SIZE_MARGIN]]
                payload = _dumps(event)
            return payload, "too_large"
        expected = {"ts": "bad_timestamp", "client_ip": "bad_ip", "x_blob": None,
                    "prompt": None, "completion": None}.get(where, "out_of_range")
        return payload, expected

    def bad_timestamp(self, anchor: int) -> tuple[bytes, str | None]:
        event = self.base(anchor)
        field = self.draw(st.sampled_from(["ts", "ts", "account_created_at"]))
        form = self.draw(st.integers(0, 4))
        if form == 0:    # a calendar field out of its range
            y, mo, d, h, mi, s = 2026, 3, 6, 10, 0, 0
            which = self.draw(st.sampled_from(["month", "day", "hour", "minute", "second",
                                               "feb30", "year"]))
            if which == "month":
                mo = self.draw(st.sampled_from([0, 13, 20, 99]))
            elif which == "day":
                d = self.draw(st.sampled_from([0, 32, 45, 99]))
            elif which == "hour":
                h = self.draw(st.integers(24, 99))
            elif which == "minute":
                mi = self.draw(st.integers(60, 99))
            elif which == "second":
                s = self.draw(st.integers(61, 99))
            elif which == "feb30":
                mo, d = 2, self.draw(st.sampled_from([30, 31]))
            else:
                y = self.draw(st.integers(0, 1969))
            value: Any = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z"
        elif form == 1:  # not RFC 3339: no offset, date only, other layouts, epoch numbers
            value = self.draw(st.sampled_from([
                "2026-03-06T10:00:00", "2026-03-06", "06/03/2026 10:00:00", "1772791200",
                "2026-03-06T10:00:00.1234567891Z", "2026-03-06T10:00:00+24:00",
                "2026-03-06T10:00:00+05:60", "2026-03-06T10:00Z", "2026-3-6T10:00:00Z",
                "２０２６-03-06T10:00:00Z", "10000-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
                "Fri, 06 Mar 2026 10:00:00 GMT", "", "now", "2026-03-06T10:00:00ZZ",
                " 2026-03-06T10:00:00Z"]))
        elif form == 2:  # text that cannot be a timestamp
            value = "x" + self.draw(_TEXT)
        elif form == 3:  # a valid stamp with a broken character
            good = format_rfc3339(parse_rfc3339(event["ts"]))
            at = self.index(0, len(good) - 1)
            value = good[:at] + self.draw(st.sampled_from(["/", "x", "_", "!"])) + good[at + 1:]
        else:            # too long
            value = event["ts"] + "0" * self.draw(st.integers(20, 2000))
        event[field] = value
        return _dumps(event), "bad_timestamp"

    def bad_ip(self, anchor: int) -> tuple[bytes, str | None]:
        event = self.base(anchor)
        form = self.draw(st.integers(0, 2))
        if form == 0:
            value = self.draw(st.sampled_from([
                "999.1.1.1", "256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.-4",
                "fe80::1%eth0", "::g", "1:2:3:4:5:6:7:8:9", "localhost", "", " 1.2.3.4",
                "1.2.3.4/24", "[::1]", "0x7f.0.0.1", "١.٢.٣.٤"]))
        elif form == 1:  # a real address, made invalid
            ip = str(self.draw(st.ip_addresses()))
            value = ip + self.draw(st.sampled_from(["%0", ":", ".", "/32", "x"]))
        else:
            value = "x" + self.draw(_TEXT)
        event["client_ip"] = value
        return _dumps(event), "bad_ip"

    # -- engine faults: same account as the anchor, right after it
    def _at(self, anchor: int, t: float) -> bytes:
        event = self.base(anchor)
        event["ts"] = format_rfc3339(t)
        return _dumps(event)

    def far_past(self, anchor: int) -> tuple[bytes, str | None]:
        t0 = parse_rfc3339(orjson.loads(self.lines[anchor])["ts"])
        behind = self.index(86_400_000, int(t0 * 1000) - 1000) / 1000
        return self._at(anchor, max(0.0, t0 - behind)), "late"

    def late(self, anchor: int) -> tuple[bytes, str | None]:
        t0 = parse_rfc3339(orjson.loads(self.lines[anchor])["ts"])
        ms = self.draw(st.integers(int(LATENESS_S * 1000) + 1, 86_400_000))
        if self.turn(4) == 0:  # just past the bound (see turn())
            ms = int(LATENESS_S * 1000) + 1 + ms % 49_000
        return self._at(anchor, t0 - ms / 1000), "late"

    def out_of_order_ok(self, anchor: int) -> tuple[bytes, str | None]:
        t0 = parse_rfc3339(orjson.loads(self.lines[anchor])["ts"])
        ms = self.draw(st.integers(0, int(LATENESS_S * 1000) - 1))
        if self.turn(4) == 0:  # just inside the bound (see turn())
            ms = int(LATENESS_S * 1000) - 1 - ms % 49_000
        return self._at(anchor, t0 - ms / 1000), None

    def far_future(self, anchor: int) -> tuple[bytes, str | None]:
        ahead = self.draw(st.floats(1.0, 3000 * 86400.0) | st.just(_T_END - self.stream_end
                                                                   - MAX_FUTURE_S))
        return self._at(anchor, min(self.stream_end + MAX_FUTURE_S + ahead, _T_END)), \
            "time_out_of_range"

    def duplicate(self, anchor: int) -> tuple[bytes, str | None]:
        line = self.lines[anchor]
        if self.draw(st.booleans()):
            return line, "duplicate"  # the very same record, sent again
        event = orjson.loads(line)  # same id and time, other contents
        event["model"] = self.draw(st.sampled_from(["claude-sim-2", "claude-sim-3", "other"]))
        event["input_tokens"] = self.draw(st.integers(0, 100_000))
        event.update(self._extra_fields())
        return _dumps(event), "duplicate"

    def extra_fields(self, anchor: int) -> tuple[bytes, str | None]:
        event = self.base(anchor)
        extra = self._extra_fields()
        if not extra:
            extra = {"x_extra": 1}
        raw = self.draw(st.lists(st.sampled_from(sorted(RAW_TEXT_FIELDS)), max_size=3,
                                 unique=True))
        for name in raw:
            extra[name] = self.draw(_JSON)
        event.update(extra)
        return _dumps(event), None

    def _extra_fields(self) -> dict[str, Any]:
        names = _TEXT.filter(lambda s: s not in API_CALL_FIELDS and s not in RAW_TEXT_FIELDS)
        return self.draw(st.dictionaries(names, _JSON, max_size=4))


def generate(lines: Sequence[bytes], bad: int, *, warmup: int = 200) -> list[Fuzzed]:
    """At least ``bad`` bad payloads (plus odd valid ones), anchored across ``lines``."""
    stream_end = max(parse_rfc3339(orjson.loads(lines[i])["ts"])
                     for i in range(max(0, len(lines) - 2000), len(lines)))
    per_example = len(BAD_KINDS) - 1  # (deep nesting and huge strings may be valid)
    examples = math.ceil(bad / per_example) + 2
    slots = examples * len(KINDS)
    span = len(lines) - warmup
    out: list[Fuzzed] = []

    @settings(derandomize=True, max_examples=examples, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck),
              print_blob=False)
    @given(st.data())
    def draw_examples(data: Any) -> None:
        drawn: list[Fuzzed] = []
        for kind in KINDS:
            slot = len(out) + len(drawn)
            anchor = warmup + (slot * span) // slots
            drawer = _Draw(data, lines, stream_end, slot)
            anchor = min(len(lines) - 1, anchor + drawer.index(0, span // slots))
            maker: Callable[[int], tuple[bytes, str | None]] = getattr(drawer, kind)
            payload, expected = maker(anchor)
            drawn.append(Fuzzed(kind, payload, expected, anchor))
        out.extend(drawn)  # only whole examples (an example Hypothesis abandons adds nothing)

    draw_examples()
    got = sum(1 for f in out if f.expected is not None)
    if got < bad:
        raise AssertionError(f"Hypothesis gave {got} bad payloads, {bad} wanted")
    for f in out:
        assert b"\n" not in f.payload and f.payload.strip(), f  # one line each, never blank
    return out


def generate_isolated(events: Path, bad: int) -> list[Fuzzed]:
    """:func:`generate` over the lines of ``events``, in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fuzzed.pickle"
        subprocess.run([sys.executable, "-m", "tests.reliability.fuzz", str(events), str(bad),
                        str(out)], cwd=_ROOT, check=True)
        return [Fuzzed(*fields) for fields in pickle.loads(out.read_bytes())]


def mix(lines: Sequence[bytes], fuzzed: Sequence[Fuzzed]) -> Mixed:
    """The valid lines with each fuzzed payload right after its anchor."""
    after: dict[int, list[Fuzzed]] = {}
    for f in fuzzed:
        after.setdefault(f.anchor, []).append(f)
    out_lines: list[bytes] = []
    expected: list[str | None] = []
    kinds: list[str | None] = []
    for i, line in enumerate(lines):
        out_lines.append(line)
        expected.append(None)
        kinds.append(None)
        for f in after.get(i, ()):
            out_lines.append(f.payload)
            expected.append(f.expected)
            kinds.append(f.kind)
    return Mixed(out_lines, expected, kinds, list(fuzzed))


if __name__ == "__main__":  # python -m tests.reliability.fuzz EVENTS.jsonl BAD OUT.pickle
    _events, _bad, _out = sys.argv[1:]
    _drawn = generate(Path(_events).read_bytes().splitlines(), int(_bad))
    Path(_out).write_bytes(pickle.dumps([(f.kind, f.payload, f.expected, f.anchor)
                                         for f in _drawn]))
