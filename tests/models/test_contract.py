"""The api_call / model_release contract: decoding, errors, timestamps, dead letters."""

from __future__ import annotations

import json
import math
import pickle
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import contract
from models.contract import (
    ACCESS_PATHS,
    API_CALL_FIELDS,
    DEAD_LETTER_PAYLOAD_BYTES,
    DEAD_LETTER_REASONS,
    MAX_PAYLOAD_BYTES,
    RAW_TEXT_FIELDS,
    ApiCall,
    ContractError,
    ModelRelease,
    dead_letter,
    decode_api_call,
    decode_model_release,
    format_rfc3339,
    parse_rfc3339,
)

SENTINEL = "SENTINEL-7f3a9c-raw-prompt-text"

MINIMAL = {
    "v": 1,
    "event_id": "evt-1",
    "ts": "2026-03-06T10:00:00.123Z",
    "account_id": "acct-1",
    "access_path": "api",
    "client_ip": "203.0.113.7",
    "model": "frontier-2",
    "features": [],
    "input_tokens": 10,
    "output_tokens": 20,
    "status": 200,
}

FULL = {
    **MINIMAL,
    "org_id": "org-9",
    "api_key_id": "key-3",
    "asn": 64512,
    "tls_fingerprint": "t13d1516h2_8daaf6152771_02713d6af862",
    "user_agent": "python-httpx/0.27.0",
    "payment_fingerprint": "pm_1a2b3c4d5e",
    "account_created_at": "2025-11-02T08:15:00Z",
    "features": ["tools", "code"],
    "task": "coding",
    "prompt_simhash": "0123456789abcdef",
    "cot_elicitation": 0.25,
    "latency_ms": 1432,
}

SOURCE = {"file": "calls.jsonl", "line": 12}


def with_(base: dict, **changes: object) -> dict:
    event = dict(base)
    event.update(changes)
    return event


def without(base: dict, *names: str) -> dict:
    return {k: v for k, v in base.items() if k not in names}


def reason_of(payload: object) -> str | None:
    """The ContractError reason for ``payload``, or None if it decodes."""
    try:
        decode_api_call(payload)  # type: ignore[arg-type]
    except ContractError as exc:
        return exc.reason
    return None


# --------------------------------------------------------------------------
# Good events
# --------------------------------------------------------------------------


def test_minimal_event_decodes_with_defaults() -> None:
    event = decode_api_call(orjson.dumps(MINIMAL))
    assert event.event_id == "evt-1"
    assert event.ts == "2026-03-06T10:00:00.123Z"
    assert event.t == pytest.approx(1772791200.123, abs=1e-6)
    assert event.account_id == "acct-1"
    assert event.access_path == "api"
    assert event.client_ip == "203.0.113.7"
    assert event.model == "frontier-2"
    assert event.features == ()
    assert (event.input_tokens, event.output_tokens, event.status) == (10, 20, 200)
    for name in ("org_id", "api_key_id", "asn", "tls_fingerprint", "user_agent",
                 "payment_fingerprint", "account_created_at", "account_created_t",
                 "task", "simhash", "cot", "latency_ms"):
        assert getattr(event, name) is None, name
    assert event.raw_text_dropped == 0


def test_full_event_decodes_every_field() -> None:
    event = decode_api_call(orjson.dumps(FULL))
    assert event.org_id == "org-9"
    assert event.api_key_id == "key-3"
    assert event.asn == 64512
    assert event.tls_fingerprint == FULL["tls_fingerprint"]
    assert event.user_agent == "python-httpx/0.27.0"
    assert event.payment_fingerprint == "pm_1a2b3c4d5e"
    assert event.account_created_at == "2025-11-02T08:15:00Z"
    assert event.account_created_t == datetime(2025, 11, 2, 8, 15, tzinfo=UTC).timestamp()
    assert event.features == ("tools", "code")
    assert event.task == "coding"
    assert event.simhash == 0x0123456789ABCDEF
    assert event.cot == 0.25
    assert event.latency_ms == 1432


def test_nulls_for_optional_fields_are_absent_values() -> None:
    optional = [name for name in FULL if name not in MINIMAL]
    event = decode_api_call(with_(MINIMAL, **{name: None for name in optional}))
    assert all(getattr(event, name, None) is None for name in ("org_id", "asn", "task", "cot"))


@pytest.mark.parametrize("payload_type", [bytes, bytearray, memoryview, str, dict])
def test_every_payload_type_decodes_the_same(payload_type: type) -> None:
    raw = orjson.dumps(FULL)
    payload = {
        bytes: raw,
        bytearray: bytearray(raw),
        memoryview: memoryview(raw),
        str: raw.decode(),
        dict: dict(FULL),
    }[payload_type]
    assert decode_api_call(payload) == decode_api_call(raw)


def test_dict_payload_is_not_modified() -> None:
    payload = with_(FULL, prompt="x", extra={"a": 1})
    before = orjson.dumps(payload)
    decode_api_call(payload)
    assert orjson.dumps(payload) == before


def test_other_payload_types_are_a_programming_error() -> None:
    with pytest.raises(TypeError):
        decode_api_call(12)  # type: ignore[arg-type]


def test_integer_cot_is_read_as_float() -> None:
    assert decode_api_call(with_(FULL, cot_elicitation=1)).cot == 1.0
    assert type(decode_api_call(with_(FULL, cot_elicitation=0)).cot) is float


def test_boundary_values_are_accepted() -> None:
    event = decode_api_call(with_(
        FULL,
        event_id="e" * 128,
        account_id="a" * 128,
        org_id="o" * 128,
        tls_fingerprint="",
        user_agent="u" * 512,
        payment_fingerprint="p" * 128,
        model="m" * 128,
        features=["f" * 32] * 16,
        task="t" * 32,
        asn=0,
        input_tokens=0,
        output_tokens=2**63 - 1,
        status=100,
        latency_ms=0,
        cot_elicitation=0.0,
    ))
    assert len(event.features) == 16
    assert decode_api_call(with_(FULL, status=599, cot_elicitation=1.0)).status == 599


def test_unknown_fields_are_ignored_and_never_forwarded() -> None:
    event = decode_api_call(with_(FULL, region="eu", debug={"x": [1, 2]}, v2_field=None))
    assert event == decode_api_call(FULL)
    assert set(event.to_dict()) == set(API_CALL_FIELDS)


