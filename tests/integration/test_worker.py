"""The worker against the real broker: alerts, dead letters, identity with the
file replay, 2 workers on 4 partitions, historical replay isolation, health and
metrics, a checkpoint of another release (or a broken one) after an upgrade.
Faults (kill -9, broker restart, a worker taking over from a killed one) and
fuzzed input are in tests/reliability."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from extraction_watch.cli import main as cli_main
from extraction_watch.produce import produce_file
from extraction_watch.simulator import simulate
from models.contract import parse_rfc3339
from streams.config import Settings
from streams.handoff import CHECKPOINT_FORMAT
from tests.streams.test_worker_app import documented_metrics

from .conftest import consume_all, create_topics

EXE = str(Path(sys.executable).with_name("extraction-watch"))
_EMITTED = re.compile(rb'"emitted_at":"[^"]*"')


# ----------------------------------------------------------------- helpers

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    """A small scenario: ~43k events over 14 h, 3 campaigns, a few bad lines."""
    out = tmp_path_factory.mktemp("sim")
    simulate("small", 2, out, hours=14.0)
    return out


@pytest.fixture(scope="module")
def file_replay(sim: Path) -> dict:
    alerts, dead = sim / "replay-alerts.jsonl", sim / "replay-dead.jsonl"
    assert cli_main(["replay", "--file", str(sim / "events.jsonl"), "--releases",
                     str(sim / "releases.jsonl"), "--alerts-out", str(alerts),
                     "--dead-letters-out", str(dead), "--no-progress"]) == 0
    return {"alerts": alerts.read_bytes().splitlines(),
            "dead": [orjson.loads(x) for x in dead.read_bytes().splitlines()]}


class Worker:
    """One ``extraction-watch worker`` process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["EXW_WEB_PORT"])
        self.log = log
        self.proc = subprocess.Popen([EXE, "worker", "--loglevel", "warning"], env=env,
                                     stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, b""

    def metric(self, name: str) -> float:
        """One series (``name`` or ``name{label="value"}``), -1 if absent."""
        status, body = self.get("/metrics")
        if status != 200:
            return -1.0
        match = re.search(rb"^" + re.escape(name.encode()) + rb" ([0-9.e+]+)$", body, re.M)
        return float(match.group(1)) if match else -1.0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _env(prefix: str, bootstrap: str, tmp: Path, app: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "EXW_KAFKA_BOOTSTRAP": bootstrap, "EXW_APP_ID": f"{prefix}{app}",
        "EXW_TOPIC_EVENTS": f"{prefix}calls", "EXW_TOPIC_RELEASES": f"{prefix}releases",
        "EXW_TOPIC_ALERTS": f"{prefix}alerts-{app}", "EXW_TOPIC_DEAD_LETTERS": f"{prefix}dlq-{app}",
        "EXW_DATA_DIR": str(tmp / f"data-{app}"), "EXW_WEB_PORT": str(_free_port()),
        "EXW_CHECKPOINT_INTERVAL_S": "3",
    })
    env.update(extra)
    return env


def _produce(prefix: str, bootstrap: str, sim: Path, partitions: int) -> int:
    create_topics(bootstrap, {f"{prefix}calls": partitions, f"{prefix}releases": 1})
    settings = Settings.from_env({}, bootstrap=bootstrap)
    summary = produce_file(settings, sim / "events.jsonl", sim / "releases.jsonl",
                           topic=f"{prefix}calls", releases_topic=f"{prefix}releases")
    return int(summary["events"])


