"""Readable renderings of alert streams for terminals."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["latest_updates", "format_alerts"]

_ORDER = {"critical": 0, "warning": 1, "info": 2}


def latest_updates(alerts: Iterable[dict]) -> list[dict]:
    """The last update of each alert id, most severe and most recent first."""
    latest: dict[str, dict] = {}
    peak: dict[str, str] = {}
    for alert in alerts:
        aid = alert["alert_id"]
        if aid not in latest or alert["seq"] >= latest[aid]["seq"]:
            latest[aid] = alert
        if aid not in peak or _ORDER[alert["severity"]] < _ORDER[peak[aid]]:
            peak[aid] = alert["severity"]
    rows = [dict(a, peak_severity=peak[a["alert_id"]]) for a in latest.values()]
    rows.sort(key=lambda a: (_ORDER[a["peak_severity"]], a["first_seen"], a["alert_id"]))
    return rows


def format_alerts(alerts: Iterable[dict], max_evidence: int = 8) -> str:
    out = []
    for alert in latest_updates(alerts):
        out.append(
            f"[{alert['peak_severity'].upper():8}] {alert['kind']:<7} {alert['alert_id']}  "
            f"entity {alert['entity']['type']}:{alert['entity']['id']}  seq {alert['seq']} "
            f"({alert['status']})  score {alert['score']:.2f}"
        )
        out.append(f"    {alert['summary']}")
        out.append(
            f"    accounts {alert['accounts_total']:,}; first evidence {alert['first_seen']}; "
            f"last update {alert['detected_at']}"
        )
        for ev in alert["evidence"][:max_evidence]:
            base = "" if ev["baseline"] is None else f" (baseline {ev['baseline']})"
            value = f"{ev['value']:.3f}" if isinstance(ev["value"], float) else str(ev["value"])
            out.append(f"      - {ev['signal']:<20} {value}{base}: {ev['detail']}")
        out.append("")
    return "\n".join(out) if out else "(no alerts)"
