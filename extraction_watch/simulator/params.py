"""Parameters of the simulated world: defaults, scenarios, overrides and scaling.

Every shape in the simulator is a parameter in a two-level tree
``{group: {key: value}}``; overrides address it with dotted keys such as
``"hydra.accounts"``. A scenario is a named set of overrides on ``DEFAULTS``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .clock import parse_rfc3339

__all__ = [
    "ARCHETYPES",
    "CAMPAIGN_GROUPS",
    "DEFAULTS",
    "MODELS",
    "PATHS",
    "SCENARIOS",
    "TASKS",
    "TRAP_GROUPS",
    "resolve_params",
    "scenario_names",
]

Params = dict[str, dict[str, Any]]

TASKS = (
    "coding",
    "agentic",
    "reasoning",
    "math",
    "vision",
    "data_analysis",
    "writing",
    "chat",
    "grading",
    "other",
)
PATHS = ("api", "chat", "cloud", "agent", "other")
FEATURES = (
    "tools",
    "computer_use",
    "vision",
    "code_exec",
    "extended_thinking",
    "web_search",
    "files",
    "batch",
)
MODELS = ("claude-sim-2", "claude-sim-3", "claude-sim-3-mini", "claude-sim-4")
ARCHETYPES = ("reasoning", "agentic", "hydra")
CAMPAIGN_GROUPS = ARCHETYPES
TRAP_GROUPS = (
    "enterprise_batch",
    "nat",
    "research_team",
    "fast_adopters",
    "proxy_customers",
    "popular_template",
)

# Keys multiplied by `scale` (population sizes and rates); the result keeps at least 1.
SCALED_KEYS = frozenset({"accounts", "rate_per_hour", "payment_methods", "pool_ips"})
# Keys on the run's timeline, stretched when `hours` differs from the scenario's.
TIMELINE_KEYS = frozenset({"release_h", "start_h", "end_h"})
# Keys whose value may be None.
NULLABLE_KEYS = frozenset({"end_h", "phase2_at"})
# Mapping-valued keys and the names they may contain.
MIX_KEYS: dict[str, tuple[str, ...]] = {
    "task_mix": TASKS,
    "phase2_task_mix": TASKS,
    "access_paths": PATHS,
    "models": MODELS,
    "extra_features": FEATURES,
}

_CAMPAIGN_BASE: dict[str, Any] = {
    "enabled": True,
    "accounts": 30,
    "start_h": 10.0,
    "end_h": None,
    "rate_per_hour": 400.0,
    # "steady": a renewal process of episodes (gamma gaps, shape `regularity`);
    # "waves": bursts of `wave_size` episodes started within `wave_spread_s`.
    "timing": "steady",
    "regularity": 8.0,
    "wave_size": 1.0,
    "wave_spread_s": 0.0,
    # probability that the next episode goes to the next account round-robin
    # (load balancing) rather than to a random one
    "synchrony": 0.9,
    "diurnal_amplitude": 0.0,
    "tz_offset_h": 8.0,
    "calls_per_episode": 1.0,
    "call_gap_s": 6.0,
    "payment_methods": 4,
    "org_share": 0.5,
    "orgs": 0,  # 0: every account with an org has its own throwaway org
    "account_age_days": [2.0, 20.0],
    "aged_share": 0.0,
    "aged_age_days": [200.0, 900.0],
    # "datacenter": a fleet in `egress_prefixes` /24s of `egress_asns` hosting ASNs;
    # "mixed": each account its own IP in one of those prefixes (residential and hosting);
    # "proxy": the shared commercial proxy network (group `proxy`)
    "egress": "datacenter",
    "egress_asns": 2,
    "egress_prefixes": 3,
    "access_paths": {"api": 1.0},
    "custom_tls_share": 0.0,
    "tls_fingerprints": 1,
    "templates": 4,
    "template_noise_bits": 2,
    "templated_share": 0.9,
    "cot_mean": 0.85,
    "cot_sd": 0.08,
    "task_mix": {"reasoning": 0.6, "grading": 0.25, "writing": 0.15},
    "extra_features": {"extended_thinking": 0.3},
    "models": {"claude-sim-3": 1.0},
    "phase2_at": None,  # fraction of the campaign's duration, or None
    "phase2_task_mix": {"reasoning": 1.0},
    "phase2_cot_mean": 0.8,
    "phase2_templates": 0,
    "churn": 0.0,  # share of the accounts that replace banned ones during the run
    "replacement_age_h": [0.5, 48.0],
    "pivot_share": 0.0,
    "pivot_delay_h": 2.0,
    "pivot_ramp_h": 4.0,
}


def _campaign(**changes: Any) -> dict[str, Any]:
    params = copy.deepcopy(_CAMPAIGN_BASE)
    for key, value in changes.items():
        if key not in params:
            raise KeyError(key)
        params[key] = value
    return params


DEFAULTS: Params = {
    "run": {
        "start": "2026-03-06T00:00:00Z",  # a Friday, so the weekend shows
        "hours": 72.0,
        "release_h": 36.0,
        "new_model": "claude-sim-4",
        "surge_factor": 1.3,
        "surge_hours": 24.0,
        "bad_rate": 0.0002,
    },
    "benign": {
        "accounts": 20000,
        "requests_per_day_median": 3.0,
        "requests_per_day_sigma": 1.3,
        "session_calls_mean": 4.0,
        "call_gap_median_s": 45.0,
        "call_gap_sigma": 1.0,
        "agent_session_calls_mean": 14.0,
        "agent_call_gap_median_s": 7.0,
        "diurnal_amplitude": 0.8,
        "weekend_factor": 0.55,
        "app_share": 0.04,
        "app_requests_per_day_median": 40.0,
        "org_share": 0.35,
        "org_size_mean": 4.0,
        "new_account_share": 0.03,
        "account_age_median_days": 400.0,
        "template_share": 0.08,
        "templates_max": 3,
        "template_noise_bits": 3,
        "app_template_share": 0.5,
        "app_template_noise_bits": 6,
        "cot_moderate_share": 0.12,
        "ipv6_share": 0.15,
        "shared_ip_share": 0.02,
        "datacenter_share": 0.25,
        "access_paths": {"api": 0.42, "chat": 0.36, "agent": 0.12, "cloud": 0.07, "other": 0.03},
        "task_mix": {
            "chat": 0.24,
            "coding": 0.24,
            "writing": 0.14,
            "data_analysis": 0.08,
            "reasoning": 0.06,
            "agentic": 0.06,
            "math": 0.05,
            "vision": 0.05,
            "grading": 0.01,
            "other": 0.07,
        },
        "models": {"claude-sim-3": 0.7, "claude-sim-3-mini": 0.2, "claude-sim-2": 0.1},
        "adopter_share": 0.75,
        "adoption_median_h": 36.0,
        "adoption_sigma": 1.0,
        "adoption_width_h": 12.0,
        "adoption_max_share": 0.7,
    },
    "proxy": {"pool_ips": 300, "asns": 3, "prefixes": 6},
    "enterprise_batch": {
        "enabled": True,
        "accounts": 1,
        "api_keys": 3,
        "rate_per_hour": 3000.0,
        "window_h": 3.0,
        "window_local_start_h": 1.0,
        "tz_offset_h": -5.0,
        "template_noise_bits": 3,
        "task": "data_analysis",
        "account_age_days": 1400.0,
        "requests_per_day_median": 40.0,
    },
    "nat": {
        "enabled": True,
        "accounts": 300,
        "ips": 2,
        "tz_offset_h": 1.0,
        "requests_per_day_median": 8.0,
    },
    "research_team": {
        "enabled": True,
        "accounts": 5,
        "requests_per_day_median": 40.0,
        "cot_mean": 0.8,
        "cot_sd": 0.1,
        "task_mix": {"reasoning": 0.6, "math": 0.4},
        # False: each researcher signs up alone (no org id), still paying with the lab's
        # card from the lab's office, so the team's accounts are distinct owners
        "shared_org": True,
        # spread of the researchers' own volumes (lognormal sigma): a small team doing
        # the same study is more even than a crowd
        "rate_sigma": 0.4,
    },
    "fast_adopters": {
        "enabled": True,
        "accounts": 150,
        "requests_per_day_median": 15.0,
        "delay_h_max": 2.0,
        "new_model_share": 0.85,
    },
    "proxy_customers": {
        "enabled": True,
        "accounts": 120,
        "requests_per_day_median": 8.0,
    },
    "popular_template": {
        "enabled": True,
        "accounts": 300,
        "requests_per_day_median": 10.0,
        "template_share": 0.35,
        "template_noise_bits": 3,
    },
    "reasoning": _campaign(),
    "agentic": _campaign(
        accounts=300,
        start_h=16.0,
        rate_per_hour=1500.0,
        regularity=2.0,
        synchrony=0.6,
        diurnal_amplitude=0.15,
        calls_per_episode=8.0,
        call_gap_s=6.0,
        payment_methods=40,
        org_share=0.5,
        orgs=25,
        account_age_days=[1.0, 45.0],
        aged_share=0.35,
        aged_age_days=[180.0, 1100.0],
        egress="mixed",
        egress_asns=40,
        egress_prefixes=90,
        access_paths={"api": 0.4, "cloud": 0.25, "agent": 0.25, "chat": 0.1},
        custom_tls_share=0.4,
        tls_fingerprints=5,
        templates=20,
        template_noise_bits=4,
        templated_share=0.7,
        cot_mean=0.3,
        cot_sd=0.12,
        task_mix={"agentic": 0.35, "coding": 0.3, "data_analysis": 0.2, "vision": 0.15},
        extra_features={"tools": 0.8, "computer_use": 0.2, "code_exec": 0.3},
        phase2_at=0.6,
        phase2_task_mix={"reasoning": 0.6, "agentic": 0.2, "coding": 0.2},
        phase2_cot_mean=0.75,
        phase2_templates=6,
    ),
    "hydra": _campaign(
        accounts=2500,
        start_h=4.0,
        rate_per_hour=3000.0,
        timing="waves",
        wave_size=12.0,
        wave_spread_s=4.0,
        synchrony=0.8,
        calls_per_episode=5.0,
        call_gap_s=8.0,
        payment_methods=150,
        org_share=0.15,
        orgs=0,
        account_age_days=[1.0, 21.0],
        egress="proxy",
        access_paths={"api": 0.55, "agent": 0.15, "cloud": 0.15, "chat": 0.15},
        custom_tls_share=1.0,
        tls_fingerprints=2,
        templates=8,
        template_noise_bits=3,
        templated_share=0.85,
        cot_mean=0.15,
        cot_sd=0.1,
        task_mix={"coding": 0.55, "agentic": 0.45},
        extra_features={"tools": 0.9, "code_exec": 0.4},
        models={"claude-sim-3": 0.85, "claude-sim-3-mini": 0.15},
        churn=0.3,
        pivot_share=0.5,
        pivot_delay_h=1.5,
        pivot_ramp_h=4.0,
    ),
}

_NO_CAMPAIGNS = {f"{name}.enabled": False for name in ARCHETYPES}

SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "small": {
        "run.hours": 36.0,
        "run.release_h": 18.0,
        "benign.accounts": 2500,
        "proxy.pool_ips": 80,
        "enterprise_batch.rate_per_hour": 1500.0,
        "nat.accounts": 120,
        "research_team.accounts": 4,
        "fast_adopters.accounts": 60,
        "proxy_customers.accounts": 50,
        "popular_template.accounts": 100,
        "reasoning.accounts": 12,
        "reasoning.start_h": 5.0,
        "reasoning.rate_per_hour": 200.0,
        "reasoning.payment_methods": 3,
        "agentic.accounts": 60,
        "agentic.start_h": 8.0,
        "agentic.rate_per_hour": 400.0,
        "agentic.payment_methods": 10,
        "agentic.orgs": 6,
        "agentic.egress_prefixes": 30,
        "agentic.egress_asns": 15,
        "hydra.accounts": 250,
        "hydra.start_h": 2.0,
        "hydra.rate_per_hour": 600.0,
        "hydra.payment_methods": 20,
        "hydra.wave_size": 8.0,
    },
    "benign": dict(_NO_CAMPAIGNS),
    "variant-a": {
        # a bigger, noisier hydra with fewer templates and faster churn; a
        # smaller benign population with a flatter day
        "benign.accounts": 15000,
        "benign.diurnal_amplitude": 0.5,
        "benign.weekend_factor": 0.8,
        "hydra.accounts": 4000,
        "hydra.churn": 0.5,
        "hydra.templates": 3,
        "hydra.template_noise_bits": 5,
        "hydra.templated_share": 0.7,
        "hydra.wave_size": 6.0,
        "hydra.synchrony": 0.5,
        "hydra.pivot_share": 0.4,
        "hydra.pivot_delay_h": 3.0,
        "proxy.pool_ips": 600,
        "proxy.asns": 6,
        "proxy.prefixes": 14,
        "reasoning.cot_mean": 0.7,
        "reasoning.cot_sd": 0.15,
        "agentic.accounts": 200,
        "run.bad_rate": 0.0005,
    },
    "variant-b": {
        # stealthier reasoning (more payment methods, weak load balancing), a
        # broader agentic campaign with an early second phase, a bigger benign
        # population with a sharper day; starts on a Monday
        "run.start": "2026-03-09T00:00:00Z",
        "run.hours": 60.0,
        "run.release_h": 28.0,
        "benign.accounts": 25000,
        "benign.diurnal_amplitude": 0.9,
        "benign.weekend_factor": 0.45,
        "reasoning.accounts": 45,
        "reasoning.payment_methods": 15,
        "reasoning.synchrony": 0.4,
        "reasoning.regularity": 2.0,
        "reasoning.templates": 8,
        "reasoning.template_noise_bits": 3,
        "reasoning.templated_share": 0.7,
        "reasoning.egress_prefixes": 6,
        "reasoning.start_h": 6.0,
        "agentic.accounts": 500,
        "agentic.egress_asns": 120,
        "agentic.egress_prefixes": 250,
        "agentic.phase2_at": 0.3,
        "agentic.start_h": 10.0,
        "hydra.start_h": 2.0,
        "hydra.pivot_share": 0.6,
        "hydra.pivot_ramp_h": 6.0,
        "hydra.calls_per_episode": 3.0,
        "run.bad_rate": 0.0005,
    },
    "public-reports": {
        # the sizes of the publicly reported distillation campaigns (about 24
        # thousand fraudulent accounts, one proxy network running over 20
        # thousand of them, 13 million exchanges in one campaign, over 16
        # million in all; here 15.7M) on the default world and timeline: the hydra is the
        # 20k-account proxy campaign with ~13M calls over its 68 hours; the
        # reasoning and agentic farms bring the total to 24k accounts
        "hydra.accounts": 20000,
        "hydra.rate_per_hour": 191000.0,
        "hydra.payment_methods": 1200,
        "proxy.pool_ips": 2400,
        "proxy.asns": 12,
        "proxy.prefixes": 48,
        "reasoning.accounts": 500,
        "reasoning.rate_per_hour": 10000.0,
        "reasoning.payment_methods": 60,
        "reasoning.egress_prefixes": 20,
        "reasoning.egress_asns": 6,
        "agentic.accounts": 3500,
        "agentic.rate_per_hour": 25000.0,
        "agentic.payment_methods": 450,
        "agentic.orgs": 290,
        "agentic.egress_prefixes": 600,
        "agentic.egress_asns": 150,
    },
}


def scenario_names() -> list[str]:
    """Names of the registered scenarios, in registry order."""
    return list(SCENARIOS)


def _check_value(dotted: str, default: Any, value: Any) -> Any:
    key = dotted.split(".", 1)[1]
    if value is None:
        if key in NULLABLE_KEYS:
            return None
        raise ValueError(f"{dotted}: None is not allowed")
    if key in MIX_KEYS:
        if not isinstance(value, Mapping) or not value:
            raise ValueError(f"{dotted}: expected a non-empty mapping")
        allowed = MIX_KEYS[key]
        out: dict[str, float] = {}
        for name, weight in value.items():
            if name not in allowed:
                raise ValueError(f"{dotted}: unknown name {name!r}")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise ValueError(f"{dotted}[{name}]: expected a non-negative number")
            out[str(name)] = float(weight)
        if key != "extra_features" and sum(out.values()) <= 0:
            raise ValueError(f"{dotted}: weights sum to zero")
        return out
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{dotted}: expected a bool")
        return value
    if isinstance(default, int) and key not in NULLABLE_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{dotted}: expected an int")
        if value < 0:
            raise ValueError(f"{dotted}: expected a non-negative int")
        return value
    if isinstance(default, float) or key in NULLABLE_KEYS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{dotted}: expected a number")
        if value < 0:
            raise ValueError(f"{dotted}: expected a non-negative number")
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            raise ValueError(f"{dotted}: expected a list of {len(default)} numbers")
        lo, hi = (float(v) for v in value)
        if lo < 0 or hi < lo:
            raise ValueError(f"{dotted}: expected 0 <= low <= high")
        return [lo, hi]
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{dotted}: expected a string")
        return value
    raise ValueError(f"{dotted}: unsupported value {value!r}")


def apply_overrides(params: Params, overrides: Mapping[str, object]) -> None:
    """Apply dotted-key overrides in place; unknown keys raise ValueError."""
    for dotted, value in overrides.items():
        group, _, key = str(dotted).partition(".")
        if group not in params or key not in params[group]:
            raise ValueError(f"unknown simulator parameter {dotted!r}")
        params[group][key] = _check_value(dotted, params[group][key], value)


def _validate(params: Params) -> None:
    run = params["run"]
    parse_rfc3339(run["start"])
    hours = run["hours"]
    if hours <= 0:
        raise ValueError("run.hours must be positive")
    if not 0 <= run["release_h"] <= hours:
        raise ValueError("run.release_h must lie within the run")
    if run["new_model"] not in MODELS:
        raise ValueError(f"run.new_model must be one of {MODELS}")
    if not 0 <= run["bad_rate"] < 0.5:
        raise ValueError("run.bad_rate must be in [0, 0.5)")
    if run["surge_factor"] < 1:
        raise ValueError("run.surge_factor must be >= 1")
    if params["enterprise_batch"]["task"] not in TASKS:
        raise ValueError(f"enterprise_batch.task must be one of {TASKS}")
    for name in ARCHETYPES:
        group = params[name]
        if group["timing"] not in ("steady", "waves"):
            raise ValueError(f"{name}.timing must be 'steady' or 'waves'")
        if group["egress"] not in ("datacenter", "mixed", "proxy"):
            raise ValueError(f"{name}.egress must be 'datacenter', 'mixed' or 'proxy'")
        for key in ("synchrony", "templated_share", "custom_tls_share", "aged_share",
                    "org_share", "churn", "pivot_share", "diurnal_amplitude"):
            if not 0 <= group[key] <= 1:
                raise ValueError(f"{name}.{key} must be in [0, 1]")
        if group["churn"] >= 1:
            raise ValueError(f"{name}.churn must be < 1")
        if group["phase2_at"] is not None and not 0 <= group["phase2_at"] <= 1:
            raise ValueError(f"{name}.phase2_at must be in [0, 1] or None")
        if group["end_h"] is not None and group["end_h"] < group["start_h"]:
            raise ValueError(f"{name}.end_h must not precede start_h")
        if group["calls_per_episode"] < 1 or group["regularity"] <= 0:
            raise ValueError(f"{name}: calls_per_episode >= 1 and regularity > 0")
        if group["template_noise_bits"] > 32:
            raise ValueError(f"{name}.template_noise_bits must be <= 32")
        if not sum(group["task_mix"].values()) > 0 or not sum(group["models"].values()) > 0:
            raise ValueError(f"{name}: empty task or model mix")
    for key in ("call_gap_median_s", "agent_call_gap_median_s"):
        if params["benign"][key] <= 0:
            raise ValueError(f"benign.{key} must be positive")
    for key in ("diurnal_amplitude", "weekend_factor", "app_share", "org_share",
                "new_account_share", "template_share", "app_template_share",
                "cot_moderate_share", "ipv6_share", "shared_ip_share", "datacenter_share",
                "adopter_share", "adoption_max_share"):
        if not 0 <= params["benign"][key] <= 1:
            raise ValueError(f"benign.{key} must be in [0, 1]")


def resolve_params(
    scenario: str,
    *,
    scale: float = 1.0,
    hours: float | None = None,
    overrides: Mapping[str, object] | None = None,
    bad_rate: float | None = None,
) -> Params:
    """Effective parameters: defaults, then the scenario, then `hours`, user
    overrides, `scale` and `bad_rate`.

    >>> p = resolve_params("small", scale=0.5, overrides={"hydra.churn": 0.1})
    >>> p["hydra"]["accounts"], p["hydra"]["churn"], p["run"]["hours"]
    (125, 0.1, 36.0)
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    if not scale > 0:
        raise ValueError("scale must be positive")
    params = copy.deepcopy(DEFAULTS)
    apply_overrides(params, SCENARIOS[scenario])
    if hours is not None:
        if not hours > 0:
            raise ValueError("hours must be positive")
        stretch = float(hours) / params["run"]["hours"]
        params["run"]["hours"] = float(hours)
        for group in params.values():
            for key in TIMELINE_KEYS & group.keys():
                if group[key] is not None:
                    group[key] = group[key] * stretch
    apply_overrides(params, overrides or {})
    if scale != 1.0:
        for group in params.values():
            for key in SCALED_KEYS & group.keys():
                value = group[key] * scale
                if isinstance(group[key], int):
                    value = max(1, round(value)) if group[key] > 0 else 0
                group[key] = value
    params["run"]["scale"] = float(scale)
    if bad_rate is not None:
        params["run"]["bad_rate"] = float(bad_rate)
    _validate(params)
    return params