def _wait_processed(workers: list[Worker], expected: int, timeout_s: float = 240) -> None:
    """Until the worker running the engine has applied ``expected`` events and
    its outputs have settled."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = [w for w in workers if w.proc.poll() is None
                and w.metric("exw_events_processed_total") + w.metric("exw_events_buffered")
                >= expected]
        if done:
            time.sleep(3)  # let the last publications land
            return
        for w in workers:
            assert w.proc.poll() is None, f"worker exited early:\n{w.tail()}"
        time.sleep(1)
    raise AssertionError("workers did not finish in time:\n" + "\n".join(w.tail() for w in workers))


def _wait_shared(workers: list[Worker], expected: int, timeout_s: float = 240) -> list[Worker]:
    """Until every worker is ready with event partitions of its own (the group has
    settled: a worker that joins late moves partitions, and the engine may move
    with them) and one of them runs the engine on ``expected`` events; then the
    workers that run the engine, read again after the outputs have settled."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for w in workers:
            assert w.proc.poll() is None, f"worker exited early:\n{w.tail()}"
        states = [orjson.loads(body) if status in (200, 503) and body else {}
                  for status, body in (w.get("/readyz") for w in workers)]
        owners = [w for w in workers if w.metric("exw_engine_owner") == 1.0]
        if all(s.get("ready") and s.get("events_partitions", 0) > 0 for s in states) and \
                len(owners) == 1 and owners[0].metric("exw_events_processed_total") + \
                owners[0].metric("exw_events_buffered") >= expected:
            time.sleep(3)  # let the last publications land
            return [w for w in workers if w.metric("exw_engine_owner") == 1.0]
        time.sleep(1)
    raise AssertionError("workers did not settle in time:\n" + "\n".join(w.tail() for w in workers))


def _valid_count(file_replay: dict, total_lines: int) -> int:
    """Events the live engine holds once it has read everything (applied, or in
    the lateness buffer: nothing after the last events moves event time on)."""
    return total_lines - len(file_replay["dead"])


def _alerts_by_update(records) -> dict[tuple[str, int], bytes]:
    """(alert_id, seq) -> record bytes without emitted_at; a repeat must be identical."""
    out: dict[tuple[str, int], bytes] = {}
    for r in records:
        body = _EMITTED.sub(b'"emitted_at":null', r.value)
        rec = orjson.loads(body)
        key = (rec["alert_id"], rec["seq"])
        assert out.setdefault(key, body) == body, f"update {key} published with different content"
    return out


def _ts_of(line: bytes) -> str | None:
    try:
        ts = orjson.loads(line).get("ts")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return ts if isinstance(ts, str) and ts.endswith("Z") and len(ts) == 24 else None


# ------------------------------------------------------------------- tests

def test_one_partition_worker_matches_the_file_replay_byte_for_byte(
        kafka_bootstrap, unique_topics, sim, file_replay, tmp_path):
    prefix = unique_topics
    total = _produce(prefix, kafka_bootstrap, sim, partitions=1)
    worker = Worker(_env(prefix, kafka_bootstrap, tmp_path, "one"), tmp_path / "one.log")
    try:
        _wait_processed([worker], _valid_count(file_replay, total))
        status, body = worker.get("/readyz")
        assert status == 200 and orjson.loads(body)["ready"] is True
        assert worker.get("/healthz")[0] == 200
        status, metrics = worker.get("/metrics")
        assert status == 200
        for series in (b"exw_events_total", b"exw_dead_letters_total{reason=",
                       b'exw_alerts_total{kind="cluster"', b"exw_consumer_lag{",
                       b'exw_tracked_entities{type="account"}', b"exw_checkpoint_bytes",
                       b"exw_detect_batch_seconds_count"):
            assert series in metrics, series
        # every series the worker serves is explained in the runbook (docs/operations.md)
        served = {re.sub(r"_(count|sum)$", "", line.split("{")[0].split(" ")[0])
                  for line in metrics.decode().splitlines() if line.startswith("exw_")}
        assert served - documented_metrics() == set()
        assert len(served) >= 15
        # this worker runs both stages: its reducer took its own stage 1's events
        # (streams.handoff.Forwarded) rather than decoding its batches again
        assert worker.metric('exw_handoff_batches_total{read="local"}') > 0
        assert worker.metric("exw_backpressure_seconds_total") >= 0.0
    finally:
        worker.stop()
    alerts = consume_all(kafka_bootstrap, f"{prefix}alerts-one")
    live = [_EMITTED.sub(b'"emitted_at":null', r.value) for r in alerts]
    replayed = [_EMITTED.sub(b'"emitted_at":null', line) for line in file_replay["alerts"]]
    assert live, "the worker published no alerts"
    # byte for byte, the live worker's alerts are the replay's, up to where its
    # event time stands: the file replay flushes at the end of the file, while
    # the live engine evaluates a tick when an event after it arrives, so what
    # is decided in the quiet after the data ends (e.g. resolutions) waits
    assert live == replayed[:len(live)]
    end_of_data = parse_rfc3339(max(
        t for t in map(_ts_of, (sim / "events.jsonl").read_bytes().splitlines()[-300:]) if t))
    # (lateness 5 min + one 10-min tick)
    tail = [orjson.loads(x) for x in replayed[len(live):]]
    assert all(parse_rfc3339(a["detected_at"]) > end_of_data - 900 for a in tail), tail
    for r in alerts:
        headers = dict(r.headers)
        rec = orjson.loads(r.value)
        assert r.key == rec["alert_id"].encode()
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_id"] == f"{rec['alert_id']}:{rec['seq']}".encode()
        assert headers["ce_type"] and headers["ce_source"] and headers["ce_time"]
        assert rec["emitted_at"] and rec["emitted_at"].endswith("Z")
    # every bad line is one dead letter with its reason, in a header too
    dead = consume_all(kafka_bootstrap, f"{prefix}dlq-one")
    reasons = sorted(orjson.loads(r.value)["reason"] for r in dead)
    assert reasons == sorted(d["reason"] for d in file_replay["dead"])
    assert all(dict(r.headers)["reason"] == orjson.loads(r.value)["reason"].encode() for r in dead)
    assert all(orjson.loads(r.value)["source"]["topic"] == f"{prefix}calls" for r in dead)


