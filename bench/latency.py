"""Event-to-alert latency of one worker on the real broker at a steady produce rate.

Set-up: a simulated ``default`` stream (no dirty lines, so every record is a
valid, unique event in event-time order) is produced to a fresh events topic
at a steady ``--rate`` (5,000 events/s), one record at a time, paced against
the wall clock (kafka-python, acks=all, ``--linger-ms`` 5, key account_id,
record timestamp = the event's ``ts``). One ``extraction-watch worker`` runs
the pipeline; this process consumes its alerts topic.

Event time: the events keep the simulator's timestamps, so event time runs
about ``rate / 3.8 / scale`` times faster than the wall clock (at scale 0.25
and 5,000 events/s, 72 hours of traffic pass in about 50 s, a 10-minute tick
every 0.4 s). Rewriting timestamps to the wall clock would need hours of wall
time per alert, since the engine evaluates accounts every 10 minutes and
clusters every 30 minutes of event time. What is measured is the pipeline's
delay between an event arriving and the alert it causes, which does not
depend on how fast event time runs (only on how often ticks fall due).

Which event triggers an alert: every alert is decided at a tick, and its
``detected_at`` is that tick's boundary B (event time). The engine evaluates
the tick when its watermark (the lowest partition's largest event time minus
the 5-minute lateness) passes the first event at or after B, whose time is
t_B. The engine only ticks when events arrive, so the trigger is an event:
here, the first event produced whose time is later than t_B + 5 min. With
several partitions the watermark passes only once every partition has such
an event (or is idle), so the true trigger is that one or a later one: the
latency below is measured from the earliest event that could have triggered
it, an upper bound (``--partitions 1`` makes it exact). Latency = the alert
record's Kafka timestamp (CreateTime: set by the worker's producer when it
sends the alert) minus the wall time at which the triggering event was handed
to the producer; the alert's ``emitted_at`` (stamped just before sending) and
the time this process received the alert are reported too. A thread polls
the worker's /metrics every 0.25 s for the events its engine holds, which
gives the worker's largest backlog behind the producer: when the worker
cannot keep up with the rate, latency is mostly that queue.

``--partitions 4,1`` (the default) runs the same events twice, one worker on
a fresh 4-partition topic, then on a 1-partition one: with several
partitions the engine's watermark waits for the slowest partition, which
stage 1 reads in turn, so the comparison shows what that alignment costs.

Needs EXW_KAFKA_BOOTSTRAP (run it under deploy/kafka/with-broker.sh). Usage:
  python bench/latency.py [--rate 5000] [--scale 0.25] [--partitions 4,1] [--json out.json]
"""

from __future__ import annotations

import argparse
import bisect
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import stamp, write_result  # noqa: E402
from extraction_watch.simulator import simulate  # noqa: E402
from models.contract import parse_rfc3339  # noqa: E402
from models.engine import EngineConfig  # noqa: E402
from streams.config import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

EXE = str(Path(sys.executable).with_name("extraction-watch"))
LATENESS_S = EngineConfig().lateness_s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, b""
    except OSError:
        return 0, b""


def _metric(port: int, name: str) -> float:
    status, body = _get(port, "/metrics")
    for line in body.splitlines():
        if line.startswith(name.encode() + b" "):
            return float(line.split()[1])
    return -1.0