def test_apicall_has_slots_and_no_dict() -> None:
    event = decode_api_call(FULL)
    assert not hasattr(event, "__dict__")
    with pytest.raises(AttributeError):
        event.surprise = 1  # type: ignore[attr-defined]


def test_apicall_pickles() -> None:
    event = decode_api_call(with_(FULL, prompt="x"))
    clone = pickle.loads(pickle.dumps(event))
    assert clone == event
    assert clone.raw_text_dropped == 1


def test_apicall_constructor_stores_values() -> None:
    event = ApiCall(v=1, event_id="e", ts="2026-03-06T10:00:00Z", t=1772791200.0,
                    account_id="a", access_path="api", client_ip="10.0.0.1", model="m",
                    features=("x",), input_tokens=1, output_tokens=2, status=200)
    assert event.features == ("x",) and event.t == 1772791200.0 and event.status == 200
    assert event.to_dict()["prompt_simhash"] is None


# --------------------------------------------------------------------------
# to_dict round trip
# --------------------------------------------------------------------------


@pytest.mark.parametrize("base", [MINIMAL, FULL], ids=["minimal", "full"])
def test_to_dict_round_trips_through_decode(base: dict) -> None:
    event = decode_api_call(orjson.dumps(base))
    forwarded = event.to_dict()
    assert forwarded["v"] == 1
    assert forwarded["ts"] == base["ts"]
    assert decode_api_call(orjson.dumps(forwarded)) == event
    assert decode_api_call(forwarded).to_dict() == forwarded


def test_to_dict_keeps_original_strings_and_hex() -> None:
    event = decode_api_call(with_(FULL, ts="2026-03-06 12:00:00.5+02:00",
                                  prompt_simhash="000000000000000a"))
    out = event.to_dict()
    assert out["ts"] == "2026-03-06 12:00:00.5+02:00"
    assert out["prompt_simhash"] == "000000000000000a"
    assert out["account_created_at"] == FULL["account_created_at"]
    assert out["features"] == ["tools", "code"]


# --------------------------------------------------------------------------
# Bad fields: exact reason codes
# --------------------------------------------------------------------------

TOO_LONG = "x" * 129
BAD_FIELD_CASES = [
    # v
    ("v", 2, "unsupported_version"),
    ("v", 0, "unsupported_version"),
    ("v", "1", "unsupported_version"),
    ("v", 1.0, "unsupported_version"),
    ("v", True, "unsupported_version"),
    ("v", None, "unsupported_version"),
    # required strings
    ("event_id", None, "wrong_type"),
    ("event_id", 5, "wrong_type"),
    ("event_id", "", "out_of_range"),
    ("event_id", TOO_LONG, "out_of_range"),
    ("account_id", ["a"], "wrong_type"),
    ("account_id", "", "out_of_range"),
    ("account_id", TOO_LONG, "out_of_range"),
    ("model", None, "wrong_type"),
    ("model", "", "out_of_range"),
    ("model", TOO_LONG, "out_of_range"),
    # optional strings
    ("org_id", 5, "wrong_type"),
    ("org_id", "", "out_of_range"),
    ("org_id", TOO_LONG, "out_of_range"),
    ("api_key_id", False, "wrong_type"),
    ("api_key_id", "", "out_of_range"),
    ("api_key_id", TOO_LONG, "out_of_range"),
    ("tls_fingerprint", 5, "wrong_type"),
    ("tls_fingerprint", TOO_LONG, "out_of_range"),
    ("user_agent", {"ua": 1}, "wrong_type"),
    ("user_agent", "u" * 513, "out_of_range"),
    ("payment_fingerprint", 1.5, "wrong_type"),
    ("payment_fingerprint", TOO_LONG, "out_of_range"),
    ("task", 3, "wrong_type"),
    ("task", "", "out_of_range"),
    ("task", "t" * 33, "out_of_range"),
    # enum
    ("access_path", "API", "out_of_range"),
    ("access_path", "web", "out_of_range"),
    ("access_path", 1, "wrong_type"),
    ("access_path", None, "wrong_type"),
    ("access_path", ["api"], "wrong_type"),
    # timestamps
    ("ts", None, "wrong_type"),
    ("ts", 1772791200, "wrong_type"),
    ("ts", "2026-03-06", "bad_timestamp"),
    ("ts", "2026-03-06T10:00:00", "bad_timestamp"),
    ("ts", "yesterday", "bad_timestamp"),
    ("ts", "1969-12-31T23:59:59Z", "bad_timestamp"),
    ("account_created_at", 5, "wrong_type"),
    ("account_created_at", "2025-13-01T00:00:00Z", "bad_timestamp"),
    # ip
    ("client_ip", 3405803783, "wrong_type"),
    ("client_ip", None, "wrong_type"),
    ("client_ip", "1.2.3", "bad_ip"),
    ("client_ip", "", "bad_ip"),
    # integers
    ("asn", -1, "out_of_range"),
    ("asn", True, "wrong_type"),
    ("asn", 1.0, "wrong_type"),
    ("asn", "64512", "wrong_type"),
    ("input_tokens", -1, "out_of_range"),
    ("input_tokens", None, "wrong_type"),
    ("input_tokens", 10.0, "wrong_type"),
    ("input_tokens", False, "wrong_type"),
    ("output_tokens", -5, "out_of_range"),
    ("output_tokens", "20", "wrong_type"),
    ("output_tokens", True, "wrong_type"),
    ("status", 99, "out_of_range"),
    ("status", 600, "out_of_range"),
    ("status", 200.0, "wrong_type"),
    ("status", True, "wrong_type"),
    ("latency_ms", -1, "out_of_range"),
    ("latency_ms", True, "wrong_type"),
    ("latency_ms", 1.5, "wrong_type"),
    ("input_tokens", 2**63, "out_of_range"),
    ("output_tokens", 2**64 - 1, "out_of_range"),
    ("latency_ms", 2**63, "out_of_range"),
    ("asn", 2**63, "out_of_range"),
    # features
    ("features", None, "wrong_type"),
    ("features", "tools", "wrong_type"),
    ("features", {"tools": True}, "wrong_type"),
    ("features", ["f"] * 17, "out_of_range"),
    ("features", [""], "out_of_range"),
    ("features", ["f" * 33], "out_of_range"),
    ("features", ["ok", 1], "wrong_type"),
    ("features", [None], "wrong_type"),
    # simhash
    ("prompt_simhash", "0123456789ABCDEF", "out_of_range"),
    ("prompt_simhash", "0123456789abcde", "out_of_range"),
    ("prompt_simhash", "0123456789abcdef0", "out_of_range"),
    ("prompt_simhash", "0123456789abcdeg", "out_of_range"),
    ("prompt_simhash", "0x0123456789abcd", "out_of_range"),
    ("prompt_simhash", "0123_56789abcdef", "out_of_range"),
    ("prompt_simhash", " 123456789abcdef", "out_of_range"),
    ("prompt_simhash", 81985529216486895, "wrong_type"),
    # cot
    ("cot_elicitation", -0.01, "out_of_range"),
    ("cot_elicitation", 1.01, "out_of_range"),
    ("cot_elicitation", 2, "out_of_range"),
    ("cot_elicitation", "0.5", "wrong_type"),
    ("cot_elicitation", True, "wrong_type"),
    ("cot_elicitation", float("nan"), "out_of_range"),
    ("cot_elicitation", float("inf"), "out_of_range"),
]


