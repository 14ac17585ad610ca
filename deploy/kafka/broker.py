#!/usr/bin/env python3
"""A single-node Apache Kafka broker (KRaft, broker+controller) for development and CI.

No Docker: the broker jars come from Maven Central (deploy/kafka/pom.xml) and run
on the local Java 17. Standard library only, so it runs before the venv exists.

    broker.py fetch          download the jars once (prints the directory)
    broker.py up             start (idempotent); last stdout line = bootstrap address
    broker.py status         exit 0 if the broker answers, 1 if not
    broker.py down [--purge] stop (idempotent); --purge also deletes the state dir

Environment:
    KAFKA_PORT             client listener port, default 9092 (always 127.0.0.1)
    KAFKA_CONTROLLER_PORT  KRaft controller listener port, default KAFKA_PORT + 1
    EXW_BROKER_DIR         state dir (config, data, logs, pid file),
                           default $XDG_CACHE_HOME/extraction-watch/broker-<port>
    XDG_CACHE_HOME         cache root, default ~/.cache; jars go to
                           $XDG_CACHE_HOME/extraction-watch/kafka-<version>/
    KAFKA_HEAP_OPTS        JVM heap options, default "-Xms256m -Xmx768m"
    JAVA_HOME / MVN        which java and mvn to use (default: from PATH)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J2_CONFIG = HERE / "log4j2.properties"
HOST = "127.0.0.1"
DEFAULT_PORT = 9092
DEFAULT_HEAP = "-Xms256m -Xmx768m"
STATE_MARKER = ".exw-broker"  # only directories carrying it are ever purged
MiB = 1024 * 1024


class BrokerError(RuntimeError):
    """Something the user has to fix; printed without a traceback."""


def log(msg: str) -> None:
    print(f"[kafka] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- paths

def kafka_version() -> str:
    m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not m:
        raise BrokerError(f"no <kafka.version> property in {POM}")
    return m.group(1).strip()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "extraction-watch"


def lib_dir() -> Path:
    return cache_root() / f"kafka-{kafka_version()}"


def client_port() -> int:
    return _port_env("KAFKA_PORT", DEFAULT_PORT)


def controller_port() -> int:
    return _port_env("KAFKA_CONTROLLER_PORT", client_port() + 1)


def _port_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise BrokerError(f"{name} must be a TCP port number, got {raw!r}")
    return int(raw)


def state_dir() -> Path:
    explicit = os.environ.get("EXW_BROKER_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser().resolve()
    return cache_root() / f"broker-{client_port()}"


# --------------------------------------------------------------------------- fetch

def fetch() -> Path:
    """Copy the broker's jars from Maven Central into the cache, once.

    A marker holding the hash of pom.xml makes this idempotent; an edited pom
    fetches again. A lock file serialises concurrent first uses.
    """
    target = lib_dir()
    pom_hash = hashlib.sha256(POM.read_bytes()).hexdigest()
    marker = target / ".complete"
    if marker.is_file() and marker.read_text().strip() == pom_hash:
        return target
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == pom_hash:
            return target
        mvn = os.environ.get("MVN") or shutil.which("mvn")
        if not mvn:
            raise BrokerError("Maven (mvn) is needed once to fetch the Kafka jars; "
                              "install it (apt-get install maven) or set MVN")
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"fetching Apache Kafka {kafka_version()} from Maven Central into {target} ...")
        t0 = time.monotonic()
        cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               f"-DoutputDirectory={tmp}"]
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            shutil.rmtree(tmp, ignore_errors=True)
            raise BrokerError(f"mvn failed (exit {proc.returncode}):\n"
                              f"{(proc.stdout + proc.stderr)[-4000:]}")
        (tmp / ".complete").write_text(pom_hash + "\n")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        size = sum(p.stat().st_size for p in target.iterdir()) / MiB
        log(f"fetched {len(list(target.glob('*.jar')))} jars, {size:.0f} MiB, "
            f"in {time.monotonic() - t0:.1f} s")
    return target


# --------------------------------------------------------------------------- probe

def _request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    client_id = b"exw-probe"
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _read(sock, 4))[0]
    data = _read(sock, size)
    if struct.unpack(">i", data[:4])[0] != corr:
        raise OSError("correlation id mismatch")
    return data[4:]


def _read(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def probe(port: int, timeout: float = 3.0) -> bool:
    """True if a broker on HOST:port answers ApiVersions and a Metadata request
    listing at least one broker that advertises this port (i.e. it is serving)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            # ApiVersions v0: every broker version answers it.
            resp = _request(sock, 18, 0, 1, b"")
            error, count = struct.unpack(">hi", resp[:6])
            if error != 0:
                return False
            versions = {}
            for i in range(count):
                key, lo, hi = struct.unpack(">hhh", resp[6 + 6 * i: 12 + 6 * i])
                versions[key] = (lo, hi)
            lo, hi = versions.get(3, (0, -1))
            v = max(lo, 4)
            if v > min(hi, 8):  # v4..v8: the non-flexible encodings parsed below
                return False
            body = struct.pack(">ib", 0, 0)  # no topics, no auto-creation
            if v >= 8:
                body += b"\x00\x00"
            resp = _request(sock, 3, v, 2, body)
            nbrokers = struct.unpack(">i", resp[4:8])[0]  # after throttle_time_ms
            off = 8
            for _ in range(nbrokers):
                (hlen,) = struct.unpack(">h", resp[off + 4: off + 6])
                (bport,) = struct.unpack(">i", resp[off + 6 + hlen: off + 10 + hlen])
                if bport == port:
                    return True
                off += 10 + hlen
                (rlen,) = struct.unpack(">h", resp[off: off + 2])
                off += 2 + max(rlen, 0)
            return False
    except (OSError, struct.error):
        return False


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(exclude: tuple[int, ...] = ()) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port not in exclude:
            return port