@pytest.fixture(scope="module")
def four_partitions(kafka_bootstrap, sim, file_replay, tmp_path_factory):
    """Events on 4 partitions, and the alerts of one uninterrupted worker."""
    from .conftest import delete_topics, unique_prefix

    prefix = unique_prefix("four")
    tmp = tmp_path_factory.mktemp("four")
    total = _produce(prefix, kafka_bootstrap, sim, partitions=4)
    expected = _valid_count(file_replay, total)
    worker = Worker(_env(prefix, kafka_bootstrap, tmp, "base"), tmp / "base.log")
    try:
        _wait_processed([worker], expected)
    finally:
        worker.stop()
    baseline = _alerts_by_update(consume_all(kafka_bootstrap, f"{prefix}alerts-base"))
    yield {"prefix": prefix, "tmp": tmp, "expected": expected, "baseline": baseline}
    delete_topics(kafka_bootstrap, prefix)


def test_four_partitions_give_the_file_replay_alerts(four_partitions, file_replay):
    replayed = {(a["alert_id"], a["seq"]): _EMITTED.sub(b'"emitted_at":null', line)
                for line, a in zip(file_replay["alerts"], map(orjson.loads, file_replay["alerts"]),
                                   strict=True)}
    baseline = four_partitions["baseline"]
    assert baseline and set(baseline) <= set(replayed)
    assert all(baseline[key] == replayed[key] for key in baseline)
    assert len(baseline) >= len(replayed) - 2


@pytest.mark.parametrize(("names", "late"), [(None, False), (("exw-a", "exw-b"), False),
                                             (None, True)], ids=["dynamic", "static", "late"])
