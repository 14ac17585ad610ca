"""Tests for extraction_watch.simulator: determinism, the event contract, ground truth
and the shapes the scenarios promise (see docs/scenarios.md)."""

from __future__ import annotations

import collections
import doctest
import importlib
import ipaddress
import pkgutil
import re
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

import extraction_watch.simulator as simulator_package
from extraction_watch.simulator import SCENARIOS, resolve_params, scenario_names, simulate
from extraction_watch.simulator.params import FEATURES, MODELS, PATHS, TASKS

try:  # the project's decoder, when present, must agree with the local checker
    from models.contract import ContractError, decode_api_call
except ImportError:  # pragma: no cover - models/ is written in parallel
    decode_api_call = None  # type: ignore[assignment]
    ContractError = ValueError  # type: ignore[assignment,misc]

REQUIRED = ("v", "event_id", "ts", "account_id", "org_id", "api_key_id", "access_path",
            "client_ip", "asn", "tls_fingerprint", "user_agent", "payment_fingerprint",
            "account_created_at", "model", "features", "task", "prompt_simhash",
            "cot_elicitation", "input_tokens", "output_tokens", "status", "latency_ms")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
ACCOUNT_RE = re.compile(r"^acct_[0-9a-f]{12}$")
ORG_RE = re.compile(r"^org_[0-9a-f]{12}$")
KEY_RE = re.compile(r"^key_[0-9a-f]{16}$")
JA4_RE = re.compile(r"^t13d\d{4}(h2|h1|00)_[0-9a-f]{12}_[0-9a-f]{12}$")
RAW_MARKER = b"SIMULATED-RAW-TEXT"
# Injected line kinds that are still valid api_call events.
VALID_BAD_KINDS = ("raw_text", "duplicate_id")


def _is_int(x: object) -> bool:
    return type(x) is int


def check_event(e: object) -> str | None:
    """The simulator's promise for one line, stricter than the contract. None if valid."""
    if not isinstance(e, dict):
        return "not an object"
    for name in REQUIRED:
        if name not in e:
            return f"missing {name}"
    extra = set(e) - set(REQUIRED)
    if extra - {"prompt"}:
        return f"unknown fields {sorted(extra)}"
    if e["v"] != 1 or not _is_int(e["v"]):
        return "v"
    if not isinstance(e["event_id"], str) or not re.fullmatch(r"[0-9a-f]{32}", e["event_id"]):
        return "event_id"
    if not isinstance(e["ts"], str) or not TS_RE.match(e["ts"]):
        return "ts"
    try:
        datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
    except ValueError:
        return "ts"
    if not isinstance(e["account_id"], str) or not ACCOUNT_RE.match(e["account_id"]):
        return "account_id"
    if e["org_id"] is not None and not (isinstance(e["org_id"], str) and ORG_RE.match(e["org_id"])):
        return "org_id"
    if e["api_key_id"] is not None and not (isinstance(e["api_key_id"], str) and KEY_RE.match(e["api_key_id"])):
        return "api_key_id"
    if e["access_path"] not in PATHS:
        return "access_path"
    try:
        ipaddress.ip_address(e["client_ip"])
    except (ValueError, TypeError):
        return "client_ip"
    if e["asn"] is not None and not (_is_int(e["asn"]) and e["asn"] > 0):
        return "asn"
    for name in ("tls_fingerprint", "user_agent", "payment_fingerprint"):
        if e[name] is not None and not isinstance(e[name], str):
            return name
    if e["tls_fingerprint"] is not None and not JA4_RE.match(e["tls_fingerprint"]):
        return "tls_fingerprint"
    if e["payment_fingerprint"] is not None and not re.fullmatch(r"[0-9a-f]{32}", e["payment_fingerprint"]):
        return "payment_fingerprint"
    created = e["account_created_at"]
    if created is not None and not (isinstance(created, str) and TS_RE.match(created)):
        return "account_created_at"
    if e["model"] not in MODELS:
        return "model"
    feats = e["features"]
    if not isinstance(feats, list) or len(feats) > 16 or not set(feats) <= set(FEATURES):
        return "features"
    if e["task"] not in TASKS:
        return "task"
    if e["prompt_simhash"] is not None and not (isinstance(e["prompt_simhash"], str)
                                                and HEX16.match(e["prompt_simhash"])):
        return "prompt_simhash"
    cot = e["cot_elicitation"]
    if cot is not None and not (type(cot) in (int, float) and 0 <= cot <= 1 and round(cot, 3) == cot):
        return "cot_elicitation"
    for name in ("input_tokens", "output_tokens", "latency_ms"):
        if not _is_int(e[name]) or e[name] < 0:
            return name
    if e["status"] not in (200, 400, 429, 500):
        return "status"
    if e["status"] != 200 and e["output_tokens"] != 0:
        return "output_tokens of a failed call"
    return None


