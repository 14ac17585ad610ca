"""The half of :func:`models.contract.decode_api_call` that runs after msgspec.

msgspec decodes an api_call and checks the types, lengths and ranges its
field types express; :func:`finish` checks the rest on the decoded event (the
timestamp, the client IP, the simhash digits, raw-text keys) and fills the
derived fields, or says no, and the caller hands the payload to the reference
decoder, which alone names faults. It is a module of its own so that the
compiled build (models/_native.py, wire.pxd) runs it: there the commonest
shapes (a ``:SS.fffZ`` timestamp suffix, a dotted-quad IPv4 address, the
simhash digits) are read character by character in C; anything else, and the
pure-Python build, take the memo tables of :mod:`models.contract` (imported
from there: this module imports the contract, which imports it back only on
first use, so that ApiCall exists when the compiled build checks its layout). Both accept exactly what the reference decoder accepts, with the
same values (tests/models/test_contract.py, run in both builds).
"""

from __future__ import annotations

from models.contract import (  # the memo tables and helpers of the reference decoder
    _HEX16,
    _NO_RAW,
    _T_END,
    _WHOLE_SECONDS,
    _WIRE_ERRORS,
    MAX_PAYLOAD_BYTES,
    ApiCall,
    _created_epoch_slow,
    _decode_checked,
    _decode_wire,
    _epoch_by_string,
    _ip_ok_slow,
    _ip_validity,
    _minute_epochs,
    _suffix_seconds,
    _suffix_seconds_slow,
)

__all__ = ["decode", "finish", "check_apicall_layout", "fast_path", "fast_path_strings"]

# whether this module runs compiled (an extension module's file is not a .py file)
_COMPILED = not __file__.endswith((".py", ".pyc"))


def check_apicall_layout(cls: type) -> None:
    """Compiled build: raise ImportError unless ``cls`` lays its slots out as
    models/_apicall.pxd says ApiCall does (this module and the engine read them there)."""
    check_layout(cls)  # type: ignore[name-defined]  # noqa: F821 (cimported in wire.pxd)


if _COMPILED:
    check_apicall_layout(ApiCall)
    # the C fast path (models/fastwire.h) copies this event, every field at its default
    fast_init(ApiCall, ApiCall(  # type: ignore[name-defined]  # noqa: F821 (wire.pxd)
        v=1, event_id="-", ts="-", account_id="-", access_path="api", client_ip="-",
        model="-", features=(), input_tokens=0, output_tokens=0, status=200), _ip_ok_slow)


def fast_path(payload):
    """The compiled fast path alone: an ApiCall, or None where it declines (always
    None in the pure build). For tests; :func:`decode` is the way in."""
    return fast_decode(payload) if _COMPILED else None  # type: ignore[name-defined]  # noqa: F821


def fast_path_strings() -> int:
    """How many strings the compiled fast path keeps for reuse (0 in the pure build)."""
    return fast_interned() if _COMPILED else 0  # type: ignore[name-defined]  # noqa: F821


def decode(payload):
    """:func:`models.contract.decode_api_call` (see there), without its interpreted frame.

    Compiled, the commonest payload shape is read in C straight into an ApiCall
    (models/fastwire.h); whatever it declines takes msgspec and :func:`finish`, and
    what they decline the reference decoder."""
    if type(payload) is bytes and len(payload) <= MAX_PAYLOAD_BYTES:
        if _COMPILED:
            event = fast_decode(payload)  # type: ignore[name-defined]  # noqa: F821 (wire.pxd)
            if event is not None:
                return event
        try:
            event = _decode_wire(payload)
        except _WIRE_ERRORS:
            # (the reference decoder runs outside the handler, so its ContractError
            # does not chain msgspec's error, which may quote the payload)
            event = None
        if event is not None and finish(event):
            return event
    return _decode_checked(payload)