@pytest.mark.parametrize(("field", "value", "reason"), BAD_FIELD_CASES,
                         ids=[f"{f}={v!r:.20}" for f, v, _ in BAD_FIELD_CASES])
def test_bad_field_value_gives_exact_reason(field: str, value: object, reason: str) -> None:
    payload = with_(FULL, **{field: value})
    with pytest.raises(ContractError) as info:
        decode_api_call(payload)
    assert info.value.reason == reason
    assert info.value.field == field
    assert field in info.value.message
    # Same answer from the wire form when the value survives JSON.
    if not (isinstance(value, float) and not math.isfinite(value)):
        assert reason_of(orjson.dumps(payload)) == reason


REQUIRED = [name for name in API_CALL_FIELDS if name in MINIMAL]


@pytest.mark.parametrize("field", REQUIRED)
def test_missing_required_field(field: str) -> None:
    with pytest.raises(ContractError) as info:
        decode_api_call(orjson.dumps(without(FULL, field)))
    assert info.value.reason == "missing_field"
    assert info.value.field == field


@pytest.mark.parametrize("field", [name for name in API_CALL_FIELDS if name not in MINIMAL])
def test_missing_optional_field_is_fine(field: str) -> None:
    assert decode_api_call(without(FULL, field)).event_id == "evt-1"


def test_first_fault_in_field_order_is_reported() -> None:
    payload = without(with_(FULL, status=0, asn=-1), "model")
    with pytest.raises(ContractError) as info:
        decode_api_call(payload)
    assert (info.value.reason, info.value.field) == ("out_of_range", "asn")
    with pytest.raises(ContractError) as info:
        decode_api_call(with_(without(FULL, "event_id"), v=3))
    assert info.value.reason == "unsupported_version"


def test_bool_is_not_an_int_anywhere() -> None:
    for field in ("asn", "input_tokens", "output_tokens", "status", "latency_ms"):
        for value in (True, False):
            assert reason_of(with_(FULL, **{field: value})) == "wrong_type", field


def test_access_paths() -> None:
    assert {"api", "chat", "cloud", "agent", "other"} == ACCESS_PATHS
    for path in ACCESS_PATHS:
        assert decode_api_call(with_(FULL, access_path=path)).access_path == path


# --------------------------------------------------------------------------
# Payload-level checks
# --------------------------------------------------------------------------


def test_payload_level_reasons() -> None:
    assert reason_of(b"\xff\xfe{}") == "not_utf8"
    assert reason_of(orjson.dumps(FULL)[:-5] + b"\xc3\x28" + b'"}') == "not_utf8"
    assert reason_of("{\"v\": 1, \"x\": \"\ud800\"}") == "not_utf8"
    assert reason_of(b"") == "not_json"
    assert reason_of(b"{\"v\": 1,") == "not_json"
    assert reason_of(b"\xef\xbb\xbf{}") == "not_json"
    assert reason_of(b'{"v": 1, "cot_elicitation": NaN}') == "not_json"
    assert reason_of(b'{"v": 1, "cot_elicitation": Infinity}') == "not_json"
    assert reason_of(b'{"v": 1, "x": ' + b"[" * 1100 + b"]" * 1100 + b"}") == "not_json"
    assert reason_of(b"[1, 2]") == "not_object"
    assert reason_of(b'"text"') == "not_object"
    assert reason_of(b"null") == "not_object"
    assert reason_of(b"{}") == "missing_field"
    assert reason_of(b'{"v": "1"}') == "unsupported_version"


def test_size_limit_is_checked_before_decoding() -> None:
    padding = MAX_PAYLOAD_BYTES - len(orjson.dumps(FULL)) - len(b',"pad":""')
    at_limit = orjson.dumps(with_(FULL, pad="p" * padding))
    assert len(at_limit) == MAX_PAYLOAD_BYTES
    assert reason_of(at_limit) is None
    over = at_limit[:-2] + b'p"}'
    assert reason_of(over) == "too_large"
    assert reason_of(bytearray(over)) == "too_large"
    assert reason_of(memoryview(over)) == "too_large"
    assert reason_of(over.decode()) == "too_large"
    # Not even UTF-8 or JSON is looked at when it is too big.
    assert reason_of(b"\xff" * (MAX_PAYLOAD_BYTES + 1)) == "too_large"
    # A str is measured in UTF-8 bytes, not characters.
    wide = orjson.dumps(with_(FULL, pad="é" * (MAX_PAYLOAD_BYTES // 2))).decode()
    assert len(wide) < MAX_PAYLOAD_BYTES < len(wide.encode())
    assert reason_of(wide) == "too_large"


def test_contract_error_pickles_and_is_a_value_error() -> None:
    err = ContractError("bad_ip", "field 'client_ip' ...", "client_ip")
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.reason, clone.message, clone.field) == ("bad_ip", err.message, "client_ip")
    assert isinstance(clone, ValueError)


def test_errors_do_not_chain_orjson_exceptions() -> None:
    # orjson's exception keeps the whole document (raw text included) in .doc.
    with pytest.raises(ContractError) as info:
        decode_api_call(b'{"v": 1, "prompt": "' + SENTINEL.encode())
    assert info.value.__context__ is None
    assert info.value.__cause__ is None


# --------------------------------------------------------------------------
# RFC 3339
# --------------------------------------------------------------------------

UTC_10 = datetime(2026, 3, 6, 10, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-03-06T10:00:00Z", UTC_10),
    ("2026-03-06T10:00:00z", UTC_10),
    ("2026-03-06t10:00:00Z", UTC_10),
    ("2026-03-06 10:00:00Z", UTC_10),
    ("2026-03-06T10:00:00+00:00", UTC_10),
    ("2026-03-06T10:00:00-00:00", UTC_10),
    ("2026-03-06T12:00:00+02:00", UTC_10),
    ("2026-03-06T04:30:00-05:30", UTC_10),
    ("2026-03-07T09:59:00+23:59", UTC_10),
    ("2026-03-06T10:00:00.5Z", UTC_10 + 0.5),
    ("2026-03-06T10:00:00.12Z", UTC_10 + 0.12),
    ("2026-03-06T10:00:00.123Z", UTC_10 + 0.123),
    ("2026-03-06T10:00:00.123456Z", UTC_10 + 0.123456),
    ("2026-03-06T10:00:00.123456789Z", UTC_10 + 0.123456789),
    ("2026-03-06T10:00:00.000000000+00:00", UTC_10),
    ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC).timestamp()),
    ("2000-02-29T00:00:00Z", datetime(2000, 2, 29, tzinfo=UTC).timestamp()),
    ("1970-01-01T00:00:00Z", 0.0),
    ("1970-01-01T01:00:00+01:00", 0.0),
    ("9999-12-31T23:59:59.999Z", 253402300799.999),
])
def test_rfc3339_accepted(text: str, expected: float) -> None:
    assert parse_rfc3339(text) == pytest.approx(expected, abs=1e-6)
    assert decode_api_call(with_(FULL, ts=text, account_created_at=text)).t == parse_rfc3339(text)


