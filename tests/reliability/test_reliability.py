"""The worker on the real broker under faults and bad input: nothing lost, nothing
made up, the same alerts as an uninterrupted run and as ``replay --file``.

One stream for every run: the simulator's valid traffic with Hypothesis-fuzzed
payloads mixed in (see ``fuzz.py``), produced once to a 4-partition topic.
Each run is a separate app id (own consumer groups, internal topics, alerts and
dead-letter topics) over that topic:

* ``uninterrupted``: one worker, no fault: the reference, the fuzz checks,
  and a topic replay beside it with the production settings;
* ``kill_9``: one worker killed with SIGKILL at seeded random points and
  started again each time;
* ``broker_restart``: the broker stopped and started again (same state dir
  and port) under a running worker;
* ``takeover``: two workers, the one running the engine killed.

Accounting for every run: events the engine holds (applied, or waiting in the
lateness buffer) plus distinct dead letters (by source partition and offset)
equal the records produced, and each dead letter is the one expected.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from extraction_watch.cli import main as cli_main
from extraction_watch.simulator import simulate
from models.contract import parse_rfc3339
from tests.integration.conftest import consume_all, create_topics, delete_topics, unique_prefix

from .conftest import Profile, record
from .fuzz import BAD_KINDS, KINDS, Mixed, generate_isolated, mix
from .harness import (
    EXE,
    Broker,
    RunResult,
    Worker,
    alerts_by_update,
    group_members,
    group_offsets,
    send_lines,
    topic_ends,
    worker_env,
)

_EMITTED = re.compile(rb'"emitted_at":"[^"]*"')
# what the live engine has not decided when the data ends: the file replay
# flushes at the end of the file, the live engine waits for later events
# (lateness 5 min + one 10-min tick)
_TAIL_S = 900.0


# ------------------------------------------------------------------ the stream

@dataclass
class Dataset:
    dir: Path
    mixed: Mixed
    releases: list[bytes]
    file_alerts: dict[tuple[str, int], bytes]     # replay --file, by update
    file_dead: dict[int, str]                      # line index -> reason
    end_of_data: float
    seconds: dict[str, float]

    @property
    def valid(self) -> int:
        return sum(1 for e in self.mixed.expected if e is None)

    @property
    def bad(self) -> int:
        return len(self.mixed.lines) - self.valid


@pytest.fixture(scope="module")
def dataset(profile: Profile, tmp_path_factory):
    out = tmp_path_factory.mktemp("reliability")
    seconds = {}
    started = time.monotonic()
    simulate(profile.scenario, profile.seed, out / "sim", scale=profile.scale,
             hours=profile.hours, bad_rate=0.0)
    seconds["simulate"] = time.monotonic() - started
    lines = (out / "sim" / "events.jsonl").read_bytes().splitlines()
    started = time.monotonic()
    mixed = mix(lines, generate_isolated(out / "sim" / "events.jsonl", profile.bad))
    seconds["fuzz"] = time.monotonic() - started
    del lines
    (out / "mixed.jsonl").write_bytes(b"".join(line + b"\n" for line in mixed.lines))
    started = time.monotonic()
    assert cli_main(["replay", "--file", str(out / "mixed.jsonl"),
                     "--releases", str(out / "sim" / "releases.jsonl"),
                     "--alerts-out", str(out / "file-alerts.jsonl"),
                     "--dead-letters-out", str(out / "file-dead.jsonl"), "--no-progress"]) == 0
    seconds["file_replay"] = time.monotonic() - started
    file_dead = {}
    for rec in map(orjson.loads, (out / "file-dead.jsonl").read_bytes().splitlines()):
        assert rec["source"]["file"] == "mixed.jsonl"
        file_dead[rec["source"]["line"] - 1] = rec["reason"]
    data = Dataset(out, mixed, (out / "sim" / "releases.jsonl").read_bytes().splitlines(),
                   alerts_by_update((out / "file-alerts.jsonl").read_bytes().splitlines()),
                   file_dead, _end_of_data(mixed), seconds)
    record("dataset", {**mixed.counts(), "scenario": profile.scenario, "seed": profile.seed,
                       "sim_scale": profile.scale, "sim_hours": profile.hours,
                       "seconds": {k: round(v, 1) for k, v in seconds.items()}})
    yield data
    for big in ("mixed.jsonl", "sim/events.jsonl"):  # hundreds of MB at full size
        (out / big).unlink(missing_ok=True)


def _end_of_data(mixed: Mixed) -> float:
    """The largest event time of the valid events (the fuzzed valid ones are never later)."""
    for i in range(len(mixed.lines) - 1, -1, -1):
        if mixed.kinds[i] is None:
            return parse_rfc3339(orjson.loads(mixed.lines[i])["ts"])
    raise AssertionError("no valid event")


@dataclass
class Produced:
    bootstrap: str
    prefix: str
    where: list[tuple[int, int]]              # line index -> (partition, offset)
    expected: dict[tuple[int, int], str]      # (partition, offset) -> reason, bad ones only
    kinds: dict[tuple[int, int], str]         # (partition, offset) -> fuzz kind
    seconds: float

    @property
    def events(self) -> int:
        return len(self.where)


def produce(bootstrap: str, prefix: str, data: Dataset) -> Produced:
    create_topics(bootstrap, {f"{prefix}calls": 4, f"{prefix}releases": 1})
    started = time.monotonic()
    where = send_lines(bootstrap, f"{prefix}calls", data.mixed.lines)
    seconds = time.monotonic() - started
    send_lines(bootstrap, f"{prefix}releases", data.releases)
    assert len(set(where)) == len(where)
    expected = {where[i]: r for i, r in enumerate(data.mixed.expected) if r is not None}
    kinds = {where[i]: k for i, k in enumerate(data.mixed.kinds) if k is not None}
    return Produced(bootstrap, prefix, where, expected, kinds, seconds)


@pytest.fixture(scope="module")
def produced(kafka_bootstrap, dataset: Dataset):
    prefix = unique_prefix("rel")
    out = produce(kafka_bootstrap, prefix, dataset)
    record("dataset", {"produce_seconds": round(out.seconds, 1),
                       "produce_events_per_s": round(out.events / out.seconds)})
    yield out
    delete_topics(kafka_bootstrap, prefix)


# ------------------------------------------------------------------ running

def _wait(condition: Callable[[], bool], timeout_s: float, what: str,
          workers: list[Worker], poll_s: float = 0.25) -> float:
    started = time.monotonic()
    while not condition():
        crashed = [w for w in workers if not w.killed and not w.alive()]
        if crashed:
            raise AssertionError(f"{what}: a worker exited (code {crashed[0].proc.returncode})\n"
                                 + crashed[0].tail())
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s\n"
                                 + "\n".join(w.tail() for w in workers))
        time.sleep(poll_s)
    return time.monotonic() - started


def _owner(workers: list[Worker]) -> Worker | None:
    for w in workers:
        if w.alive() and w.held() >= 0:
            return w
    return None


def finish(name: str, prod: Produced, data: Dataset, workers: list[Worker],
           started: float, timeout_s: float) -> RunResult:
    """Wait until the engine holds every valid event and every dead letter is out;
    read the outputs back."""
    prefix, app = prod.prefix, name
    deadline = started + timeout_s

    def engine_done() -> bool:
        owner = _owner(workers)
        if owner is None:
            return False
        held = owner.held()
        assert held <= data.valid, f"{name}: the engine holds {held} events, only " \
                                   f"{data.valid} are valid: some were applied twice"
        return held == data.valid

    _wait(engine_done, deadline - time.monotonic(), f"{name}: engine holding every event",
          workers, poll_s=0.5)
    wall = time.monotonic() - started
    dlq = f"{prefix}dlq-{app}"
    dead: dict[tuple[int, int], str] = {}
    records: list = []

    def dead_letters_out() -> bool:
        nonlocal records
        records = consume_all(prod.bootstrap, dlq, timeout_s=120.0)
        dead.clear()
        for r in records:
            rec = orjson.loads(r.value)
            src = rec["source"]
            key = (src["partition"], src["offset"])
            assert r.key == f"{key[0]}:{key[1]}".encode()
            assert dict(r.headers)["reason"] == rec["reason"].encode()
            assert src["topic"] == f"{prefix}calls"
            # a repeat (at least once, after a crash) carries the same verdict
            assert dead.setdefault(key, rec["reason"]) == rec["reason"], key
        return len(dead) >= len(prod.expected)

    _wait(dead_letters_out, max(30.0, deadline - time.monotonic()),
          f"{name}: every dead letter published", workers, poll_s=2.0)
    owner = _owner(workers)
    assert owner is not None
    result = RunResult(name, events=prod.events, wall_s=wall, dead=dead,
                       dead_records=len(records), held=owner.held())
    # the hand-off offset is committed once a record's outputs are published: when it
    # reaches the end, every alert is out
    result.notes["settled"] = _settle(prod, owner, app)
    result.alerts = alerts_by_update(consume_all(prod.bootstrap, f"{prefix}alerts-{app}", timeout_s=120.0))
    return result


def check_run(result: RunResult, prod: Produced, data: Dataset,
              reference: RunResult | None) -> None:
    """Nothing lost, nothing made up, every verdict as expected, the reference's alerts."""
    assert result.notes["settled"]["settled"], result.notes["settled"]
    assert result.held == data.valid
    wrong = {k: (prod.kinds.get(k), prod.expected.get(k), v) for k, v in result.dead.items()
             if prod.expected.get(k) != v}
    assert not wrong, f"{len(wrong)} unexpected dead letters, e.g. {list(wrong.items())[:5]}"
    missing = [k for k in prod.expected if k not in result.dead]
    assert not missing, f"{len(missing)} bad records without a dead letter, e.g. {missing[:5]}"
    assert result.held + len(result.dead) == result.events
    assert result.lost == 0
    assert result.alerts, "no alerts at all"
    if reference is not None:
        assert set(result.alerts) == set(reference.alerts), (
            f"updates only here: {sorted(set(result.alerts) - set(reference.alerts))[:5]}, "
            f"only in the reference: {sorted(set(reference.alerts) - set(result.alerts))[:5]}")
        differ = [k for k in result.alerts if result.alerts[k] != reference.alerts[k]]
        assert not differ, f"updates with other content: {differ[:5]}"


