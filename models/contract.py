"""The event contract: decoding and validating the events extraction-watch reads.

Two event types enter the pipeline, each one JSON object per message (a Kafka
record or a line of a JSON Lines file):

- ``api_call`` v1, one per call to the LLM API, decoded by
  :func:`decode_api_call` into an :class:`ApiCall`;
- ``model_release`` v1, one per model launch, decoded by
  :func:`decode_model_release` into a :class:`ModelRelease`.

The JSON Schemas in ``models/schemas/`` describe the same contract for
producers; this module is the implementation the engine trusts.

The protocol, stated once:

- A payload that breaks the contract raises :class:`ContractError`, whose
  ``reason`` is one of :data:`DEAD_LETTER_REASONS`; the caller turns it into a
  dead-letter record with :func:`dead_letter` and moves on. No other exception
  escapes the decoders for bad input.
- Unknown fields are ignored and never forwarded.
- Raw text (:data:`RAW_TEXT_FIELDS`: ``prompt``, ``completion``, ``messages``,
  ``text``, ``content``) is dropped on sight and only counted: it is never
  stored on the event, never put into an error message, never forwarded, and is
  removed at every nesting level from dead letters. A payload that carries raw
  text but is otherwise valid is a valid event.
- Event time comes only from the events; nothing here reads the clock.

Decoding is the per-event hot path, so :func:`decode_api_call` is written as
one straight run of ``type(x) is ...`` checks and keeps bounded memoisation
tables (timestamp minute prefixes, timestamp second/offset suffixes, whole
account-creation timestamps, IP address validity), each cleared when it
passes its bound (10k to 100k entries). They cache pure functions of their keys, so results
never depend on what was decoded before.

>>> event = decode_api_call(
...     b'{"v": 1, "event_id": "e-1", "ts": "2026-03-06T10:00:00.123Z",'
...     b' "account_id": "acct-7", "access_path": "api", "client_ip": "203.0.113.9",'
...     b' "model": "frontier-2", "features": ["tools"], "input_tokens": 812,'
...     b' "output_tokens": 1204, "status": 200, "prompt": "never kept"}'
... )
>>> event.account_id, event.t, event.raw_text_dropped
('acct-7', 1772791200.123, 1)
>>> "prompt" in event.to_dict()
False
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from operator import attrgetter, itemgetter
from typing import Annotated, Any, Literal

import msgspec
import orjson
from msgspec import Meta

__all__ = [
    "ACCESS_PATHS",
    "API_CALL_FIELDS",
    "CONTRACT_VERSION",
    "DEAD_LETTER_PAYLOAD_BYTES",
    "DEAD_LETTER_REASONS",
    "MAX_PAYLOAD_BYTES",
    "RAW_TEXT_FIELDS",
    "ApiCall",
    "ContractError",
    "ModelRelease",
    "dead_letter",
    "decode_api_call",
    "decode_model_release",
    "format_rfc3339",
    "parse_rfc3339",
]

CONTRACT_VERSION = 1
"""The only ``v`` this decoder reads."""

MAX_PAYLOAD_BYTES = 1 << 20
"""Payloads larger than this (1 MiB, before decoding) are rejected as ``too_large``."""

DEAD_LETTER_PAYLOAD_BYTES = 64 << 10
"""A dead letter's ``payload`` serialises to at most this many bytes (64 KiB)."""

RAW_TEXT_FIELDS = frozenset({"prompt", "completion", "messages", "text", "content"})
"""Fields that carry raw prompt or completion text: dropped on sight, only counted."""

ACCESS_PATHS = frozenset({"api", "chat", "cloud", "agent", "other"})
"""How a call reached the model: the direct API, a chat product, a third-party
cloud platform, an agent product, or something else."""

DEAD_LETTER_REASONS = (
    # Raised by the decoders in this module.
    "not_utf8",
    "not_json",
    "not_object",
    "unsupported_version",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "bad_timestamp",
    "bad_ip",
    "too_large",
    # Raised by the engine: a repeated event_id, an event older than the
    # watermark allows, an event time too far from the stream's time.
    "duplicate",
    "late",
    "time_out_of_range",
)
"""Every machine-readable ``reason`` a :class:`ContractError` or dead letter can carry."""

API_CALL_FIELDS = (
    "v",
    "event_id",
    "ts",
    "account_id",
    "org_id",
    "api_key_id",
    "access_path",
    "client_ip",
    "asn",
    "tls_fingerprint",
    "user_agent",
    "payment_fingerprint",
    "account_created_at",
    "model",
    "features",
    "task",
    "prompt_simhash",
    "cot_elicitation",
    "input_tokens",
    "output_tokens",
    "status",
    "latency_ms",
)
"""The api_call v1 fields, in the order they are checked (the first bad one is reported)."""

_MESSAGE_VALUE_CHARS = 80
# Unbounded counts stop at the signed 64-bit maximum, so every event can be
# forwarded (orjson writes at most 64-bit integers) and stored as a bigint.
_INT64_MAX = (1 << 63) - 1
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# First instant of year 10000: contract timestamps lie in [0, _T_END).
_T_END = (date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1) * 86400
# Memo tables are cleared when they pass their bound (they cache pure functions,
# so results never depend on them); the bounds keep a long run's memory flat:
# a minute prefix is hot for a minute, a producer's IP or account creation time
# for its sessions, while the 60,000 ":SS.mmmZ" suffixes stay hot for ever.
_CACHE_LIMIT = 100_000  # second/offset suffixes
_MINUTE_CACHE_LIMIT = 10_000  # about a week of minutes
_ENTITY_CACHE_LIMIT = 50_000  # IP validity, account creation times
_MAX_TS_CHARS = len("2026-03-06T10:00:00.123456789+02:00")
# Longest textual IP address ipaddress accepts without a scope id
# ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255").
_MAX_IP_CHARS = 45


class ContractError(ValueError):
    """A payload breaks the event contract.

    ``reason`` is a code from :data:`DEAD_LETTER_REASONS`, ``message`` says what
    is wrong for a human, ``field`` names the offending field (or is None).
    Messages name fields and types and may quote short numbers, booleans and
    nulls, but never the content of a string: a string in the wrong field
    might be raw text.

    >>> try:
    ...     decode_api_call(b'{"v": 1, "event_id": 7}')
    ... except ContractError as exc:
    ...     print(exc.reason, exc.field, "|", exc.message)
    wrong_type event_id | field 'event_id' must be a string, got integer 7
    """

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.message, self.field))


# --------------------------------------------------------------------------
# RFC 3339 timestamps
# --------------------------------------------------------------------------