@pytest.mark.parametrize("text", [
    "2026-03-06",                       # date only
    "2026-03-06T10:00:00",              # no offset
    "2026-03-06T10:00Z",                # no seconds
    "2026-03-06T10:00:00.Z",            # empty fraction
    "2026-03-06T10:00:00.1234567890Z",  # 10 fraction digits
    "2026-03-06T10:00:00+0200",         # offset without colon
    "2026-03-06T10:00:00+02",           # offset without minutes
    "2026-03-06T10:00:00+24:00",        # offset hour out of range
    "2026-03-06T10:00:00+02:60",        # offset minute out of range
    "2026-03-06X10:00:00Z",             # bad separator
    "2026-13-06T10:00:00Z",             # month 13
    "2026-00-06T10:00:00Z",             # month 0
    "2026-02-29T10:00:00Z",             # not a leap year
    "1900-02-29T10:00:00Z",             # century, not a leap year
    "2026-04-31T10:00:00Z",             # 31 April
    "2026-03-00T10:00:00Z",             # day 0
    "2026-03-32T10:00:00Z",             # day 32
    "2026-03-06T24:00:00Z",             # hour 24
    "2026-03-06T10:60:00Z",             # minute 60
    "2026-03-06T10:00:61Z",             # second 61
    "1969-12-31T23:59:59Z",             # before 1970
    "1970-01-01T00:30:00+01:00",        # before 1970 once in UTC
    "0000-01-01T00:00:00Z",             # year 0
    "9999-12-31T23:59:59-01:00",        # after 9999 once in UTC
    "10000-01-01T00:00:00Z",            # five-digit year
    "2026-03-06T10:00:00Z\n",           # trailing newline
    " 2026-03-06T10:00:00Z",            # leading space
    "２０２６-03-06T10:00:00Z",          # non-ASCII digits
    "2026-03-06T10:00:00 Z",            # space before Z
    "",
])
def test_rfc3339_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)
    assert reason_of(with_(FULL, ts=text)) == "bad_timestamp"
    assert reason_of(with_(FULL, account_created_at=text)) == "bad_timestamp"


def test_leap_second_folds_onto_the_next_second() -> None:
    assert parse_rfc3339("2016-12-31T23:59:60Z") == parse_rfc3339("2017-01-01T00:00:00Z")
    assert parse_rfc3339("2016-12-31T23:59:60.5Z") == parse_rfc3339("2017-01-01T00:00:00.5Z")
    assert parse_rfc3339("2016-12-31T18:59:60-05:00") == parse_rfc3339("2017-01-01T00:00:00Z")
    assert decode_api_call(with_(FULL, ts="2016-12-31T23:59:60Z")).ts == "2016-12-31T23:59:60Z"


def test_parse_rejects_non_strings_with_value_error() -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(1772791200)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31)),
    offset_minutes=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    digits=st.integers(min_value=0, max_value=9),
    separator=st.sampled_from("Tt "),
)
def test_parse_agrees_with_datetime(moment: datetime, offset_minutes: int, digits: int,
                                    separator: str) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    local = moment.replace(tzinfo=zone)
    text = local.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    fraction = f"{local.microsecond:06d}000"[:digits]
    if digits:
        text += "." + fraction
    sign = "+" if offset_minutes >= 0 else "-"
    text += f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    expected = local.replace(microsecond=0).timestamp() + (int(fraction) / 10**digits if digits else 0)
    # Float seconds near year 9999 have ~30 us resolution, hence the relative tolerance.
    assert parse_rfc3339(text) == pytest.approx(expected, rel=1e-15, abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=253402300799999))
def test_format_parse_round_trip_at_millisecond_resolution(ms: int) -> None:
    text = format_rfc3339(ms / 1000)
    assert len(text) == 24 and text.endswith("Z")
    assert round(parse_rfc3339(text) * 1000) == ms
    assert format_rfc3339(parse_rfc3339(text)) == text