def test_two_workers_count_each_event_once_and_raise_the_same_alerts(
        kafka_bootstrap, four_partitions, names, late):
    # (and as static group members, each under a name of its own; and with the
    # second worker joining only once the first has read everything: the group
    # rebalances, and the engine may move to the newcomer, which restores it)
    prefix, tmp = four_partitions["prefix"], four_partitions["tmp"]
    app = "pair" if names is None else "pair-static"
    app += "-late" if late else ""
    env = _env(prefix, kafka_bootstrap, tmp, app)
    env2 = dict(env, EXW_WEB_PORT=str(_free_port()), EXW_DATA_DIR=str(tmp / f"data-{app}-2"))
    if names is not None:
        env["EXW_GROUP_INSTANCE_ID"], env2["EXW_GROUP_INSTANCE_ID"] = names
    workers = [Worker(env, tmp / f"{app}-1.log")]
    try:
        if late:
            _wait_processed(workers, four_partitions["expected"])
        workers.append(Worker(env2, tmp / f"{app}-2.log"))
        owners = _wait_shared(workers, four_partitions["expected"])
        assert len(owners) == 1, "exactly one worker runs the engine"
        # every event counted once in state: the engine holds exactly the valid events
        assert owners[0].metric("exw_events_processed_total") + \
            owners[0].metric("exw_events_buffered") == four_partitions["expected"]
        received = sum(max(0.0, w.metric("exw_events_total")) for w in workers)
        assert received >= four_partitions["expected"]
    finally:
        for w in workers:
            w.stop()
    pair = _alerts_by_update(consume_all(kafka_bootstrap, f"{prefix}alerts-{app}"))
    assert pair == four_partitions["baseline"]


def _wait_engine_owner(worker: Worker, deadline: float) -> None:
    while time.monotonic() < deadline:
        assert worker.proc.poll() is None, f"worker exited early:\n{worker.tail()}"
        if worker.get("/readyz")[0] == 200 and worker.metric("exw_engine_owner") == 1.0:
            return
        time.sleep(0.1)
    raise AssertionError(f"the worker did not take the engine in time:\n{worker.tail()}")


def test_a_restarted_static_member_takes_its_partitions_back_at_once(
        kafka_bootstrap, four_partitions):
    """Static membership (EXW_GROUP_INSTANCE_ID): a worker killed with -9 and started
    again under the same name gets its partitions (and the engine) back without waiting
    for its old session to time out. The session is 60 s here; without the name the
    restarted worker waits that out (the dead member holds its partitions until then),
    with it the restart is ready well within 40 s; and nothing is lost or doubled."""
    prefix, tmp = four_partitions["prefix"], four_partitions["tmp"]
    env = _env(prefix, kafka_bootstrap, tmp, "static", EXW_GROUP_INSTANCE_ID="exw-{hostname}-1",
               EXW_SESSION_TIMEOUT_S="60")
    first = Worker(env, tmp / "static-1.log")
    try:
        _wait_engine_owner(first, time.monotonic() + 120)
    finally:
        first.kill()
    killed = time.monotonic()
    second = Worker(dict(env, EXW_WEB_PORT=str(_free_port())), tmp / "static-2.log")
    try:
        _wait_engine_owner(second, killed + 40)
        _wait_processed([second], four_partitions["expected"])
        held = second.metric("exw_events_processed_total") + second.metric("exw_events_buffered")
    finally:
        second.stop()
    assert held == four_partitions["expected"]
    assert _alerts_by_update(consume_all(kafka_bootstrap, f"{prefix}alerts-static")) == \
        four_partitions["baseline"]


def test_two_live_workers_under_one_name_exit_and_say_why(kafka_bootstrap, four_partitions):
    """A misconfiguration, not a fault: two live workers share EXW_GROUP_INSTANCE_ID.
    Each one's join takes the membership from the other, over and over; rather than
    thrash (and log a rejoin a second) for ever, a worker that sees it exits with code 3
    and names the cause (both usually do; one that outlives the other holds the name
    alone and goes on)."""
    prefix, tmp = four_partitions["prefix"], four_partitions["tmp"]
    env = _env(prefix, kafka_bootstrap, tmp, "clash", EXW_GROUP_INSTANCE_ID="exw-same")
    workers = [Worker(env, tmp / "clash-1.log"),
               Worker(dict(env, EXW_WEB_PORT=str(_free_port()), EXW_DATA_DIR=str(tmp / "clash-2")),
                      tmp / "clash-2.log")]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and all(w.proc.poll() is None for w in workers):
            time.sleep(0.5)
        time.sleep(5)  # the other one may be a few assignments behind
        codes = [w.proc.poll() for w in workers]
    finally:
        for w in workers:
            w.stop()
    exited = [w for w, code in zip(workers, codes, strict=True) if code is not None]
    assert exited, "neither worker noticed:\n" + "\n".join(w.tail() for w in workers)
    assert all(code in (None, 3) for code in codes), codes
    for w in exited:
        said = [line for line in w.log.read_text(errors="replace").splitlines()
                if "CRITICAL" in line]
        assert said and "EXW_GROUP_INSTANCE_ID='exw-same'" in said[-1], w.tail()


