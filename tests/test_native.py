"""The compiled build of the hot modules (models/_native.py) against the pure-Python one:
same alerts and dead letters byte for byte, checkpoints that move between them, and
a stale build never used."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import models
from extraction_watch import compile as native_build
from extraction_watch.simulator import simulate
from models import _native

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(models.__file__).resolve().parent

# replays a stream (optionally resuming from, or stopping at, a pickled checkpoint) and
# prints what it produced and which build ran it
RUN = r"""
import json, pickle, sys
import models
from models import _native
from models.engine import Engine
events, releases, resume, stop_at, save, dump = sys.argv[1:7]
lines = open(events, "rb").read().splitlines()
if resume != "-":
    engine = pickle.load(open(resume, "rb"))
    start = int(stop_at)
    stop = len(lines)
else:
    engine = Engine()
    for line in open(releases, "rb").read().splitlines():
        engine.add_release(line)
    start, stop = 0, (int(stop_at) if save != "-" else len(lines))
out = []
for n in range(start, stop):
    out.extend(engine.process(lines[n], {"file": "e", "line": n + 1}))
if save != "-":
    pickle.dump(engine, open(save, "wb"))
else:
    out.extend(engine.flush())
blob = b"".join(json.dumps(rec, sort_keys=True).encode() + b"\n" for _, rec in out)
open(dump, "wb").write(blob)
print(json.dumps({"native": _native.active(), "engine": sys.modules["models.engine"].__file__,
                  "records": len(out), "alerts": sum(k == "alert" for k, _ in out)}))
"""


@pytest.fixture(scope="module")
def native_dir(tmp_path_factory) -> Path:
    """The build `make` made, or else one made here: the comparison always runs."""
    where = _native.native_dir()
    if native_build.is_current(where):
        return where
    out = tmp_path_factory.mktemp("native") / "models"
    built = native_build.build(out)
    assert sorted(built) == sorted(_native.COMPILED)
    return out


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> tuple[Path, Path, int]:
    out = tmp_path_factory.mktemp("sim")
    # bad lines too: dead letters must match as well
    simulate("small", 5, out, hours=20.0, bad_rate=0.002)
    events = out / "events.jsonl"
    return events, out / "releases.jsonl", len(events.read_bytes().splitlines())


def _run(native: Path | None, events: Path, releases: Path, resume: Path | None = None,
         stop_at: int | None = None, save: Path | None = None) -> tuple[dict, bytes]:
    dump = events.parent / f"out-{os.getpid()}-{id(save)}-{stop_at}-{native is None}.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXW_")}
    if native is None:
        env["EXW_PURE_PYTHON"] = "1"
    else:
        env["EXW_NATIVE_DIR"] = str(native)
    done = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", RUN, str(events), str(releases),
         str(resume) if resume else "-", str(stop_at) if stop_at is not None else "0",
         str(save) if save else "-", str(dump)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), dump.read_bytes()


def test_compiled_and_pure_builds_give_the_same_output(native_dir, stream):
    events, releases, _ = stream
    pure, pure_out = _run(None, events, releases)
    compiled, compiled_out = _run(native_dir, events, releases)
    assert pure["native"] is False and pure["engine"].endswith("engine.py")
    assert compiled["native"] is True and Path(compiled["engine"]).parent == native_dir
    assert pure["alerts"] > 0 and pure["records"] > pure["alerts"]  # alerts and dead letters
    assert compiled["records"] == pure["records"]
    assert compiled_out == pure_out


@pytest.mark.parametrize("first,second", [("compiled", "pure"), ("pure", "compiled")])
def test_a_checkpoint_moves_between_the_builds(native_dir, stream, tmp_path, first, second):
    events, releases, n = stream
    builds = {"compiled": native_dir, "pure": None}
    _, whole = _run(None, events, releases)
    checkpoint = tmp_path / "engine.pickle"
    half = n // 2
    before, head = _run(builds[first], events, releases, stop_at=half, save=checkpoint)
    after, tail = _run(builds[second], events, releases, resume=checkpoint, stop_at=half)
    assert before["native"] is (first == "compiled") and after["native"] is (second == "compiled")
    assert head and tail
    # the two halves' records, in order, are the uninterrupted run's
    assert head + tail == whole


def test_this_suite_runs_the_compiled_build_when_it_is_current():
    if os.environ.get("EXW_PURE_PYTHON", "") not in ("", "0"):
        assert not _native.active()
        return
    current = native_build.is_current(_native.native_dir())
    assert _native.active() is current
    engine_file = Path(sys.modules["models.engine"].__file__)
    assert (engine_file.parent == _native.native_dir()) is current


def test_a_stale_build_is_never_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(_native, "_active", _native.active())  # restored after the test
    monkeypatch.delenv("EXW_PURE_PYTHON", raising=False)
    monkeypatch.setenv("EXW_NATIVE_DIR", str(tmp_path))
    manifest = _native.manifest(PACKAGE)
    stale = {**manifest, "modules": {**manifest["modules"], "engine": "0" * 64}}
    (tmp_path / _native.DIGESTS).write_text(json.dumps(stale))
    path = [str(PACKAGE)]
    with pytest.warns(RuntimeWarning, match="do not match the sources"):
        assert _native.activate(path) is False
    assert path == [str(PACKAGE)]
    # another interpreter's build is stale too
    (tmp_path / _native.DIGESTS).write_text(json.dumps({**manifest, "abi": "cpython-39-x"}))
    with pytest.warns(RuntimeWarning):
        assert _native.activate(path) is False
    # a current one goes first on the search path; EXW_PURE_PYTHON=1 turns it off
    (tmp_path / _native.DIGESTS).write_text(json.dumps(manifest))
    monkeypatch.setenv("EXW_PURE_PYTHON", "1")
    assert _native.activate(path) is False and path == [str(PACKAGE)]
    monkeypatch.delenv("EXW_PURE_PYTHON")
    assert _native.activate(path) is True and path == [str(tmp_path), str(PACKAGE)]


def test_never_built_means_pure_python(tmp_path, monkeypatch):
    monkeypatch.setattr(_native, "_active", _native.active())
    monkeypatch.delenv("EXW_PURE_PYTHON", raising=False)
    monkeypatch.setenv("EXW_NATIVE_DIR", str(tmp_path / "nothing"))
    path = [str(PACKAGE)]
    assert _native.activate(path) is False and path == [str(PACKAGE)]


def test_digests_cover_every_compiled_module_and_every_declaration():
    digests = _native.source_digests(PACKAGE)
    assert sorted(digests) == sorted(_native.COMPILED)
    assert len(set(digests.values())) == len(digests)
    for name in _native.COMPILED:
        assert (PACKAGE / f"{name}.py").exists()
    assert (PACKAGE / "account.pxd").exists()


def test_doctests_of_the_compiled_modules_and_the_decoder_tests_pass_in_pure_python():
    # (the suite's own process skips those doctests when it runs the compiled build: see
    # conftest.py; the decoder tests compare models/wire.py's fast path, which has a
    # branch of its own in each build, with the reference decoder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXW_")}
    env["EXW_PURE_PYTHON"] = "1"
    files = [str(PACKAGE / f"{name}.py") for name in _native.COMPILED]
    files.append(str(ROOT / "tests" / "models" / "test_contract.py"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "--doctest-modules", *files], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


# checks, in the compiled build, the struct layout the engine reads ApiCall's slots at
LAYOUT = r"""
import models.wire  # first: it imports the contract, which must not need it yet
import json
import msgspec
from models import _native
from models.contract import ApiCall
from models.engine import Engine
from models.wire import check_apicall_layout
assert _native.active()
check_apicall_layout(ApiCall)  # the real one: accepted
fields = sorted(ApiCall.__struct_fields__)
verdicts = {}
for name, shape in {
    "one field renamed": [f if f != "account_id" else "account_idx" for f in fields],
    "one field more": fields + ["zzz"],
}.items():
    other = msgspec.defstruct("Other", [(f, object) for f in shape])
    try:
        check_apicall_layout(other)
        verdicts[name] = "accepted"
    except ImportError as err:
        verdicts[name] = str(err)