def test_format_rfc3339_examples_and_limits() -> None:
    assert format_rfc3339(1772791200.123) == "2026-03-06T10:00:00.123Z"
    assert format_rfc3339(1772791200.1234) == "2026-03-06T10:00:00.123Z"
    assert format_rfc3339(1772791200.9996) == "2026-03-06T10:00:01.000Z"
    assert format_rfc3339(1772791200) == "2026-03-06T10:00:00.000Z"
    assert format_rfc3339(parse_rfc3339("2024-02-29T23:59:59.999+00:00")) == "2024-02-29T23:59:59.999Z"
    for bad in (-0.001, 253402300800.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            format_rfc3339(bad)


def test_memo_tables_are_bounded_and_do_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    for bound in ("_CACHE_LIMIT", "_MINUTE_CACHE_LIMIT", "_ENTITY_CACHE_LIMIT"):
        monkeypatch.setattr(contract, bound, 5)
    stamps = [f"2026-03-06T10:{m:02d}:{s:02d}.{m * s:03d}+01:00" for m in range(30) for s in range(0, 60, 7)]
    for text in stamps * 2:
        expected = datetime.fromisoformat(text).timestamp()
        assert parse_rfc3339(text) == pytest.approx(expected, abs=1e-6)
    assert len(contract._minute_epochs) <= 7
    for i in range(50):
        ip = f"10.0.{i}.1"
        assert decode_api_call(with_(FULL, client_ip=ip, account_created_at=stamps[i])).client_ip == ip
    assert len(contract._ip_validity) <= 7
    assert len(contract._epoch_by_string) <= 7


# --------------------------------------------------------------------------
# IP addresses
# --------------------------------------------------------------------------


@pytest.mark.parametrize("ip", [
    "203.0.113.7", "0.0.0.0", "255.255.255.255", "10.0.0.1",
    "2001:db8::1", "::", "::1", "fe80::1", "2001:0db8:0000:0000:0000:ff00:0042:8329",
    "::ffff:192.0.2.128", "2001:DB8::A",
])
def test_good_ips(ip: str) -> None:
    assert decode_api_call(with_(FULL, client_ip=ip)).client_ip == ip


@pytest.mark.parametrize("ip", [
    "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.-4", " 1.2.3.4", "1.2.3.4 ",
    "1.2.3.4\n", "1.2.3.4/32", "example.com", "2001:db8::g", "2001:db8:::1", "1::2::3",
    "fe80::1%eth0", "12345::", "::ffff:999.0.0.1", "１.2.3.4", "x" * 200,
])
def test_bad_ips(ip: str) -> None:
    assert reason_of(with_(FULL, client_ip=ip)) == "bad_ip"
    # Cached verdicts stay the same.
    assert reason_of(with_(FULL, client_ip=ip)) == "bad_ip"


# --------------------------------------------------------------------------
# Raw text
# --------------------------------------------------------------------------


def test_raw_text_is_dropped_and_counted() -> None:
    payload = with_(FULL, prompt=SENTINEL, completion=SENTINEL, messages=[{"content": SENTINEL}],
                    text=SENTINEL, content=SENTINEL)
    event = decode_api_call(orjson.dumps(payload))
    assert event.raw_text_dropped == 5
    assert SENTINEL not in repr(event)
    assert SENTINEL not in orjson.dumps(event.to_dict()).decode()
    assert not RAW_TEXT_FIELDS & set(event.to_dict())
    assert all(SENTINEL not in repr(getattr(event, name)) for name in ApiCall.__slots__)
    assert decode_api_call(with_(FULL, prompt=None)).raw_text_dropped == 1
    assert decode_api_call(with_(MINIMAL, content="x")).raw_text_dropped == 1


def test_raw_text_never_appears_in_error_messages() -> None:
    # Raw text in the wrong place: in contract fields, next to other faults.
    cases = [
        with_(FULL, prompt=SENTINEL, asn="bad"),
        with_(FULL, content=SENTINEL, event_id=SENTINEL * 10),
        with_(FULL, text=SENTINEL, ts=SENTINEL),
        with_(FULL, messages=[SENTINEL], client_ip=SENTINEL),
        with_(FULL, completion=SENTINEL, access_path=SENTINEL),
        with_(FULL, prompt=SENTINEL, prompt_simhash=SENTINEL),
        with_(FULL, prompt=SENTINEL, features=[SENTINEL * 3]),
        with_(FULL, prompt=SENTINEL, v=SENTINEL),
    ]
    for case in cases:
        for payload in (case, orjson.dumps(case), orjson.dumps(case)[:-3]):
            with pytest.raises(ContractError) as info:
                decode_api_call(payload)
            assert SENTINEL not in str(info.value)
            assert SENTINEL not in info.value.message
            assert SENTINEL not in repr(info.value)


# --------------------------------------------------------------------------
# model_release
# --------------------------------------------------------------------------


def test_model_release_decodes() -> None:
    release = decode_model_release(b'{"v": 1, "model": "frontier-3", "released_at": '
                                   b'"2026-03-01T09:00:00+01:00", "notes": "x"}')
    assert isinstance(release, ModelRelease)
    assert release.model == "frontier-3"
    assert release.released_at == "2026-03-01T09:00:00+01:00"
    assert release.t == parse_rfc3339("2026-03-01T08:00:00Z")
    assert decode_model_release(release.to_dict()) == release
    assert not hasattr(release, "__dict__")


@pytest.mark.parametrize(("payload", "reason"), [
    (b'{"v": 1, "model": "m"}', "missing_field"),
    (b'{"v": 1, "released_at": "2026-03-01T00:00:00Z"}', "missing_field"),
    (b'{"model": "m", "released_at": "2026-03-01T00:00:00Z"}', "missing_field"),
    (b'{"v": 2, "model": "m", "released_at": "2026-03-01T00:00:00Z"}', "unsupported_version"),
    (b'{"v": 1, "model": "", "released_at": "2026-03-01T00:00:00Z"}', "out_of_range"),
    (b'{"v": 1, "model": 3, "released_at": "2026-03-01T00:00:00Z"}', "wrong_type"),
    (b'{"v": 1, "model": "m", "released_at": "2026-03-01"}', "bad_timestamp"),
    (b'{"v": 1, "model": "m", "released_at": 1772323200}', "wrong_type"),
    (b'{"v": 1, "model": "m", "released_at": null}', "wrong_type"),
    (b"[]", "not_object"),
    (b"{", "not_json"),
    (b"\xff", "not_utf8"),
])
def test_model_release_errors(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as info:
        decode_model_release(payload)
    assert info.value.reason == reason


# --------------------------------------------------------------------------
# Dead letters
# --------------------------------------------------------------------------


def assert_clean_record(record: dict) -> str:
    serialised = orjson.dumps(record).decode()
    assert SENTINEL not in serialised
    assert record["reason"] in DEAD_LETTER_REASONS
    assert len(orjson.dumps(record["payload"])) <= DEAD_LETTER_PAYLOAD_BYTES
    return serialised


def test_dead_letter_removes_raw_text_at_every_level() -> None:
    payload = with_(FULL, prompt=SENTINEL, extra={"messages": [{"role": "user", "content": SENTINEL}],
                                                  "deeper": [[{"text": SENTINEL, "keep": 1}]]})
    record = dead_letter("wrong_type", "msg", SOURCE, orjson.dumps(payload))
    assert_clean_record(record)
    assert record["payload"]["extra"] == {"deeper": [[{"keep": 1}]]}
    assert record["payload"]["event_id"] == "evt-1"
    assert record["raw_text_fields_dropped"] == 3
    assert record["payload_truncated"] is False
    assert record["source"] == SOURCE
    assert record["v"] == 1
    # A dict payload gives the same record and is not modified.
    before = orjson.dumps(payload)
    assert dead_letter("wrong_type", "msg", SOURCE, payload) == record
    assert orjson.dumps(payload) == before


def test_dead_letter_of_a_decoded_event() -> None:
    event = decode_api_call(with_(FULL, prompt=SENTINEL))
    record = dead_letter("duplicate", "seen before", {"topic": "calls", "partition": 3, "offset": 9},
                         event)
    assert_clean_record(record)
    assert record["payload"] == event.to_dict()


def test_dead_letter_cuts_large_payloads_to_64_kib() -> None:
    payload = with_(FULL, prompt=SENTINEL * 1000, notes='"quoted\\' * 20_000)
    record = dead_letter("too_large", "big", SOURCE, orjson.dumps(payload))
    serialised = assert_clean_record(record)
    assert isinstance(record["payload"], str)
    assert record["payload_truncated"] is True
    # As long as fits: within one escape sequence of the limit.
    assert DEAD_LETTER_PAYLOAD_BYTES - 6 <= len(orjson.dumps(record["payload"])) <= DEAD_LETTER_PAYLOAD_BYTES
    assert record["payload"].startswith('{"v":1,')
    assert len(serialised) < DEAD_LETTER_PAYLOAD_BYTES + 1024


def test_dead_letter_over_size_limit_is_scrubbed_as_text() -> None:
    payload = orjson.dumps(with_(FULL, prompt=SENTINEL * 100_000))
    assert len(payload) > MAX_PAYLOAD_BYTES
    record = dead_letter("too_large", "big", SOURCE, payload)
    assert_clean_record(record)
    assert record["payload_truncated"] is True
    assert record["raw_text_fields_dropped"] == 1


def test_dead_letter_keeps_small_objects_whole() -> None:
    record = dead_letter("missing_field", "m", SOURCE, b'{"v": 1}')
    assert record["payload"] == {"v": 1}
    assert record["payload_truncated"] is False
    assert record["raw_text_fields_dropped"] == 0


def test_dead_letter_non_utf8_bytes() -> None:
    raw = b'{"v": 1, "event_id": "\xff\xfe", "prompt": "' + SENTINEL.encode() + b'", "x": 1}'
    record = dead_letter("not_utf8", "bad bytes", SOURCE, raw)
    serialised = assert_clean_record(record)
    assert record["payload"] == '{"v": 1, "event_id": "\\xff\\xfe", "prompt": "[removed]", "x": 1}'
    assert record["raw_text_fields_dropped"] == 1
    assert "\\\\xff" in serialised


def test_dead_letter_scrubs_unparseable_json() -> None:
    raw = (b'{"v": 1, "prompt": "' + SENTINEL.encode() + b' \\" still inside", '
           b'"messages": [{"role": "user", "content": "' + SENTINEL.encode() + b' ]}"}], '
           b'"text" : {"a": ["' + SENTINEL.encode() + b'"]}, "content": 5, "cot": NaN}')
    record = dead_letter("not_json", "NaN", SOURCE, raw)
    assert_clean_record(record)
    assert record["payload"] == ('{"v": 1, "prompt": "[removed]", "messages": "[removed]", '
                                 '"text" : "[removed]", "content": 5, "cot": NaN}')
    assert record["raw_text_fields_dropped"] == 3


@pytest.mark.parametrize("cut", [5, 12, 15, 20, 25, 40, 60, 80])
def test_dead_letter_scrubs_truncated_json(cut: int) -> None:
    raw = b'{"v": 1, "prompt": "' + SENTINEL.encode() + b'", "messages": [{"content": "' + \
        SENTINEL.encode() + b'"}]}'
    record = dead_letter("not_json", "cut", SOURCE, raw[:cut])
    assert_clean_record(record)
    record = dead_letter("not_json", "cut", SOURCE, raw[: len(raw) - cut])
    assert_clean_record(record)


def test_dead_letter_of_json_that_is_not_an_object() -> None:
    record = dead_letter("not_object", "array", SOURCE, orjson.dumps([{"prompt": SENTINEL}, 2]))
    assert_clean_record(record)
    assert record["payload"] == "[{},2]"
    assert record["raw_text_fields_dropped"] == 1


def test_dead_letter_of_deep_and_odd_values() -> None:
    deep = b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    record = dead_letter("not_json", "deep", SOURCE, deep)
    assert_clean_record(record)
    assert record["payload_truncated"] is True
    odd = {"big": 10**30, "surrogate": "\ud800", 3: "int key", "nan": float("nan"), "obj": object()}
    record = dead_letter("wrong_type", "odd", SOURCE, odd)  # type: ignore[arg-type]
    assert_clean_record(record)
    assert record["payload"]["big"] == str(10**30)
    assert record["payload"]["3"] == "int key"
    for text in ("\ud800 lone surrogate", b"\x00\x01 binary"):
        assert_clean_record(dead_letter("not_json", "x", SOURCE, text))


def test_dead_letter_rejects_unknown_reasons() -> None:
    with pytest.raises(ValueError):
        dead_letter("bogus", "x", SOURCE, b"{}")


# --------------------------------------------------------------------------
# Hypothesis: mutated events only ever raise ContractError
# --------------------------------------------------------------------------

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(min_size=120, max_size=600),
    st.lists(st.one_of(st.integers(), st.text(max_size=40), st.none()), max_size=20),
    st.dictionaries(st.text(max_size=10), st.integers(), max_size=3),
    st.sampled_from(["2026-03-06T10:00:00Z", "2026-02-30T10:00:00Z", "1.2.3.4", "::1",
                     "0123456789abcdef", "api", "", "nan", "Infinity"]),
)

CONTRACT_FIELD = st.sampled_from([name for name in API_CALL_FIELDS])
PLACEHOLDER = "__PLACEHOLDER_7c1e__"
WIRE_GARBAGE = st.sampled_from([
    b"NaN", b"-Infinity", b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b'"\\ud800"', b"01", b"1e999",
    b"[" * 1025 + b"]" * 1025, b"[" * 200 + b"]" * 200, b"{" * 600, b'"unterminated',
])


def check_outcome(payload: object) -> ApiCall | ContractError:
    """Decode ``payload`` and check the invariants that hold for any input."""
    try:
        event = decode_api_call(payload)  # type: ignore[arg-type]
    except ContractError as exc:
        assert exc.reason in DEAD_LETTER_REASONS
        assert SENTINEL not in str(exc)
        record = dead_letter(exc.reason, exc.message, SOURCE, payload)  # type: ignore[arg-type]
        assert_clean_record(record)
        return exc
    assert SENTINEL not in repr(event)
    assert SENTINEL not in orjson.dumps(event.to_dict()).decode()
    assert decode_api_call(event.to_dict()).to_dict() == event.to_dict()
    return event


def check_rules_agree(obj: dict, outcome: ApiCall | ContractError) -> None:
    """The fast path and the rule table find the same first fault."""
    first = contract._first_error(obj, contract._API_CALL_RULES)
    if isinstance(outcome, ApiCall):
        assert first is None
    else:
        assert first is not None
        assert (first.reason, first.field) == (outcome.reason, outcome.field)


BASES = st.sampled_from([MINIMAL, FULL, with_(FULL, prompt=SENTINEL, content=SENTINEL)])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=BASES, field=CONTRACT_FIELD, value=JUNK)
def test_replaced_values_only_raise_contract_errors(base: dict, field: str, value: object) -> None:
    obj = with_(base, **{field: value})
    outcome = check_outcome(obj)
    check_rules_agree(obj, outcome)
    try:
        wire = orjson.dumps(obj)
    except orjson.JSONEncodeError:  # ints beyond 64 bits
        return
    wire_outcome = check_outcome(wire)
    if isinstance(value, float) and not math.isfinite(value):
        return  # orjson writes NaN and infinities as null
    if isinstance(outcome, ApiCall):
        assert wire_outcome == outcome
    else:
        assert isinstance(wire_outcome, ContractError)
        assert (wire_outcome.reason, wire_outcome.field) == (outcome.reason, outcome.field)


