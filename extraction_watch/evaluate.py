"""Score alert v1 records against the simulator's ground truth.

``evaluate(truth, alerts)`` takes the simulator's ``truth.json`` (as a dict) and
the alert updates of a run (as a list of dicts, one per JSONL line) and returns a
JSON-serialisable dict of figures and a ``passed`` verdict per quality bar.
``format_report`` renders that dict as a plain-text table for a terminal.

Definitions
-----------

Update
    One alert v1 record, i.e. one line of the alerts JSONL. An alert (one
    ``alert_id``) is the sequence of its updates. One update lists at most 1000
    accounts, so the accounts an alert names are the *union* over its updates.

Actionable update
    An update with ``status == "firing"`` and ``severity`` ``"warning"`` or
    ``"critical"``. Info updates and resolved updates are never actionable.

Named accounts
    The union of ``accounts`` over all actionable updates. An alert's own named
    accounts are the union over *its* actionable updates.

Campaign accounts
    The union of ``accounts`` over all campaigns in the truth.

Campaign share of an alert
    |alert's named accounts ∩ campaign accounts| / |alert's named accounts|.
    An alert *qualifies* when its campaign share is at least 0.5
    (``MIN_CAMPAIGN_SHARE``), so one huge alert that names mostly benign
    accounts cannot detect anything.

Per campaign
    ``detected``: some qualifying alert has an actionable update that names at
    least one of the campaign's accounts.
    ``time_to_detect_s``: the earliest ``detected_at`` over the actionable
    updates of qualifying alerts that name one of its accounts, minus the
    campaign's ``start``; null when not detected. (Only qualifying alerts count,
    so that the figure is the time of the detection that ``detected`` credits.)
    It may be negative when an account was already flagged before the campaign
    began.
    ``recall``: |its accounts ∩ named accounts| / |its accounts| (1.0 if it has
    no accounts).
    ``alert_ids``: the alerts whose named accounts include one of its accounts;
    ``detecting_alert_ids``: the qualifying ones among them.

Pivot latency (campaigns whose ``pivot`` is not null)
    The earliest ``detected_at`` over firing updates with ``kind == "pivot"``
    and severity warning or critical that name at least one of the campaign's
    accounts and whose ``detected_at`` is at or after ``pivot.release_at``,
    minus ``pivot.release_at``; null if there is none. The campaign-share rule
    does not apply here.

Overall accounts
    precision = |named ∩ campaign accounts| / |named| (1.0 if nothing is named);
    recall = |named ∩ campaign accounts| / |campaign accounts| (1.0 if there are
    no campaign accounts).

Traps
    For each trap group in ``truth["traps"]``: how many of its accounts are named
    by actionable updates, and how many by any update at all (any severity,
    any status, info included).

Alerts
    Distinct alert ids; distinct ids by kind (the kind of an alert's latest
    update, by ``seq``) and by the highest severity any of its updates had;
    the number of updates, of resolved updates, and of alerts whose latest
    update is resolved; and the alerts whose ``accounts_total`` exceeds the
    accounts their updates listed (so some accounts were never seen here).

Quality bars (``QUALITY_BARS``)
    every campaign detected; precision >= 0.95; recall >= 0.90; no trap account
    named by an actionable update; time to detect <= 7200 s for every campaign;
    pivot latency <= 21600 s for every campaign with a pivot; at most 20
    distinct alert ids. The last bar is only meaningful for the default
    scenario: pass ``max_alert_ids`` to change it, or ``None`` to leave it out.
    ``passed`` holds one boolean per bar and ``all``, their conjunction. Bars
    over campaigns hold vacuously when there are none.

Timestamps are RFC 3339 strings (``2026-03-06T10:00:00.123Z``; a missing offset
means UTC) or numbers of seconds since the epoch. Durations are seconds, rounded
to the millisecond. All lists in the result are sorted, so the output is
deterministic; serialise it with ``orjson.OPT_SORT_KEYS`` for byte-identical
files.

>>> truth = {
...     "start": "2026-03-06T00:00:00Z",
...     "campaigns": [{"id": "c1", "archetype": "hydra", "accounts": ["a1", "a2"],
...                    "start": "2026-03-06T01:00:00Z", "pivot": None}],
...     "traps": {"nat": ["n1"]},
... }
>>> alerts = [{"v": 1, "alert_id": "x", "seq": 1, "status": "firing", "kind": "cluster",
...            "severity": "critical", "accounts": ["a1", "a2"], "accounts_total": 2,
...            "detected_at": "2026-03-06T01:30:00Z"}]
>>> result = evaluate(truth, alerts)
>>> result["campaigns"][0]["time_to_detect_s"], result["accounts"]["precision"]
(1800.0, 1.0)
>>> result["passed"]["all"]
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "ACTIONABLE_SEVERITIES",
    "MIN_CAMPAIGN_SHARE",
    "QUALITY_BARS",
    "evaluate",
    "format_report",
    "load_alerts",
    "load_truth",
]

ACTIONABLE_SEVERITIES = frozenset({"warning", "critical"})
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
# An alert must name at least this share of campaign accounts to detect anything.
MIN_CAMPAIGN_SHARE = 0.5

QUALITY_BARS: dict[str, Any] = {
    "all_campaigns_detected": True,
    "min_precision": 0.95,
    "min_recall": 0.90,
    "max_trap_accounts_actionable": 0,
    "max_time_to_detect_s": 7200,
    "max_pivot_latency_s": 21600,
    "max_alert_ids": 20,
}


# ---------------------------------------------------------------- loading


def load_truth(path: str | Path) -> dict[str, Any]:
    """Read the simulator's ``truth.json``."""
    truth = orjson.loads(Path(path).read_bytes())
    if not isinstance(truth, dict):
        raise ValueError(f"{path}: truth must be a JSON object")
    return truth