def record_run(result: RunResult, **extra: Any) -> None:
    record("runs", {result.name: {
        "events": result.events, "wall_s": round(result.wall_s, 1),
        "events_per_s": round(result.events_per_s), "events_lost": result.lost,
        "engine_held": result.held, "dead_letters": len(result.dead),
        "dead_letter_records": result.dead_records,
        "alert_updates": len(result.alerts), "faults": result.faults, **result.notes, **extra}})


# ------------------------------------------------------------------ the reference run

@pytest.fixture(scope="module")
def reference(produced: Produced, dataset: Dataset, profile: Profile, tmp_path_factory):
    """One worker, no fault; before it stops, a topic replay beside it."""
    tmp = tmp_path_factory.mktemp("reference")
    env = worker_env(produced.prefix, produced.bootstrap, tmp, "uninterrupted",
                     profile.checkpoint_s)
    started = time.monotonic()
    worker = Worker(env, tmp / "uninterrupted.log")
    try:
        result = finish("uninterrupted", produced, dataset, [worker], started, profile.timeout_s)
        result.notes["crash_lines"] = _crash_lines(worker)
        result.notes["alive_throughout"] = worker.alive()
        isolation = _replay_beside(produced, env, tmp)
    finally:
        worker.stop()
    record_run(result)
    return result, isolation