def test_topic_replay_is_isolated_and_matches_the_live_run(
        kafka_bootstrap, four_partitions, file_replay, tmp_path):
    prefix = four_partitions["prefix"]
    production_alerts = f"{prefix}alerts-base"
    before = len(consume_all(kafka_bootstrap, production_alerts))
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    groups_before = {g["group_id"] for g in admin.list_groups()}
    offsets_before = admin.list_group_offsets(f"{prefix}base")
    out = tmp_path / "alerts.jsonl"
    env = {"EXW_TOPIC_ALERTS": production_alerts}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        # refuses to write into the production alerts topic
        assert cli_main(["replay", "--bootstrap", kafka_bootstrap, "--topic", f"{prefix}calls",
                         "--alerts-topic", production_alerts]) == 2
        assert cli_main(["replay", "--bootstrap", kafka_bootstrap, "--topic", f"{prefix}calls",
                         "--releases-topic", f"{prefix}releases",
                         "--alerts-out", str(out)]) == 0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    replayed = [_EMITTED.sub(b'"emitted_at":null', x) for x in out.read_bytes().splitlines()]
    expected = [_EMITTED.sub(b'"emitted_at":null', x) for x in file_replay["alerts"]]
    assert sorted(replayed) == sorted(expected)
    # nothing written to production, no group created or moved
    assert len(consume_all(kafka_bootstrap, production_alerts)) == before
    assert {g["group_id"] for g in admin.list_groups()} == groups_before
    assert admin.list_group_offsets(f"{prefix}base") == offsets_before
    admin.close()