# Fixed-width date-time prefix (16 chars, up to the minute), then seconds,
# optional fraction, offset. ASCII digits only: str.isdigit and int() would
# accept other scripts' digits.
_TS_SUFFIX = r":([0-9]{2})(?:\.([0-9]{1,9}))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
_TS_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})" + _TS_SUFFIX)
# the part after the 16-character minute prefix, on its own
_TS_SUFFIX_RE = re.compile(_TS_SUFFIX)
# "YYYY-MM-DDTHH:MM" -> epoch seconds of that minute read as UTC.
_minute_epochs: dict[str, int] = {}
# ":SS[.fff]Z" or ":SS[.fff]+HH:MM" -> seconds to add to the minute (offset applied).
_suffix_seconds: dict[str, float] = {}
# ":SS" -> SS (00..60), the whole seconds of ":SS.fffZ" suffixes
_WHOLE_SECONDS = {f":{sec:02d}": sec for sec in range(61)}
# Whole string -> epoch seconds, for low-cardinality timestamps (account_created_at).
_epoch_by_string: dict[str, float] = {}


def _epoch_slow(s: str) -> float | None:
    """Validate ``s`` fully, fill the caches, return epoch seconds or None."""
    match = _TS_RE.fullmatch(s) if len(s) <= _MAX_TS_CHARS else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        local = datetime(int(year), int(month), int(day), int(hour), int(minute))
    except ValueError:
        return None
    rest = _suffix_value(second, fraction, sign, off_h, off_m)
    if rest is None:
        return None
    base = (local.toordinal() - _EPOCH_ORDINAL) * 86400 + local.hour * 3600 + local.minute * 60
    if len(_minute_epochs) > _MINUTE_CACHE_LIMIT:
        _minute_epochs.clear()
    if len(_suffix_seconds) > _CACHE_LIMIT:
        _suffix_seconds.clear()
    _minute_epochs[s[:16]] = base
    _suffix_seconds[s[16:]] = rest
    t = base + rest
    return t if 0 <= t < _T_END else None


def _suffix_value(second: str, fraction: str | None, sign: str | None, off_h: str | None,
                  off_m: str | None) -> float | None:
    """Seconds to add to the minute for ``:SS[.fff](Z|+HH:MM)`` (offset applied), or None."""
    sec = int(second)
    # Second 60 is a leap second. Without a leap-second table we accept it on
    # any minute and fold it onto the next minute's first second, as POSIX
    # time does (23:59:60Z and 00:00:00Z the next day give the same epoch).
    if sec > 60:
        return None
    offset = 0
    if sign is not None:
        oh, om = int(off_h), int(off_m)  # type: ignore[arg-type]
        if oh > 23 or om > 59:
            return None
        offset = (oh * 3600 + om * 60) * (1 if sign == "+" else -1)
    return sec - offset + (int(fraction) / 10 ** len(fraction) if fraction else 0)


def _suffix_seconds_slow(suffix: str) -> float | None:
    """Validate the part after a (valid, cached) minute prefix; cache and return its value."""
    match = _TS_SUFFIX_RE.fullmatch(suffix)
    if match is None:
        return None
    rest = _suffix_value(*match.groups())
    if rest is not None:
        if len(_suffix_seconds) > _CACHE_LIMIT:
            _suffix_seconds.clear()
        _suffix_seconds[suffix] = rest
    return rest


def _epoch(s: str) -> float | None:
    """Epoch seconds of an RFC 3339 string, or None if it is not one we accept."""
    base = _minute_epochs.get(s[:16])
    rest = _suffix_seconds.get(s[16:])
    if base is None or rest is None:
        return _epoch_slow(s)
    t = base + rest
    return t if 0 <= t < _T_END else None


def parse_rfc3339(s: str) -> float:
    """Parse an RFC 3339 timestamp into epoch seconds (UTC) as a float.

    The offset is required (``Z``, ``z`` or ``+HH:MM``/``-HH:MM``); the
    fraction is optional, up to 9 digits; the date and time may be separated
    by ``T``, ``t`` or a space. The instant must fall in the years 1970..9999
    (UTC). A leap second (``:60``) folds onto the next second, as in POSIX
    time. Raises ValueError for anything else.

    >>> parse_rfc3339("2026-03-06T10:00:00.123Z")
    1772791200.123
    >>> parse_rfc3339("2026-03-06 12:00:00+02:00") == parse_rfc3339("2026-03-06T10:00:00Z")
    True
    >>> parse_rfc3339("2026-03-06T10:00:00")
    Traceback (most recent call last):
    ...
    ValueError: not an RFC 3339 timestamp in years 1970..9999 (string of length 19)
    """
    t = _epoch(s) if type(s) is str else None
    if t is None:
        raise ValueError(f"not an RFC 3339 timestamp in years 1970..9999 ({_describe(s)})")
    return t


def format_rfc3339(t: float) -> str:
    """Format epoch seconds as UTC RFC 3339 with millisecond precision.

    The instant is rounded to the nearest millisecond and then handled as an
    integer number of milliseconds, so no float drift creeps into the digits:
    ``format_rfc3339(parse_rfc3339(s)) == s`` for every millisecond-precision
    ``Z`` timestamp, and ``parse_rfc3339(format_rfc3339(t))`` is ``t`` rounded
    to the millisecond. Raises ValueError outside the years 1970..9999.

    >>> format_rfc3339(1772791200.123)
    '2026-03-06T10:00:00.123Z'
    >>> format_rfc3339(0)
    '1970-01-01T00:00:00.000Z'
    """
    try:
        ms = round(t * 1000)
    except (OverflowError, ValueError, TypeError):
        raise ValueError(f"not a finite number of seconds: {_describe(t)}") from None
    if not 0 <= ms < _T_END * 1000:
        raise ValueError(f"outside the years 1970..9999: {_describe(t)}")
    seconds, millis = divmod(ms, 1000)
    days, seconds = divmod(seconds, 86400)
    day = date.fromordinal(_EPOCH_ORDINAL + days)
    hour, seconds = divmod(seconds, 3600)
    minute, second = divmod(seconds, 60)
    return (
        f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
        f"T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"
    )


# --------------------------------------------------------------------------
# Field checks shared by the fast path and the error diagnosis
# --------------------------------------------------------------------------

_ip_validity: dict[str, bool] = {}


# A dotted quad exactly as ipaddress.IPv4Address accepts it (ASCII digits, no
# leading zeros, 0..255): the common case, decided without the ipaddress module.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}").fullmatch