def _settle(prod: Produced, worker: Worker, app: str) -> dict[str, Any]:
    """Wait until every events partition is read to its end and committed (no partition
    stalled), the worker sees no lag, and the hand-off topic is committed to its end."""
    events = f"{prod.prefix}calls"
    ends = topic_ends(prod.bootstrap, events)[events]
    group = f"{prod.prefix}{app}"
    handoff = f"{group}-handoff"
    out: dict[str, Any] = {"events_end": ends}

    def settled() -> bool:
        offsets = group_offsets(prod.bootstrap, group)
        validate = offsets.get(f"{group}-validate", {})
        out["validate_committed"] = {p: validate.get((events, p)) for p in ends}
        out["handoff_committed"] = offsets.get(group, {}).get((handoff, 0))
        out["handoff_end"] = topic_ends(prod.bootstrap, handoff)[handoff][0]
        m = worker.metrics()
        out["consumer_lag"] = {p: m.get(f'exw_consumer_lag{{partition="{p}",topic="{events}"}}')
                               for p in ends}
        return (out["validate_committed"] == ends and out["handoff_committed"] == out["handoff_end"]
                and all(v == 0.0 for v in out["consumer_lag"].values()))

    try:
        out["seconds"] = round(_wait(settled, 60, "offsets settled", [worker], poll_s=0.5), 1)
        out["settled"] = True
    except AssertionError:
        out["settled"] = False
    return out