def load_run(out: Path) -> dict[str, Any]:
    """Parse a run: valid events (in file order), rejected lines, truth."""
    truth = orjson.loads((out / "truth.json").read_bytes())
    events: list[dict[str, Any]] = []
    rejected = 0
    raw_lines = 0
    contract_disagreements = []
    for line in (out / "events.jsonl").read_bytes().splitlines():
        if RAW_MARKER in line:
            raw_lines += 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        problem = check_event(obj) if obj is not None else "not json"
        if decode_api_call is not None:
            try:
                decode_api_call(line)
                decoded_ok = True
            except ContractError:
                decoded_ok = False
            if decoded_ok != (problem is None):
                contract_disagreements.append((problem, line[:200]))
        if problem is None:
            assert isinstance(obj, dict)
            events.append(obj)
        else:
            rejected += 1
    return {"truth": truth, "events": events, "rejected": rejected, "raw_lines": raw_lines,
            "contract_disagreements": contract_disagreements}


def group_of(truth: dict[str, Any]) -> dict[str, str]:
    out = {}
    for campaign in truth["campaigns"]:
        for account in campaign["accounts"]:
            out[account] = campaign["archetype"]
    for trap, accounts in truth["traps"].items():
        for account in accounts:
            out[account] = trap
    return out


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("small")
    summary = simulate("small", 11, out, bad_rate=0.002)
    run = load_run(out)
    run["summary"] = summary
    run["out"] = out
    return run


@pytest.fixture(scope="module")
def default_tenth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("default-tenth")
    simulate("default", 5, out, scale=0.1, bad_rate=0.0)
    return load_run(out)