def test_topic_replay_of_a_time_range_reads_only_that_range(kafka_bootstrap, four_partitions,
                                                            sim, tmp_path):
    prefix = four_partitions["prefix"]
    times = sorted(t for t in map(_ts_of, (sim / "events.jsonl").read_bytes().splitlines()) if t)
    start, end = times[len(times) // 3], times[2 * len(times) // 3]
    summary_path = tmp_path / "summary.json"
    assert cli_main(["replay", "--bootstrap", kafka_bootstrap, "--topic", f"{prefix}calls",
                     "--from", start, "--to", end, "--alerts-out", str(tmp_path / "a.jsonl"),
                     "--summary-json", str(summary_path)]) == 0
    summary = orjson.loads(summary_path.read_bytes())
    in_range = sum(1 for t in times if start <= t < end)
    # record timestamps are event times at millisecond precision: allow the boundaries' ties
    assert abs(summary["events"] - in_range) <= 10
    assert summary["events"] < len(times) // 2


# ------------------------------------------------ a checkpoint this release cannot use

def _live(records) -> dict[bytes, bytes]:
    """What a compacted topic keeps of ``records``: each key's latest value, tombstones
    applied."""
    out: dict[bytes, bytes] = {}
    for r in records:
        if r.value is None:
            out.pop(r.key, None)
        else:
            out[r.key] = r.value
    return out


@pytest.mark.parametrize("damage", ["other_format", "unreadable"])
def test_an_unusable_checkpoint_is_discarded_and_the_state_rebuilt_from_the_handoff(
        kafka_bootstrap, four_partitions, file_replay, tmp_path, damage):
    """An upgrade: the release before it processed the whole stream, checkpointing
    after every hand-off record; its latest checkpoint then names another format (the
    blob itself would still load) or misses a chunk. The next worker must not crash: it
    warns once, counts the discard, re-reads the hand-off topic from its start, and
    ends with the alerts of an uninterrupted run and every event accounted for."""
    prefix, expected = four_partitions["prefix"], four_partitions["expected"]
    produced = expected + len(file_replay["dead"])
    app = f"upgrade-{damage.replace('_', '-')}"
    env = _env(prefix, kafka_bootstrap, tmp_path, app, EXW_CHECKPOINT_INTERVAL_S="0.001")
    checkpoints, alerts_topic = f"{prefix}{app}-checkpoints", f"{prefix}alerts-{app}"
    before = Worker(env, tmp_path / f"{app}-before.log")
    try:
        _wait_processed([before], expected)
    finally:
        before.stop()
    live = _live(consume_all(kafka_bootstrap, checkpoints))
    manifest = orjson.loads(live[b"manifest"])
    generation = manifest["generation"]
    assert manifest["format"] == CHECKPOINT_FORMAT and generation > 1
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    if damage == "other_format":
        foreign = "1-0123456789ab"
        producer.send(checkpoints, key=b"manifest",
                      value=orjson.dumps(dict(manifest, format=foreign)))
        warning = (f"checkpoint generation {generation} has format '{foreign}', this release "
                   f"reads {CHECKPOINT_FORMAT}: rebuilding state from the hand-off topic")
    else:
        producer.send(checkpoints, key=f"chunk-{generation}-0".encode(), value=None)
        warning = (f"checkpoint generation {generation} does not restore: checkpoint "
                   f"generation {generation} misses chunk 0: rebuilding state from the "
                   "hand-off topic")
    producer.flush()
    producer.close()
    old_chunks = {k for k in _live(consume_all(kafka_bootstrap, checkpoints))
                  if k.startswith(b"chunk-")}
    assert old_chunks
    published = consume_all(kafka_bootstrap, alerts_topic)
    assert _alerts_by_update(published) == four_partitions["baseline"]
    ends: dict[int, int] = {}
    for r in published:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)

    after = Worker(dict(env, EXW_CHECKPOINT_INTERVAL_S="3", EXW_WEB_PORT=str(_free_port())),
                   tmp_path / f"{app}-after.log")
    try:
        _wait_processed([after], expected)
        held = after.metric("exw_events_processed_total") + after.metric("exw_events_buffered")
        discarded = {reason: after.metric(f'exw_checkpoints_discarded_total{{reason="{reason}"}}')
                     for reason in ("no_format", "other_format", "unreadable", "bad_manifest")}
        status, ready = after.get("/readyz")
    finally:
        after.stop()
    assert status == 200 and orjson.loads(ready)["runs_engine"] is True
    assert discarded == {reason: float(reason == damage) for reason in discarded}
    log_lines = after.log.read_text(errors="replace").splitlines()
    warned = [line for line in log_lines if "rebuilding state from the hand-off topic" in line]
    assert len(warned) == 1 and warning in warned[0] and "WARNING" in warned[0], warned
    assert not [line for line in log_lines if "Traceback" in line or "crashed" in line.lower()]
    # every event in state once: rebuilt from the hand-off, not skipped or applied twice
    assert held == expected
    # the rebuild published every alert update again, each identical to the uninterrupted
    # run's (a worker that used the checkpoint would have nothing left to publish)
    records = consume_all(kafka_bootstrap, alerts_topic)
    again = [r for r in records if r.offset >= ends.get(r.partition, 0)]
    assert _alerts_by_update(again) == four_partitions["baseline"]
    assert _alerts_by_update(records) == four_partitions["baseline"]
    # nothing lost: events in state + distinct dead letters = records produced
    dead = {r.key for r in consume_all(kafka_bootstrap, f"{prefix}dlq-{app}")}
    assert held + len(dead) == produced
    # the checkpoint now: this release's format, above the discarded generation, and
    # only its own chunks live (the discarded generation's are tombstoned)
    live = _live(consume_all(kafka_bootstrap, checkpoints))
    saved = orjson.loads(live[b"manifest"])
    assert saved["format"] == CHECKPOINT_FORMAT and saved["generation"] > generation
    assert set(live) == {b"manifest"} | {f"chunk-{saved['generation']}-{i}".encode()
                                         for i in range(saved["chunks"])}
    assert not old_chunks & set(live)