def _crash_lines(worker: Worker) -> list[str]:
    text = worker.log.read_text(errors="replace")
    return [line for line in text.splitlines()
            if "Traceback" in line or "crashed" in line.lower() or "CRITICAL" in line]


def _replay_beside(prod: Produced, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """``extraction-watch replay`` of the events topic with the production worker's own
    settings, while that worker runs: what it changed."""
    prefix = prod.prefix
    replay_alerts = f"{prefix}replay-alerts"
    create_topics(prod.bootstrap, {replay_alerts: 1})
    production_group = env["EXW_APP_ID"]
    groups = (production_group, f"{production_group}-validate")
    before = {"ends": topic_ends(prod.bootstrap, prefix),
              "offsets": group_offsets(prod.bootstrap, prefix),
              "members": {g: group_members(prod.bootstrap, g) for g in groups}}
    base = [EXE, "replay", "--bootstrap", prod.bootstrap, "--topic", f"{prefix}calls",
            "--releases-topic", f"{prefix}releases"]
    with pytest.MonkeyPatch.context() as mp:  # the production settings, in this process
        for name, value in env.items():
            if name.startswith("EXW_"):
                mp.setenv(name, value)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            refused = cli_main([*base[1:], "--alerts-topic", env["EXW_TOPIC_ALERTS"]])
    started = time.monotonic()
    ran = subprocess.run([*base, "--alerts-topic", replay_alerts,
                          "--dead-letters-out", str(tmp / "replay-dead.jsonl"),
                          "--summary-json", str(tmp / "replay-summary.json")],
                         env=env, capture_output=True, timeout=1800)
    seconds = time.monotonic() - started
    after = {"ends": topic_ends(prod.bootstrap, prefix),
             "offsets": group_offsets(prod.bootstrap, prefix),
             "members": {g: group_members(prod.bootstrap, g) for g in groups}}
    records = consume_all(prod.bootstrap, replay_alerts, timeout_s=120.0)
    summary = orjson.loads((tmp / "replay-summary.json").read_bytes()) if ran.returncode == 0 \
        else {}
    return {"events_topic": f"{prefix}calls", "refused_rc": refused,
            "refused_stderr": err.getvalue()[-500:],
            "rc": ran.returncode, "stderr": ran.stderr.decode()[-2000:], "before": before,
            "after": after, "replay_alerts_topic": replay_alerts,
            "alerts": alerts_by_update(records),
            "sources": Counter(dict(r.headers).get("ce_source", b"") for r in records),
            "summary": summary, "seconds": seconds,
            "dead": [orjson.loads(x) for x in (tmp / "replay-dead.jsonl").read_bytes()
                     .splitlines()] if ran.returncode == 0 else []}


# ------------------------------------------------------------------ tests: input

def test_the_fuzzed_payloads_are_drawn_the_same_on_every_run(dataset: Dataset, tmp_path):
    lines = [x for x, k in zip(dataset.mixed.lines, dataset.mixed.kinds, strict=True)
             if k is None][:5000]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines))
    # drawn in a fresh interpreter each time, as the suite draws them
    isolated = generate_isolated(tmp_path / "events.jsonl", 200)
    assert isolated == generate_isolated(tmp_path / "events.jsonl", 200)
    assert {f.kind for f in isolated} == set(KINDS)
    assert len({f.payload for f in isolated}) > 0.9 * len(isolated)  # not one payload over


