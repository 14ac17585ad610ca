"""Engine semantics: event time, lateness, dedup, dead letters, releases."""

from __future__ import annotations

import orjson

from models.contract import format_rfc3339, parse_rfc3339
from models.engine import Engine, EngineConfig

T0 = parse_rfc3339("2026-03-06T00:00:00Z")


def event(i: int, t: float, account: str = "acct_a", **extra) -> bytes:
    body = {
        "v": 1, "event_id": f"ev-{i}", "ts": format_rfc3339(t), "account_id": account,
        "access_path": "api", "client_ip": "198.51.100.7", "asn": 64500, "model": "m-3",
        "features": [], "task": "chat", "input_tokens": 10, "output_tokens": 20, "status": 200,
    }
    body.update(extra)
    return orjson.dumps(body)


def reasons(outputs):
    return [rec["reason"] for kind, rec in outputs if kind == "dead_letter"]


def test_late_event_goes_to_dead_letters_with_reason_late():
    engine = Engine(EngineConfig(lateness_s=300))
    engine.process(event(1, T0 + 1000))
    assert reasons(engine.process(event(2, T0 + 800))) == []          # within lateness
    assert reasons(engine.process(event(3, T0 + 1000 - 301))) == ["late"]
    assert engine.stats.dead_letters == {"late": 1}


def test_far_future_event_is_rejected_and_does_not_move_stream_time():
    engine = Engine(EngineConfig(max_future_s=86400))
    engine.process(event(1, T0))
    assert reasons(engine.process(event(2, T0 + 3 * 86400))) == ["time_out_of_range"]
    assert reasons(engine.process(event(3, T0 + 60))) == []


def test_duplicate_event_id_within_horizon_counts_once():
    engine = Engine()
    engine.process(event(1, T0))
    assert reasons(engine.process(event(1, T0 + 10))) == ["duplicate"]
    engine.flush()
    assert engine.stats.processed == 1


def test_bad_input_never_stops_the_stream_and_each_gets_one_dead_letter():
    engine = Engine()
    bad = [b"\xff\xfe", b"not json", b"[1, 2]", b'{"v": 2}', event(9, T0, input_tokens=-1)]
    outs = [engine.process(p, {"file": "f", "line": i}) for i, p in enumerate(bad)]
    assert [len(o) for o in outs] == [1] * len(bad)
    assert reasons([o[0] for o in outs]) == [
        "not_utf8", "not_json", "not_object", "unsupported_version", "out_of_range"]
    assert outs[1][0][1]["source"] == {"file": "f", "line": 1}
    assert engine.process(event(10, T0)) == ()
    engine.flush()
    assert engine.stats.processed == 1


def test_raw_text_is_counted_and_never_reaches_dead_letters():
    engine = Engine()
    engine.process(event(1, T0, prompt="TOP-SECRET-PROMPT"))
    out = engine.process(event(1, T0 + 1, completion="TOP-SECRET-COMPLETION"))
    assert reasons(out) == ["duplicate"]
    assert b"TOP-SECRET" not in orjson.dumps(out[0][1])
    assert engine.stats.raw_text_dropped == 2


def test_events_are_applied_in_event_time_order_within_lateness():
    times = [T0 + s for s in (0, 50, 20, 120, 90, 200, 150, 400, 380, 1000)]
    ordered, shuffled = Engine(), Engine()
    for i, t in sorted(enumerate(times), key=lambda it: it[1]):
        ordered.process(event(i, t, account=f"a{i % 3}"))
    for i, t in enumerate(times):
        shuffled.process(event(i, t, account=f"a{i % 3}"))
    ordered.flush()
    shuffled.flush()
    for acc_id in ("a0", "a1", "a2"):
        a, b = ordered._accounts[acc_id], shuffled._accounts[acc_id]
        assert (a.n, a.first_t, a.last_t, a.last_event_id) == (
            b.n, b.first_t, b.last_t, b.last_event_id)
        assert abs(a.gap_sum - b.gap_sum) < 1e-9 and a.gap_n == b.gap_n


