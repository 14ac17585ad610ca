"""The JSON Schemas in models/schemas/ agree with the decoders in models.contract.

Valid under the api_call (model_release) schema if and only if
decode_api_call (decode_model_release) accepts, for already-parsed payloads,
except where a schema truly cannot say what the decoder checks. Those
differences are listed in KNOWN_DIVERGENCES and each is pinned by a test, so
the list stays true:

- integral floats (``10.0``) where an integer is required: JSON Schema's
  "integer" includes them (and ``const: 1`` equals ``1.0``); the decoder
  wants an integer literal;
- a timestamp whose offset moves the UTC instant out of 1970..9999
  (``1970-01-01T00:30:00+01:00``, ``9999-12-31T23:59:60Z``): the pattern
  checks the local fields only;
- non-finite floats (NaN, infinities): not JSON, so only possible in a
  Python dict; ``minimum``/``maximum`` let NaN through;
- payload-level checks (1 MiB size limit, UTF-8, JSON syntax, and integers
  beyond 64 bits, which orjson reads as floats) happen before there is an
  instance to validate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from models import contract
from models.contract import (
    ACCESS_PATHS,
    API_CALL_FIELDS,
    DEAD_LETTER_REASONS,
    RAW_TEXT_FIELDS,
    ContractError,
    dead_letter,
    decode_api_call,
    decode_model_release,
)
from tests.models.test_contract import (
    BAD_FIELD_CASES,
    FULL,
    JUNK,
    MINIMAL,
    SENTINEL,
    with_,
    without,
)

SCHEMA_DIR = Path(contract.__file__).parent / "schemas"
SCHEMA_NAMES = ("api_call", "model_release", "dead_letter", "alert")
KNOWN_DIVERGENCES = ("integral float", "utc shift out of range", "non-finite float")


def load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.v1.schema.json").read_text())


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


API_CALL = validator("api_call")
MODEL_RELEASE = validator("model_release")
DEAD_LETTER = validator("dead_letter")
ALERT = validator("alert")


def decodes(decode: Any, payload: dict) -> bool:
    try:
        decode(payload)
    except ContractError:
        return False
    return True


def divergence(payload: dict) -> str | None:
    """Which documented divergence ``payload`` falls under, if any."""
    for name, value in payload.items():
        if name in API_CALL_FIELDS or name in ("released_at",):
            if type(value) is float and not math.isfinite(value):
                return "non-finite float"
            if type(value) is float and value.is_integer() and name in (
                "v", "asn", "input_tokens", "output_tokens", "status", "latency_ms"
            ):
                return "integral float"
            if name in ("ts", "account_created_at", "released_at") and type(value) is str and (
                value.startswith("1970-01-01") or value.startswith("9999-12-31")
            ):
                return "utc shift out of range"
    return None


def assert_agree(schema: Draft202012Validator, decode: Any, payload: dict) -> None:
    valid = schema.is_valid(payload)
    accepted = decodes(decode, payload)
    if valid != accepted:
        assert divergence(payload) is not None, (payload, valid, accepted)
        assert valid and not accepted  # every divergence is the schema being looser


# --------------------------------------------------------------------------
# The schemas themselves
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = load(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_rfc3339_definition_is_the_same_everywhere() -> None:
    definitions = [load(name)["$defs"]["rfc3339"] for name in ("api_call", "model_release", "alert")]
    assert definitions[0] == definitions[1] == definitions[2]


def test_schemas_name_the_same_fields_and_codes_as_the_module() -> None:
    api_call = load("api_call")
    assert tuple(api_call["properties"]) == API_CALL_FIELDS
    assert set(api_call["required"]) == set(MINIMAL)
    assert set(api_call["properties"]["access_path"]["enum"]) == ACCESS_PATHS
    dead = load("dead_letter")
    assert tuple(dead["properties"]["reason"]["enum"]) == DEAD_LETTER_REASONS
    assert set(dead["$defs"]["scrubbed"]["propertyNames"]["not"]["enum"]) == RAW_TEXT_FIELDS


# --------------------------------------------------------------------------
# api_call: schema and decoder agree
# --------------------------------------------------------------------------

GOOD_API_CALLS = [
    MINIMAL,
    FULL,
    with_(FULL, prompt=SENTINEL, unknown={"nested": [1]}),
    with_(FULL, **{name: None for name in FULL if name not in MINIMAL}),
    with_(FULL, client_ip="2001:db8::1", ts="2026-03-06 12:00:00.123456789+02:00"),
    with_(FULL, client_ip="::ffff:192.0.2.1", account_created_at="2024-02-29t00:00:00z"),
    with_(FULL, ts="2016-12-31T23:59:60Z", cot_elicitation=1, tls_fingerprint=""),
]


@pytest.mark.parametrize("payload", GOOD_API_CALLS)
def test_good_api_calls_are_valid_under_the_schema(payload: dict) -> None:
    assert API_CALL.is_valid(payload)
    assert decodes(decode_api_call, payload)


@pytest.mark.parametrize(("field", "value", "reason"), BAD_FIELD_CASES,
                         ids=[f"{f}={v!r:.20}" for f, v, _ in BAD_FIELD_CASES])
def test_bad_fields_agree(field: str, value: object, reason: str) -> None:
    assert_agree(API_CALL, decode_api_call, with_(FULL, **{field: value}))


@pytest.mark.parametrize("field", API_CALL_FIELDS)
def test_missing_fields_agree(field: str) -> None:
    assert_agree(API_CALL, decode_api_call, without(FULL, field))


@pytest.mark.parametrize("ip", [
    "1.2.3.4", "01.2.3.4", "256.0.0.1", "1.2.3", "::", "::1", "fe80::1%eth0", "2001:db8::g",
    "::ffff:1.2.3.4", "1.2.3.4 ", "0000:0000:0000:0000:0000:ffff:255.255.255.255", "x" * 60,
])
def test_ips_agree(ip: str) -> None:
    assert_agree(API_CALL, decode_api_call, with_(FULL, client_ip=ip))


@pytest.mark.parametrize(("payload", "kind"), [
    (with_(FULL, input_tokens=10.0), "integral float"),
    (with_(FULL, v=1.0), "integral float"),
    (with_(FULL, status=200.0), "integral float"),
    (with_(FULL, ts="1970-01-01T00:30:00+01:00"), "utc shift out of range"),
    (with_(FULL, ts="9999-12-31T23:59:60Z"), "utc shift out of range"),
    (with_(FULL, account_created_at="9999-12-31T23:00:00-01:00"), "utc shift out of range"),
    (with_(FULL, cot_elicitation=float("nan")), "non-finite float"),
])
def test_known_divergences_are_real(payload: dict, kind: str) -> None:
    assert kind in KNOWN_DIVERGENCES
    assert divergence(payload) == kind
    assert API_CALL.is_valid(payload)
    assert not decodes(decode_api_call, payload)


@settings(max_examples=400, deadline=None)
@given(base=st.sampled_from([MINIMAL, FULL]), field=st.sampled_from(API_CALL_FIELDS),
       value=JUNK, drop=st.sampled_from((None,) + API_CALL_FIELDS))
def test_mutated_api_calls_agree(base: dict, field: str, value: object, drop: str | None) -> None:
    payload = with_(base, **{field: value})
    if drop is not None and drop != field:
        payload = without(payload, drop)
    assert_agree(API_CALL, decode_api_call, payload)


# --------------------------------------------------------------------------
# model_release and timestamps: schema and decoder agree
# --------------------------------------------------------------------------


def release(released_at: object, **extra: object) -> dict:
    return {"v": 1, "model": "frontier-3", "released_at": released_at, **extra}


@pytest.mark.parametrize("payload", [
    release("2026-03-01T00:00:00Z"),
    release("2026-03-01T00:00:00Z", notes="x"),
    release("2026-03-01"),
    release(None),
    release(1772323200),
    {"v": 1, "model": "m"},
    {"v": 1, "released_at": "2026-03-01T00:00:00Z"},
    {"model": "m", "released_at": "2026-03-01T00:00:00Z"},
    {"v": 2, "model": "m", "released_at": "2026-03-01T00:00:00Z"},
    {"v": True, "model": "m", "released_at": "2026-03-01T00:00:00Z"},
    {"v": 1, "model": "", "released_at": "2026-03-01T00:00:00Z"},
    {"v": 1, "model": "m" * 129, "released_at": "2026-03-01T00:00:00Z"},
])
def test_model_release_corpus_agrees(payload: dict) -> None:
    assert_agree(MODEL_RELEASE, decode_model_release, payload)


def two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


OFFSETS = st.one_of(
    st.sampled_from(["Z", "z", "", "+0200", "+02", " Z", "Z\n"]),
    st.tuples(st.sampled_from("+-"), two(0, 25), two(0, 61)).map(lambda p: f"{p[0]}{p[1]}:{p[2]}"),
)
TIMESTAMPS = st.tuples(
    st.one_of(st.integers(0, 10000).map(lambda y: f"{y:04d}"), st.sampled_from(["1970", "9999", "2000", "1900", "2024"])),
    two(0, 13),
    two(0, 32),
    st.sampled_from(["T", "t", " ", "x", ""]),
    two(0, 25),
    two(0, 61),
    two(0, 62),
    st.one_of(st.just(""), st.integers(0, 10).map(lambda n: "." + "7" * n)),
    OFFSETS,
).map(lambda p: f"{p[0]}-{p[1]}-{p[2]}{p[3]}{p[4]}:{p[5]}:{p[6]}{p[7]}{p[8]}")


@settings(max_examples=1500, deadline=None)
@given(TIMESTAMPS)
def test_timestamp_pattern_agrees_with_parser(text: str) -> None:
    assert_agree(MODEL_RELEASE, decode_model_release, release(text))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789-:.TtZz+ \n", max_size=36))
def test_timestamp_noise_agrees_with_parser(text: str) -> None:
    assert_agree(MODEL_RELEASE, decode_model_release, release(text))


# --------------------------------------------------------------------------
# dead letters
# --------------------------------------------------------------------------

SOURCES = [{"file": "calls.jsonl", "line": 12}, {"topic": "api-calls", "partition": 3, "offset": 77}]
DEAD_PAYLOADS: list[object] = [
    orjson.dumps(with_(FULL, asn="x", prompt=SENTINEL, extra={"content": SENTINEL})),
    with_(FULL, messages=[{"content": SENTINEL}]),
    b'{"v": 1, "prompt": "' + SENTINEL.encode() + b'", "cot": NaN}',
    b'{"v": 1, "text": "' + SENTINEL.encode(),
    b'{"v": 1, "x": "\xff\xfe", "prompt": "' + SENTINEL.encode() + b'"}',
    b"\xff\xfe not utf-8 at all",
    b"[1, 2, 3]",
    b"",
    "a str payload",
    orjson.dumps(with_(FULL, notes="n" * 100_000)),
    b'{"prompt": "' + SENTINEL.encode() * 40_000 + b'"}',
    b'{"a": ' + b"[" * 900 + b"]" * 900 + b"}",
    decode_api_call(FULL),
    None,
]


@pytest.mark.parametrize("payload", DEAD_PAYLOADS, ids=range(len(DEAD_PAYLOADS)))
@pytest.mark.parametrize("source", SOURCES, ids=["file", "kafka"])
def test_dead_letters_validate(payload: object, source: dict) -> None:
    for reason in ("not_json", "duplicate"):
        record = dead_letter(reason, "a message", source, payload)  # type: ignore[arg-type]
        DEAD_LETTER.validate(orjson.loads(orjson.dumps(record)))
        assert SENTINEL not in orjson.dumps(record).decode()


def test_dead_letter_schema_catches_raw_text_and_bad_records() -> None:
    good = dead_letter("bad_ip", "m", SOURCES[0], orjson.dumps(FULL))
    assert DEAD_LETTER.is_valid(good)
    for broken in (
        {**good, "payload": {"a": {"b": [{"prompt": "x"}]}}},
        {**good, "reason": "mystery"},
        {**good, "payload": "p" * 70_000},
        {**good, "raw_text_fields_dropped": -1},
        {**good, "extra": 1},
        without(good, "source"),
    ):
        assert not DEAD_LETTER.is_valid(broken)


# --------------------------------------------------------------------------
# alerts
# --------------------------------------------------------------------------

SAMPLE_ALERT = {
    "v": 1,
    "alert_id": "al-3f9a1c22",
    "seq": 2,
    "status": "firing",
    "kind": "cluster",
    "severity": "critical",
    "score": 0.87,
    "entity": {"type": "cluster", "id": "cl-77e1"},
    "accounts": ["acct-0001", "acct-0002", "acct-0003"],
    "accounts_total": 214,
    "first_seen": "2026-03-06T08:12:00.000Z",
    "detected_at": "2026-03-06T10:00:00.000Z",
    "emitted_at": "2026-03-06T10:05:00.000Z",
    "summary": "214 accounts behind 3 proxies share 12 templates; 61% chain-of-thought prompts",
    "evidence": [
        {"signal": "template_share", "value": 0.72, "baseline": 0.04, "detail": "12 templates"},
        {"signal": "shared_payment", "value": True, "baseline": None, "detail": "pm_1a2b"},
        {"signal": "top_task", "value": "coding", "baseline": "chat", "detail": "narrow mix"},
    ],
    "sample_event_ids": ["evt-1", "evt-2"],
    "detector_version": "extraction-watch/0.1.0",
}


def test_sample_alert_validates() -> None:
    ALERT.validate(SAMPLE_ALERT)


@pytest.mark.parametrize("change", [
    {"v": 2},
    {"seq": 0},
    {"status": "open"},
    {"kind": "user"},
    {"severity": "high"},
    {"score": 1.2},
    {"entity": {"type": "ip", "id": "x"}},
    {"entity": {"type": "account"}},
    {"accounts": [f"a{i}" for i in range(1001)]},
    {"accounts_total": -1},
    {"first_seen": "2026-03-06T08:12:00"},
    {"emitted_at": 1772791500},
    {"evidence": [{"signal": "x", "value": None, "baseline": None, "detail": ""}]},
    {"evidence": [{"signal": "x", "value": 1}]},
    {"sample_event_ids": [f"e{i}" for i in range(21)]},
    {"extra": "field"},
])
def test_broken_alerts_do_not_validate(change: dict) -> None:
    assert not ALERT.is_valid({**SAMPLE_ALERT, **change})


@pytest.mark.parametrize("field", list(SAMPLE_ALERT))
def test_every_alert_field_is_required(field: str) -> None:
    assert not ALERT.is_valid(without(SAMPLE_ALERT, field))