def test_replay_file_gives_each_kind_of_bad_payload_its_reason(dataset: Dataset,
                                                               profile: Profile):
    mixed = dataset.mixed
    assert dataset.bad >= profile.bad
    by_kind: dict[str, Counter] = {}
    for i, kind in enumerate(mixed.kinds):
        if kind is not None:
            got = dataset.file_dead.get(i)
            by_kind.setdefault(kind, Counter())[(mixed.expected[i], got)] += 1
    assert set(by_kind) == set(KINDS)
    wrong = {k: {e: n for e, n in c.items() if e[0] != e[1]} for k, c in by_kind.items()}
    assert not any(wrong.values()), wrong
    # the kinds meant to be bad are (nearly all) bad, with the reasons of their kind
    reasons = {k: {exp for (exp, _got) in c} for k, c in by_kind.items()}
    assert reasons["not_utf8"] == {"not_utf8"}
    assert reasons["not_json"] == {"not_json"}
    assert reasons["nan_infinity"] == {"not_json"}
    assert reasons["deep_nesting"] == {"not_json", "wrong_type", None}
    assert reasons["not_object"] == {"not_object"}
    assert reasons["future_version"] == {"unsupported_version"}
    assert reasons["missing_field"] == {"missing_field"}
    assert reasons["wrong_type"] == {"wrong_type"}
    assert reasons["out_of_range"] == {"out_of_range"}
    assert reasons["huge_string"] >= {"too_large", "out_of_range", None}
    assert reasons["bad_timestamp"] == {"bad_timestamp"}
    assert reasons["bad_ip"] == {"bad_ip"}
    assert reasons["far_past"] == reasons["late"] == {"late"}
    assert reasons["far_future"] == {"time_out_of_range"}
    assert reasons["duplicate"] == {"duplicate"}
    assert reasons["out_of_order_ok"] == reasons["extra_fields"] == {None}
    # and nothing else is dead
    assert set(dataset.file_dead) == {i for i, e in enumerate(mixed.expected) if e is not None}
    assert set(BAD_KINDS) <= set(by_kind)


# ------------------------------------------------------------------ tests: uninterrupted

def test_uninterrupted_worker_gives_the_alerts_of_replay_file(reference, dataset: Dataset):
    result, _ = reference
    live, replayed = result.alerts, dataset.file_alerts
    assert live
    made_up = set(live) - set(replayed)
    assert not made_up, f"updates the file replay does not have: {sorted(made_up)[:5]}"
    differ = [k for k in live if live[k] != replayed[k]]
    assert not differ, f"updates with other content than the file replay: {differ[:5]}"
    # what only the file replay has was decided after the data ended (it flushes)
    tail = [orjson.loads(replayed[k]) for k in set(replayed) - set(live)]
    assert all(parse_rfc3339(a["detected_at"]) > dataset.end_of_data - _TAIL_S for a in tail), \
        [(a["alert_id"], a["seq"], a["detected_at"]) for a in tail]
    record("runs", {"uninterrupted": {"alert_updates_file_replay": len(replayed),
                                      "alert_updates_after_end_of_data": len(tail)}})


def test_every_bad_payload_is_dead_lettered_with_its_reason_and_every_good_one_processed(
        reference, produced: Produced, dataset: Dataset):
    result, _ = reference
    check_run(result, produced, dataset, None)
    per_kind = Counter(produced.kinds[k] for k in result.dead)
    expected = Counter(produced.kinds[k] for k in produced.expected)
    assert per_kind == expected
    record("dataset", {"dead_letters_by_reason": dict(sorted(Counter(result.dead.values())
                                                             .items()))})