def _ip_ok_slow(s: str) -> bool:
    # Zone ids ("fe80::1%eth0") are link-local details, not an address we can
    # correlate on; the JSON Schema "ipv6" format rejects them too.
    if len(s) > _MAX_IP_CHARS or "%" in s:
        return False
    if _IPV4(s) is not None:
        ok = True
    else:
        try:
            ipaddress.ip_address(s)
        except ValueError:
            ok = False
        else:
            ok = True
    if len(_ip_validity) > _ENTITY_CACHE_LIMIT:
        _ip_validity.clear()
    _ip_validity[s] = ok
    return ok


_HEX16 = re.compile(r"[0-9a-f]{16}").fullmatch

_JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _describe(value: object) -> str:
    """Say what a value is without quoting any string content."""
    kind = type(value)
    name = _JSON_TYPE_NAMES.get(kind)
    if name is None:
        return f"Python {kind.__name__}"
    if kind is str:
        return f"string of length {len(value)}"  # type: ignore[arg-type]
    if kind is list:
        return f"array of length {len(value)}"  # type: ignore[arg-type]
    if kind is dict:
        return f"object with {len(value)} fields"  # type: ignore[arg-type]
    if kind is bool or value is None:
        return f"{name} {orjson.dumps(value).decode()}"
    text = repr(value)
    if len(text) > _MESSAGE_VALUE_CHARS:
        text = text[: _MESSAGE_VALUE_CHARS - 3] + "..."
    return f"{name} {text}"


# Field rules as data: (name, kind, required, low, high). The decoders check
# the same rules inline for speed; this table is the readable statement of
# the contract and produces the error when the fast path finds a fault.
_Rule = tuple[str, str, bool, Any, Any]
_API_CALL_RULES: tuple[_Rule, ...] = (
    ("event_id", "str", True, 1, 128),
    ("ts", "ts", True, None, None),
    ("account_id", "str", True, 1, 128),
    ("org_id", "str", False, 1, 128),
    ("api_key_id", "str", False, 1, 128),
    ("access_path", "enum", True, ACCESS_PATHS, None),
    ("client_ip", "ip", True, None, None),
    ("asn", "int", False, 0, _INT64_MAX),
    ("tls_fingerprint", "str", False, 0, 128),
    ("user_agent", "str", False, 0, 512),
    ("payment_fingerprint", "str", False, 0, 128),
    ("account_created_at", "ts", False, None, None),
    ("model", "str", True, 1, 128),
    ("features", "features", True, 16, 32),
    ("task", "str", False, 1, 32),
    ("prompt_simhash", "hex16", False, None, None),
    ("cot_elicitation", "unit", False, 0, 1),
    ("input_tokens", "int", True, 0, _INT64_MAX),
    ("output_tokens", "int", True, 0, _INT64_MAX),
    ("status", "int", True, 100, 599),
    ("latency_ms", "int", False, 0, _INT64_MAX),
)
_MODEL_RELEASE_RULES: tuple[_Rule, ...] = (
    ("model", "str", True, 1, 128),
    ("released_at", "ts", True, None, None),
)
_RULES_BY_NAME = {rule[0]: rule for rule in _API_CALL_RULES + _MODEL_RELEASE_RULES}
# Python types each kind of field accepts (bool is not int: type() is exact).
_KIND_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "ts": (str,),
    "enum": (str,),
    "ip": (str,),
    "hex16": (str,),
    "int": (int,),
    "unit": (int, float),
    "features": (list,),
}
_KIND_EXPECTED = {
    "str": "a string",
    "ts": "an RFC 3339 string",
    "enum": "a string",
    "ip": "a string",
    "hex16": "a string",
    "int": "an integer",
    "unit": "a number",
    "features": "an array of strings",
}


def _check(obj: Mapping[str, Any], rule: _Rule) -> ContractError | None:
    """The error ``rule`` finds in ``obj``, or None if the field is fine."""
    name, kind, required, low, high = rule
    if name not in obj:
        if required:
            return ContractError("missing_field", f"missing required field '{name}'", name)
        return None
    value = obj[name]
    if value is None and not required:
        return None
    if type(value) not in _KIND_TYPES[kind]:
        expected = _KIND_EXPECTED[kind] if required else _KIND_EXPECTED[kind] + " or null"
        return _wrong_type(name, expected, value)
    if kind == "str":
        if not low <= len(value) <= high:
            return ContractError(
                "out_of_range",
                f"field '{name}' must be {low}..{high} characters long, got {len(value)}",
                name,
            )
    elif kind == "int":
        if not low <= value <= high:
            return ContractError(
                "out_of_range",
                f"field '{name}' must be in {low}..{high}, got {_describe(value)}",
                name,
            )
    elif kind == "unit":
        if not low <= value <= high:  # also catches NaN
            return ContractError(
                "out_of_range", f"field '{name}' must be in [0, 1], got {_describe(value)}", name
            )
    elif kind == "enum":
        if value not in low:
            return ContractError(
                "out_of_range",
                f"field '{name}' must be one of {', '.join(sorted(low))}, got {_describe(value)}",
                name,
            )
    elif kind == "ts":
        if _epoch(value) is None:
            return ContractError(
                "bad_timestamp",
                f"field '{name}' must be an RFC 3339 timestamp with an offset"
                f" in years 1970..9999, got {_describe(value)}",
                name,
            )
    elif kind == "ip":
        ok = _ip_validity.get(value)
        if not (ok if ok is not None else _ip_ok_slow(value)):
            return ContractError(
                "bad_ip",
                f"field '{name}' must be an IPv4 or IPv6 address, got {_describe(value)}",
                name,
            )
    elif kind == "hex16":
        if _HEX16(value) is None:
            return ContractError(
                "out_of_range",
                f"field '{name}' must be exactly 16 lowercase hex digits, got {_describe(value)}",
                name,
            )
    elif kind == "features":
        if len(value) > low:
            return ContractError(
                "out_of_range",
                f"field '{name}' must have at most {low} items, got {len(value)}",
                name,
            )
        for i, item in enumerate(value):
            if type(item) is not str:
                return _wrong_type(f"{name}[{i}]", "a string", item, name)
            if not 1 <= len(item) <= high:
                return ContractError(
                    "out_of_range",
                    f"field '{name}[{i}]' must be 1..{high} characters long, got {len(item)}",
                    name,
                )
    return None


def _wrong_type(label: str, expected: str, value: object, field: str | None = None) -> ContractError:
    return ContractError(
        "wrong_type", f"field '{label}' must be {expected}, got {_describe(value)}", field or label
    )


