"""`simulate`: build the world, run every entity in time order, write the files.

The loop is a single heap of (next event time, entity index). Each entity
(a benign account, a batch job, a campaign driver) writes at most one call
per step and says when its next one is due, so memory grows with the number
of accounts, never with the number of events.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from .campaigns import CampaignDriver
from .clock import format_ms
from .params import ARCHETYPES, TRAP_GROUPS, resolve_params
from .population import build_population
from .sink import EventSink
from .world import World

__all__ = ["RELEASES", "simulate"]

# Models released before any run starts; the run's new model is added at `run.release_h`.
RELEASES = (
    ("claude-sim-2", "2025-03-01T17:00:00.000Z"),
    ("claude-sim-3", "2025-09-15T17:00:00.000Z"),
    ("claude-sim-3-mini", "2025-11-20T17:00:00.000Z"),
)


def simulate(
    scenario: str,
    seed: int,
    out_dir: str | Path,
    *,
    scale: float = 1.0,
    hours: float | None = None,
    overrides: Mapping[str, object] | None = None,
    bad_rate: float | None = None,
) -> dict[str, Any]:
    """Simulate `scenario` into `out_dir` (events.jsonl, releases.jsonl, truth.json).

    Same arguments give byte-identical files. Returns a summary: events,
    bad_lines, accounts, per-group event counts, wall seconds.
    """
    began = time.perf_counter()
    params = resolve_params(scenario, scale=scale, hours=hours, overrides=overrides, bad_rate=bad_rate)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    traps = [name for name in TRAP_GROUPS if params[name]["enabled"]]
    campaigns = sorted((name for name in ARCHETYPES
                        if params[name]["enabled"] and params[name]["accounts"] > 0),
                       key=lambda name: (params[name]["start_h"], name))
    campaign_ids = [f"campaign-{i + 1}" for i in range(len(campaigns))]
    groups = ["benign", *traps, *campaign_ids]
    index = {name: i for i, name in enumerate(groups)}

    sink = EventSink(out / "events.jsonl", groups, params["run"]["bad_rate"], seed)
    try:
        world = World(params, seed, sink)
        entities, owners = build_population(world, {name: index[name] for name in ["benign", *traps]})
        drivers = [CampaignDriver(world, name, cid, index[cid], params[name])
                   for name, cid in zip(campaigns, campaign_ids, strict=True)]
        entities.extend(drivers)
        _run(entities, world.end_ms)
    finally:
        sink.close()

    releases = [{"model": m, "released_at": at} for m, at in RELEASES if m != world.new_model]
    releases.append({"model": world.new_model, "released_at": format_ms(world.release_ms)})
    with open(out / "releases.jsonl", "wb") as fh:
        for release in releases:
            fh.write(orjson.dumps({"v": 1, **release}, option=orjson.OPT_APPEND_NEWLINE))

    seen = sink.seen

    def seen_accounts(name: str) -> list[str]:
        return sorted({a.ident[0] for g in owners.get(name, []) for a in g.accounts} & seen)

    truth = {
        "scenario": scenario,
        "seed": seed,
        "scale": float(scale),
        "start": format_ms(world.start_ms),
        "end": format_ms(world.end_ms),
        "params": params,
        "releases": releases,
        "campaigns": [driver.truth() for driver in drivers],
        "traps": {name: seen_accounts(name) for name in traps},
        "benign_accounts": len(seen_accounts("benign")),
        "infrastructure": {
            "proxy_asns": world.proxy_asns,
            "proxy_prefixes": world.proxy_prefixes,
            "nat_ips": world.nat_ips,
        },
        "group_events": dict(zip(groups, sink.counts, strict=True)),
        "bad_lines": dict(sorted(sink.bad.items())),
        "events": sink.events,
        "lines": sink.events + sum(sink.bad.values()),
    }
    (out / "truth.json").write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
    wall = time.perf_counter() - began
    return {
        "scenario": scenario,
        "seed": seed,
        "out_dir": str(out),
        "events": sink.events,
        "bad_lines": sum(sink.bad.values()),
        "accounts": len(seen),
        "groups": truth["group_events"],
        "wall_seconds": round(wall, 3),
        "events_per_second": round(sink.events / wall) if wall > 0 else 0,
    }


def _run(entities: list[Any], end_ms: int) -> None:
    """Step entities in time order until every one is past `end_ms`."""
    heap = [(e.next_ms, i) for i, e in enumerate(entities) if e.next_ms < end_ms]
    heapq.heapify(heap)
    steps = [e.step for e in entities]
    replace, pop = heapq.heapreplace, heapq.heappop
    while heap:
        t, i = heap[0]
        nxt = steps[i](t)
        if nxt < end_ms:
            replace(heap, (nxt, i))
        else:
            pop(heap)