@settings(max_examples=150, deadline=None)
@given(base=BASES, field=st.sampled_from([n for n in API_CALL_FIELDS if n in MINIMAL]))
def test_dropped_required_fields_are_missing(base: dict, field: str) -> None:
    outcome = check_outcome(orjson.dumps(without(base, field)))
    assert isinstance(outcome, ContractError)
    assert (outcome.reason, outcome.field) == ("missing_field", field)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=BASES, field=CONTRACT_FIELD, size=st.integers(min_value=1, max_value=3 * MAX_PAYLOAD_BYTES))
def test_huge_strings(base: dict, field: str, size: int) -> None:
    obj = with_(base, **{field: "h" * size})
    wire = orjson.dumps(obj)
    outcome = check_outcome(wire)
    if size > 512:  # longer than any string field allows
        assert isinstance(outcome, ContractError)
    if len(wire) > MAX_PAYLOAD_BYTES:
        assert isinstance(outcome, ContractError) and outcome.reason == "too_large"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=BASES, field=CONTRACT_FIELD, garbage=WIRE_GARBAGE)
def test_wire_garbage(base: dict, field: str, garbage: bytes) -> None:
    wire = orjson.dumps(with_(base, **{field: PLACEHOLDER}))
    wire = wire.replace(orjson.dumps(PLACEHOLDER), garbage)
    outcome = check_outcome(wire)
    if garbage in (b"\xff", b"\xc3\x28", b"\xed\xa0\x80"):
        assert isinstance(outcome, ContractError) and outcome.reason == "not_utf8"
    if garbage in (b"NaN", b"-Infinity", b"1e999", b"01", b"{" * 600, b'"unterminated'):
        assert isinstance(outcome, ContractError) and outcome.reason == "not_json"
    if garbage.startswith(b"[" * 1025):
        assert isinstance(outcome, ContractError) and outcome.reason == "not_json"