def _field_error(obj: Mapping[str, Any], name: str) -> ContractError:
    """The error for a field the fast path rejected."""
    error = _check(obj, _RULES_BY_NAME[name])
    if error is None:  # the fast path and the rules disagree: a bug here
        raise AssertionError(f"fast path rejected field '{name}' but its rule accepts it")
    return error


def _first_error(obj: Mapping[str, Any], rules: tuple[_Rule, ...]) -> ContractError | None:
    """The first contract error in ``obj`` in rule order (the fast path's order)."""
    error = _version_error(obj)
    if error is not None:
        return error
    for rule in rules:
        error = _check(obj, rule)
        if error is not None:
            return error
    return None


def _version_error(obj: Mapping[str, Any]) -> ContractError | None:
    if "v" not in obj:
        return ContractError("missing_field", "missing required field 'v'", "v")
    v = obj["v"]
    if type(v) is not int or v != CONTRACT_VERSION:
        return ContractError(
            "unsupported_version",
            f"field 'v' must be {CONTRACT_VERSION}, got {_describe(v)}",
            "v",
        )
    return None


# --------------------------------------------------------------------------
# Payload -> JSON object
# --------------------------------------------------------------------------

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


def _payload_size(payload: object) -> int:
    """Size in bytes of a bytes-like or str payload (str: its UTF-8 length)."""
    if isinstance(payload, memoryview):
        return payload.nbytes
    if isinstance(payload, str):
        # A str holds at most 4 UTF-8 bytes per character; encode only when it matters.
        if len(payload) > MAX_PAYLOAD_BYTES or len(payload) * 4 <= MAX_PAYLOAD_BYTES:
            return len(payload)
        return len(payload.encode("utf-8", "surrogatepass"))
    return len(payload)  # type: ignore[arg-type]


def _decode_error(payload: bytes | bytearray | memoryview | str, exc: Exception) -> ContractError:
    """Tell invalid UTF-8 from invalid JSON (orjson reports both the same way)."""
    try:
        if isinstance(payload, str):
            payload.encode("utf-8")
        else:
            bytes(payload).decode("utf-8")
    except UnicodeError as bad:
        where = getattr(bad, "start", 0)
        return ContractError("not_utf8", f"payload is not valid UTF-8 (at byte or char {where})")
    detail = getattr(exc, "msg", "invalid document")[:_MESSAGE_VALUE_CHARS]
    position = getattr(exc, "pos", None)
    return ContractError("not_json", f"payload is not valid JSON: {detail} (at char {position})")


