"""What the reliability tests drive: worker processes, a broker of their own,
a producer that remembers where each line went, and read-backs of topics and
consumer groups. Real processes and a real broker throughout; nothing mocked."""

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.codec import has_lz4

from extraction_watch.produce import _key_and_timestamp

__all__ = ["Broker", "RunResult", "Worker", "free_port", "group_offsets",
           "send_lines", "topic_ends", "worker_env"]

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).with_name("extraction-watch"))
BROKER_PY = ROOT / "deploy" / "kafka" / "broker.py"
_EMITTED = re.compile(rb'"emitted_at":"[^"]*"')
_MAX_REQUEST = 16 << 20


def free_port(exclude: Iterable[int] = ()) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in exclude:
            return port


# ------------------------------------------------------------------ producing

def send_lines(bootstrap: str, topic: str, lines: Sequence[bytes]) -> list[tuple[int, int]]:
    """Send each line as one record, keyed and stamped as ``extraction-watch produce``
    does (key = account_id, timestamp = ts, the previous one when absent or too far
    ahead); return each line's (partition, offset)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                             batch_size=256 << 10, max_request_size=_MAX_REQUEST,
                             compression_type="lz4" if has_lz4() else None,
                             allow_auto_create_topics=False, client_id="exw-reliability")
    futures = []
    last_ts: int | None = None
    try:
        for line in lines:
            key, ts_ms, _ = _key_and_timestamp(line, "account_id", "ts", int(time.time() * 1000))
            if ts_ms is None:
                ts_ms = last_ts
            else:
                last_ts = ts_ms
            futures.append(producer.send(topic, value=line, key=key, timestamp_ms=ts_ms))
        producer.flush()
    finally:
        producer.close()
    out = []
    for fut in futures:
        meta = fut.get(timeout=60)
        out.append((meta.partition, meta.offset))
    return out


# ------------------------------------------------------------------ reading back

def topic_ends(bootstrap: str, prefix: str) -> dict[str, dict[int, int]]:
    """End offsets of every partition of every topic whose name starts with ``prefix``."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="exw-reliability")
    try:
        names = sorted(t for t in admin.list_topics() if t.startswith(prefix))
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             client_id="exw-reliability-ends")
    try:
        out: dict[str, dict[int, int]] = {}
        for name in names:
            tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name)
                                                           or ())]
            out[name] = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
        return out
    finally:
        consumer.close()


def group_offsets(bootstrap: str, prefix: str) -> dict[str, dict[tuple[str, int], int]]:
    """Committed offsets of every consumer group whose id starts with ``prefix``."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="exw-reliability")
    try:
        groups = sorted(g["group_id"] for g in admin.list_groups()
                        if g["group_id"].startswith(prefix))
        if not groups:
            return {}
        offsets = admin.list_group_offsets(groups)
        return {g: {(tp.topic, tp.partition): meta.offset for tp, meta in offsets[g].items()}
                for g in groups}
    finally:
        admin.close()


def group_members(bootstrap: str, group: str) -> tuple[str, list[str]]:
    """(state, sorted member ids) of a consumer group: a rebalance changes the members."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="exw-reliability")
    try:
        desc = admin.describe_groups([group])[group]
        state = desc.get("group_state", desc.get("state"))
        return state, sorted(m["member_id"] for m in desc["members"])
    finally:
        admin.close()


def alerts_by_update(records: Iterable[Any]) -> dict[tuple[str, int], bytes]:
    """(alert_id, seq) -> record without emitted_at; a repeat (at least once) must be
    identical to the first copy."""
    out: dict[tuple[str, int], bytes] = {}
    for r in records:
        body = _EMITTED.sub(b'"emitted_at":null', r.value if hasattr(r, "value") else r)
        rec = orjson.loads(body)
        key = (rec["alert_id"], rec["seq"])
        assert out.setdefault(key, body) == body, f"update {key} published with other content"
    return out


# ------------------------------------------------------------------ processes

