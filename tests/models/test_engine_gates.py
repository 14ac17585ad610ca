"""The alert gates on hand-made traffic: the same coordinated, templated,
step-by-step shape alerts at industrial volume and stays quiet at a research
team's modest volume."""

from __future__ import annotations

import random

import orjson

from models.contract import format_rfc3339, parse_rfc3339
from models.engine import Engine, EngineConfig

T0 = parse_rfc3339("2026-03-06T00:00:00Z")


def _traffic(accounts: int, per_hour: float, hours: float, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    base = rng.getrandbits(64)
    ids = [f"acct_{rng.getrandbits(48):012x}" for _ in range(accounts)]
    lines, t, i = [], T0, 0
    while t < T0 + hours * 3600:
        t += rng.expovariate(per_hour / 3600.0)
        account = ids[i % accounts]  # round-robin, like a load balancer or a batch script
        h = base
        for bit in rng.sample(range(64), 2):
            h ^= 1 << bit
        lines.append(orjson.dumps({
            "v": 1, "event_id": f"ev-{seed}-{i}", "ts": format_rfc3339(t), "account_id": account,
            "access_path": "api", "client_ip": f"198.51.100.{i % 200 + 1}", "asn": 64500,
            "model": "m-3", "features": [], "task": "reasoning", "prompt_simhash": f"{h:016x}",
            "cot_elicitation": 0.9, "input_tokens": 300, "output_tokens": 1200, "status": 200,
            "payment_fingerprint": f"card-{account}",
            "account_created_at": format_rfc3339(T0 - 400 * 86400)}))
        i += 1
    return lines


def _actionable(lines: list[bytes]) -> list[dict]:
    engine = Engine()
    out = []
    for line in lines:
        out.extend(engine.process(line))
    out.extend(engine.flush())
    return [rec for kind, rec in out
            if kind == "alert" and rec["severity"] in ("warning", "critical")]


def test_industrial_volume_alerts():
    alerts = _actionable(_traffic(accounts=12, per_hour=400.0, hours=6.0, seed=1))
    assert alerts and alerts[0]["kind"] == "cluster"
    assert {e["signal"] for e in alerts[0]["evidence"]} >= {"template_share", "request_rate"}


def test_research_team_volume_stays_quiet():
    quiet = _traffic(accounts=12, per_hour=20.0, hours=30.0, seed=2)
    assert _actionable(quiet) == []
    # the rate gate is what keeps it quiet: without it the same shape alerts
    engine = Engine(EngineConfig(min_cluster_rate_per_h=0.0))
    outputs = [o for line in quiet for o in engine.process(line)] + engine.flush()
    assert any(kind == "alert" and rec["severity"] != "info" for kind, rec in outputs)