def test_explicit_release_wins_over_inferred_first_sighting():
    engine = Engine(EngineConfig(release_warmup_s=3600))
    engine.process(event(1, T0))
    engine.process(event(2, T0 + 7200, model="m-4"))
    engine.process(event(3, T0 + 9000))
    assert engine._releases["m-4"] == T0 + 7200            # inferred
    engine.add_release(orjson.dumps({"v": 1, "model": "m-4",
                                     "released_at": format_rfc3339(T0 + 3600)}))
    assert engine._releases["m-4"] == T0 + 3600            # explicit wins
    bad = engine.add_release(b'{"v": 1, "model": "m-5"}')
    assert reasons(bad) == ["missing_field"]


def test_idle_accounts_are_evicted_after_ttl():
    engine = Engine(EngineConfig(idle_ttl_s=3600))
    engine.process(event(1, T0, account="old"))
    for i in range(2, 60):
        engine.process(event(i, T0 + i * 600, account="busy"))
    engine.flush()
    assert "old" not in engine._accounts and "busy" in engine._accounts
    assert engine.stats.evicted_accounts >= 1


def test_inlined_per_event_accounting_matches_account_observe_and_aggregate_update(tmp_path):
    """Engine._apply inlines AccountState.observe and aggregate.update: same state."""
    from extraction_watch.simulator import simulate
    from models import aggregate
    from models.account import AccountState
    from models.egress import EgressKeyer
    from models.templates import TemplateIndex

    class Recording(Engine):
        def _apply(self, events):
            applied.extend(events)
            super()._apply(events)

    applied: list = []
    simulate("small", 5, tmp_path, hours=3.0)
    # no tick runs, so no account is folded: the pending sums stay comparable
    engine = Recording(EngineConfig(tick_s=1e9))
    # a release as the tick would set it: each account counts its calls since then and
    # those to the released model (the second model seen, so that some calls are to it)
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    seen = [m for m in dict.fromkeys(orjson.loads(x).get("model") for x in lines[:5000]
                                     if x.startswith(b"{") and b'"model"' in x)
            if isinstance(m, str)]
    release = engine._tick_release = (seen[1], 1.0e9)
    for line in (tmp_path / "events.jsonl").read_bytes().splitlines():
        engine.process(line)
    engine.tracked_accounts()  # applies what the watermark passed
    assert len(applied) > 1000

    accounts: dict[str, AccountState] = {}
    groups: dict[str, dict] = {}
    index = TemplateIndex(max_distance=engine.config.template_max_distance)
    keyer = EgressKeyer()
    for ev in applied:
        acc = accounts.get(ev.account_id)
        if acc is None:
            acc = accounts[ev.account_id] = AccountState(ev.account_id, ev.org_id, ev.t)
        tid = None if ev.simhash is None else index.match(ev.simhash, acc.owner, ev.t,
                                                          ev.account_id)
        proxy = keyer.key(ev.client_ip, ev.asn)
        acc.observe(ev, tid, proxy, release)
        group = groups.setdefault(proxy, aggregate.initialize(ev.t))
        aggregate.update(group, ev.account_id, ev.t, ev.task, ev.model, ev.cot, tid is not None)

    assert set(accounts) == set(engine._accounts)
    skip = {"tick", "in_sample", "payment"}
    for account_id, ref in accounts.items():
        got = engine._accounts[account_id]
        for name in AccountState.__slots__:
            if name not in skip:
                assert getattr(got, name) == getattr(ref, name), (account_id, name)
    assert engine._proxy_stats == groups
    assert any(acc.rel_new for acc in accounts.values())
    assert any(acc.rel_n > acc.rel_new for acc in accounts.values())


