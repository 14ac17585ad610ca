"""Per-account state: small, plain, and updated in O(1) per event.

Rates and means decay with an event-time half-life so that an account's
recent behaviour dominates (a campaign that changes phase shows it within
hours); mixes (tasks, templates, egress networks) are bounded counters.
"""

from __future__ import annotations

import math

__all__ = ["AccountState", "MAX_TEMPLATES", "MAX_PROXIES"]

MAX_TEMPLATES = 8
MAX_PROXIES = 4
_LN2 = math.log(2.0)


def _prune(counts: dict, keep: int) -> None:
    # Keep the heaviest entries; ties broken by key so the result is deterministic.
    top = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:keep]
    counts.clear()
    counts.update(top)


class AccountState:
    """What the engine remembers about one account."""

    __slots__ = (
        "account_id", "owner", "org_id", "payment", "tls", "created_t",
        "first_t", "last_t", "n", "n_hashed", "n_cot", "cot_sum",
        "w_t", "w_n", "w_cot", "w_cot_n", "w_in", "w_out",
        "gap_n", "gap_sum", "gap_sq",
        "tasks", "templates", "proxies", "paths",
        "tick", "tick_n", "tick_models", "samples",
        "score", "features", "suspect", "cluster", "cohort_t", "cohort",
        "pivot_n",
    )

    def __init__(self, account_id: str, org_id: str | None, t: float) -> None:
        self.account_id = account_id
        self.org_id = org_id
        self.owner = f"org:{org_id}" if org_id else f"acct:{account_id}"
        self.payment: str | None = None
        self.tls: str | None = None
        self.created_t: float | None = None
        self.first_t = t
        self.last_t = t
        self.n = 0
        self.n_hashed = 0
        self.n_cot = 0
        self.cot_sum = 0.0
        self.w_t = t
        self.w_n = 0.0
        self.w_cot = 0.0
        self.w_cot_n = 0.0
        self.w_in = 0.0
        self.w_out = 0.0
        self.gap_n = 0.0
        self.gap_sum = 0.0
        self.gap_sq = 0.0
        self.tasks: dict[str, int] = {}
        self.templates: dict[int, int] = {}
        self.proxies: dict[str, int] = {}
        self.paths: dict[str, int] = {}
        self.tick = -1
        self.tick_n = 0
        self.tick_models: dict[str, int] = {}
        self.samples: list[str] = []
        self.score = 0.0
        self.features: dict[str, float] = {}
        self.suspect = False
        self.cluster: str | None = None
        self.cohort_t = -math.inf
        self.cohort = 0.0
        self.pivot_n = 0

    def observe(self, ev, template_id: int | None, proxy_key: str, half_life_s: float) -> None:
        """Fold one API call (already decoded and in event-time order) into the state."""
        t = ev.t
        dt = t - self.w_t
        if dt > 0.0:
            decay = math.exp(-_LN2 * dt / half_life_s)
            self.w_n *= decay
            self.w_cot *= decay
            self.w_cot_n *= decay
            self.w_in *= decay
            self.w_out *= decay
            self.gap_n *= decay
            self.gap_sum *= decay
            self.gap_sq *= decay
            self.w_t = t
        if self.n:
            # log inter-arrival: humans are bursty (wide spread), scripts are not
            lg = math.log1p(t - self.last_t)
            self.gap_n += 1.0
            self.gap_sum += lg
            self.gap_sq += lg * lg
        self.n += 1
        self.w_n += 1.0
        self.w_in += ev.input_tokens
        self.w_out += ev.output_tokens
        self.last_t = t
        cot = ev.cot
        if cot is not None:
            self.w_cot += cot
            self.w_cot_n += 1.0
            self.n_cot += 1
            self.cot_sum += cot
        task = ev.task
        if task is not None:
            tasks = self.tasks
            tasks[task] = tasks.get(task, 0) + 1
            if len(tasks) > 16:
                _prune(tasks, 12)
        if ev.simhash is not None:
            self.n_hashed += 1
            if template_id is not None:
                templates = self.templates
                templates[template_id] = templates.get(template_id, 0) + 1
                if len(templates) > 2 * MAX_TEMPLATES:
                    _prune(templates, MAX_TEMPLATES)
        proxies = self.proxies
        proxies[proxy_key] = proxies.get(proxy_key, 0) + 1
        if len(proxies) > 2 * MAX_PROXIES:
            _prune(proxies, MAX_PROXIES)
        paths = self.paths
        paths[ev.access_path] = paths.get(ev.access_path, 0) + 1
        models = self.tick_models
        models[ev.model] = models.get(ev.model, 0) + 1
        self.tick_n += 1
        if ev.tls_fingerprint is not None:
            self.tls = ev.tls_fingerprint
        if ev.account_created_t is not None:
            self.created_t = ev.account_created_t
        samples = self.samples
        if len(samples) >= 3:
            del samples[0]
        samples.append(ev.event_id)

    # -- derived quantities --------------------------------------------------
    def cot_mean(self) -> float:
        return self.w_cot / self.w_cot_n if self.w_cot_n > 0.0 else 0.0

    def gap_spread(self) -> float | None:
        """Standard deviation of log inter-arrival times (None with too few gaps)."""
        if self.gap_n < 3.0:
            return None
        mean = self.gap_sum / self.gap_n
        var = max(0.0, self.gap_sq / self.gap_n - mean * mean)
        return math.sqrt(var)

    def top_proxy(self) -> str | None:
        if not self.proxies:
            return None
        return min(self.proxies.items(), key=lambda kv: (-kv[1], kv[0]))[0]

    def age_days(self) -> float | None:
        if self.created_t is None:
            return None
        return max(0.0, (self.first_t - self.created_t) / 86400.0)
