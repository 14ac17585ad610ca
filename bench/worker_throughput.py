"""One worker on the real broker against a bare aiokafka consumer, same topic, same run.

Produces a simulated scenario to a fresh topic, then measures:
  * bare consumer: aiokafka getmany + orjson.loads of every record, no group;
  * worker: `extraction-watch worker` from launch until its engine holds every
    valid event (applied or in the lateness buffer); the time to ready is
    reported separately and the rate is taken over the processing time only;
  * restart-to-ready after kill -9: a worker run killed halfway and started again,
    once as a static group member (EXW_GROUP_INSTANCE_ID, as docker-compose.yml runs
    it: the restart takes its partitions back at once) and once without (it waits
    for the dead member's 10 s session to time out).
Each run also records the CPU time per event of the bare consumer (this process)
and of the worker over its processing span (from /proc; a forked checkpoint's
child included while it runs), and their ratio:
a shared machine moves wall-clock rates by 10-40% between runs, CPU time less.
``--worker-env NAME=VALUE`` (repeatable) adds to the worker's environment, to
compare settings side by side.

The bare consumer and the worker alternate ``--repeats`` times (default 3), each
worker run in groups of its own; the medians are reported, with every run (on a
shared machine one pair of runs can be 20% off either way).

Needs EXW_KAFKA_BOOTSTRAP (e.g. `make kafka-up`). Usage:
  python bench/worker_throughput.py [--scale 0.5] [--repeats 3]
      [--json bench/results/worker_throughput.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from statistics import median

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import stamp, write_result  # noqa: E402
from extraction_watch.produce import produce_file  # noqa: E402
from extraction_watch.simulator import simulate  # noqa: E402
from streams.config import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

EXE = str(Path(sys.executable).with_name("extraction-watch"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (its children not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out.extend(int(c) for c in task.read_text().split())
        except OSError:
            pass
    return out


def _worker_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds so far of the worker and of its live child processes (a checkpoint's
    snapshot while one is written), by pid."""
    return {p: _cpu_s(p) for p in [pid] + _children(pid)}


def _cpu_between(first: dict[int, float], last: dict[int, float]) -> float:
    """CPU used between two :func:`_worker_cpu_s` readings (a process born between them
    counts from zero; one gone by the second reading is not counted after the first)."""
    return sum(v - first.get(p, 0.0) for p, v in last.items() if v == v)


async def bare_consumer(bootstrap: str, topic: str, partitions: int, expected: int
                        ) -> tuple[float, float]:
    """Wall and CPU seconds to read and decode ``expected`` records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        loads = orjson.loads
        n = 0
        started = time.perf_counter()
        cpu = time.process_time()
        while n < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for r in records:
                    try:
                        loads(r.value)
                    except orjson.JSONDecodeError:
                        pass
                    n += 1
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        await consumer.stop()


def _scrape(port: int) -> bytes:
    """The worker's /metrics page (empty while it cannot be read)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read()
    except OSError:
        return b""


def _value(body: bytes, name: str) -> float:
    match = re.search(rb"^" + re.escape(name.encode()) + rb" ([0-9.e+]+)$", body, re.M)
    return float(match.group(1)) if match else -1.0


def _metric(port: int, name: str) -> float:
    return _value(_scrape(port), name)