def test_group_counting_keeps_its_caps_and_counts_every_call():
    """aggregate.update (the engine counts egress networks and payment methods with it,
    as a C call in the compiled build) against a plain count of the same calls."""
    import random

    from models import aggregate

    rng = random.Random(3)
    accounts = [f"acct_{i}" for i in range(aggregate.MAX_ACCOUNTS + 40)]
    tasks = [None, *(f"task_{i}" for i in range(24))]
    models = [f"model_{i}" for i in range(24)]
    for size in (1, 2, 3, 50, aggregate.MAX_ACCOUNTS + 40):
        group = aggregate.initialize(0.0)
        members = rng.sample(accounts, size)
        calls = [(rng.choice(members), float(i), rng.choice(tasks), rng.choice(models),
                  rng.choice([None, 0.0, 0.5, 1.0]), rng.random() < 0.4)
                 for i in range(size * 3)]
        for call in calls:
            aggregate.update(group, *call)
        seen: list = []  # distinct accounts, tasks and models in order of first call
        task_names: list = []
        model_names: list = []
        for a, _, task, model, _, _ in calls:
            for name, names in ((a, seen), (task, task_names), (model, model_names)):
                if name is not None and name not in names:
                    names.append(name)
        assert group.n == len(calls) and group.last_t == calls[-1][1]
        assert group.templated == sum(c[5] for c in calls)
        assert group.cot_n == sum(c[4] is not None for c in calls)
        assert group.cot_sum == sum(c[4] for c in calls if c[4] is not None)
        assert aggregate.account_count(group) == min(len(seen), aggregate.MAX_ACCOUNTS)
        # a mix keeps the first 16 names, and counts every later call of them
        assert group.tasks == {n: sum(c[2] == n for c in calls) for n in task_names[:16]}
        assert group.models == {n: sum(c[3] == n for c in calls) for n in model_names[:16]}


def test_duplicates_are_judged_by_event_time_not_by_arrival():
    """A repeat within the horizon is a duplicate even when a partition far ahead
    has moved stream time on by hours in between (a backlog being caught up)."""
    engine = Engine()
    engine.set_partitions([0, 1])
    engine.process(event(1, T0), partition=0)
    for i in range(2, 8):  # partition 1 runs four hours ahead
        engine.process(event(i, T0 + i * 2400.0), partition=1)
    assert reasons(engine.process(event(1, T0 + 20), partition=0)) == ["duplicate"]
    # and a repeat many horizons later is a new call
    assert engine.process(event(1, T0 + 4 * 3600), partition=0) == ()


def test_engine_fields_list_every_attribute():
    """Checkpoints pickle the fields named in engine._FIELDS, and the compiled build
    declares them in engine.pxd: a new attribute must be added to both."""
    import re
    from pathlib import Path

    from models import engine as engine_module

    engine = Engine()
    declared = set()
    pxd = Path(engine_module.__file__).with_name("engine.pxd")
    if not pxd.exists():  # the compiled module sits elsewhere: read the source's
        import models
        pxd = Path(models.__path__[-1]) / "engine.pxd"
    for line in pxd.read_text().splitlines():
        match = re.match(r"\s+cdef public [\w.]+ (.+)$", line)
        if match:
            declared.update(name.strip() for name in match.group(1).split(","))
    fields = set(engine_module._FIELDS)
    assert len(fields) == len(engine_module._FIELDS)
    assert declared == fields | {"_egress_cache"}
    if hasattr(engine, "__dict__"):  # the pure-Python build
        assert set(vars(engine)) == fields | {"_egress_cache"}
    for name in fields:
        getattr(engine, name)


def test_process_lines_equals_process_line_by_line(tmp_path):
    """The replay loop (process_lines, in chunks) gives process()'s outputs, dead-letter
    sources included, and counts blank lines."""
    from extraction_watch.simulator import simulate

    simulate("small", 8, tmp_path, hours=6.0, bad_rate=0.01)
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    lines[5:5] = [b"", b"   ", b"\t"]
    one = Engine()
    expected = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            expected.extend(one.process(line, {"file": "f.jsonl", "line": n}))
    expected.extend(one.flush())
    chunked = Engine()
    got, blank, start = [], 0, 0
    for size in [1, 7, 500, 3] * 1000:
        chunk = lines[start:start + size]
        if not chunk:
            break
        out, b = chunked.process_lines(chunk, "f.jsonl", start + 1)
        got.extend(out)
        blank += b
        start += size
    got.extend(chunked.flush())
    assert blank == 3
    assert any(kind == "dead_letter" for kind, _ in got)
    assert orjson.dumps(got) == orjson.dumps(expected)
    assert chunked.stats.as_dict() == one.stats.as_dict()


