"""Simulated time: RFC 3339 timestamps in milliseconds and the weekly rhythm.

All times inside the simulator are integer milliseconds since the Unix epoch.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = [
    "HOUR_MS",
    "MINUTE_SUFFIXES",
    "TimestampFormatter",
    "format_ms",
    "hour_of_week",
    "parse_rfc3339",
    "week_profile",
]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# 1970-01-01 was a Thursday: hour 0 of the epoch is hour 72 of a Monday-based week.
_EPOCH_HOUR_OF_WEEK = 72

# Relative human activity by local hour of day (night trough, working-hours peak).
_DAY_SHAPE = (
    0.25, 0.18, 0.14, 0.12, 0.12, 0.15, 0.25, 0.45, 0.70, 0.90, 1.00, 1.00,
    0.92, 0.95, 1.00, 1.00, 0.95, 0.85, 0.75, 0.70, 0.66, 0.60, 0.50, 0.38,
)


def parse_rfc3339(text: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 UTC timestamp.

    >>> parse_rfc3339("2026-03-06T00:00:00Z")
    1772755200000
    """
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from exc
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return round(moment.timestamp() * 1000)


def format_ms(ms: int) -> str:
    """RFC 3339 UTC with millisecond precision.

    >>> format_ms(1772755200123)
    '2026-03-06T00:00:00.123Z'
    """
    seconds, millis = divmod(ms, 1000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


# "SS.mmmZ" for every millisecond of a minute.
MINUTE_SUFFIXES = tuple(f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(60_000))


class TimestampFormatter:
    """`format_ms` with the minute prefix cached: events come in time order.

    >>> TimestampFormatter()(1772755200123)
    '2026-03-06T00:00:00.123Z'
    """

    __slots__ = ("_minute", "_prefix")

    def __init__(self) -> None:
        self._minute = -1
        self._prefix = ""

    def __call__(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        if minute != self._minute:
            self._minute = minute
            self._prefix = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")
        return self._prefix + MINUTE_SUFFIXES[rest]


def hour_of_week(ms: int, offset_ms: int = 0) -> int:
    """Monday-based hour of the week (0..167) of local time `ms + offset_ms`."""
    return ((ms + offset_ms) // HOUR_MS + _EPOCH_HOUR_OF_WEEK) % 168


def week_profile(diurnal_amplitude: float, weekend_factor: float) -> tuple[float, ...]:
    """Activity multiplier for each Monday-based local hour of the week, mean 1.

    `diurnal_amplitude` 0 gives a flat day, 1 the full day/night contrast;
    Saturday and Sunday are multiplied by `weekend_factor`.

    >>> flat = week_profile(0.0, 1.0)
    >>> len(flat), min(flat) == max(flat) == 1.0
    (168, True)
    """
    top = max(_DAY_SHAPE)
    raw = []
    for hour in range(168):
        day, hod = divmod(hour, 24)
        level = 1.0 - diurnal_amplitude + diurnal_amplitude * _DAY_SHAPE[hod] / top
        raw.append(level * (weekend_factor if day >= 5 else 1.0))
    mean = sum(raw) / len(raw)
    return tuple(value / mean for value in raw)