def _load_object(payload: object) -> dict[str, Any]:
    """Size, UTF-8, JSON and object checks, in that order, for any payload type."""
    if isinstance(payload, dict):
        return payload
    if not isinstance(payload, (bytes, bytearray, memoryview, str)):
        raise TypeError(
            "payload must be bytes, bytearray, memoryview, str or dict,"
            f" not {type(payload).__name__}"
        )
    size = _payload_size(payload)
    if size > MAX_PAYLOAD_BYTES:
        raise ContractError(
            "too_large", f"payload is {size} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    if isinstance(payload, memoryview):
        payload = payload.tobytes()
    try:
        obj = _loads(payload)  # type: ignore[arg-type]
    except _JSONDecodeError as exc:
        # Built here, raised below: outside the handler the error carries no
        # __context__, so orjson's exception (which holds the whole document,
        # raw text included) is not kept alive by the traceback.
        obj = _decode_error(payload, exc)  # type: ignore[arg-type]
    if type(obj) is not dict:
        if type(obj) is ContractError:
            raise obj
        raise ContractError("not_object", f"payload is {_describe(obj)}, not a JSON object")
    return obj


# --------------------------------------------------------------------------
# api_call v1
# --------------------------------------------------------------------------


_Str128 = Annotated[str, Meta(min_length=1, max_length=128)]
_Str32 = Annotated[str, Meta(min_length=1, max_length=32)]
_Count = Annotated[int, Meta(ge=0, le=_INT64_MAX)]
_NO_RAW = msgspec.Raw()
# Fields the wire never sets: renamed to keys no producer sends (a payload that
# does send them is still decoded right: they are overwritten after decoding).
_DERIVED = ("t", "account_created_t", "simhash", "raw_text_dropped")


_RENAME = {
    "cot": "cot_elicitation",
    **{name: f"__exw.{name}" for name in _DERIVED},
    **{f"dropped_{name}": name for name in sorted(RAW_TEXT_FIELDS)},
}


class ApiCall(
    msgspec.Struct,
    kw_only=True,
    gc=False,
    # msgspec skips an unknown field without checking it is valid JSON (invalid
    # UTF-8, NaN, 1e999 pass): such payloads go to the reference decoder instead
    forbid_unknown_fields=True,
    rename=_RENAME,
):
    """One decoded ``api_call`` v1 event: metadata only, never raw text.

    Build it with :func:`decode_api_call` from untrusted input; the
    constructor stores the values it is given without checking them.
    ``ts`` and ``account_created_at`` keep the producer's strings (``t`` and
    ``account_created_t`` are their epoch seconds), ``features`` is a tuple,
    ``simhash`` is the 64-bit ``prompt_simhash`` as an int, ``cot`` the
    ``cot_elicitation`` score, and ``raw_text_dropped`` counts the raw-text
    fields the payload carried.

    It is a ``msgspec.Struct`` whose field types carry the contract's type,
    length and range rules, so the hot path decodes and checks a payload in
    one C call (see :func:`decode_api_call`). The ``dropped_*`` fields only
    exist so that raw-text keys are noticed however they are spelled (JSON
    escapes included); they hold an empty placeholder on every event built
    here, never the text.

    >>> e = decode_api_call(
    ...     '{"v": 1, "event_id": "e-1", "ts": "2026-03-06T12:00:00+02:00",'
    ...     ' "account_id": "a", "access_path": "chat", "client_ip": "2001:db8::1",'
    ...     ' "model": "m", "features": [], "input_tokens": 3, "output_tokens": 5,'
    ...     ' "status": 429, "prompt_simhash": "00000000000000ff"}'
    ... )
    >>> e
    ApiCall(event_id='e-1', ts='2026-03-06T12:00:00+02:00', account_id='a', model='m')
    >>> e.simhash, e.t == parse_rfc3339("2026-03-06T10:00:00Z")
    (255, True)
    >>> decode_api_call(e.to_dict()) == e
    True
    """

    # Fields without a default are the contract's required ones: the decoder
    # rejects a payload without them (``v``, the contract version, is always 1).
    v: Literal[1]
    event_id: _Str128
    ts: str
    t: float = 0.0
    account_id: _Str128
    org_id: _Str128 | None = None
    api_key_id: _Str128 | None = None
    access_path: Literal["api", "chat", "cloud", "agent", "other"]
    client_ip: str
    asn: _Count | None = None
    tls_fingerprint: Annotated[str, Meta(max_length=128)] | None = None
    user_agent: Annotated[str, Meta(max_length=512)] | None = None
    payment_fingerprint: Annotated[str, Meta(max_length=128)] | None = None
    account_created_at: str | None = None
    account_created_t: float | None = None
    model: _Str128
    features: Annotated[tuple[_Str32, ...], Meta(max_length=16)]
    task: _Str32 | None = None
    simhash: int | None = None
    cot: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    input_tokens: _Count
    output_tokens: _Count
    status: Annotated[int, Meta(ge=100, le=599)]
    latency_ms: _Count | None = None
    raw_text_dropped: int = 0
    prompt_simhash: str | None = None
    dropped_completion: msgspec.Raw = _NO_RAW
    dropped_content: msgspec.Raw = _NO_RAW
    dropped_messages: msgspec.Raw = _NO_RAW
    dropped_prompt: msgspec.Raw = _NO_RAW
    dropped_text: msgspec.Raw = _NO_RAW

    def to_dict(self) -> dict[str, Any]:
        """The event as an api_call v1 object: contract fields only, ready to forward.

        Timestamps are the producer's original strings, ``prompt_simhash`` is
        16 lowercase hex digits again, absent optional fields are null.
        """
        simhash = self.simhash
        return {
            "v": CONTRACT_VERSION,
            "event_id": self.event_id,
            "ts": self.ts,
            "account_id": self.account_id,
            "org_id": self.org_id,
            "api_key_id": self.api_key_id,
            "access_path": self.access_path,
            "client_ip": self.client_ip,
            "asn": self.asn,
            "tls_fingerprint": self.tls_fingerprint,
            "user_agent": self.user_agent,
            "payment_fingerprint": self.payment_fingerprint,
            "account_created_at": self.account_created_at,
            "model": self.model,
            "features": list(self.features),
            "task": self.task,
            "prompt_simhash": None if simhash is None else f"{simhash:016x}",
            "cot_elicitation": self.cot,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "status": self.status,
            "latency_ms": self.latency_ms,
        }

    def to_compact(self) -> list[Any]:
        """The decoded event as a flat list (:data:`COMPACT_FIELDS` order), for internal hand-off.

        Used between the validating stage and the detecting stage of the
        Kafka pipeline: no second validation, no timestamp parsing, and
        :meth:`from_compact` gives back an equal event.

        >>> e = decode_api_call(b'{"v": 1, "event_id": "e", "ts": "2026-03-06T12:00:00Z",'
        ...     b' "account_id": "a", "access_path": "api", "client_ip": "10.0.0.1",'
        ...     b' "model": "m", "features": ["tools"], "input_tokens": 1,'
        ...     b' "output_tokens": 2, "status": 200, "cot_elicitation": 0.25,'
        ...     b' "prompt_simhash": "00000000000000ff"}')
        >>> ApiCall.from_compact(orjson.loads(orjson.dumps(e.to_compact()))) == e
        True
        """
        values = list(_compact_values(self))
        values[_FEATURES_AT] = list(self.features)
        return values

    @staticmethod
    def from_compact(values: list[Any]) -> ApiCall:
        """Rebuild an event from :meth:`to_compact` output (trusted input only)."""
        if len(values) != len(COMPACT_FIELDS):
            raise ValueError(
                f"compact event has {len(values)} fields, expected {len(COMPACT_FIELDS)}")
        (
            event_id, ts, t, account_id, org_id, api_key_id, access_path, client_ip, asn,
            tls_fingerprint, user_agent, payment_fingerprint, account_created_at,
            account_created_t, model, features, task, simhash, cot, input_tokens,
            output_tokens, status, latency_ms, raw_text_dropped,
        ) = values  # one unpacking, in COMPACT_FIELDS order (a test round-trips every field)
        return ApiCall(
            v=1, event_id=event_id, ts=ts, t=t, account_id=account_id, org_id=org_id,
            api_key_id=api_key_id, access_path=access_path, client_ip=client_ip, asn=asn,
            tls_fingerprint=tls_fingerprint, user_agent=user_agent,
            payment_fingerprint=payment_fingerprint, account_created_at=account_created_at,
            account_created_t=account_created_t, model=model, features=tuple(features),
            task=task, simhash=simhash, cot=cot, input_tokens=input_tokens,
            output_tokens=output_tokens, status=status, latency_ms=latency_ms,
            raw_text_dropped=raw_text_dropped,
            prompt_simhash=None if simhash is None else f"{simhash:016x}",
        )

    def __repr__(self) -> str:
        return (
            f"ApiCall(event_id={self.event_id!r}, ts={self.ts!r}, "
            f"account_id={self.account_id!r}, model={self.model!r})"
        )


COMPACT_FIELDS = (
    "event_id",
    "ts",
    "t",
    "account_id",
    "org_id",
    "api_key_id",
    "access_path",
    "client_ip",
    "asn",
    "tls_fingerprint",
    "user_agent",
    "payment_fingerprint",
    "account_created_at",
    "account_created_t",
    "model",
    "features",
    "task",
    "simhash",
    "cot",
    "input_tokens",
    "output_tokens",
    "status",
    "latency_ms",
    "raw_text_dropped",
)
"""The attributes of an :class:`ApiCall` in the order :meth:`ApiCall.to_compact` lists them."""
_compact_values = attrgetter(*COMPACT_FIELDS)
_FEATURES_AT = COMPACT_FIELDS.index("features")
_decode_wire = msgspec.json.Decoder(ApiCall).decode
_WireError = msgspec.MsgspecError
_REQUIRED_FIELDS = tuple(rule[0] for rule in _API_CALL_RULES if rule[2])
_OPTIONAL_FIELDS = tuple(rule[0] for rule in _API_CALL_RULES if not rule[2])
_required_values = itemgetter("v", *_REQUIRED_FIELDS)
_optional_values = itemgetter(*_OPTIONAL_FIELDS)


def decode_api_call(payload: bytes | bytearray | memoryview | str | dict[str, Any]) -> ApiCall:
    """Decode and validate one api_call v1 payload.

    Accepts the raw message (bytes, bytearray, memoryview or str) or an
    already parsed JSON object (dict, which is not modified). Checks run in
    this order and the first failure raises :class:`ContractError`: size
    (``too_large``), UTF-8 (``not_utf8``), JSON (``not_json``; NaN, Infinity
    and nesting deeper than orjson's limit are not JSON), object
    (``not_object``), ``v`` (``missing_field``, ``unsupported_version``), then
    each field in :data:`API_CALL_FIELDS` order (``missing_field``,
    ``wrong_type``, ``out_of_range``, ``bad_timestamp``, ``bad_ip``). A JSON
    ``null`` counts as absent for optional fields and as ``wrong_type`` for
    required ones; booleans are not integers and integral floats such as
    ``1.0`` are not integers either; counts stop at 2**63 - 1.

    >>> for bad in (b'{"v": 1, "event_id": "e', b'[1, 2]', b'{"v": 2}', b'{"v": 1}'):
    ...     try:
    ...         decode_api_call(bad)
    ...     except ContractError as exc:
    ...         print(exc)
    not_json: payload is not valid JSON: unexpected end of data (at char 23)
    not_object: payload is array of length 2, not a JSON object
    unsupported_version: field 'v' must be 1, got integer 2
    missing_field: missing required field 'event_id'
    """
    # Hot path (models.wire.decode, compiled with the hot modules): msgspec decodes
    # and checks types, lengths and ranges in one C call; the checks it cannot
    # express (timestamps, IP addresses, the simhash digits) follow. Anything it
    # rejects, or that fails after it, goes to the reference decoder
    # (_decode_checked), which names the first fault (and is the only judge: a
    # payload msgspec rejects but the reference accepts, say one nested deeper
    # than msgspec allows, is accepted).
    decode = _wire_decode
    if decode is None:
        decode = _load_wire_decode()
    return decode(payload)


def _created_epoch_slow(created: str) -> float | None:
    """Epoch seconds of an account_created_at not in the memo yet (then memoised)."""
    created_t = _epoch(created)
    if created_t is not None:
        if len(_epoch_by_string) > _ENTITY_CACHE_LIMIT:
            _epoch_by_string.clear()
        _epoch_by_string[created] = created_t
    return created_t


# what msgspec cannot check is checked in models.wire (compiled with the hot modules),
# which takes the tables and helpers above from this module. It imports this module,
# not the other way round: its compiled build reads ApiCall's slots, so ApiCall must
# exist before it loads (models/_apicall.pxd). decode_api_call imports it on first use.
_WIRE_ERRORS = (_WireError, ValueError, RecursionError)  # (invalid UTF-8: a ValueError)
_wire_decode: Callable[[Any], ApiCall] | None = None


def _load_wire_decode() -> Callable[[Any], ApiCall]:
    global _wire_decode
    from models import wire

    _wire_decode = wire.decode
    return wire.decode


def _decode_checked(payload: bytes | bytearray | memoryview | str | dict[str, Any]) -> ApiCall:
    """The reference decoder: every rule in order, the first fault raised by name."""
    # Hot path: one orjson call, then straight-line type checks; the rule
    # table in _check only runs to describe a failure.
    obj: Any
    if type(payload) is bytes and len(payload) <= MAX_PAYLOAD_BYTES:
        try:
            obj = _loads(payload)
        except _JSONDecodeError as exc:
            obj = _decode_error(payload, exc)
        if type(obj) is not dict:
            if type(obj) is ContractError:
                raise obj
            raise ContractError("not_object", f"payload is {_describe(obj)}, not a JSON object")
    else:
        obj = _load_object(payload)
    # All fields fetched by two C-level itemgetters: a missing required field
    # sends us to the rule scan, which reports the first fault in field order;
    # missing optional fields fall back to .get.
    try:
        (
            v,
            event_id,
            ts,
            account_id,
            access_path,
            client_ip,
            model,
            features,
            input_tokens,
            output_tokens,
            status,
        ) = _required_values(obj)
    except KeyError:
        error = _first_error(obj, _API_CALL_RULES)
    else:
        error = None
    if error is not None:
        raise error
    all_optional_present = True
    try:
        (
            org_id,
            api_key_id,
            asn,
            tls_fingerprint,
            user_agent,
            payment_fingerprint,
            account_created_at,
            task,
            prompt_simhash,
            cot,
            latency_ms,
        ) = _optional_values(obj)
    except KeyError:
        (
            org_id,
            api_key_id,
            asn,
            tls_fingerprint,
            user_agent,
            payment_fingerprint,
            account_created_at,
            task,
            prompt_simhash,
            cot,
            latency_ms,
        ) = map(obj.get, _OPTIONAL_FIELDS)
        all_optional_present = False

    if v != 1 or type(v) is not int:
        raise _version_error(obj)  # type: ignore[misc]
    if type(event_id) is not str or not 0 < len(event_id) <= 128:
        raise _field_error(obj, "event_id")
    # _epoch inlined: the two memo lookups hit for all but the first event of a minute.
    if type(ts) is not str:
        raise _field_error(obj, "ts")
    minute = _minute_epochs.get(ts[:16])
    rest = _suffix_seconds.get(ts[16:])
    t: float | None
    if minute is not None and rest is None:
        # a new second or millisecond in a known minute: only the suffix to check
        rest = _suffix_seconds_slow(ts[16:])
    if minute is None or rest is None:
        t = _epoch_slow(ts)
        if t is None:
            raise _field_error(obj, "ts")
    else:
        t = minute + rest
        if not 0 <= t < _T_END:
            raise _field_error(obj, "ts")
    if type(account_id) is not str or not 0 < len(account_id) <= 128:
        raise _field_error(obj, "account_id")
    if org_id is not None and (type(org_id) is not str or not 0 < len(org_id) <= 128):
        raise _field_error(obj, "org_id")
    if api_key_id is not None and (type(api_key_id) is not str or not 0 < len(api_key_id) <= 128):
        raise _field_error(obj, "api_key_id")
    if type(access_path) is not str or access_path not in ACCESS_PATHS:
        raise _field_error(obj, "access_path")
    if type(client_ip) is not str:
        raise _field_error(obj, "client_ip")
    ip_ok = _ip_validity.get(client_ip)
    if ip_ok is None:
        ip_ok = _ip_ok_slow(client_ip)
    if not ip_ok:
        raise _field_error(obj, "client_ip")
    if asn is not None and (type(asn) is not int or not 0 <= asn <= _INT64_MAX):
        raise _field_error(obj, "asn")
    if tls_fingerprint is not None and (
        type(tls_fingerprint) is not str or len(tls_fingerprint) > 128
    ):
        raise _field_error(obj, "tls_fingerprint")
    if user_agent is not None and (type(user_agent) is not str or len(user_agent) > 512):
        raise _field_error(obj, "user_agent")
    if payment_fingerprint is not None and (
        type(payment_fingerprint) is not str or len(payment_fingerprint) > 128
    ):
        raise _field_error(obj, "payment_fingerprint")
    if account_created_at is None:
        account_created_t = None
    else:
        # One value per account, so memoised whole.
        account_created_t = (
            _epoch_by_string.get(account_created_at) if type(account_created_at) is str else None
        )
        if account_created_t is None:
            if type(account_created_at) is not str:
                raise _field_error(obj, "account_created_at")
            account_created_t = _epoch(account_created_at)
            if account_created_t is None:
                raise _field_error(obj, "account_created_at")
            if len(_epoch_by_string) > _ENTITY_CACHE_LIMIT:
                _epoch_by_string.clear()
            _epoch_by_string[account_created_at] = account_created_t
    if type(model) is not str or not 0 < len(model) <= 128:
        raise _field_error(obj, "model")
    if type(features) is not list or len(features) > 16:
        raise _field_error(obj, "features")
    for feature in features:
        if type(feature) is not str or not 0 < len(feature) <= 32:
            raise _field_error(obj, "features")
    if task is not None and (type(task) is not str or not 0 < len(task) <= 32):
        raise _field_error(obj, "task")
    if prompt_simhash is None:
        simhash = None
    elif type(prompt_simhash) is str and _HEX16(prompt_simhash) is not None:
        simhash = int(prompt_simhash, 16)
    else:
        raise _field_error(obj, "prompt_simhash")
    if cot is not None:
        if (type(cot) is not float and type(cot) is not int) or not 0 <= cot <= 1:
            raise _field_error(obj, "cot_elicitation")
        if type(cot) is int:
            cot = float(cot)
    if type(input_tokens) is not int or not 0 <= input_tokens <= _INT64_MAX:
        raise _field_error(obj, "input_tokens")
    if type(output_tokens) is not int or not 0 <= output_tokens <= _INT64_MAX:
        raise _field_error(obj, "output_tokens")
    if type(status) is not int or not 100 <= status <= 599:
        raise _field_error(obj, "status")
    if latency_ms is not None and (type(latency_ms) is not int or not 0 <= latency_ms <= _INT64_MAX):
        raise _field_error(obj, "latency_ms")

    raw = 0
    # Every contract field present and nothing else: no raw text, one compare.
    if (not all_optional_present or len(obj) != len(API_CALL_FIELDS)) and (
        "prompt" in obj
        or "completion" in obj
        or "messages" in obj
        or "text" in obj
        or "content" in obj
    ):
        raw = sum(1 for name in RAW_TEXT_FIELDS if name in obj)

    return ApiCall(
        v=1, event_id=event_id, ts=ts, t=t, account_id=account_id, org_id=org_id,
        api_key_id=api_key_id, access_path=access_path,  # type: ignore[arg-type]
        client_ip=client_ip, asn=asn,
        tls_fingerprint=tls_fingerprint, user_agent=user_agent,
        payment_fingerprint=payment_fingerprint, account_created_at=account_created_at,
        account_created_t=account_created_t, model=model, features=tuple(features), task=task,
        simhash=simhash, cot=cot, input_tokens=input_tokens, output_tokens=output_tokens,
        status=status, latency_ms=latency_ms, raw_text_dropped=raw,
        prompt_simhash=prompt_simhash,
    )


# --------------------------------------------------------------------------
# model_release v1
# --------------------------------------------------------------------------


class ModelRelease:
    """One decoded ``model_release`` v1 event: a model became available at ``t``.

    >>> r = decode_model_release(b'{"v": 1, "model": "frontier-3", "released_at": "2026-03-01T00:00:00Z"}')
    >>> r
    ModelRelease(model='frontier-3', released_at='2026-03-01T00:00:00Z')
    >>> format_rfc3339(r.t)
    '2026-03-01T00:00:00.000Z'
    """

    __slots__ = ("model", "released_at", "t")

    model: str
    released_at: str
    t: float

    def __init__(self, *, model: str, released_at: str, t: float) -> None:
        self.model = model
        self.released_at = released_at
        self.t = t

    def to_dict(self) -> dict[str, Any]:
        """The event as a model_release v1 object."""
        return {"v": CONTRACT_VERSION, "model": self.model, "released_at": self.released_at}

    def __eq__(self, other: object) -> bool:
        if type(other) is not ModelRelease:
            return NotImplemented
        return (self.model, self.released_at, self.t) == (other.model, other.released_at, other.t)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ModelRelease(model={self.model!r}, released_at={self.released_at!r})"


def decode_model_release(
    payload: bytes | bytearray | memoryview | str | dict[str, Any],
) -> ModelRelease:
    """Decode and validate one model_release v1 payload (errors as in :func:`decode_api_call`).

    >>> try:
    ...     decode_model_release({"v": 1, "model": "m", "released_at": "2026-02-30T00:00:00Z"})
    ... except ContractError as exc:
    ...     print(exc.reason, exc.field)
    bad_timestamp released_at
    """
    obj = _load_object(payload)
    error = _first_error(obj, _MODEL_RELEASE_RULES)
    if error is not None:
        raise error
    released_at = obj["released_at"]
    return ModelRelease(model=obj["model"], released_at=released_at, t=parse_rfc3339(released_at))


# --------------------------------------------------------------------------
# Dead letters
# --------------------------------------------------------------------------

_MAX_DEAD_LETTER_DEPTH = 64
_TOO_DEEP = "[too deep]"
_REMOVED = '"[removed]"'
_MAX_MESSAGE_CHARS = 1024
_INT64_MIN = -(1 << 63)
_UINT64_END = 1 << 64

# A raw-text key and what follows it; the value is found by _value_end.
_RAW_KEY_RE = re.compile(r'"(?:prompt|completion|messages|text|content)"\s*:\s*')
# The rest of a JSON string after its opening quote, also when unterminated.
# Possessive, so a long unterminated string costs linear time.
_STRING_REST_RE = re.compile(r'(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.S)
# Tokens for skipping an array or object: strings, brackets, everything else.
_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]|[^"\[\]{}]++', re.S)


def _value_end(text: str, start: int) -> int:
    """End of the JSON string, array or object at ``start`` (or of the text), else -1."""
    first = text[start]
    if first == '"':
        return _STRING_REST_RE.match(text, start + 1).end()  # type: ignore[union-attr]
    if first not in "[{":
        return -1
    depth = 0
    for token in _TOKEN_RE.finditer(text, start):
        piece = token.group()
        if piece == "[" or piece == "{":
            depth += 1
        elif piece == "]" or piece == "}":
            depth -= 1
            if depth == 0:
                return token.end()
    return len(text)


def _scrub_text(text: str) -> tuple[str, int]:
    """Best-effort removal of raw-text values from text that is not parseable JSON.

    Each string, array or object that follows a raw-text key becomes
    ``"[removed]"``; an unterminated one is removed up to the end.
    """
    pieces: list[str] = []
    position = 0
    removed = 0
    search_from = 0
    while True:
        match = _RAW_KEY_RE.search(text, search_from)
        if match is None or match.end() >= len(text):
            break
        end = _value_end(text, match.end())
        if end < 0:  # a number, null or garbage: not text, keep it
            search_from = match.end()
            continue
        pieces.append(text[position : match.end()])
        pieces.append(_REMOVED)
        removed += 1
        position = search_from = end
    pieces.append(text[position:])
    return "".join(pieces), removed


def _clean_str(s: str) -> str:
    """A str orjson can serialise: lone surrogates become backslash escapes."""
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s


class _Scrubber:
    """Copies a parsed JSON value without raw-text fields, at every level."""

    __slots__ = ("dropped", "truncated")

    def __init__(self) -> None:
        self.dropped = 0
        self.truncated = False

    def copy(self, value: Any, depth: int) -> Any:
        vtype = type(value)
        if vtype is str:
            return _clean_str(value)
        if value is None or vtype is bool or vtype is float:
            return value
        if vtype is int:
            return value if _INT64_MIN <= value < _UINT64_END else str(value)
        if vtype is dict or vtype is list or vtype is tuple:
            # orjson.dumps stops at 255 levels; the record adds one.
            if depth >= _MAX_DEAD_LETTER_DEPTH:
                self.truncated = True
                return _TOO_DEEP
            if vtype is dict:
                out = {}
                for key, item in value.items():
                    if key in RAW_TEXT_FIELDS:
                        self.dropped += 1
                        continue
                    out[_clean_str(key) if type(key) is str else str(key)] = self.copy(item, depth + 1)
                return out
            return [self.copy(item, depth + 1) for item in value]
        return f"<{vtype.__name__}>"


def _cut_json_string(text: str, limit: int) -> tuple[str, bool]:
    """The longest prefix of ``text`` whose JSON serialisation fits in ``limit`` bytes."""
    if len(orjson.dumps(text)) <= limit:
        return text, False
    # Serialised size grows with the prefix length, and every character takes
    # at least one byte, so the answer lies in [0, limit]: binary search.
    low, high = 0, min(len(text), limit)
    while low < high:
        middle = (low + high + 1) // 2
        if len(orjson.dumps(text[:middle])) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low], True


def dead_letter(
    reason: str,
    message: str,
    source: Mapping[str, Any],
    payload: bytes | bytearray | memoryview | str | dict[str, Any] | ApiCall | None,
) -> dict[str, Any]:
    """Build one dead-letter record (dead_letter v1) for a payload that was rejected.

    ``source`` says where the payload came from, e.g. ``{"file": "x.jsonl",
    "line": 12}`` or ``{"topic": ..., "partition": ..., "offset": ...}``.
    ``payload`` is the message as received, a parsed object, or (for the
    engine's ``duplicate``/``late``/``time_out_of_range``) the decoded event.
    A payload that parses as a JSON object is stored as an object with the
    raw-text fields removed at every nesting level (nesting beyond 64 levels is
    replaced by ``"[too deep]"``); anything else is stored as a string (bytes
    decoded with ``errors="backslashreplace"``; other JSON values serialised)
    after a best-effort scrub that replaces each value following a raw-text
    key with ``"[removed]"``. Payloads over :data:`MAX_PAYLOAD_BYTES` are not
    parsed, only scrubbed as text. If the payload's JSON serialisation would
    exceed :data:`DEAD_LETTER_PAYLOAD_BYTES`, the serialisation string is cut to
    fit and ``payload_truncated`` is set. The record is orjson-serialisable.

    >>> record = dead_letter(
    ...     "wrong_type", "field 'asn' must be an integer or null, got string of length 2",
    ...     {"file": "calls.jsonl", "line": 12},
    ...     b'{"v": 1, "asn": "x1", "prompt": "secret", "meta": {"content": "secret"}}',
    ... )
    >>> record["payload"], record["raw_text_fields_dropped"], record["payload_truncated"]
    ({'v': 1, 'asn': 'x1', 'meta': {}}, 2, False)
    >>> dead_letter("not_json", "unexpected end of data", {"file": "f", "line": 1},
    ...             b'{"v": 1, "prompt": "secret and unterminat')["payload"]
    '{"v": 1, "prompt": "[removed]"'
    """
    if reason not in DEAD_LETTER_REASONS:
        raise ValueError(f"unknown dead-letter reason {reason!r}")
    limit = DEAD_LETTER_PAYLOAD_BYTES
    scrubber = _Scrubber()
    parsed: Any = None
    is_json = False
    text: str | None = None
    if isinstance(payload, ApiCall):
        payload = payload.to_dict()
    if isinstance(payload, (bytes, bytearray, memoryview, str)):
        raw = payload.tobytes() if isinstance(payload, memoryview) else payload
        if _payload_size(raw) > MAX_PAYLOAD_BYTES:
            scrubber.truncated = True
            raw = raw[:MAX_PAYLOAD_BYTES]
        else:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass
            else:
                is_json = True
        if not is_json:
            if isinstance(raw, str):
                text = _clean_str(raw)
            else:
                text = bytes(raw).decode("utf-8", "backslashreplace")
    else:
        parsed, is_json = payload, True

    if is_json:
        clean = scrubber.copy(parsed, 1)
        if type(clean) is dict:
            serialised = orjson.dumps(clean)
            if len(serialised) <= limit:
                stored: dict[str, Any] | str = clean
            else:
                stored, _ = _cut_json_string(serialised.decode("utf-8"), limit)
                scrubber.truncated = True
        else:
            stored, cut = _cut_json_string(orjson.dumps(clean).decode("utf-8"), limit)
            scrubber.truncated = scrubber.truncated or cut
    else:
        scrubbed, removed = _scrub_text(text)  # type: ignore[arg-type]
        scrubber.dropped += removed
        stored, cut = _cut_json_string(scrubbed, limit)
        scrubber.truncated = scrubber.truncated or cut

    message = _clean_str(str(message))[:_MAX_MESSAGE_CHARS]
    return {
        "v": CONTRACT_VERSION,
        "reason": reason,
        "message": message,
        "source": dict(source),
        "payload": stored,
        "payload_truncated": scrubber.truncated,
        "raw_text_fields_dropped": scrubber.dropped,
    }