class ProgressSampler(threading.Thread):
    """Polls the worker's /metrics: (wall time, events it holds: applied + buffered)."""

    def __init__(self, port: int, every_s: float = 0.25) -> None:
        super().__init__(daemon=True, name="progress-sampler")
        self.port, self.every_s = port, every_s
        self.samples: list[tuple[float, float]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            status, body = _get(self.port, "/metrics")
            held = 0.0
            found = 0
            for line in body.splitlines():
                if line.startswith((b"exw_events_processed_total ", b"exw_events_buffered ")):
                    held += float(line.split()[1])
                    found += 1
            if status == 200 and found == 2:
                self.samples.append((time.time(), held))
            self.stop_event.wait(self.every_s)


def load_events(path: Path) -> tuple[list[bytes], list[bytes], list[float]]:
    lines, keys, ts = [], [], []
    with open(path, "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            ev = orjson.loads(line)
            lines.append(line)
            keys.append(ev["account_id"].encode())
            ts.append(parse_rfc3339(ev["ts"]))
    return lines, keys, ts


class AlertListener(threading.Thread):
    """Reads the alerts topic from the beginning; keeps (received wall time, record)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(daemon=True, name="alert-listener")
        self.settings, self.topic = settings, topic
        self.records: list[tuple[float, int, bytes]] = []
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        try:
            consumer = KafkaConsumer(group_id=None, enable_auto_commit=False,
                                     auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                     **self.settings.kafka_python_kwargs())
            try:
                while not self.stop_event.is_set():
                    parts = consumer.partitions_for_topic(self.topic)
                    if parts:
                        break
                    time.sleep(0.2)
                consumer.assign([TopicPartition(self.topic, p) for p in sorted(parts or ())])
                consumer.seek_to_beginning()
                self.ready.set()
                while not self.stop_event.is_set():
                    for records in consumer.poll(timeout_ms=100).values():
                        now = time.time()
                        for r in records:
                            self.records.append((now, r.timestamp, r.value))
            finally:
                consumer.close()
        except BaseException as exc:  # reported by the main thread
            self.error = exc
            self.ready.set()


def produce_paced(settings: Settings, topic: str, lines: list[bytes], keys: list[bytes],
                  ts: list[float], partitions: int, rate: float, linger_ms: int
                  ) -> tuple[list[float], list[int], float]:
    """Send every line at ``rate`` per second; returns send wall times, partitions, seconds."""
    from kafka import KafkaProducer
    from kafka.partitioner.default import murmur2

    producer = KafkaProducer(acks="all", linger_ms=linger_ms, **settings.kafka_python_kwargs())
    n = len(lines)
    sent_at = [0.0] * n
    parts = [(murmur2(k) & 0x7FFFFFFF) % partitions for k in keys]  # kafka-python's default
    send, clock, wall, sleep = producer.send, time.perf_counter, time.time, time.sleep
    started = clock()
    try:
        for i in range(n):
            due = started + i / rate
            ahead = due - clock()
            if ahead > 0.001:
                sleep(ahead)
            sent_at[i] = wall()
            send(topic, value=lines[i], key=keys[i], partition=parts[i],
                 timestamp_ms=int(ts[i] * 1000))
        producer.flush()
    finally:
        producer.close()
    return sent_at, parts, clock() - started


def _backlogs(samples: list[tuple[float, float]], sent_at: list[float]):
    """(events sent by then, events the worker held) at each progress sample."""
    for wall, held in samples:
        yield bisect.bisect_right(sent_at, wall), held


def _backlog(samples: list[tuple[float, float]], wall: float, index: int) -> int | None:
    """Events the worker was behind the producer when event ``index`` was sent."""
    i = bisect.bisect_right([w for w, _ in samples], wall) - 1
    return None if i < 0 else max(0, round(index - samples[i][1]))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def run_once(args, settings: Settings, bootstrap: str, work: Path, partitions: int,
             lines: list[bytes], keys: list[bytes], ts: list[float],
             releases: list[bytes]) -> dict:
    """One worker on fresh topics with ``partitions`` partitions; returns the figures."""
    n = len(lines)
    prefix = f"lat-{uuid.uuid4().hex[:8]}-"
    topic, rel_topic, alerts_topic = f"{prefix}calls", f"{prefix}releases", f"{prefix}alerts"
    ensure_topics(settings, {topic: partitions, rel_topic: 1, alerts_topic: 1})
    from kafka import KafkaProducer

    producer = KafkaProducer(acks="all", **settings.kafka_python_kwargs())
    for line in releases:
        rel = orjson.loads(line)
        producer.send(rel_topic, value=line, key=rel["model"].encode(),
                      timestamp_ms=int(parse_rfc3339(rel["released_at"]) * 1000))
    producer.flush()
    producer.close()

    port = _free_port()
    env = dict(os.environ)
    env.update({"EXW_KAFKA_BOOTSTRAP": bootstrap, "EXW_APP_ID": f"{prefix}app",
                "EXW_TOPIC_EVENTS": topic, "EXW_TOPIC_RELEASES": rel_topic,
                "EXW_TOPIC_ALERTS": alerts_topic, "EXW_TOPIC_DEAD_LETTERS": f"{prefix}dlq",
                "EXW_DATA_DIR": str(work / f"data-{prefix}"), "EXW_WEB_PORT": str(port),
                "EXW_TOPIC_PARTITIONS": str(partitions),
                "EXW_CHECKPOINT_INTERVAL_S": "30"})
    listener = AlertListener(settings, alerts_topic)
    log = open(work / f"worker-{partitions}.log", "ab")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([EXE, "worker", "--loglevel", "warning"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    sampler = ProgressSampler(port)
    try:
        deadline = time.monotonic() + 120
        while _get(port, "/readyz")[0] != 200 or _metric(port, "exw_engine_owner") != 1.0:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not become ready; log in {log.name}")
            time.sleep(0.1)
        sampler.start()
        listener.start()
        listener.ready.wait(60)
        if listener.error:
            raise listener.error
        print(f"{partitions} partition(s): worker ready; producing at {args.rate:,.0f} "
              "events/s ...", flush=True)
        sent_at, parts, produce_s = produce_paced(settings, topic, lines, keys, ts,
                                                  partitions, args.rate, args.linger_ms)
        print(f"  produced {n:,} events in {produce_s:,.1f} s ({n / produce_s:,.0f}/s); waiting "
              f"{args.settle_s:g} s for the last alerts ...", flush=True)
        time.sleep(args.settle_s)
        applied = _metric(port, "exw_events_processed_total")
        buffered = _metric(port, "exw_events_buffered")
    finally:
        listener.stop_event.set()
        sampler.stop_event.set()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
        listener.join(10)

    # ---- which event triggered each alert, and how long until it was published
    by_part: dict[int, list[int]] = {}
    for i, p in enumerate(parts):
        by_part.setdefault(p, []).append(i)
    part_ts = {p: [ts[i] for i in idx] for p, idx in by_part.items()}
    rows = []
    unmatched = 0
    for received, kafka_ts_ms, value in listener.records:
        alert = orjson.loads(value)
        boundary = parse_rfc3339(alert["detected_at"])
        e = bisect.bisect_left(ts, boundary)
        if e >= n:
            unmatched += 1
            continue
        t_due = ts[e] + LATENESS_S
        trigger = bisect.bisect_right(ts, t_due)  # first event later than t_B + lateness
        if trigger >= n:
            unmatched += 1
            continue
        last = trigger  # the event by which every partition has passed t_B + lateness
        for p, idx in by_part.items():
            j = bisect.bisect_right(part_ts[p], t_due)
            if j < len(idx):
                last = max(last, idx[j])
        emitted = parse_rfc3339(alert["emitted_at"])
        rows.append({
            "alert_id": alert["alert_id"], "seq": alert["seq"], "kind": alert["kind"],
            "severity": alert["severity"], "status": alert["status"],
            "detected_at": alert["detected_at"], "trigger_index": trigger,
            "latency_s": kafka_ts_ms / 1000.0 - sent_at[trigger],
            "latency_emitted_at_s": emitted - sent_at[trigger],
            "latency_received_s": received - sent_at[trigger],
            "latency_all_partitions_s": kafka_ts_ms / 1000.0 - sent_at[last],
            "backlog_events_at_send": _backlog(sampler.samples, sent_at[trigger], trigger),
        })

    def summary(key: str) -> dict:
        vals = [r[key] for r in rows if r[key] is not None]
        if not vals:
            return {}
        return {"p50_ms": round(percentile(vals, 50) * 1000, 1),
                "p99_ms": round(percentile(vals, 99) * 1000, 1),
                "max_ms": round(max(vals) * 1000, 1), "min_ms": round(min(vals) * 1000, 1),
                "mean_ms": round(statistics.fmean(vals) * 1000, 1)}

    backlog = max((round(sent - held) for sent, held in _backlogs(sampler.samples, sent_at)),
                  default=None)
    return {
        "partitions": partitions, "rate_achieved": round(n / produce_s),
        "alerts": len(rows), "alerts_unmatched": unmatched,
        "latency": summary("latency_s"),
        "latency_emitted_at": summary("latency_emitted_at_s"),
        "latency_received": summary("latency_received_s"),
        "latency_if_every_partition_must_pass": summary("latency_all_partitions_s"),
        "max_backlog_events": backlog,
        "kept_up": backlog is not None and backlog < args.rate,
        "worker_applied": applied, "worker_buffered": buffered,
        "per_alert": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000.0, help="events per second")
    parser.add_argument("--scale", type=float, default=0.25,
                        help="simulator scale (default scenario, 72 h: ~1M events at 1.0)")
    parser.add_argument("--hours", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", default="4,1",
                        help="events-topic partition counts, one worker run each, same events "
                             "(the first is the headline figure)")
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--settle-s", type=float, default=10.0,
                        help="how long to wait for late alerts after the last event")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    bootstrap = os.environ.get("EXW_KAFKA_BOOTSTRAP")
    if not bootstrap:
        print("set EXW_KAFKA_BOOTSTRAP (deploy/kafka/with-broker.sh or make kafka-up)",
              file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="exw-latency-"))
    simulate("default", args.seed, work / "sim", scale=args.scale, hours=args.hours, bad_rate=0.0)
    lines, keys, ts = load_events(work / "sim" / "events.jsonl")
    assert all(a <= b for a, b in zip(ts, ts[1:], strict=False)), "events not in time order"
    releases = (work / "sim" / "releases.jsonl").read_bytes().splitlines()
    n = len(lines)
    speedup = (ts[-1] - ts[0]) / (n / args.rate)
    print(f"{n:,} events over {(ts[-1] - ts[0]) / 3600:.1f} h of event time; at "
          f"{args.rate:,.0f}/s that is {n / args.rate:,.0f} s, event time "
          f"x{speedup:,.0f} the wall clock", flush=True)
    settings = Settings.from_env({}, bootstrap=bootstrap)
    runs = [run_once(args, settings, bootstrap, work, int(p), lines, keys, ts, releases)
            for p in args.partitions.split(",") if p.strip()]
    first = runs[0]
    result = stamp({
        "events": n, "partitions": first["partitions"], "rate_target": args.rate,
        "rate_achieved": first["rate_achieved"], "scale": args.scale, "hours": args.hours,
        "event_time_speedup": round(speedup), "linger_ms": args.linger_ms,
        "trigger_definition": "the first produced event whose event time is later than t_B + "
                              "lateness (5 min), t_B being the time of the first event at or "
                              "after the alert's detected_at (its tick boundary); latency from "
                              "handing that event to the producer to the alert record's Kafka "
                              "timestamp (CreateTime, set by the worker when sending it)",
        "alerts": first["alerts"], "latency": first["latency"],
        "max_backlog_events": first["max_backlog_events"], "kept_up": first["kept_up"],
        "runs": runs,
    }, "latency")
    for run in runs:
        lat = run["latency"]
        print(f"{run['partitions']} partition(s): {run['alerts']} alert updates "
              f"({run['alerts_unmatched']} without a produced trigger)")
        if lat:
            print(f"  latency (Kafka ts)     p50 {lat['p50_ms']:,.0f} ms   p99 {lat['p99_ms']:,.0f} ms"
                  f"   max {lat['max_ms']:,.0f} ms   (n={run['alerts']}: with n < 100, p99 is the "
                  "largest or next to largest)")
            for key, label in (("latency_emitted_at", "emitted_at"),
                               ("latency_received", "received here"),
                               ("latency_if_every_partition_must_pass", "from last partition")):
                s = run[key]
                print(f"    {label:<20} p50 {s['p50_ms']:,.0f} ms   p99 {s['p99_ms']:,.0f} ms")
        print(f"  worker backlog         at most {run['max_backlog_events']:,} events behind the "
              f"producer (polled every 0.25 s: {'kept up' if run['kept_up'] else 'fell behind'})")
    print("trigger: the first produced event later than (first event at or after detected_at) "
          "+ 5 min lateness; latency from send() to the alert record's Kafka timestamp")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