# --------------------------------------------------------------------------------------
# Determinism and format


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"scale": 0.2, "hours": 8.0}
    simulate("small", 3, tmp_path / "a", **kwargs)
    simulate("small", 3, tmp_path / "b", **kwargs)
    simulate("small", 4, tmp_path / "c", **kwargs)
    for name in ("events.jsonl", "releases.jsonl", "truth.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "events.jsonl").read_bytes() != (tmp_path / "c" / "events.jsonl").read_bytes()


def test_campaign_parameters_do_not_perturb_benign_traffic(tmp_path: Path) -> None:
    """Each group draws from its own random stream."""
    simulate("small", 8, tmp_path / "a", scale=0.2, hours=6.0, bad_rate=0.0)
    simulate("small", 8, tmp_path / "b", scale=0.2, hours=6.0, bad_rate=0.0,
             overrides={"hydra.accounts": 77, "reasoning.enabled": False})
    a, b = load_run(tmp_path / "a"), load_run(tmp_path / "b")
    benign = set(a["truth"]["traps"]["nat"]) | set(a["truth"]["traps"]["research_team"])

    def lines(run: dict[str, Any]) -> list[dict[str, Any]]:
        known = group_of(run["truth"])
        return [e for e in run["events"] if known.get(e["account_id"]) not in ("hydra", "reasoning", "agentic")]

    assert lines(a) == lines(b)
    assert benign  # the comparison covered trap accounts too


def test_every_line_meets_the_contract_except_the_counted_bad_ones(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    bad = truth["bad_lines"]
    assert set(bad) >= {"not_json", "missing_field", "wrong_type", "out_of_range"}
    invalid = sum(n for kind, n in bad.items() if kind not in VALID_BAD_KINDS)
    assert small_run["rejected"] == invalid
    assert len(small_run["events"]) == truth["events"] + bad.get("raw_text", 0) + bad.get("duplicate_id", 0)
    assert small_run["contract_disagreements"] == []


def test_timestamps_never_go_backwards(small_run: dict[str, Any]) -> None:
    stamps = [e["ts"] for e in small_run["events"]]
    assert stamps == sorted(stamps)
    assert stamps[0] >= small_run["truth"]["start"] and stamps[-1] < small_run["truth"]["end"]


def test_no_raw_text_except_the_counted_injected_lines(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    with_prompt = [e for e in small_run["events"] if "prompt" in e]
    assert len(with_prompt) == truth["bad_lines"].get("raw_text", 0) == small_run["raw_lines"]
    assert all(e["prompt"].startswith("SIMULATED-RAW-TEXT") for e in with_prompt)


def test_event_ids_unique_except_injected_duplicates(small_run: dict[str, Any]) -> None:
    counts = collections.Counter(e["event_id"] for e in small_run["events"])
    repeats = sum(n - 1 for n in counts.values())
    assert repeats == small_run["truth"]["bad_lines"].get("duplicate_id", 0)


def test_releases_file_matches_truth(small_run: dict[str, Any]) -> None:
    lines = [orjson.loads(x) for x in (small_run["out"] / "releases.jsonl").read_bytes().splitlines()]
    assert all(set(x) == {"v", "model", "released_at"} and x["v"] == 1 for x in lines)
    assert [{"model": x["model"], "released_at": x["released_at"]} for x in lines] == small_run["truth"]["releases"]
    new = lines[-1]
    params = small_run["truth"]["params"]
    assert new["model"] == params["run"]["new_model"]
    start = datetime.fromisoformat(small_run["truth"]["start"].replace("Z", "+00:00"))
    released = datetime.fromisoformat(new["released_at"].replace("Z", "+00:00"))
    assert (released - start).total_seconds() == params["run"]["release_h"] * 3600
    models_before = {e["model"] for e in small_run["events"] if e["ts"] < new["released_at"]}
    assert new["model"] not in models_before


# --------------------------------------------------------------------------------------
# Ground truth


def test_truth_groups_are_disjoint_and_seen_in_events(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    seen = {e["account_id"] for e in small_run["events"]}
    groups = [c["accounts"] for c in truth["campaigns"]] + list(truth["traps"].values())
    flat = [a for g in groups for a in g]
    assert len(flat) == len(set(flat)), "an account is in two groups"
    assert set(flat) <= seen
    assert all(g == sorted(g) for g in groups)
    assert truth["benign_accounts"] == len(seen - set(flat))
    assert small_run["summary"]["accounts"] == len(seen)
    known = group_of(truth)
    per_group = collections.Counter(known.get(e["account_id"], "benign")
                                    for e in small_run["events"] if "prompt" not in e)
    for campaign in truth["campaigns"]:
        assert campaign["events"] == truth["group_events"][campaign["id"]] > 0
    assert sum(truth["group_events"].values()) == truth["events"] == small_run["summary"]["events"]
    assert per_group["hydra"] >= truth["group_events"][next(c["id"] for c in truth["campaigns"]
                                                             if c["archetype"] == "hydra")]


def test_campaigns_and_traps_have_the_configured_sizes(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    params = truth["params"]
    assert sorted(c["archetype"] for c in truth["campaigns"]) == ["agentic", "hydra", "reasoning"]
    assert [c["id"] for c in truth["campaigns"]] == ["campaign-1", "campaign-2", "campaign-3"]
    for campaign in truth["campaigns"]:
        assert len(campaign["accounts"]) == params[campaign["archetype"]]["accounts"]
    assert set(truth["traps"]) == {"enterprise_batch", "nat", "research_team", "fast_adopters",
                                   "proxy_customers", "popular_template"}
    for trap, accounts in truth["traps"].items():
        configured = params[trap]["accounts"]
        # low-volume people may stay silent for the whole window; most show up
        assert 0.5 * configured <= len(accounts) <= configured, trap


def test_campaign_traffic_stays_inside_its_window(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    first: dict[str, str] = {}
    known = group_of(truth)
    for e in small_run["events"]:
        first.setdefault(known.get(e["account_id"], "benign"), e["ts"])
    for campaign in truth["campaigns"]:
        assert first[campaign["archetype"]] >= campaign["start"]


# --------------------------------------------------------------------------------------
# Shapes


def _share_new(events: list[dict[str, Any]], model: str) -> float:
    return sum(e["model"] == model for e in events) / max(1, len(events))


def test_hydra_pivots_to_the_new_model_and_benign_adopts_slowly(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    hydra = next(c for c in truth["campaigns"] if c["archetype"] == "hydra")
    pivot = hydra["pivot"]
    assert pivot is not None and pivot["model"] == "claude-sim-4"
    members = set(hydra["accounts"])
    known = group_of(truth)
    ours = [e for e in small_run["events"] if e["account_id"] in members]
    before = [e for e in ours if e["ts"] < pivot["release_at"]]
    after = [e for e in ours if e["ts"] >= pivot["full_at"]]
    assert before and after
    assert _share_new(before, pivot["model"]) == 0.0
    assert abs(_share_new(after, pivot["model"]) - pivot["target_share"]) < 0.08
    benign_after = [e for e in small_run["events"]
                    if e["ts"] >= pivot["full_at"] and e["account_id"] not in known]
    assert _share_new(benign_after, pivot["model"]) < 0.25
    fast = set(truth["traps"]["fast_adopters"])
    fast_after = [e for e in small_run["events"]
                  if e["account_id"] in fast and e["ts"] >= pivot["start"]]
    assert _share_new(fast_after, pivot["model"]) > 0.6


def test_reasoning_accounts_share_few_payment_methods(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    reasoning = next(c for c in truth["campaigns"] if c["archetype"] == "reasoning")
    members = set(reasoning["accounts"])
    payments: dict[str, set[str]] = collections.defaultdict(set)
    cots = []
    for e in small_run["events"]:
        if e["account_id"] in members:
            payments[e["payment_fingerprint"]].add(e["account_id"])
            if e["cot_elicitation"] is not None:
                cots.append(e["cot_elicitation"])
    assert len(payments) <= truth["params"]["reasoning"]["payment_methods"] < len(members)
    assert max(len(a) for a in payments.values()) >= 3
    assert sum(cots) / len(cots) > 0.7


def test_nat_accounts_share_an_ip_and_proxy_customers_share_hydra_egress(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    nat = set(truth["traps"]["nat"])
    proxy = set(truth["traps"]["proxy_customers"])
    hydra = set(next(c for c in truth["campaigns"] if c["archetype"] == "hydra")["accounts"])
    nat_ips: dict[str, set[str]] = collections.defaultdict(set)
    proxy_ips, hydra_ips, hydra_asns, proxy_asns = set(), set(), set(), set()
    for e in small_run["events"]:
        if e["account_id"] in nat:
            nat_ips[e["client_ip"]].add(e["account_id"])
        elif e["account_id"] in proxy:
            proxy_ips.add(e["client_ip"])
            proxy_asns.add(e["asn"])
        elif e["account_id"] in hydra:
            hydra_ips.add(e["client_ip"])
            hydra_asns.add(e["asn"])
    assert len(nat_ips) <= truth["params"]["nat"]["ips"]
    assert max(len(a) for a in nat_ips.values()) >= len(nat) // 2
    assert set(nat_ips) == set(truth["infrastructure"]["nat_ips"])
    assert len(proxy_ips & hydra_ips) >= 10
    assert proxy_asns <= hydra_asns == set(truth["infrastructure"]["proxy_asns"])


def test_templates_are_near_duplicates_shared_across_accounts(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    noise = truth["params"]["popular_template"]["template_noise_bits"]
    members = set(truth["traps"]["popular_template"])
    hashes = [(int(e["prompt_simhash"], 16), e["account_id"]) for e in small_run["events"]
              if e["account_id"] in members and e["prompt_simhash"] is not None]
    center = collections.Counter(h for h, _ in hashes).most_common(1)[0][0]
    near = [(h, a) for h, a in hashes if bin(h ^ center).count("1") <= noise]
    assert 0.15 < len(near) / len(hashes) < 0.6
    assert len({a for _, a in near}) >= 0.5 * len(members)
    # ordinary prompts are fresh random hashes: hardly any repeat
    known = group_of(truth)
    benign = [e["prompt_simhash"] for e in small_run["events"]
              if e["account_id"] not in known and e["prompt_simhash"] is not None]
    assert len(set(benign)) / len(benign) > 0.8


def test_hydra_is_low_volume_per_account_but_coordinated(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    known = group_of(truth)
    per_account = collections.Counter(e["account_id"] for e in small_run["events"])
    hydra = [n for a, n in per_account.items() if known.get(a) == "hydra"]
    benign = sorted(n for a, n in per_account.items() if a not in known)
    assert max(hydra) < benign[int(0.99 * len(benign))]  # under the busiest people's volume
    hydra_tls = collections.Counter(e["tls_fingerprint"] for e in small_run["events"]
                                    if known.get(e["account_id"]) == "hydra")
    assert len(hydra_tls) <= truth["params"]["hydra"]["tls_fingerprints"]


def test_benign_traffic_has_daily_and_weekly_rhythm(default_tenth: dict[str, Any]) -> None:
    known = group_of(default_tenth["truth"])
    hourly = collections.Counter(e["ts"][:13] for e in default_tenth["events"]
                                 if e["account_id"] not in known)
    friday = sum(n for h, n in hourly.items() if h.startswith("2026-03-06"))
    sunday = sum(n for h, n in hourly.items() if h.startswith("2026-03-08"))
    assert sunday < 0.9 * friday
    friday_hours = [hourly[f"2026-03-06T{h:02d}"] for h in range(24)]
    assert max(friday_hours) > 1.3 * min(friday_hours)
    ages = [e["account_created_at"] for e in default_tenth["events"]
            if e["account_id"] not in known and e["account_created_at"]]
    assert sum(a < "2025-09-06" for a in ages) / len(ages) > 0.5  # mostly months to years old


def test_identifiers_are_opaque(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    words = ("hydra", "reasoning", "agentic", "campaign", "nat", "trap", "benign", "batch")
    for e in small_run["events"][:5000]:
        for name in ("account_id", "org_id", "api_key_id", "payment_fingerprint"):
            assert e[name] is None or not any(w in e[name] for w in words)
    everyone = sorted({e["account_id"] for e in small_run["events"]})
    hydra = set(next(c for c in truth["campaigns"] if c["archetype"] == "hydra")["accounts"])
    first_half = sum(a in hydra for a in everyone[: len(everyone) // 2])
    assert 0.35 < first_half / len(hydra) < 0.65  # ids do not cluster by group


# --------------------------------------------------------------------------------------
# Parameters and scenarios


def test_overrides_change_the_shape(tmp_path: Path) -> None:
    common: dict[str, Any] = {"scale": 0.3, "hours": 10.0, "bad_rate": 0.0}
    simulate("small", 2, tmp_path / "base", **common)
    simulate("small", 2, tmp_path / "changed", **common, overrides={
        "hydra.accounts": 40, "reasoning.cot_mean": 0.3, "benign.accounts": 200,
        "nat.enabled": False, "agentic.end_h": 6.0})
    base, changed = load_run(tmp_path / "base"), load_run(tmp_path / "changed")
    by_type = {c["archetype"]: c for c in changed["truth"]["campaigns"]}
    # overrides are in scale-1 units; `scale` applies after them
    assert len(by_type["hydra"]["accounts"]) == round(40 * 0.3)
    assert by_type["agentic"]["end"] < changed["truth"]["end"]
    assert "nat" not in changed["truth"]["traps"]
    assert changed["truth"]["benign_accounts"] < base["truth"]["benign_accounts"]
    members = set(by_type["reasoning"]["accounts"])
    cots = [e["cot_elicitation"] for e in changed["events"]
            if e["account_id"] in members and e["cot_elicitation"] is not None]
    assert 0.25 < sum(cots) / len(cots) < 0.35
    assert changed["truth"]["params"]["hydra"]["accounts"] == 12


def test_a_research_team_without_an_org_is_distinct_owners_sharing_a_card(tmp_path: Path) -> None:
    common: dict[str, Any] = {"hours": 12.0, "bad_rate": 0.0}
    for shared in (True, False):
        simulate("small", 6, tmp_path / str(shared), **common, overrides={
            "research_team.accounts": 6, "research_team.shared_org": shared})
        run = load_run(tmp_path / str(shared))
        team = set(run["truth"]["traps"]["research_team"])
        calls = [e for e in run["events"] if e["account_id"] in team]
        orgs = {e["org_id"] for e in calls}
        cards = {e["payment_fingerprint"] for e in calls} - {None}
        assert len({e["account_id"] for e in calls}) >= 4 and len(cards) == 1
        assert (len(orgs) == 1 and None not in orgs) if shared else orgs == {None}


def test_unknown_or_ill_typed_overrides_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown simulator parameter"):
        simulate("small", 1, tmp_path, overrides={"hydra.acounts": 10})
    with pytest.raises(ValueError, match="unknown simulator parameter"):
        simulate("small", 1, tmp_path, overrides={"nosuchgroup.accounts": 10})
    with pytest.raises(ValueError):
        resolve_params("small", overrides={"hydra.accounts": "many"})
    with pytest.raises(ValueError):
        resolve_params("small", overrides={"hydra.task_mix": {"knitting": 1.0}})
    with pytest.raises(ValueError, match="unknown scenario"):
        resolve_params("nope")
    assert not (tmp_path / "events.jsonl").exists()


def test_scale_and_hours_resize_the_world() -> None:
    base = resolve_params("default")
    half = resolve_params("default", scale=0.5, hours=36.0)
    assert half["hydra"]["accounts"] == base["hydra"]["accounts"] // 2
    assert half["hydra"]["rate_per_hour"] == base["hydra"]["rate_per_hour"] / 2
    assert half["run"]["release_h"] == base["run"]["release_h"] / 2
    assert half["reasoning"]["start_h"] == base["reasoning"]["start_h"] / 2
    assert half["hydra"]["pivot_delay_h"] == base["hydra"]["pivot_delay_h"]  # behaviour, not timeline
    tiny = resolve_params("default", scale=0.001)
    assert tiny["reasoning"]["accounts"] >= 1 and tiny["enterprise_batch"]["accounts"] >= 1


def test_ten_thousand_event_run(tmp_path: Path) -> None:
    summary = simulate("default", 2, tmp_path, scale=0.01)
    assert 5_000 <= summary["events"] <= 20_000
    truth = orjson.loads((tmp_path / "truth.json").read_bytes())
    assert len(truth["campaigns"]) == 3 and all(c["events"] > 0 for c in truth["campaigns"])


def test_every_scenario_runs_small(tmp_path: Path) -> None:
    assert {"default", "small", "benign", "variant-a", "variant-b"} <= set(scenario_names())
    assert scenario_names() == list(SCENARIOS)
    for name in scenario_names():
        summary = simulate(name, 1, tmp_path / name, scale=0.02, hours=12.0)
        truth = orjson.loads((tmp_path / name / "truth.json").read_bytes())
        assert summary["events"] > 0
        if name == "benign":
            assert truth["campaigns"] == [] and len(truth["traps"]) == 6
        else:
            assert len(truth["campaigns"]) == 3
    a, b = resolve_params("variant-a"), resolve_params("variant-b")
    assert a["hydra"]["accounts"] > resolve_params("default")["hydra"]["accounts"]
    assert b["reasoning"]["payment_methods"] > resolve_params("default")["reasoning"]["payment_methods"]


def test_memory_does_not_grow_with_events(tmp_path: Path) -> None:
    peaks = []
    events = []
    for hours in (12.0, 24.0):
        tracemalloc.start()
        try:
            summary = simulate("small", 6, tmp_path / str(hours), scale=0.2, hours=hours,
                               overrides={"run.release_h": 6.0})
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        events.append(summary["events"])
    assert events[1] > 1.8 * events[0]
    assert peaks[1] < 1.2 * peaks[0] + 512 * 1024


def test_docstring_examples_run() -> None:
    """pytest's doctest collection covers tests/ and models/ only, so run ours here."""
    tried = 0
    for info in pkgutil.iter_modules(simulator_package.__path__):
        module = importlib.import_module(f"{simulator_package.__name__}.{info.name}")
        result = doctest.testmod(module)
        assert result.failed == 0, info.name
        tried += result.attempted
    assert tried >= 10


def test_research_team_rate_sigma_sets_how_uneven_its_volumes_are(tmp_path: Path) -> None:
    spread = {}
    for sigma in (0.25, 1.0):
        simulate("small", 7, tmp_path / str(sigma), hours=24.0, bad_rate=0.0, overrides={
            "research_team.accounts": 40, "research_team.requests_per_day_median": 80,
            "research_team.rate_sigma": sigma})
        run = load_run(tmp_path / str(sigma))
        team = set(run["truth"]["traps"]["research_team"])
        counts = collections.Counter(e["account_id"] for e in run["events"] if e["account_id"] in team)
        volumes = sorted(counts.values())
        spread[sigma] = volumes[-len(volumes) // 4] / volumes[len(volumes) // 4]  # IQR ratio
    assert spread[1.0] > 1.5 * spread[0.25], spread
