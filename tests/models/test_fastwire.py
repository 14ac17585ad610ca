"""The compiled build's C fast path for api_call payloads (models/fastwire.h).

It may decline any payload (msgspec and the reference decoder then take it), but
what it accepts it must decode exactly as the reference decoder does: the same
values of the same types in every field. Checked on simulated traffic and on
generated payloads near every rule's edge (whitespace, key order, lengths,
integer and float forms, calendar dates, addresses, simhash digits, escapes).
"""

from __future__ import annotations

import json
import os

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extraction_watch.simulator import simulate
from models import _native, contract, wire
from models.contract import ApiCall, ContractError

FIELDS = ApiCall.__struct_fields__
COMPILED = _native.active()

BASE = {
    "v": 1, "event_id": "e-1", "ts": "2026-03-06T10:00:00.123Z", "account_id": "acct-1",
    "org_id": "org-1", "api_key_id": "key-1", "access_path": "api",
    "client_ip": "203.0.113.9", "asn": 64500, "tls_fingerprint": "t13d",
    "user_agent": "ua/1.0", "payment_fingerprint": "pay-1",
    "account_created_at": "2026-01-01T00:00:00.000Z", "model": "m-1", "features": ["tools"],
    "task": "coding", "prompt_simhash": "00000000000000ff", "cot_elicitation": 0.5,
    "input_tokens": 3, "output_tokens": 5, "status": 200, "latency_ms": 12,
}


@pytest.fixture(scope="module", autouse=True)
def _build() -> None:
    # `make test` runs this process on the compiled build; without it the fast path does
    # not exist and every check below would hold vacuously
    if not COMPILED and os.environ.get("EXW_PURE_PYTHON", "") in ("", "0"):
        pytest.fail("the compiled build is not active: `make install` builds it "
                    "(EXW_PURE_PYTHON=1 runs these tests against the pure build)")


def _view(event: ApiCall) -> tuple:
    """Every field's type and value (1 and 1.0 differ here, as they do on the wire)."""
    return tuple((name, type(getattr(event, name)).__name__, repr(getattr(event, name)))
                 for name in FIELDS)


def _reference(payload: bytes) -> tuple | None:
    try:
        return _view(contract._decode_checked(payload))
    except ContractError:
        return None


def _check(payload: bytes) -> bool:
    """The fast path declines ``payload`` or agrees with the reference decoder; and
    the decoder as a whole always agrees. True when the fast path took it."""
    fast = wire.fast_path(payload)
    reference = _reference(payload)
    if fast is not None:
        assert COMPILED
        assert reference is not None, payload
        assert _view(fast) == reference, payload
    try:
        assert _view(wire.decode(payload)) == reference
    except ContractError:
        assert reference is None
    return fast is not None


def test_simulated_traffic_takes_the_fast_path(tmp_path) -> None:
    simulate("small", 11, tmp_path, hours=6.0, bad_rate=0.01)
    taken = declined = 0
    for line in (tmp_path / "events.jsonl").read_bytes().splitlines():
        if _check(line):
            taken += 1
        else:
            declined += 1
    # every good event but the rare shapes (escapes, offsets...) is read in C
    if COMPILED:
        assert taken > 0.9 * (taken + declined), (taken, declined)
        assert wire.fast_path_strings() > 0
    else:
        assert taken == 0


def test_canonical_event_in_both_timestamp_shapes_and_with_spaces() -> None:
    compact = orjson.dumps(BASE)
    spaced = json.dumps(BASE, indent=1).encode()  # newlines and spaces between tokens
    whole = orjson.dumps(dict(BASE, ts="2026-03-06T10:00:07Z",
                              account_created_at="2025-02-28T23:59:59Z"))
    for payload in (compact, spaced, whole):
        assert _check(payload) == COMPILED
    if COMPILED:
        event = wire.fast_path(whole)
        assert type(event.t) is int and type(event.account_created_t) is int
        assert type(wire.fast_path(compact).t) is float


@pytest.mark.parametrize("payload", [
    b'{"v":1,"event_id":"e\\u0031"}',  # an escape
    orjson.dumps(dict(BASE, user_agent="caf\u00e9")),  # non-ASCII
    orjson.dumps(dict(BASE, prompt="SECRET")),  # a raw-text key
    orjson.dumps(dict(BASE, extra=1)),  # an unknown key
    orjson.dumps(BASE)[:-1] + b',"asn":1}',  # a repeated key
    orjson.dumps(dict(BASE, ts="2026-03-06T12:00:00.123+02:00")),  # an offset
    orjson.dumps(dict(BASE, cot_elicitation=1)),  # an integer where a float goes
    orjson.dumps(dict(BASE, ts="2026-02-29T00:00:00.000Z")),  # no such day
    orjson.dumps(dict(BASE, ts="1969-12-31T23:59:59.999Z")),  # before the epoch
    orjson.dumps(dict(BASE, ts="2026-03-06T10:00:60.000Z")),  # a leap second
    orjson.dumps(dict(BASE, status=600)),
    orjson.dumps(dict(BASE, input_tokens=-1)),
    orjson.dumps(dict(BASE, v=2)),
    orjson.dumps({k: v for k, v in BASE.items() if k != "model"}),  # a required field gone
    orjson.dumps(BASE) + b"x",  # trailing bytes
    orjson.dumps(BASE)[:-1],  # cut short
])
def test_declines_what_it_does_not_read(payload) -> None:
    assert wire.fast_path(payload) is None
    _check(payload)