@settings(max_examples=200, deadline=None)
@given(base=BASES, cut=st.integers(min_value=0, max_value=2000), extra=st.binary(max_size=8))
def test_truncated_and_corrupted_wire(base: dict, cut: int, extra: bytes) -> None:
    wire = orjson.dumps(base)
    check_outcome(wire[: cut % (len(wire) + 1)] + extra)


# --------------------------------------------------------------------------
# The msgspec fast path agrees with the reference decoder
# --------------------------------------------------------------------------

_FULL_EVENT = {
    "v": 1, "event_id": "e-1", "ts": "2026-03-06T10:00:00.123Z", "account_id": "a",
    "org_id": "o", "api_key_id": "k", "access_path": "api", "client_ip": "203.0.113.9",
    "asn": 64500, "tls_fingerprint": "t13d", "user_agent": "ua", "payment_fingerprint": "p",
    "account_created_at": "2026-01-01T00:00:00Z", "model": "m", "features": ["tools"],
    "task": "coding", "prompt_simhash": "00000000000000ff", "cot_elicitation": 0.5,
    "input_tokens": 3, "output_tokens": 5, "status": 200, "latency_ms": 12,
}
_ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=140),
    st.sampled_from(["", "api", "10.0.0.1", "::1", "1.2.3.04", "2026-03-06T10:00:00Z",
                     "2026-03-06T10:00:60+02:00", "2026-13-06T10:00:00Z", "0000000000000000",
                     "00000000000000FF", "x" * 129, "é" * 128, "\U0001F600" * 33]),
    st.lists(st.text(max_size=40), max_size=20), st.dictionaries(st.text(max_size=5), st.none()),
)
_ODD_KEYS = st.sampled_from(
    list(_FULL_EVENT) + ["prompt", "completion", "messages", "text", "content", "t", "simhash",
                         "cot", "raw_text_dropped", "__exw.t", "__exw.simhash",
                         "__exw.account_created_t", "__exw.raw_text_dropped", "dropped_prompt",
                         "extra"])


def _outcome(payload: bytes, decode) -> tuple:
    try:
        event = decode(payload)
    except ContractError as exc:
        return ("error", exc.reason, exc.field, exc.message)
    return ("ok", orjson.dumps(event.to_dict()), event.t, event.account_created_t,
            event.simhash, event.raw_text_dropped)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(_ODD_KEYS, _ODD_VALUES, max_size=4),
       drop=st.sets(st.sampled_from(list(_FULL_EVENT)), max_size=2),
       escape=st.booleans())
