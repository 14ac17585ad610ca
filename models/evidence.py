"""Evidence and one-line summaries for cluster alerts: what a responder reads.

Every number in an alert's evidence comes with the words that make it
actionable (which templates, which egress networks, which capabilities), and a
population baseline where one exists. Account ids appear; content never does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.alerts import AlertEpisode
from models.ranking import by_value_desc_str, ranked, ranked_items
from models.templates import TemplateIndex

__all__ = ["explain_cluster", "BASELINED_SIGNALS"]

BASELINED_SIGNALS = ("template_share", "cot", "youth", "shared_payment")


def explain_cluster(
    episode: AlertEpisode,
    view: dict[str, Any] | None,
    ranked: list[tuple[str, float]],
    baseline: Callable[[str], float | None],
    templates: TemplateIndex,
    group_summary: Callable[[str, str], dict[str, Any] | None],
) -> tuple[list[dict], str]:
    """Evidence list (strongest signals first) and summary for one cluster update."""
    n = len(episode.members)
    if view is None:
        reason = ", ".join(sorted(episode.notes)) or "resolved"
        return ([], f"Extraction cluster {episode.entity_id} ({n} accounts) {reason}")
    features, owners, members = view["features"], view["owners"], view["members"]
    details = _details(features, members, templates, group_summary)
    evidence = []
    for name, _ in ranked[:6]:
        evidence.append({
            "signal": name,
            "value": round(features[name], 4),
            "baseline": baseline(name) if name in BASELINED_SIGNALS else None,
            "detail": details[name],
        })
    if "cot_shift" in episode.notes:
        evidence.append({"signal": "cot_shift", "value": round(features["cot"], 4),
                         "baseline": None,
                         "detail": "chain-of-thought elicitation rose: the campaign turned "
                                   "to reasoning-trace extraction"})
    evidence.append({"signal": "egress_networks", "value": len({m.top_proxy() for m in members}),
                     "baseline": None, "detail": details["egress"]})
    evidence.append({"signal": "request_rate", "value": round(features["request_rate"], 1),
                     "baseline": None,
                     "detail": f"about {features['request_rate']:,.0f} requests per hour "
                               f"across the cluster's accounts"})
    top = [e["signal"] for e in evidence[:3]]
    summary = (f"Coordinated extraction cluster: {n} accounts ({owners} owners) acting as one; "
               f"strongest signals {', '.join(top)}; {details['template_share']}")
    if episode.status == "resolved":
        summary = f"Resolved ({', '.join(sorted(episode.notes))}): " + summary
    return evidence, summary


def _details(features: dict[str, float], members: list, templates: TemplateIndex,
             group_summary: Callable[[str, str], dict[str, Any] | None]) -> dict[str, str]:
    # plain dict loops (Counter.update is interpreted even in the compiled build)
    tpl_counts: dict = {}
    task_counts: dict = {}
    proxies: dict = {}
    payments = set()
    for m in members:
        for key, count in m.templates.items():
            tpl_counts[key] = tpl_counts.get(key, 0) + count
        for key, count in m.task_counts().items():
            task_counts[key] = task_counts.get(key, 0) + count
        proxy = m.main_proxy  # m.top_proxy()
        proxies[proxy] = proxies.get(proxy, 0) + 1
        if m.payment is not None and m.features.get("shared_payment", 0.0) > 0:
            payments.add(m.payment)
    top_tpls = ranked(tpl_counts)[:3]
    tpl_text = ", ".join([f"{templates.label(t)} ({templates.owners(t)} owners)"
                          for t in top_tpls]) or "none"
    total_tasks = sum(task_counts.values()) or 1
    top_tasks = ", ".join([f"{k} {v / total_tasks:.0%}" for k, v in
                           ranked_items(task_counts)[:3]])
    parts = []
    for key, count in sorted(proxies.items(), key=by_value_desc_str)[:3]:
        group = group_summary("proxy", key) if key is not None else None
        if group is None:
            parts.append(f"{key} ({count} accounts)")
        else:
            parts.append(f"{key} ({count} of its {group['accounts']} accounts, "
                         f"{group['template_share']:.0%} templated)")
    top_proxies = "; ".join(parts)
    return {
        "template_share": f"{features['template_share']:.0%} of requests match templates "
                          f"shared across owners: {tpl_text}",
        "cot": f"mean chain-of-thought elicitation score {features['cot']:.2f}",
        "youth": f"accounts created shortly before first use: {features['youth']:.0%} youth",
        "shared_payment": f"{features['shared_payment']:.0%} of accounts pay with "
                          f"{len(payments)} payment methods shared across owners",
        "balance": "traffic spread evenly across accounts (load balancing)"
                   if features["balance"] > 0.5 else "uneven traffic across accounts",
        "synchrony": f"accounts act together in the same 10 s far more often than chance "
                     f"(synchrony {features['synchrony']:.2f})" if features["synchrony"] > 0.3
                     else "no unusual co-timing across accounts",
        "divergence": f"capability mix diverges from the population's (JS "
                      f"{features['divergence']:.2f}): {top_tasks}",
        "egress": f"top egress networks: {top_proxies}",
        "egress_overlap": f"{features['egress_overlap']:.0%} of accounts leave through egress "
                          f"networks shared with other owners of the cluster: {top_proxies}",
    }