class Worker:
    """One ``extraction-watch worker`` process and its web views."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.port = int(env["EXW_WEB_PORT"])
        self.log = log
        self.started = time.monotonic()
        self.killed = False
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([EXE, "worker", "--loglevel", "warning"], env=env,
                                         stdout=out, stderr=subprocess.STDOUT)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return 0, b""

    def metrics(self) -> dict[str, float]:
        """``name{labels}`` -> value of every series on /metrics (empty if it does not answer)."""
        status, body = self.get("/metrics")
        if status != 200:
            return {}
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def ready(self) -> dict[str, Any] | None:
        """The /readyz body when it says ready (200), else None."""
        status, body = self.get("/readyz")
        if status != 200:
            return None
        return orjson.loads(body)

    def readiness(self) -> dict[str, Any]:
        """The /readyz body whatever its status ({} if the worker does not answer)."""
        status, body = self.get("/readyz")
        return orjson.loads(body) if status in (200, 503) and body else {}

    def held(self) -> int:
        """Events the engine holds (applied + waiting in the lateness buffer), -1 if it
        does not run the engine (or does not answer)."""
        m = self.metrics()
        if m.get("exw_engine_owner") != 1.0 or "exw_events_processed_total" not in m:
            return -1
        return int(m["exw_events_processed_total"] + m.get("exw_events_buffered", 0.0))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.killed = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def worker_env(prefix: str, bootstrap: str, tmp: Path, app: str, checkpoint_s: float,
               **extra: str) -> dict[str, str]:
    """A worker of app id ``<prefix><app>`` on the shared events topic ``<prefix>calls``,
    with its own alerts and dead-letter topics."""
    env = dict(os.environ)
    env.update({
        "EXW_KAFKA_BOOTSTRAP": bootstrap, "EXW_APP_ID": f"{prefix}{app}",
        "EXW_TOPIC_EVENTS": f"{prefix}calls", "EXW_TOPIC_RELEASES": f"{prefix}releases",
        "EXW_TOPIC_ALERTS": f"{prefix}alerts-{app}", "EXW_TOPIC_DEAD_LETTERS": f"{prefix}dlq-{app}",
        "EXW_DATA_DIR": str(tmp / f"data-{app}"), "EXW_WEB_PORT": str(free_port()),
        "EXW_CHECKPOINT_INTERVAL_S": str(checkpoint_s),
    })
    env.update(extra)
    return env


class Broker:
    """``deploy/kafka/broker.py`` on one state dir and pair of ports: ``up``, ``down``
    (optionally purging the state dir), ``up`` again on the same state."""

    def __init__(self, state_dir: Path, port: int | None = None,
                 controller_port: int | None = None) -> None:
        port = port or free_port()
        self.env = dict(os.environ, KAFKA_PORT=str(port),
                        KAFKA_CONTROLLER_PORT=str(controller_port
                                                  or free_port(exclude=(port,))),
                        EXW_BROKER_DIR=str(state_dir))
        self.bootstrap = f"127.0.0.1:{port}"

    @classmethod
    def attach(cls, state_dir: Path, port: int, controller_port: int) -> Broker:
        """A broker already running on that state dir and those ports."""
        return cls(state_dir, port, controller_port)

    def _run(self, *args: str, timeout: float = 180) -> None:
        subprocess.run([sys.executable, str(BROKER_PY), *args], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)

    def up(self) -> float:
        started = time.monotonic()
        self._run("up")
        return time.monotonic() - started

    def down(self, purge: bool = False) -> None:
        self._run("down", *(["--purge"] if purge else []))


@dataclass
class RunResult:
    """What one pipeline run produced, for the assertions and the figures."""

    name: str
    events: int = 0
    wall_s: float = 0.0
    alerts: dict[tuple[str, int], bytes] = field(default_factory=dict)
    dead: dict[tuple[int, int], str] = field(default_factory=dict)   # (p, o) -> reason
    dead_records: int = 0      # records on the dead-letter topic, repeats included
    held: int = 0              # events the engine holds at the end
    faults: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s else 0.0

    @property
    def lost(self) -> int:
        return self.events - self.held - len(self.dead)