def test_no_crash_and_no_partition_stalled(reference):
    result, _ = reference
    assert result.notes["alive_throughout"]
    assert result.notes["crash_lines"] == []
    stall = result.notes["settled"]
    assert stall["settled"], stall
    assert len(stall["events_end"]) == 4 and all(v > 0 for v in stall["events_end"].values())


def test_out_of_order_within_the_lateness_bound_is_processed_and_later_is_late(
        reference, produced: Produced, dataset: Dataset):
    result, _ = reference
    mixed = dataset.mixed
    reordered = [produced.where[i] for i, k in enumerate(mixed.kinds) if k == "out_of_order_ok"]
    late = [produced.where[i] for i, k in enumerate(mixed.kinds) if k == "late"]
    assert len(reordered) >= 100 and len(late) >= 100
    assert not [k for k in reordered if k in result.dead]
    assert {result.dead.get(k) for k in late} == {"late"}
    # the bound itself: 299.999 s behind the partition's latest event is in, 300.001 s is late
    behind = {}
    for i, kind in enumerate(mixed.kinds):
        if kind in ("out_of_order_ok", "late"):
            anchor = i - 1  # fuzzed payloads follow their anchor, a simulated event
            while mixed.kinds[anchor] is not None:
                anchor -= 1
            behind[i] = round(parse_rfc3339(orjson.loads(mixed.lines[anchor])["ts"])
                              - parse_rfc3339(orjson.loads(mixed.lines[i])["ts"]), 3)
    inside = [behind[i] for i, k in enumerate(mixed.kinds) if k == "out_of_order_ok"]
    outside = [behind[i] for i, k in enumerate(mixed.kinds) if k == "late"]
    assert max(inside) <= 299.999 and min(outside) >= 300.001
    assert max(inside) > 250 and min(outside) < 350  # the draws reach the bound
    record("runs", {"uninterrupted": {"out_of_order_processed": len(reordered),
                                      "late_dead_lettered": len(late),
                                      "max_behind_processed_s": max(inside),
                                      "min_behind_late_s": min(outside)}})


def test_a_topic_replay_never_touches_the_production_groups_or_topics(reference,
                                                                      dataset: Dataset):
    _, iso = reference
    assert iso["refused_rc"] == 2, iso["refused_stderr"]
    assert "production alerts topic" in iso["refused_stderr"]
    assert iso["rc"] == 0, iso["stderr"]
    before, after = iso["before"], iso["after"]
    # no group created, none moved, the production members unchanged (no rebalance)
    assert after["offsets"] == before["offsets"]
    assert after["members"] == before["members"]
    assert all(state == "Stable" and members for state, members in after["members"].values())
    # no topic written but the replay's own alerts topic
    changed = {t for t in set(before["ends"]) | set(after["ends"])
               if before["ends"].get(t) != after["ends"].get(t)}
    assert changed == {iso["replay_alerts_topic"]}
    # the replay's alerts are the file replay's, all of them (it flushes at the end too)
    assert iso["alerts"] == dataset.file_alerts
    assert set(iso["sources"]) == {f"extraction-watch/replay/{iso['events_topic']}".encode()}
    # its dead letters stayed local, one per bad record, with the file replay's reasons
    assert sorted(d["reason"] for d in iso["dead"]) == sorted(dataset.file_dead.values())
    assert iso["summary"]["events"] == len(dataset.mixed.lines)
    record("runs", {"topic_replay_beside_production": {
        "events": iso["summary"]["events"], "wall_s": round(iso["seconds"], 1),
        "events_per_s": round(iso["summary"]["events"] / iso["seconds"]), "events_lost": 0,
        "alert_updates": len(iso["alerts"])}})


# ------------------------------------------------------------------ tests: faults