# --------------------------------------------------------------------------- process

def read_pid(state: Path) -> int | None:
    try:
        pid = int((state / "broker.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_our_broker(pid, state) else None


def is_our_broker(pid: int, state: Path) -> bool:
    """The pid is alive (not a zombie) and is a kafka.Kafka started on this state dir."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return b"kafka.Kafka" in cmdline and str(state / "server.properties").encode() in cmdline


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {path})"
    return f"--- last {min(lines, len(text))} lines of {path}\n" + "\n".join(text[-lines:])


def server_properties(state: Path, port: int, cport: int) -> str:
    return f"""# Generated by deploy/kafka/broker.py on every `up`; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{HOST}:{cport}
listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{cport}
advertised.listeners=PLAINTEXT://{HOST}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={state / "data"}

# Single node: every internal topic has one replica.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Tests: no initial rebalance delay; topics are created explicitly (the worker
# and the tests create theirs), so a misspelt topic name fails loudly.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.partitions=4

# Records up to 16 MiB (state checkpoints are chunked; this is headroom).
# Producers must raise their own max.request.size / max_request_size too.
message.max.bytes={16 * MiB}
replica.fetch.max.bytes={16 * MiB}

# Keep data until the topic or the state dir is deleted.
log.retention.ms=-1
log.retention.bytes=-1

# A small machine: fewer threads and a smaller compaction buffer than the defaults.
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=2
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size={32 * MiB}
"""


def java_bin() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise BrokerError("Java 17 or newer is needed (java not found on PATH, JAVA_HOME unset)")
    return found


def jvm_args(libs: Path, state: Path) -> list[str]:
    heap = os.environ.get("KAFKA_HEAP_OPTS", DEFAULT_HEAP).split()
    return [java_bin(), *heap, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={state / 'logs'}",
            "-cp", f"{libs}/*"]


def prepare_state(state: Path) -> None:
    if state.exists() and any(state.iterdir()) and not (state / STATE_MARKER).exists():
        raise BrokerError(f"{state} exists and is not a broker state dir made by broker.py; "
                          "choose another EXW_BROKER_DIR")
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / STATE_MARKER).write_text("state dir of deploy/kafka/broker.py; safe to delete\n")


def format_storage(libs: Path, state: Path) -> None:
    if (state / "data" / "meta.properties").exists():
        return
    # (a URL-safe id may start with "-": pass it as --cluster-id=ID, never as a
    # separate argument that the parser would take for an option)
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    cmd = [*jvm_args(libs, state), "kafka.tools.StorageTool", "format",
           f"--cluster-id={cluster_id}", "-c", str(state / "server.properties")]
    out = state / "logs" / "format.log"
    with open(out, "w") as fh:
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fh,
                            stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise BrokerError(f"formatting the KRaft log dir failed (exit {rc})\n{tail(out)}")


def up(timeout: float) -> int:
    t0 = time.monotonic()
    port, cport = client_port(), controller_port()
    bootstrap = f"{HOST}:{port}"
    state = state_dir()
    pid = read_pid(state)
    if pid is not None:
        if not probe(port):
            log(f"broker pid {pid} is running but not answering yet; waiting")
            wait_ready(pid, port, state, timeout)
        log(f"already running (pid {pid}); state {state}")
        print(bootstrap, flush=True)
        return 0
    for p in (port, cport):
        if not port_free(p):
            raise BrokerError(f"port {HOST}:{p} is in use by another process; "
                              "set KAFKA_PORT / KAFKA_CONTROLLER_PORT to free ports")
    if port == cport:
        raise BrokerError("KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ")
    libs = fetch()
    prepare_state(state)
    (state / "server.properties").write_text(server_properties(state, port, cport))
    t_start = time.monotonic()
    format_storage(libs, state)
    cmd = [*jvm_args(libs, state), "kafka.Kafka", str(state / "server.properties")]
    with open(state / "logs" / "stdout.log", "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=state)
    (state / "broker.pid").write_text(f"{proc.pid}\n")
    wait_ready(proc.pid, port, state, timeout, proc)
    now = time.monotonic()
    log(f"Apache Kafka {kafka_version()} up at {bootstrap} (pid {proc.pid}); "
        f"state {state}; logs {state / 'logs' / 'server.log'}")
    print(f"broker start time: {now - t_start:.1f} s (total {now - t0:.1f} s)",
          file=sys.stderr, flush=True)
    print(bootstrap, flush=True)
    return 0


def wait_ready(pid: int, port: int, state: Path, timeout: float,
               proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if probe(port):
            return
        exited = proc.poll() is not None if proc else not is_our_broker(pid, state)
        if exited:
            code = f" with exit code {proc.returncode}" if proc else ""
            raise BrokerError(f"the broker (pid {pid}) exited{code} before answering\n"
                              f"{tail(state / 'logs' / 'server.log')}\n"
                              f"{tail(state / 'logs' / 'stdout.log', 20)}")
        if time.monotonic() > deadline:
            raise BrokerError(f"the broker (pid {pid}) did not answer on {HOST}:{port} "
                              f"within {timeout:.0f} s; it is left running "
                              f"(stop it with `broker.py down`)\n"
                              f"{tail(state / 'logs' / 'server.log')}\n"
                              f"{tail(state / 'logs' / 'stdout.log', 20)}")
        time.sleep(0.25)


def down(purge: bool, timeout: float) -> int:
    state = state_dir()
    pid = read_pid(state)
    if pid is None:
        log(f"not running (state {state})")
    else:
        t0 = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while is_our_broker(pid, state) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_our_broker(pid, state):
            log(f"pid {pid} still running after {timeout:.0f} s; SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while is_our_broker(pid, state):
                time.sleep(0.1)
        log(f"stopped pid {pid} in {time.monotonic() - t0:.1f} s")
    with contextlib.suppress(FileNotFoundError):
        (state / "broker.pid").unlink()
    if purge and state.exists():
        if (state / STATE_MARKER).exists():
            shutil.rmtree(state)
            log(f"purged {state}")
        else:
            log(f"not purging {state}: it has no {STATE_MARKER} marker")
    return 0


def status() -> int:
    state, port = state_dir(), client_port()
    pid = read_pid(state)
    answering = probe(port)
    if pid is None:
        extra = " (but something else answers on that port)" if answering else ""
        print(f"stopped; state {state}{extra}")
        return 1
    print(f"running pid {pid}, {'answering' if answering else 'NOT answering'} "
          f"at {HOST}:{port}; state {state}")
    return 0 if answering else 1


def pick_ports() -> int:
    """Print 'PORT CONTROLLER_PORT' for a throwaway broker: KAFKA_PORT (default 9092)
    if it is free, else any free loopback port; the controller port is any free port."""
    port = client_port()
    if not port_free(port):
        port = free_port()
    print(port, free_port(exclude=(port,)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fetch", help="download the broker jars once; print their directory")
    p_up = sub.add_parser("up", help="start the broker (idempotent); prints the bootstrap")
    p_up.add_argument("--timeout", type=float, default=90.0,
                      help="seconds to wait for the broker to answer (default 90)")
    p_down = sub.add_parser("down", help="stop the broker (idempotent)")
    p_down.add_argument("--purge", action="store_true", help="also delete the state dir")
    p_down.add_argument("--timeout", type=float, default=30.0,
                        help="seconds between SIGTERM and SIGKILL (default 30)")
    sub.add_parser("status", help="exit 0 if the broker is running and answering")
    sub.add_parser("pick-ports", help="print two free loopback ports (for with-broker.sh)")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "fetch":
            print(fetch())
            return 0
        if args.cmd == "up":
            return up(args.timeout)
        if args.cmd == "down":
            return down(args.purge, args.timeout)
        if args.cmd == "status":
            return status()
        return pick_ports()
    except BrokerError as exc:
        log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