def test_evicted_accounts_leave_the_templates_and_groups_they_used():
    """A template and an egress network used all day by a population that turns over:
    after each eviction pass they count only the accounts still tracked (memory stays
    flat on an endless stream), and expired template ids leave the accounts' mixes."""
    # (no suspects: alerted accounts are kept while their episode is open)
    engine = Engine(EngineConfig(idle_ttl_s=3600, suspect_score=1.01))
    for i in range(24 * 60):  # a call a minute for a day; a new account every 10 minutes
        engine.process(event(i, T0 + 60 * i, account=f"u{i // 10}",
                             client_ip=f"198.51.100.{i % 200}", prompt_simhash="0123456789abcdef"))
    engine.flush()
    tracked = set(engine._accounts)
    assert 0 < len(tracked) < 60 and engine.stats.evicted_accounts > 80
    index = engine._templates
    (tid,) = {id(t): t.tid for t in index._templates.values()}.values()
    assert 0 < len(index.accounts(tid)) and index.accounts(tid) <= tracked
    assert index.owners(tid) == len(index.accounts(tid))
    (group,) = engine._proxy_stats.values()
    assert group.n == 24 * 60 and group.accounts <= tracked
    assert all(set(acc.templates) <= {tid} for acc in engine._accounts.values())


def test_idle_members_of_an_open_episode_are_evicted_but_stay_members():
    """A campaign that keeps recruiting fresh accounts: the idle ones leave memory, not
    the episode (ids, accounts_total and the owner count stay), and one that comes
    back rejoins its episode."""
    engine = Engine(EngineConfig(idle_ttl_s=3600))
    out: list = []
    n = 24 * 60
    for i in range(n):
        out += engine.process(event(i, T0 + 60 * i, account=f"u{i // 10}",
                                    client_ip=f"198.51.100.{i % 200}",
                                    prompt_simhash="0123456789abcdef"))
    (episode,) = engine._episodes.values()
    assert len(episode.members) > 120 and engine.stats.evicted_accounts > 80
    gone = [a for a in episode.members if a not in engine._accounts]
    assert len(gone) == engine.stats.evicted_accounts
    assert all(engine._member_episode[a] == episode.alert_id for a in gone)
    # every member is its own owner: evicted ones are still counted
    assert engine._cluster_view[episode.alert_id]["owners"] == len(episode.members)
    last = [rec for kind, rec in out if kind == "alert"][-1]
    assert last["accounts_total"] > len(episode.members) - len(gone) + 80
    assert f"{last['accounts_total']} accounts ({last['accounts_total']} owners)" in last["summary"]
    engine.process(event(n, T0 + 60 * n, account=gone[0], client_ip="198.51.100.7",
                         prompt_simhash="0123456789abcdef"))
    engine.process(event(n + 1, T0 + 60 * n + 600, account="u-late"))
    assert engine._accounts[gone[0]].cluster == episode.alert_id
    assert engine._accounts[gone[0]].tick_models is not None


def test_released_events_are_ordered_by_time_then_event_id_whatever_the_arrival():
    import random

    from models.contract import ApiCall
    from models.engine import _sort_events

    rng = random.Random(11)
    events = [ApiCall(v=1, event_id=f"e{rng.randrange(10_000):05d}-{n}", ts="-",
                      t=float(rng.choice((5, 6, 7, 7.5))) if n % 3 else rng.randrange(5, 9),
                      account_id="a", access_path="api", client_ip="10.0.0.1", model="m",
                      features=(), input_tokens=1, output_tokens=1, status=200)
              for n in range(400)]  # many equal times, ints among floats
    expected = sorted(events, key=lambda e: (e.t, e.event_id))
    for _ in range(5):
        rng.shuffle(events)
        _sort_events(events)
        assert [e.event_id for e in events] == [e.event_id for e in expected]
