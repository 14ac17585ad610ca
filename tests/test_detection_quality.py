"""Detection quality at small scale, over varied campaign and trap shapes.

The bars are the ones of the detection-core issue (every campaign detected by
a warning/critical alert naming its accounts, account precision >= 0.95 and
recall >= 0.90, no trap account named, time to detect <= 2 h, pivot alert
<= 6 h after the release). Shapes vary so that a detector tuned to one
simulator setting fails here: stealthier hydras (fewer templated calls, more
template noise, aged accounts, weak synchrony, no custom TLS), reasoning
farms with many payment methods, agentic campaigns on aged accounts, and a
popular public template that nearly all of its users send all the time, a
farm of a handful of accounts, and a research team without an org.
"""

from __future__ import annotations

import io

import pytest

from extraction_watch.evaluate import evaluate, load_alerts, load_truth
from extraction_watch.replay import replay_lines
from extraction_watch.simulator import simulate

CASES = {
    "small-default": (1, {}),
    "stealth-hydra": (7, {
        "hydra.templated_share": 0.4, "hydra.template_noise_bits": 6, "hydra.templates": 30,
        "hydra.account_age_days": [30.0, 400.0], "hydra.synchrony": 0.3,
        "hydra.custom_tls_share": 0.0}),
    "stealth-reasoning": (8, {
        "reasoning.payment_methods": 12, "reasoning.cot_mean": 0.5,
        "reasoning.templated_share": 0.5, "reasoning.account_age_days": [60.0, 600.0]}),
    "aged-agentic": (9, {
        "agentic.aged_share": 0.8, "agentic.templated_share": 0.4, "agentic.templates": 60,
        "agentic.synchrony": 0.2}),
    # a farm of 8 accounts whose last members join the alerted cluster one or two at a
    # time: each must still be named by an update (the old rule waited for 5 unnamed)
    "small-farm-late-joiners": (533, {
        "reasoning.accounts": 8, "reasoning.rate_per_hour": 428, "reasoning.start_h": 8.4,
        "reasoning.regularity": 2.5, "reasoning.synchrony": 0.49,
        "reasoning.calls_per_episode": 5.4, "reasoning.payment_methods": 2,
        "reasoning.templates": 2, "reasoning.template_noise_bits": 5,
        "reasoning.templated_share": 0.75, "reasoning.cot_mean": 0.4,
        "reasoning.aged_share": 0.16, "reasoning.org_share": 0.37,
        "reasoning.diurnal_amplitude": 0.15, "agentic.enabled": False, "hydra.enabled": False}),
    # a research team whose 12 members signed up one by one (no org id), paying with the
    # lab's card from the lab's office, asking for reasoning traces: distinct owners
    # sharing a card and an egress network (named as a cluster before the rule for
    # established accounts that share only infrastructure)
    "research-lab-without-org": (42, {
        "research_team.accounts": 12, "research_team.requests_per_day_median": 60,
        "research_team.shared_org": False}),
    "loud-crowds": (10, {
        "popular_template.template_share": 0.95, "popular_template.accounts": 300,
        "research_team.accounts": 12, "nat.accounts": 400}),
}


def _run(tmp_path, scenario, seed, overrides):
    out = tmp_path / "sim"
    simulate(scenario, seed, out, overrides=overrides)
    alerts = io.BytesIO()
    with open(out / "events.jsonl", "rb") as events:
        replay_lines(events, "events.jsonl", alerts_out=alerts,
                     releases=(out / "releases.jsonl").read_bytes().splitlines())
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(alerts.getvalue())
    return evaluate(load_truth(out / "truth.json"), load_alerts(path), max_alert_ids=None)


@pytest.mark.parametrize("name", sorted(CASES))
def test_detection_bars_hold_on_varied_shapes(tmp_path, name):
    seed, overrides = CASES[name]
    result = _run(tmp_path, "small", seed, overrides)
    failed = {bar: ok for bar, ok in result["passed"].items() if not ok}
    summary = {c["id"]: (c["archetype"], c["recall"], c["time_to_detect_s"], c["pivot_latency_s"])
               for c in result["campaigns"]}
    assert result["passed"]["all"], (failed, summary, result["accounts"], result["traps"])
    # every campaign is detected, and quickly
    assert all(c["detected"] for c in result["campaigns"])
    assert all(c["time_to_detect_s"] <= 7200 for c in result["campaigns"])


def test_template_free_campaigns_are_still_found_without_false_accounts(tmp_path):
    # Campaigns whose prompts never repeat lose the strongest content signal; the
    # coordination signals (shared payment, shared egress, synchrony, load balance)
    # still find every campaign and name no innocent account. Recall is lower here
    # (about 0.75 measured) and is held to a weaker bar than the templated shapes.
    result = _run(tmp_path, "small", 31, {"hydra.templated_share": 0.0,
                                          "agentic.templated_share": 0.0,
                                          "reasoning.templated_share": 0.0})
    assert all(c["detected"] for c in result["campaigns"])
    assert result["accounts"]["precision"] >= 0.95
    assert all(t["named_actionable"] == 0 for t in result["traps"].values())
    assert result["accounts"]["recall"] >= 0.6


def test_no_campaign_no_actionable_alert(tmp_path):
    result = _run(tmp_path, "benign", 12, {"benign.accounts": 3000, "run.hours": 30.0,
                                           "run.release_h": 15.0})
    assert result["accounts"]["named"] == 0
    assert all(t["named_actionable"] == 0 for t in result["traps"].values())
