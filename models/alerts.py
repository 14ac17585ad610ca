"""Alert episodes and their lifecycle, producing alert v1 records.

One episode per campaign cluster (and one per pivot of that cluster), not
one per account. An episode's id is derived from what opened it (its kind,
its anchor account and the event time of its first evidence), so a replay of
the same input gives the same ids. Each published update carries a growing
``seq``; quiet episodes resolve. ``emitted_at`` is left ``None`` here: it is
wall-clock time, stamped by whoever publishes the record.

>>> ep = AlertEpisode.open("cluster", "acct_1", first_seen=0.0, entity_type="cluster")
>>> ep.alert_id == AlertEpisode.open("cluster", "acct_1", 0.0, "cluster").alert_id
True
>>> ep.alert_id.startswith("exw-"), ep.entity_id.startswith("cl-")
(True, True)
"""

from __future__ import annotations

import hashlib

from models.ranking import ranked

__all__ = ["AlertEpisode", "SEVERITY_RANK", "MAX_ACCOUNTS", "MAX_PAGES", "MAX_SAMPLES"]

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
MAX_ACCOUNTS = 1000
# records one update may take to name every new member of a huge cluster
# (public reports describe proxy networks running 20 thousand accounts)
MAX_PAGES = 50
MAX_SAMPLES = 20
_ENTITY_PREFIX = {"cluster": "cl-", "account": "acct-", "proxy": "px-", "payment": "pay-"}


class AlertEpisode:
    """State of one alert episode between its updates."""

    __slots__ = (
        "alert_id", "kind", "entity_type", "entity_id", "anchor", "first_seen",
        "seq", "status", "severity", "score", "members", "announced",
        "last_emit_t", "last_active_t", "emitted_total", "notes",
        "eval_t",
    )

    def __init__(self, alert_id: str, kind: str, entity_type: str, entity_id: str,
                 anchor: str, first_seen: float) -> None:
        self.alert_id = alert_id
        self.kind = kind
        self.entity_type = entity_type
        self.entity_id = entity_id
        self.anchor = anchor
        self.first_seen = first_seen
        self.seq = 0
        self.status = "firing"
        self.severity = "info"
        self.score = 0.0
        self.members: dict[str, float] = {}  # account id -> latest score, insertion-ordered
        self.announced: set[str] = set()
        self.last_emit_t = float("-inf")
        self.last_active_t = first_seen
        self.emitted_total = 0
        self.notes: set[str] = set()
        self.eval_t = float("-inf")

    @classmethod
    def open(cls, kind: str, anchor: str, first_seen: float, entity_type: str,
             scope: str = "") -> AlertEpisode:
        ms = int(round(first_seen * 1000))
        digest = hashlib.sha256(f"{kind}|{scope}|{anchor}|{ms}".encode()).hexdigest()
        entity_id = _ENTITY_PREFIX.get(entity_type, "") + digest[20:36]
        return cls("exw-" + digest[:20], kind, entity_type, entity_id, anchor, first_seen)

    def unannounced(self) -> int:
        """Members no published update has named yet."""
        return sum(1 for a in self.members if a not in self.announced)

    def accounts_for_update(self) -> list[str]:
        """Up to MAX_ACCOUNTS ids: accounts not yet announced first, then the strongest."""
        strongest = ranked(self.members)
        announced = self.announced
        chosen = [a for a in strongest if a not in announced][:MAX_ACCOUNTS]
        if len(chosen) < MAX_ACCOUNTS:
            taken = set(chosen)
            rest = [a for a in strongest if a not in taken]
            chosen.extend(rest[: MAX_ACCOUNTS - len(chosen)])
        self.announced.update(chosen)
        return chosen

    def record(self, *, detected_at: str, first_seen: str, summary: str, evidence: list[dict],
               samples: list[str], version: str) -> dict:
        """Advance ``seq`` and build the alert v1 record for this update."""
        self.seq += 1
        accounts = self.accounts_for_update()
        self.emitted_total = len(self.members)
        return {
            "v": 1,
            "alert_id": self.alert_id,
            "seq": self.seq,
            "status": self.status,
            "kind": self.kind,
            "severity": self.severity,
            "score": round(self.score, 4),
            "entity": {"type": self.entity_type, "id": self.entity_id},
            "accounts": accounts,
            "accounts_total": len(self.members),
            "first_seen": first_seen,
            "detected_at": detected_at,
            "emitted_at": None,
            "summary": summary,
            "evidence": evidence,
            "sample_event_ids": samples[:MAX_SAMPLES],
            "detector_version": version,
        }
