"""Prometheus text exposition (format 0.0.4) for the worker's ``/metrics``.

Counters and summaries are kept here; gauges are read from the worker's state
when scraped. Small on purpose: a few dozen series, no client library needed.

>>> m = Metrics()
>>> m.inc("exw_events_total", 3)
>>> m.inc("exw_dead_letters_total", reason="not_json")
>>> m.observe("exw_detect_batch_seconds", 0.5)
>>> print(m.render({"exw_tracked_entities": [({"type": "account"}, 7.0)]}).decode())
# TYPE exw_dead_letters_total counter
exw_dead_letters_total{reason="not_json"} 1
# TYPE exw_events_total counter
exw_events_total 3
# TYPE exw_detect_batch_seconds summary
exw_detect_batch_seconds_count 1
exw_detect_batch_seconds_sum 0.5
# TYPE exw_tracked_entities gauge
exw_tracked_entities{type="account"} 7
<BLANKLINE>
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["Metrics"]

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels | Mapping[str, str]) -> str:
    items = labels.items() if isinstance(labels, Mapping) else labels
    if not items:
        return ""
    body = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(items))
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Metrics:
    def __init__(self) -> None:
        self._counters: dict[str, dict[Labels, float]] = {}
        self._gauges: dict[str, dict[Labels, float]] = {}
        self._summaries: dict[str, list[float]] = {}

    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        series = self._counters.setdefault(name, {})
        key = tuple(sorted(labels.items()))
        series[key] = series.get(key, 0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        self._gauges.setdefault(name, {})[tuple(sorted(labels.items()))] = value

    def observe(self, name: str, seconds: float) -> None:
        summary = self._summaries.setdefault(name, [0.0, 0.0])
        summary[0] += 1
        summary[1] += seconds

    def counter(self, name: str, **labels: str) -> float:
        return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self, gauges: Mapping[str, list[tuple[dict[str, str], float]]] | None = None
               ) -> bytes:
        lines: list[str] = []
        for name in sorted(self._counters):
            lines.append(f"# TYPE {name} counter")
            for key, value in sorted(self._counters[name].items()):
                lines.append(f"{name}{_labels(key)} {_number(value)}")
        for name in sorted(self._summaries):
            count, total = self._summaries[name]
            lines.append(f"# TYPE {name} summary")
            lines.append(f"{name}_count {_number(count)}")
            lines.append(f"{name}_sum {_number(total)}")
        merged: dict[str, list[tuple[Labels | Mapping[str, str], float]]] = {}
        for name, stored in self._gauges.items():
            merged[name] = [(key, value) for key, value in stored.items()]
        for name, series in (gauges or {}).items():
            merged.setdefault(name, []).extend(series)
        for name in sorted(merged):
            lines.append(f"# TYPE {name} gauge")
            for labels, value in merged[name]:
                lines.append(f"{name}{_labels(labels)} {_number(value)}")
        return ("\n".join(lines) + "\n").encode()