def finish(event: ApiCall) -> bool:  # (typed in wire.pxd: the event's slots are read in C)
    """Check what msgspec could not on ``event`` and fill its derived fields; False
    when the payload must go to the reference decoder."""
    ts = event.ts
    minutes = _minute_epochs  # (a dict-typed local compiled: .get is a C call)
    known = minutes.get(ts[:16])
    if known is None:
        return False
    minute = known  # (a C double compiled: an int plus a float is the same sum in C)
    # ":SS.fffZ", the commonest shape: millisecond suffixes (60,000 of them) would
    # churn the suffix memo, so the whole seconds and the fraction are added as
    # _suffix_value does
    rest = 0.0
    found = False
    if _COMPILED:  # character by character, in C
        if len(ts) == 24 and ts[16] == ":" and ts[19] == "." and (ts[23] == "Z" or ts[23] == "z"):
            s1 = ord(ts[17]) - 48
            s2 = ord(ts[18]) - 48
            f1 = ord(ts[20]) - 48
            f2 = ord(ts[21]) - 48
            f3 = ord(ts[22]) - 48
            if 0 <= s1 <= 9 and 0 <= s2 <= 9 and 0 <= f1 <= 9 and 0 <= f2 <= 9 and 0 <= f3 <= 9:
                sec = s1 * 10 + s2
                if sec <= 60:
                    rest = sec + (f1 * 100 + f2 * 10 + f3) / 1000
                    found = True
    elif len(ts) == 24 and ts[19] == "." and ts[23] in "Zz":  # with slices and a memo
        whole = _WHOLE_SECONDS.get(ts[16:19])
        fraction = ts[20:23]
        if whole is not None and fraction.isdigit() and fraction.isascii():
            rest = whole + int(fraction) / 1000
            found = True
    if found:
        t = minute + rest
        t_end = _T_END
        if not 0 <= t < t_end:
            return False
        event.t = t
    else:
        suffix = ts[16:]
        seconds = _suffix_seconds.get(suffix)
        if seconds is None:
            seconds = _suffix_seconds_slow(suffix)  # a new second in a known minute
            if seconds is None:
                return False
        t_any = known + seconds  # (an int for whole seconds, as the reference decoder gives)
        if not 0 <= t_any < _T_END:
            return False
        event.t = t_any
    # a dotted quad as ipaddress.IPv4Address accepts it (ASCII digits, 0..255, no
    # leading zeros) is read in C in the compiled build; anything else, and the
    # pure build, go through the memo and the ipaddress module
    ip = event.client_ip
    n = len(ip)
    quad = _COMPILED and 7 <= n <= 15
    if quad:
        dots = digits = octet = lead = 0
        for i in range(n):
            c = ip[i]
            if c == ".":
                if digits == 0 or octet > 255:
                    quad = False
                    break
                dots += 1
                digits = octet = 0
            elif "0" <= c <= "9":
                if digits == 0:
                    lead = ord(c) - 48
                elif lead == 0 or digits == 3:
                    quad = False
                    break
                octet = octet * 10 + (ord(c) - 48)
                digits += 1
            else:
                quad = False
                break
        if quad and (dots != 3 or digits == 0 or octet > 255):
            quad = False
    if not quad:
        ip_ok = _ip_validity.get(ip)
        if ip_ok is None:
            ip_ok = _ip_ok_slow(ip)
        if not ip_ok:
            return False
    # the derived fields are always written (t above): a payload cannot set them
    created = event.account_created_at
    if created is None:
        event.account_created_t = None
    else:
        created_epochs = _epoch_by_string
        created_t = created_epochs.get(created)
        if created_t is None:
            created_t = _created_epoch_slow(created)  # (memoised there)
            if created_t is None:
                return False
        event.account_created_t = created_t
    simhash = event.prompt_simhash
    if simhash is None:
        event.simhash = None
    elif _COMPILED:  # 16 lowercase hex digits, read in C
        if len(simhash) != 16:
            return False
        value = 0
        for i in range(16):
            c = simhash[i]
            if "0" <= c <= "9":
                value = value * 16 + (ord(c) - 48)
            elif "a" <= c <= "f":
                value = value * 16 + (ord(c) - 87)
            else:
                return False
        event.simhash = value
    elif _HEX16(simhash) is None:
        return False
    else:
        event.simhash = int(simhash, 16)
    event.raw_text_dropped = 0
    return (event.dropped_prompt is _NO_RAW and event.dropped_completion is _NO_RAW
            and event.dropped_messages is _NO_RAW and event.dropped_text is _NO_RAW
            and event.dropped_content is _NO_RAW)