def _dead(body: bytes) -> float:
    return sum(float(v) for v in re.findall(rb"^exw_dead_letters_total\{[^}]*\} ([0-9.e+]+)$",
                                             body, re.M))


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def run_worker(env: dict, expected: int, kill_at: float | None = None,
               count_dead: bool = True) -> dict:
    """Run a worker until it holds ``expected`` events (applied, buffered and, with
    ``count_dead``, dead-lettered: that counter restarts with the process)."""
    port = int(env["EXW_WEB_PORT"])
    log = open(Path(env["EXW_DATA_DIR"]).with_suffix(".log"), "ab")  # noqa: SIM115
    launched = time.perf_counter()
    proc = subprocess.Popen([EXE, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    result: dict = {}
    try:
        while not _ready(port):
            time.sleep(0.05)
        result["launch_to_ready_s"] = time.perf_counter() - launched
        first = None
        cpu_first: dict[int, float] = {}
        while True:
            # one scrape per poll: serving it makes the engine catch up, work the bench
            # should not add more of than it must
            body = _scrape(port)
            valid = _value(body, "exw_events_processed_total") + \
                _value(body, "exw_events_buffered")
            held = valid + (_dead(body) if count_dead else 0)
            if first is None and held > 0:
                first = time.perf_counter()
                cpu_first = _worker_cpu_s(proc.pid)
            if kill_at is not None and held >= expected * kill_at:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                restarted = time.perf_counter()
                proc = subprocess.Popen([EXE, "worker"], env=env, stdout=log,
                                        stderr=subprocess.STDOUT)
                while not _ready(port) or _metric(port, "exw_engine_owner") != 1.0:
                    time.sleep(0.05)
                result["restart_to_ready_s"] = time.perf_counter() - restarted
                kill_at = None
            if held >= expected:
                break
            time.sleep(0.05)
        done = time.perf_counter()
        # the worker's CPU time over the same span, its children's included
        cpu_last = _worker_cpu_s(proc.pid)
        result["processing_cpu_s"] = _cpu_between(cpu_first, cpu_last)
        result["children_cpu_s"] = _cpu_between(
            {p: v for p, v in cpu_first.items() if p != proc.pid},
            {p: v for p, v in cpu_last.items() if p != proc.pid})
        # hand-off batches its reducer took from its own stage 1, decoded, or saw evicted
        result["handoff_batches"] = {
            read: _metric(port, f'exw_handoff_batches_total{{read="{read}"}}')
            for read in ("local", "decoded", "evicted")}
        result["valid"] = valid
        result["processing_s"] = done - (first or done)
        result["launch_to_done_s"] = done - launched
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.5,
                        help="simulation scale (0.5: about 490 thousand events; a short run "
                             "flatters the worker: its engine costs more per event the more "
                             "accounts it holds)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternating runs of the bare consumer and the worker (medians)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment of the worker runs (to compare settings, "
                             "e.g. an allocator's); recorded with the result")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.worker_env)
    bootstrap = os.environ.get("EXW_KAFKA_BOOTSTRAP")
    if not bootstrap:
        print("set EXW_KAFKA_BOOTSTRAP (make kafka-up)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="exw-bench-"))
    simulate("default", 1, work / "sim", scale=args.scale)
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    topic, releases = f"{prefix}calls", f"{prefix}releases"
    settings = Settings.from_env({}, bootstrap=bootstrap)
    ensure_topics(settings, {topic: args.partitions, releases: 1})
    produced = produce_file(settings, work / "sim" / "events.jsonl", work / "sim" / "releases.jsonl",
                            topic=topic, releases_topic=releases)
    total = int(produced["events"])

    def env_for(app: str) -> dict:
        env = dict(os.environ, **extra_env)
        env.update({"EXW_KAFKA_BOOTSTRAP": bootstrap, "EXW_APP_ID": f"{prefix}{app}",
                    "EXW_TOPIC_EVENTS": topic, "EXW_TOPIC_RELEASES": releases,
                    "EXW_TOPIC_ALERTS": f"{prefix}alerts-{app}",
                    "EXW_TOPIC_DEAD_LETTERS": f"{prefix}dlq-{app}",
                    "EXW_DATA_DIR": str(work / f"data-{app}"), "EXW_WEB_PORT": str(_free_port()),
                    "EXW_CHECKPOINT_INTERVAL_S": "30"})
        return env

    # at the end the engine holds every valid event and every other one is a dead letter
    expected = total
    runs = []
    for i in range(args.repeats):
        bare_s, bare_cpu_s = asyncio.run(bare_consumer(bootstrap, topic, args.partitions, total))
        worker = run_worker(env_for(f"run{i}"), expected)
        run = {"bare_consumer_events_per_s": round(total / bare_s),
               "worker_events_per_s": round(expected / worker["processing_s"]),
               "worker_launch_to_ready_s": round(worker["launch_to_ready_s"], 2),
               # CPU per event: less moved by other tenants of a shared machine than rates
               "bare_consumer_cpu_us_per_event": round(1e6 * bare_cpu_s / total, 2),
               "worker_cpu_us_per_event": round(1e6 * worker["processing_cpu_s"] / expected, 2),
               # of which its child processes' (forked checkpoints)
               "children_cpu_us_per_event": round(1e6 * worker["children_cpu_s"] / expected, 2),
               "handoff_batches": worker["handoff_batches"]}
        run["ratio"] = round(run["worker_events_per_s"] / run["bare_consumer_events_per_s"], 4)
        run["cpu_ratio"] = round(run["bare_consumer_cpu_us_per_event"]
                                 / run["worker_cpu_us_per_event"], 4)
        runs.append(run)
        print(f"  run {i + 1}/{args.repeats}: bare {run['bare_consumer_events_per_s']:,}/s "
              f"({run['bare_consumer_cpu_us_per_event']} us CPU/event), worker "
              f"{run['worker_events_per_s']:,}/s ({run['worker_cpu_us_per_event']} us, of which "
              f"children {run['children_cpu_us_per_event']}), "
              f"ratio {run['ratio']:.3f} (by CPU {run['cpu_ratio']:.3f}); hand-off batches "
              f"{run['handoff_batches']}", flush=True)
    crash = run_worker(dict(env_for("crash"), EXW_GROUP_INSTANCE_ID="bench-{hostname}"),
                       int(worker["valid"]), kill_at=0.5, count_dead=False)
    crash_dynamic = run_worker(env_for("crash-dynamic"), int(worker["valid"]), kill_at=0.5,
                               count_dead=False)
    result = stamp({
        "events": total, "scale": args.scale, "partitions": args.partitions,
        "repeats": len(runs),
        "bare_consumer_events_per_s": round(median(r["bare_consumer_events_per_s"] for r in runs)),
        "worker_events_per_s": round(median(r["worker_events_per_s"] for r in runs)),
        "ratio": round(median(r["ratio"] for r in runs), 4),
        "bare_consumer_cpu_us_per_event": median(r["bare_consumer_cpu_us_per_event"] for r in runs),
        "worker_cpu_us_per_event": median(r["worker_cpu_us_per_event"] for r in runs),
        "cpu_ratio": round(median(r["cpu_ratio"] for r in runs), 4),
        "worker_env": extra_env,
        "worker_launch_to_ready_s": round(median(r["worker_launch_to_ready_s"] for r in runs), 2),
        "restart_to_ready_after_kill9_s": round(crash.get("restart_to_ready_s", float("nan")), 2),
        "restart_to_ready_after_kill9_dynamic_s": round(
            crash_dynamic.get("restart_to_ready_s", float("nan")), 2),
        "produce_events_per_s": round(total / produced["seconds"]) if produced.get("seconds") else None,
        "target_ratio": 0.4,
        "runs": runs,
    }, "worker_throughput")
    print(f"events                       {total:,} on {args.partitions} partitions")
    print(f"bare aiokafka consumer       {result['bare_consumer_events_per_s']:,} events/s")
    print(f"worker (end to end)          {result['worker_events_per_s']:,} events/s")
    print(f"ratio worker/bare            {result['ratio']} (median of {len(runs)} runs; "
          f"rates are medians too)")
    print(f"CPU per event                bare {result['bare_consumer_cpu_us_per_event']} us, "
          f"worker {result['worker_cpu_us_per_event']} us: ratio {result['cpu_ratio']} "
          f"(median of runs)")
    print(f"worker launch to ready       {result['worker_launch_to_ready_s']} s")
    print(f"restart to ready (kill -9)   {result['restart_to_ready_after_kill9_s']} s as a static "
          f"member, {result['restart_to_ready_after_kill9_dynamic_s']} s without")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