def test_ipv6_addresses_are_checked_once_by_the_contract() -> None:
    good = orjson.dumps(dict(BASE, client_ip="2001:db8::1"))
    bad = orjson.dumps(dict(BASE, client_ip="2001:db8::g"))
    for _ in range(2):  # the second time from the table
        assert _check(good) == COMPILED
        assert wire.fast_path(bad) is None
        _check(bad)


def test_the_tables_stay_bounded() -> None:
    line = orjson.dumps(BASE)
    for i in range(300_000):
        wire.fast_path(line.replace(b'"acct-1"', b'"acct-%d"' % i))
    if COMPILED:
        # tables of 16 + 14 + 16 + 12 + 12 + 15 + 15 + 3 * 8 bits of slots at most
        assert 0 < wire.fast_path_strings() <= 2**16 * 2 + 2**15 * 2 + 2**14 + 2**13 + 3 * 2**8


# --------------------------------------------------------------- generated payloads

_DIGITS = st.text(st.sampled_from("0123456789"), min_size=1, max_size=21)
_NUMBER = st.one_of(
    _DIGITS, _DIGITS.map(lambda d: "-" + d),
    st.builds(lambda a, b: f"{a}.{b}", _DIGITS, _DIGITS),
    st.builds(lambda a, e, s: f"{a}e{s}{e}", _DIGITS, st.integers(0, 400),
              st.sampled_from(["", "+", "-"])),
    st.sampled_from(["0", "1", "1.0", "0.0", "-0.0", "1e0", "0.5E-1", "1.", ".5", "01",
                     "9223372036854775807", "999999999999999999", "1000000000000000000",
                     "100", "599", "99", "600", "true", "null", "NaN", "Infinity"]),
)
_STRING_CHARS = st.sampled_from(list("abcXYZ019-_.:/ ") + ["\\", "\u00e9", "\x1f", "\x7f"])
_STRING = st.one_of(
    st.text(_STRING_CHARS, max_size=40),
    st.integers(0, 600).map(lambda n: "s" * n),
    st.sampled_from(["api", "chat", "cloud", "agent", "other", "API", ""]),
)


def _ts() -> st.SearchStrategy[str]:
    return st.builds(
        lambda y, mo, d, h, mi, s, frac, z: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:"
                                            f"{s:02d}{frac}{z}",
        st.sampled_from([1969, 1970, 2000, 2023, 2024, 2100, 9999]), st.integers(0, 13),
        st.integers(0, 32), st.integers(0, 24), st.integers(0, 60), st.integers(0, 61),
        st.sampled_from(["", ".000", ".123", ".999", ".5", ".1234"]),
        st.sampled_from(["Z", "z", "+00:00", ""]))


def _ip() -> st.SearchStrategy[str]:
    octet = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "007", ""]))
    return st.one_of(st.lists(octet, min_size=3, max_size=5).map(".".join),
                     st.sampled_from(["::1", "fe80::1%eth0", "2001:db8::", "1.2.3.4 ",
                                      "::ffff:1.2.3.4", "255.255.255.255", "0.0.0.0"]))


def _simhash() -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(list("0123456789abcdefABx")), min_size=15, max_size=17)


_RAW = st.one_of(
    _NUMBER,
    _STRING.map(lambda s: json.dumps(s, ensure_ascii=False)),
    _ts().map(json.dumps), _ip().map(json.dumps), _simhash().map(json.dumps),
    st.lists(_STRING.map(lambda s: json.dumps(s, ensure_ascii=False)), max_size=18).map(
        lambda items: "[" + ",".join(items) + "]"),
    st.just("null"), st.just("{}"),
)
_SPACE = st.sampled_from(["", "", "", " ", "\n", "\t ", "\r\n"])


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(st.sampled_from(list(BASE) + ["extra", "prompt"]), _RAW,
                               max_size=3),
       drop=st.sets(st.sampled_from(list(BASE)), max_size=2),
       order=st.randoms(use_true_random=False), space=_SPACE)
def test_generated_payloads_agree_with_the_reference(changes, drop, order, space) -> None:
    items = [(k, json.dumps(v)) for k, v in BASE.items() if k not in drop]
    raw = dict(items)
    raw.update(changes)
    pairs = list(raw.items())
    order.shuffle(pairs)
    payload = ("{" + space + ("," + space).join(
        f'"{k}"{space}:{space}{v}' for k, v in pairs) + space + "}").encode()
    _check(payload)