def test_kill_9_at_random_points_loses_nothing(reference, produced: Produced, dataset: Dataset,
                                               profile: Profile, tmp_path):
    ref, _ = reference
    rng = random.Random(f"kill-9:{profile.seed}:{profile.name}")
    points = sorted(rng.uniform(0.05, 0.9) for _ in range(profile.kills))
    env = worker_env(produced.prefix, produced.bootstrap, tmp_path, "kill9", profile.checkpoint_s)
    checkpoints = f"{produced.prefix}kill9-checkpoints"
    started = time.monotonic()
    workers = [Worker(env, tmp_path / "kill9-0.log")]
    kills: list[dict[str, Any]] = []
    try:
        for n, fraction in enumerate(points, 1):
            worker = workers[-1]
            target = int(fraction * dataset.valid)
            _wait(lambda w=worker, t=target: w.held() >= t,
                  started + profile.timeout_s - time.monotonic(),
                  f"kill {n}: engine at {target} events", workers, poll_s=0.01)
            held = worker.held()
            assert held < dataset.valid, "the kill came after the end"
            worker.kill()
            killed_at = time.monotonic()
            saved = sum(topic_ends(produced.bootstrap, checkpoints).get(checkpoints, {}).values())
            workers.append(Worker(env, tmp_path / f"kill9-{n}.log"))
            new = workers[-1]
            _wait(lambda w=new: w.held() >= 0 and w.ready() is not None, profile.timeout_s,
                  f"restart {n} ready (/readyz 200, running the engine)", workers)
            ready = new.ready() or {}
            kills.append({"at_fraction": round(fraction, 3), "held_at_kill": held,
                          "held_after_restore": new.held(), "checkpoint_records": saved,
                          "restart_to_ready_s": round(time.monotonic() - killed_at, 1),
                          "restore_s": ready.get("recovered_in_s")})
        result = finish("kill9", produced, dataset, workers[-1:], started, profile.timeout_s)
    finally:
        for w in workers:
            w.stop()
    result.faults = {"worker_kill_9": len(kills)}
    result.notes["kills"] = kills
    record_run(result)
    assert len(kills) == profile.kills
    # restores from a checkpoint (then the hand-off after it) were among them
    assert any(k["checkpoint_records"] > 0 for k in kills), kills
    check_run(result, produced, dataset, ref)


def _session_broker(bootstrap: str) -> Broker | None:
    """The throwaway broker of ``deploy/kafka/with-broker.sh`` when this session runs
    under it (it exports its state dir and ports), else None."""
    state, port = os.environ.get("EXW_BROKER_DIR"), os.environ.get("KAFKA_PORT")
    if not state or not port or bootstrap != f"127.0.0.1:{port}" \
            or not Path(state).name.startswith("throwaway-broker."):
        return None
    return Broker.attach(Path(state), int(port), int(os.environ["KAFKA_CONTROLLER_PORT"]))