def test_fast_path_agrees_with_reference_decoder(changes, drop, escape) -> None:
    obj = {k: v for k, v in _FULL_EVENT.items() if k not in drop}
    obj.update(changes)
    payload = json.dumps(obj, ensure_ascii=False).encode()  # (orjson stops at 64-bit ints)
    if escape:  # the same document with its keys' first letters \u-escaped
        payload = payload.replace(b'{"', b'{"\\u00' + payload[2:3].hex().encode(), 1)
    assert _outcome(payload, decode_api_call) == _outcome(payload, contract._decode_checked)


def test_fast_path_ignores_derived_keys_on_the_wire() -> None:
    obj = dict(_FULL_EVENT, **{"__exw.t": 5.0, "__exw.simhash": 7, "__exw.raw_text_dropped": 9,
                               "__exw.account_created_t": 1.0})
    del obj["account_created_at"], obj["prompt_simhash"]
    event = decode_api_call(orjson.dumps(obj))
    assert event.t == parse_rfc3339(_FULL_EVENT["ts"])
    assert (event.simhash, event.raw_text_dropped, event.account_created_t) == (None, 0, None)


def test_fast_path_counts_escaped_raw_text_keys_and_keeps_no_text() -> None:
    payload = orjson.dumps(dict(_FULL_EVENT, prompt=SENTINEL)).replace(
        b'"prompt"', b'"\\u0070rompt"')
    event = decode_api_call(payload)
    assert event.raw_text_dropped == 1
    assert SENTINEL not in repr(pickle.dumps(event)) and SENTINEL.encode() not in pickle.dumps(event)


@pytest.mark.parametrize("field,value", [
    ("client_ip", "1.2.3.04"), ("client_ip", "fe80::1%eth0"), ("client_ip", "example.org"),
    ("ts", "2026-03-06T10:00:00"), ("ts", "2026-03-06T10:00:61Z"), ("ts", "1969-12-31T23:59:59Z"),
    ("ts", "2026-03-06T10:00:00.1234567890Z"), ("account_created_at", "yesterday"),
    ("prompt_simhash", "00000000000000FF"), ("prompt_simhash", "0000000000000ff"),
])
def test_fast_path_rejects_what_msgspec_cannot_check(field: str, value: str) -> None:
    payload = orjson.dumps(dict(_FULL_EVENT, **{field: value}))
    decode_api_call(orjson.dumps(_FULL_EVENT))  # warm every memo table first
    decode_api_call(orjson.dumps(dict(_FULL_EVENT, ts="2026-03-06T10:00:01Z")))
    outcome = _outcome(payload, decode_api_call)
    assert outcome[0] == "error" and outcome[2] == field
    assert outcome == _outcome(payload, contract._decode_checked)


_BAD_JSON_VALUES = [b'"\xff"', b'"\xed\xa0\x80"', b"NaN", b"-Infinity", b"Infinity", b"1e999",
                    b"-1e999", b"01", b"1.", b".5", b"+1", b"'x'", b"[" * 1100 + b"]" * 1100,
                    b'"\\ud800"', b'"\\x41"', b"tru", b"nul", b'"a\tb"', b"[1,]", b'{"a":1,}']


@pytest.mark.parametrize("value", _BAD_JSON_VALUES, ids=range(len(_BAD_JSON_VALUES)))
@pytest.mark.parametrize("field", ["extra", "prompt", "user_agent", "cot_elicitation",
                                   "latency_ms", "features"])
def test_fast_path_rejects_what_orjson_rejects_anywhere(field: str, value: bytes) -> None:
    # bytes that are not JSON (or not UTF-8) in a field msgspec checks, skips or
    # keeps raw: both decoders give the same verdict
    body = orjson.dumps({k: v for k, v in _FULL_EVENT.items() if k != field})
    payload = body[:-1] + b', "' + field.encode() + b'": ' + value + b"}"
    assert _outcome(payload, decode_api_call) == _outcome(payload, contract._decode_checked)


_TS_CHARS = st.sampled_from(list("0123456789") + ["x", " ", "_", "+", "-", "\u0665", "\uff15"])


@settings(max_examples=300, deadline=None)
@given(sec=st.text(_TS_CHARS, min_size=2, max_size=2),
       fraction=st.text(_TS_CHARS, min_size=3, max_size=3),
       zone=st.sampled_from(["Z", "z"]), dot=st.sampled_from([".", ","]))
def test_fast_path_millisecond_suffix_agrees_with_reference_decoder(sec, fraction, zone, dot):
    """The ":SS.fffZ" suffix is read without the memo: same verdict and the same float."""
    payload = orjson.dumps(dict(_FULL_EVENT, ts=f"2026-03-06T10:00:{sec}{dot}{fraction}{zone}"))
    decode_api_call(orjson.dumps(_FULL_EVENT))  # the minute is known
    assert _outcome(payload, decode_api_call) == _outcome(payload, contract._decode_checked)


@pytest.mark.parametrize("ts", ["2026-03-06T10:00:59.999Z", "2026-03-06T10:00:60.000z",
                                "2026-03-06T10:00:07.010Z", "2026-03-06T23:59:60.500Z"])
def test_fast_path_millisecond_suffix_values(ts):
    event = decode_api_call(orjson.dumps(dict(_FULL_EVENT, ts=ts)))
    assert event.t == parse_rfc3339(ts) == contract._decode_checked(
        orjson.dumps(dict(_FULL_EVENT, ts=ts))).t


_IP_CHARS = st.sampled_from(list("0123456789.") + ["a", ":", " ", "\u0661", "%", "-"])


@settings(max_examples=400, deadline=None)
@given(ip=st.one_of(
    st.text(_IP_CHARS, min_size=1, max_size=17),
    st.lists(st.integers(0, 300).map(str) | st.sampled_from(["00", "01", "007", "", "1e2"]),
             min_size=3, max_size=5).map(".".join)))
def test_fast_path_client_ip_agrees_with_reference_decoder(ip):
    """Dotted quads are read character by character in the compiled build: same verdicts."""
    payload = orjson.dumps(dict(_FULL_EVENT, client_ip=ip))
    assert _outcome(payload, decode_api_call) == _outcome(payload, contract._decode_checked)


@settings(max_examples=300, deadline=None)
@given(simhash=st.text(st.sampled_from(list("0123456789abcdefABCDEFx _+-\u0665")),
                       min_size=14, max_size=18))
def test_fast_path_simhash_agrees_with_reference_decoder(simhash):
    payload = orjson.dumps(dict(_FULL_EVENT, prompt_simhash=simhash))
    assert _outcome(payload, decode_api_call) == _outcome(payload, contract._decode_checked)
