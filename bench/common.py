"""Helpers shared by the benchmark scripts (not a test module; no third-party imports).

Every result file records the machine it was measured on and when, so that a
figure is never read without its context.
"""

from __future__ import annotations

import datetime as _dt
import os
import resource
import sys
from pathlib import Path
from typing import Any

import orjson

from extraction_watch.machine import machine  # noqa: F401 (re-exported for the scripts)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Current resident set size of this process (``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as fh:
        return int(fh.read().split()[1]) * _PAGE


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (``getrusage``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def checkpoint_probe(engine: Any, interval_s: float = 0.01) -> dict[str, Any]:
    """Take one checkpoint of ``engine`` as the worker does (a forked child pickles and
    compresses the state and sends it through a pipe) and measure the child's memory.

    The child shares the parent's pages copy-on-write; what it costs the host is its
    *private* memory (``/proc/<pid>/smaps_rollup``: pages it copied, because pickling
    touches every object's reference count, plus the pickler's memo and the blob),
    sampled every ``interval_s`` until it exits; the peak sample is reported.
    """
    import asyncio
    import threading
    import time

    from streams.handoff import Reducer
    from streams.worker import collect_snapshot, fork_snapshot

    reducer = Reducer("events")
    reducer.engine = engine
    parent_rss = rss_bytes()
    started = time.perf_counter()
    pid, read_fd = fork_snapshot(reducer)
    peak_private = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_private
        while not done.is_set():
            try:
                with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
                    fields = dict(line.split(b":", 1) for line in fh.read().splitlines()[1:])
            except (OSError, ValueError):
                return  # gone (a zombie has no mappings)
            private = sum(int(fields.get(k, b"0 kB").split()[0]) for k in
                          (b"Private_Dirty", b"Private_Clean", b"Swap")) * 1024
            peak_private = max(peak_private, private)
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:  # the worker's own collection: reads the pipe, waits, raises on a failed child
        blob = asyncio.run(collect_snapshot(pid, read_fd))
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - started
    Reducer.restore(blob)  # a checkpoint that does not restore is no checkpoint
    return {"parent_rss_bytes": parent_rss, "child_peak_private_bytes": peak_private,
            "blob_bytes": len(blob), "seconds": round(seconds, 2),
            "sample_interval_s": interval_s}


class OtherLoad:
    """CPU the rest of the machine used while a measurement ran, in cores.

    A figure measured beside another busy process is not the machine's figure, and not
    evenly so: on 2 cores, a second engine replay running beside engine_throughput.py
    slowed the engine by about 10% and the read+orjson loop not at all (ratio 0.117
    quiet, 0.099 beside it). ``cores`` is (busy CPU time of the whole machine, from
    /proc/stat) - (CPU time of this process and its children) over the wall time::

        with OtherLoad() as other:
            run()
        other.cores  # 0.0 on a quiet machine, about 1.0 with one other busy core
    """

    BUSY_CORES = 0.25  # above this the scripts print a warning next to the figure

    def __enter__(self) -> OtherLoad:
        import time

        self._machine = _machine_busy_s()
        self._own = _own_cpu_s()
        self._t0 = time.perf_counter()
        self.cores = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        import time

        wall = time.perf_counter() - self._t0
        other = (_machine_busy_s() - self._machine) - (_own_cpu_s() - self._own)
        self.cores = round(max(0.0, other / wall), 2) if wall > 0 else 0.0


def _machine_busy_s() -> float:
    """Busy CPU seconds of all cores since boot (/proc/stat: all but idle and iowait)."""
    try:
        with open("/proc/stat", "rb") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def busy_warning(cores: float) -> str:
    """A warning line when other processes used more than OtherLoad.BUSY_CORES, else ''."""
    if cores <= OtherLoad.BUSY_CORES:
        return ""
    return (f"WARNING: other processes used {cores:.2f} cores during these runs; on a busy "
            "machine the ratios are not the machine's (re-run on a quiet one)")


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(result: dict[str, Any], script: str, argv: list[str] | None = None) -> dict[str, Any]:
    """``result`` with the machine, the date and the command that produced it first."""
    args = sys.argv[1:] if argv is None else argv
    head = {"benchmark": script, "date": now_iso(), "machine": machine(),
            "command": " ".join(["python", f"bench/{script}.py", *args])}
    return {**head, **result}


def write_result(path: str | Path | None, result: dict[str, Any]) -> None:
    if not path:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {out}", flush=True)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


# ------------------------------------------------------- simulated streams
def releases_for(scenario: str, **sim_kwargs: Any) -> list[bytes]:
    """The model_release lines ``simulate`` writes for these arguments, known up front
    (the simulator writes releases.jsonl only after the events)."""
    from extraction_watch.simulator import resolve_params
    from extraction_watch.simulator.clock import format_ms, parse_rfc3339
    from extraction_watch.simulator.run import RELEASES

    params = resolve_params(scenario, **sim_kwargs)
    run = params["run"]
    start_ms = parse_rfc3339(run["start"])
    released = format_ms(start_ms + round(run["release_h"] * 3_600_000))
    out = [{"model": m, "released_at": at} for m, at in RELEASES if m != run["new_model"]]
    out.append({"model": run["new_model"], "released_at": released})
    return [orjson.dumps({"v": 1, **r}) for r in out]


class SimulationStream:
    """``simulate(...)`` in a child process writing events.jsonl into a FIFO.

    Nothing reaches the disk but releases.jsonl and truth.json (written by the
    child once the events are done); the child blocks whenever the reader is
    behind, so both stay in constant memory. Use as a context manager; read
    ``self.events`` (a binary file object) to the end, then leave the block,
    which waits for the child (or kills it if the reader left early).
    """

    _CHILD = ("import sys, orjson\n"
              "from extraction_watch.simulator import simulate\n"
              "a = orjson.loads(sys.argv[1])\n"
              "s = simulate(a.pop('scenario'), a.pop('seed'), a.pop('out_dir'), **a)\n"
              "print(orjson.dumps(s).decode())\n")

    def __init__(self, workdir: str | Path, scenario: str, seed: int, **sim_kwargs: Any) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "events.jsonl"
        self.args = {"scenario": scenario, "seed": seed, "out_dir": str(self.dir), **sim_kwargs}
        self.summary: dict[str, Any] | None = None
        self.wait_s = 0.0

    def __enter__(self) -> SimulationStream:
        import subprocess

        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        os.mkfifo(self.path)
        self.proc = subprocess.Popen([sys.executable, "-c", self._CHILD, orjson.dumps(self.args)],
                                     stdout=subprocess.PIPE, cwd=str(ROOT))
        self.events = open(self.path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed in __exit__
        try:  # a larger pipe: fewer wake-ups of the two processes
            import fcntl

            fcntl.fcntl(self.events.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
        except (OSError, ImportError):
            pass
        return self

    def lines(self, block: int = 1 << 20):
        """The event lines (with their newline), reading ``block`` bytes at a time and
        adding the time spent waiting for the simulator to ``self.wait_s``."""
        from time import perf_counter

        self.wait_s = 0.0
        read = self.events.read
        rest = b""
        while True:
            t0 = perf_counter()
            chunk = read(block)
            self.wait_s += perf_counter() - t0
            if not chunk:
                break
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            rest = chunk[cut:]
            yield from chunk[:cut].splitlines(keepends=True)
        if rest:
            yield rest

    def __exit__(self, *exc: object) -> None:
        import subprocess

        self.events.close()
        try:
            if exc[0] is not None:
                self.proc.kill()
            out, _ = self.proc.communicate(timeout=None if exc[0] is None else 30)
            if self.proc.returncode == 0 and out:
                self.summary = orjson.loads(out.strip().splitlines()[-1])
            elif exc[0] is None:
                raise RuntimeError(f"the simulator exited with status {self.proc.returncode}")
        except subprocess.TimeoutExpired:
            self.proc.kill()
        finally:
            self.path.unlink(missing_ok=True)