def load_alerts(path: str | Path) -> list[dict[str, Any]]:
    """Read alert v1 records from a JSONL file, one per line; blank lines are skipped."""
    alerts: list[dict[str, Any]] = []
    with Path(path).open("rb") as lines:
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not JSON: {exc}") from exc
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{line_no}: alert must be a JSON object")
            alerts.append(record)
    return alerts


# ---------------------------------------------------------------- helpers


def _epoch_s(value: Any) -> float:
    """Seconds since the epoch of an RFC 3339 string or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.strip().upper())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise ValueError(f"not a timestamp: {value!r}")


def _seconds(delta: float) -> float:
    return round(delta, 3)


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def _sorted(ids: Iterable[Any]) -> list[Any]:
    # str key: ids are strings in practice, but mixed types must not crash sorting
    return sorted(ids, key=lambda x: (str(type(x)), str(x)))


def _is_actionable(update: Mapping[str, Any]) -> bool:
    return update.get("status") == "firing" and update.get("severity") in ACTIONABLE_SEVERITIES


def _accounts(update: Mapping[str, Any]) -> list[Any]:
    return list(update.get("accounts") or ())


def _update_order(indexed: tuple[int, Mapping[str, Any]]) -> tuple[int, int]:
    index, update = indexed
    seq = update.get("seq")
    return (seq if isinstance(seq, int) else -1, index)


def _earliest(times: Iterable[float]) -> float | None:
    return min(times, default=None)


# ---------------------------------------------------------------- evaluation


def evaluate(
    truth: Mapping[str, Any],
    alerts: Iterable[Mapping[str, Any]],
    *,
    max_alert_ids: int | None = QUALITY_BARS["max_alert_ids"],
) -> dict[str, Any]:
    """Score alert updates against the ground truth; see the module docstring."""
    updates = list(alerts)
    campaigns = sorted(truth.get("campaigns") or (), key=lambda c: str(c.get("id")))
    campaign_accounts: set[Any] = set()
    for campaign in campaigns:
        campaign_accounts.update(campaign.get("accounts") or ())

    # Per alert id: its updates in order, and the union of accounts it names.
    by_alert: dict[Any, list[tuple[int, Mapping[str, Any]]]] = {}
    for index, update in enumerate(updates):
        by_alert.setdefault(update.get("alert_id"), []).append((index, update))
    actionable_named: dict[Any, set[Any]] = {}
    for alert_id, indexed in by_alert.items():
        actionable_named[alert_id] = {
            account for _, u in indexed if _is_actionable(u) for account in _accounts(u)
        }
    campaign_share = {
        alert_id: len(named & campaign_accounts) / len(named)
        for alert_id, named in actionable_named.items()
        if named
    }
    qualifying = {a for a, share in campaign_share.items() if share >= MIN_CAMPAIGN_SHARE}

    named: set[Any] = set().union(*actionable_named.values())
    named_any = {account for u in updates for account in _accounts(u)}

    campaign_results = [
        _score_campaign(campaign, updates, actionable_named, qualifying, named)
        for campaign in campaigns
    ]

    true_positives = len(named & campaign_accounts)
    accounts = {
        "named": len(named),
        "campaign": len(campaign_accounts),
        "true_positive": true_positives,
        "false_positive": len(named) - true_positives,
        "missed": len(campaign_accounts) - true_positives,
        "precision": _ratio(true_positives, len(named)),
        "recall": _ratio(true_positives, len(campaign_accounts)),
    }

    traps: dict[str, Any] = {}
    for group in sorted(truth.get("traps") or {}):
        members = set(truth["traps"][group] or ())
        flagged = members & named
        traps[group] = {
            "accounts": len(members),
            "named_actionable": len(flagged),
            "named_any": len(members & named_any),
            "named_actionable_ids": _sorted(flagged),
        }

    alert_summary = _summarise_alerts(by_alert, actionable_named, campaign_share, campaigns)

    bars = dict(QUALITY_BARS, max_alert_ids=max_alert_ids)
    passed = _judge(bars, campaign_results, accounts, traps, alert_summary)

    return {
        "scenario": truth.get("scenario"),
        "seed": truth.get("seed"),
        "campaigns": campaign_results,
        "accounts": accounts,
        "traps": traps,
        "alerts": alert_summary,
        "bars": bars,
        "passed": passed,
    }


def _score_campaign(
    campaign: Mapping[str, Any],
    updates: list[Mapping[str, Any]],
    actionable_named: Mapping[Any, set[Any]],
    qualifying: set[Any],
    named: set[Any],
) -> dict[str, Any]:
    members = set(campaign.get("accounts") or ())
    start = _epoch_s(campaign["start"])
    naming = [u for u in updates if not members.isdisjoint(_accounts(u))]

    detect_times = [
        _epoch_s(u["detected_at"])
        for u in naming
        if _is_actionable(u) and u.get("alert_id") in qualifying
    ]
    first_detection = _earliest(detect_times)
    alert_ids = {a for a, accounts in actionable_named.items() if not members.isdisjoint(accounts)}

    result: dict[str, Any] = {
        "id": campaign.get("id"),
        "archetype": campaign.get("archetype"),
        "accounts": len(members),
        "accounts_named": len(members & named),
        "recall": _ratio(len(members & named), len(members)),
        "detected": first_detection is not None,
        "time_to_detect_s": None if first_detection is None else _seconds(first_detection - start),
        "alert_ids": _sorted(alert_ids),
        "detecting_alert_ids": _sorted(alert_ids & qualifying),
        "pivot": None,
        "pivot_latency_s": None,
    }

    pivot = campaign.get("pivot")
    if pivot:
        release = _epoch_s(pivot["release_at"])
        pivot_updates = [
            u
            for u in naming
            if _is_actionable(u)
            and u.get("kind") == "pivot"
            and _epoch_s(u["detected_at"]) >= release
        ]
        first_pivot = _earliest(_epoch_s(u["detected_at"]) for u in pivot_updates)
        result["pivot"] = {
            "model": pivot.get("model"),
            "release_at": pivot["release_at"],
            "alert_ids": _sorted({u.get("alert_id") for u in pivot_updates}),
        }
        result["pivot_latency_s"] = None if first_pivot is None else _seconds(first_pivot - release)
    return result


def _summarise_alerts(
    by_alert: Mapping[Any, list[tuple[int, Mapping[str, Any]]]],
    actionable_named: Mapping[Any, set[Any]],
    campaign_share: Mapping[Any, float],
    campaigns: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    per_alert = []
    resolved_updates = 0
    resolved_alerts = 0
    truncated = []
    for alert_id in _sorted(by_alert):
        indexed = sorted(by_alert[alert_id], key=_update_order)
        latest = indexed[-1][1]
        kind = str(latest.get("kind"))
        severity = max(
            (str(u.get("severity")) for _, u in indexed),
            key=lambda s: SEVERITY_RANK.get(s, -1),
        )
        by_kind[kind] = by_kind.get(kind, 0) + 1
        by_severity[severity] = by_severity.get(severity, 0) + 1
        resolved_updates += sum(1 for _, u in indexed if u.get("status") == "resolved")
        resolved_alerts += latest.get("status") == "resolved"

        listed = {account for _, u in indexed for account in _accounts(u)}
        totals = [
            u["accounts_total"] for _, u in indexed if isinstance(u.get("accounts_total"), int)
        ]
        if totals and max(totals) > len(listed):
            truncated.append(alert_id)

        named = actionable_named[alert_id]
        actionable_times = [
            (_epoch_s(u["detected_at"]), u["detected_at"]) for _, u in indexed if _is_actionable(u)
        ]
        per_alert.append(
            {
                "alert_id": alert_id,
                "kind": kind,
                "max_severity": severity,
                "updates": len(indexed),
                "actionable": bool(actionable_times),
                "accounts_named": len(named),
                "campaign_share": campaign_share.get(alert_id),
                "campaigns": _sorted(
                    c.get("id") for c in campaigns if not named.isdisjoint(c.get("accounts") or ())
                ),
                "first_actionable_at": (
                    min(actionable_times, key=lambda t: t[0])[1] if actionable_times else None
                ),
            }
        )
    return {
        "distinct_ids": len(by_alert),
        "actionable_ids": sum(1 for a in per_alert if a["actionable"]),
        "by_kind": dict(sorted(by_kind.items())),
        "by_max_severity": dict(sorted(by_severity.items())),
        "updates": sum(len(v) for v in by_alert.values()),
        "resolved_updates": resolved_updates,
        "resolved_alerts": resolved_alerts,
        "truncated_alert_ids": truncated,
        "per_alert": per_alert,
    }


def _judge(
    bars: Mapping[str, Any],
    campaigns: Sequence[Mapping[str, Any]],
    accounts: Mapping[str, Any],
    traps: Mapping[str, Mapping[str, Any]],
    alert_summary: Mapping[str, Any],
) -> dict[str, bool]:
    pivoted = [c for c in campaigns if c["pivot"] is not None]
    passed = {
        "campaigns_detected": all(c["detected"] for c in campaigns),
        "precision": accounts["precision"] >= bars["min_precision"],
        "recall": accounts["recall"] >= bars["min_recall"],
        "traps": sum(t["named_actionable"] for t in traps.values())
        <= bars["max_trap_accounts_actionable"],
        "time_to_detect": all(
            c["time_to_detect_s"] is not None
            and c["time_to_detect_s"] <= bars["max_time_to_detect_s"]
            for c in campaigns
        ),
        "pivot_latency": all(
            c["pivot_latency_s"] is not None and c["pivot_latency_s"] <= bars["max_pivot_latency_s"]
            for c in pivoted
        ),
    }
    if bars["max_alert_ids"] is not None:
        passed["alert_ids"] = alert_summary["distinct_ids"] <= bars["max_alert_ids"]
    passed["all"] = all(passed.values())
    return dict(sorted(passed.items()))


# ---------------------------------------------------------------- report


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    whole = int(abs(seconds))
    exact = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{sign}{whole // 3600}h{whole % 3600 // 60:02d}m{whole % 60:02d}s ({exact}s)"


def _id_list(ids: Sequence[Any], limit: int = 4) -> str:
    shown = ",".join(str(i) for i in ids[:limit])
    more = f" (+{len(ids) - limit})" if len(ids) > limit else ""
    return (shown + more) or "-"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out


def format_report(result: Mapping[str, Any]) -> str:
    """Render an ``evaluate`` result as plain text for a terminal."""
    bars = result["bars"]
    passed = result["passed"]
    out = [
        f"extraction-watch evaluation  scenario={result.get('scenario')} seed={result.get('seed')}",
        "",
    ]

    out.append("Campaigns")
    out += _table(
        [
            "id",
            "archetype",
            "accounts",
            "named",
            "recall",
            "detected",
            "time to detect",
            "pivot latency",
            "alerts",
        ],
        [
            [
                str(c["id"]),
                str(c["archetype"]),
                str(c["accounts"]),
                str(c["accounts_named"]),
                f"{c['recall']:.3f}",
                "yes" if c["detected"] else "NO",
                _duration(c["time_to_detect_s"]),
                _duration(c["pivot_latency_s"]) if c["pivot"] else "n/a",
                _id_list(c["alert_ids"]),
            ]
            for c in result["campaigns"]
        ],
    )

    acc = result["accounts"]
    out += [
        "",
        "Accounts",
        f"  named {acc['named']}  campaign {acc['campaign']}  true positive {acc['true_positive']}"
        f"  false positive {acc['false_positive']}  missed {acc['missed']}",
        f"  precision {acc['precision']:.4f}  recall {acc['recall']:.4f}",
        "",
        "Traps",
    ]
    out += _table(
        ["group", "accounts", "named (actionable)", "named (any)"],
        [
            [str(g), str(t["accounts"]), str(t["named_actionable"]), str(t["named_any"])]
            for g, t in result["traps"].items()
        ],
    )

    al = result["alerts"]
    out += [
        "",
        "Alerts",
        f"  distinct ids {al['distinct_ids']}  actionable ids {al['actionable_ids']}"
        f"  updates {al['updates']}  resolved updates {al['resolved_updates']}"
        f"  resolved alerts {al['resolved_alerts']}",
        "  by kind: " + (", ".join(f"{k} {n}" for k, n in al["by_kind"].items()) or "-"),
        "  by max severity: "
        + (", ".join(f"{k} {n}" for k, n in al["by_max_severity"].items()) or "-"),
    ]
    if al["truncated_alert_ids"]:
        out.append(
            "  accounts_total exceeds listed accounts: " + _id_list(al["truncated_alert_ids"], 10)
        )

    bar_rows = [
        ("campaigns_detected", "every campaign detected"),
        ("precision", f"precision >= {bars['min_precision']}"),
        ("recall", f"recall >= {bars['min_recall']}"),
        (
            "traps",
            f"trap accounts named by actionable alerts <= {bars['max_trap_accounts_actionable']}",
        ),
        ("time_to_detect", f"time to detect <= {bars['max_time_to_detect_s']} s"),
        ("pivot_latency", f"pivot latency <= {bars['max_pivot_latency_s']} s"),
        ("alert_ids", f"distinct alert ids <= {bars['max_alert_ids']}"),
    ]
    out += ["", "Quality bars"]
    out += _table(
        ["bar", "result"],
        [[label, "PASS" if passed[key] else "FAIL"] for key, label in bar_rows if key in passed],
    )
    out += ["", "ALL BARS PASSED" if passed["all"] else "SOME BARS FAILED"]
    return "\n".join(out) + "\n"