def test_broker_stopped_and_restarted_mid_run_loses_nothing(
        reference, produced: Produced, dataset: Dataset, profile: Profile, tmp_path,
        kafka_bootstrap):
    """``broker.py down`` (no purge) under a running worker, then ``up`` on the same
    state dir and port: the worker carries on by itself."""
    ref, _ = reference
    broker = _session_broker(kafka_bootstrap)
    own = broker is None
    if own:  # an external broker is not ours to restart: start one of our own
        broker = Broker(tmp_path / "broker")
        broker.up()
    assert broker is not None
    try:
        prod = produce(broker.bootstrap, unique_prefix("rel-broker"), dataset) if own \
            else produced
        env = worker_env(prod.prefix, prod.bootstrap, tmp_path, "brokerrestart",
                         profile.checkpoint_s)
        started = time.monotonic()
        worker = Worker(env, tmp_path / "brokerrestart.log")
        try:
            # down once stage 1 has read a third of the topic: in a full run both stages
            # are busy then (stage 1 reads about five times faster than the engine)
            target = prod.events // 3
            _wait(lambda: worker.metrics().get("exw_events_total", 0) >= target,
                  profile.timeout_s, "stage 1 at a third", [worker], poll_s=0.1)
            m = worker.metrics()
            at_stop = {"stage1_received": int(m.get("exw_events_total", 0)),
                       "engine_held": worker.held()}
            assert at_stop["engine_held"] < dataset.valid
            down_at = time.monotonic()
            broker.down()
            time.sleep(profile.outage_s)  # refused connections, dead coordinators, no leader
            up_s = broker.up()
            outage_s = time.monotonic() - down_at
            up_at = time.monotonic()
            received = worker.metrics().get("exw_events_total", 0)
            moving_s = _wait(lambda: worker.held() > at_stop["engine_held"] and
                             worker.metrics().get("exw_events_total", 0) >= min(received + 1,
                                                                               prod.events),
                             profile.timeout_s, "the worker moving on after the restart",
                             [worker], poll_s=0.2)
            result = finish("brokerrestart", prod, dataset, [worker], started, profile.timeout_s)
            alive = worker.alive()
            result.notes["finished_after_up_s"] = round(time.monotonic() - up_at, 1)
        finally:
            worker.stop()
        result.faults = {"broker_restart": 1}
        result.notes.update({"own_broker": own, "at_stop": at_stop,
                             "outage_s": round(outage_s, 1), "broker_up_s": round(up_s, 1),
                             "moving_again_after_up_s": round(moving_s, 1)})
        record_run(result)
        assert alive, "the worker exited"
        check_run(result, prod, dataset, ref)
    finally:
        if own:
            broker.down(purge=True)


def test_two_workers_one_killed_the_other_takes_over(reference, produced: Produced,
                                                     dataset: Dataset, profile: Profile,
                                                     tmp_path):
    ref, _ = reference
    env = worker_env(produced.prefix, produced.bootstrap, tmp_path, "takeover",
                     profile.checkpoint_s)
    env2 = worker_env(produced.prefix, produced.bootstrap, tmp_path, "takeover",
                      profile.checkpoint_s, EXW_DATA_DIR=str(tmp_path / "data-takeover-2"))
    started = time.monotonic()
    workers = [Worker(env, tmp_path / "takeover-1.log"), Worker(env2, tmp_path / "takeover-2.log")]
    try:
        # kill the engine's owner as soon as both workers read events partitions (in a
        # full run the engine is then far from done; in a short run stage 1 reads the
        # whole topic in about a second and the engine may finish before the second
        # worker has joined: then a finished engine is handed over)
        def sharing() -> bool:
            return all(w.readiness().get("events_partitions", 0) >= 1 for w in workers) \
                and _owner(workers) is not None

        _wait(sharing, profile.timeout_s, "both workers reading events partitions, one "
              "running the engine", workers, poll_s=0.1)
        owner = _owner(workers)
        assert owner is not None
        owners = [w for w in workers if w.held() >= 0]
        survivor = workers[1 - workers.index(owner)]
        shares = {id(w): w.readiness().get("events_partitions") for w in workers}
        held = owner.held()
        owner.kill()
        killed_at = time.monotonic()

        def took_over() -> bool:
            ready = survivor.ready()
            return ready is not None and ready["events_partitions"] == 4 \
                and ready["runs_engine"] and survivor.held() >= 0

        _wait(took_over, profile.timeout_s, "the survivor taking over", [survivor])
        takeover_s = time.monotonic() - killed_at
        result = finish("takeover", produced, dataset, [survivor], started, profile.timeout_s)
        final = survivor.ready()
    finally:
        for w in workers:
            w.stop()
    result.faults = {"worker_kill_9": 1}
    result.notes.update({"events_partitions_before": sorted(shares.values()),
                         "held_at_kill": held, "engine_mid_run_at_kill": held < dataset.valid,
                         "takeover_s": round(takeover_s, 1)})
    record_run(result)
    if profile.name == "full":
        assert held < dataset.valid, "the engine had finished before the kill"
    assert owners == [owner], "exactly one worker runs the engine"
    assert sorted(shares.values()) == [2, 2], shares
    assert final is not None and final["events_partitions"] == 4 and final["runs_engine"]
    check_run(result, produced, dataset, ref)