try:
    Engine().process_event({"account_id": "a"})  # not an ApiCall: refused, never read as one
    verdicts["dict"] = "accepted"
except TypeError as err:
    verdicts["dict"] = str(err)
print(json.dumps(verdicts))
"""


def test_the_compiled_engine_reads_apicall_slots_only_where_the_layout_holds(native_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXW_")}
    env["EXW_NATIVE_DIR"] = str(native_dir)
    done = subprocess.run([sys.executable, "-c", LAYOUT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = json.loads(done.stdout.strip().splitlines()[-1])
    assert "account_id is not a slot" in verdicts["one field renamed"]
    assert "size changed" in verdicts["one field more"]
    assert "ApiCall" in verdicts["dict"]


def test_the_build_is_optimised_whatever_cflags_says(tmp_path, monkeypatch):
    # setuptools takes CFLAGS from the environment instead of the interpreter's flags: a
    # CFLAGS=-g build used to run unoptimised (40-60% slower); the last -O option wins
    assert shutil.which("readelf"), "readelf (binutils) reads the flags the build recorded"
    monkeypatch.setenv("CFLAGS", "-O0 -g")
    assert native_build.build(tmp_path, names=("ranking",)) == ["ranking"]
    (module,) = tmp_path.glob("ranking.*")
    info = subprocess.run(["readelf", "--debug-dump=info", str(module)], capture_output=True,
                          text=True, check=True).stdout
    producers = [line for line in info.splitlines() if "DW_AT_producer" in line]
    assert producers
    for producer in producers:
        levels = [word for word in producer.split() if word.startswith("-O")]
        assert levels[-1] == "-O3", producer
