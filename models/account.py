"""Per-account state: small, plain, and updated in O(1) per event.

Rates and means decay with an event-time half-life so that an account's
recent behaviour dominates (a campaign that changes phase shows it within
hours); mixes (tasks, templates, egress networks) are bounded counters.
"""

from __future__ import annotations

import math
import sys
from array import array
from typing import Any

from models._state import field_values, restore_fields
from models.ranking import by_value_desc_str

__all__ = ["AccountState", "MAX_TEMPLATES", "MAX_PROXIES", "NO_COUNTS", "RECENT_TIMES", "owner_of"]

MAX_TEMPLATES = 8
MAX_PROXIES = 4
RECENT_TIMES = 8
_LN2 = math.log(2.0)
_NEVER = -math.inf  # one shared object: `-math.inf` in __init__ would make a float per account


class _EmptyCounts(dict):
    """The shared, read-only empty mix of every account that has none yet (memory)."""

    __slots__ = ()

    def _read_only(self, *args, **kwargs):
        raise TypeError("the shared empty mix is read-only: give the account its own dict")

    __setitem__ = __delitem__ = __ior__ = _read_only  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> str:
        return "NO_COUNTS"  # a checkpoint restores the shared instance


NO_COUNTS: dict = _EmptyCounts()


def _prune(counts: dict, keep: int) -> None:
    # Keep the heaviest entries; ties broken by key so the result is deterministic.
    top = sorted(counts.items(), key=by_value_desc_str)[:keep]
    counts.clear()
    counts.update(top)


def owner_of(account_id: str, org_id: str | None) -> str:
    """Who is behind an account: its org (``org:<id>``, one shared string per org) or,
    without one, the account itself, named by its own id (no second string per
    account). Ids that could be mistaken for another owner's name are prefixed
    with ``acct:``, so two different owners never get the same name.

    >>> owner_of("a-1", None), owner_of("a-1", "acme"), owner_of("org:acme", None)
    ('a-1', 'org:acme', 'acct:org:acme')
    """
    if org_id:
        return sys.intern("org:" + org_id)
    if account_id.startswith(("org:", "acct:")):
        return "acct:" + account_id
    return account_id


class AccountState:
    """What the engine remembers about one account.

    The per-event path only increments counters; decayed rates and means are
    folded in when the account is scored (at most once per tick), which keeps
    the exponentials off the hot path.
    """

    __slots__ = (
        "account_id", "owner", "payment", "created_t",
        "first_t", "last_t", "n", "n_hashed", "in_tokens", "out_tokens",
        "p_cot", "p_cot_n", "p_gap_sum", "p_gap_sq", "n_folded",
        "w_t", "w_n", "w_cot", "w_cot_n", "gap_n", "gap_sum", "gap_sq",
        "tasks", "templates", "proxies", "main_proxy", "main_count",
        "tick", "scored_t", "tick_models", "last_event_id", "recent_t",
        "score", "features", "suspect", "cluster", "cohort_t", "cohort", "in_sample",
        "rel_t", "rel_n", "rel_new", "link_keys", "keys_t",
    )

    def __init__(self, account_id: str, org_id: str | None, t: float) -> None:
        self.account_id = account_id
        self.owner = owner_of(account_id, org_id)
        self.payment: str | None = None
        self.created_t: float | None = None
        self.first_t = t
        self.last_t = t
        self.n = 0
        self.n_hashed = 0
        self.in_tokens = 0
        self.out_tokens = 0
        # pending (not yet folded) sums; the pending gap count is derived from n
        self.p_cot = 0.0
        self.p_cot_n = 0
        self.p_gap_sum = 0.0
        self.p_gap_sq = 0.0
        self.n_folded = 0
        # decayed state, as of w_t
        self.w_t = t
        self.w_n = 0.0
        self.w_cot = 0.0
        self.w_cot_n = 0.0
        self.gap_n = 0.0
        self.gap_sum = 0.0
        self.gap_sq = 0.0
        # task -> calls: the shared empty mix, then (task, calls) while the account
        # has used one task (a tuple is a third of a dict), then a dict
        self.tasks: Any = NO_COUNTS  # dict[str, int] | tuple[str, int]
        self.templates: dict[int, int] = NO_COUNTS  # its own dict from the first template
        # egress network -> calls; while the account has used one network only,
        # proxies is the shared empty mix and that network's count is main_count
        self.proxies: dict[str, int] = NO_COUNTS
        self.main_proxy: str | None = None
        self.main_count = 0
        self.tick = -1
        self.scored_t = _NEVER
        self.tick_models: dict[str, int] | None = None
        self.last_event_id = ""
        # the last RECENT_TIMES event times, packed (a list of floats is 2.5x the size)
        self.recent_t = array("d")
        self.score = 0.0
        self.features: dict[str, float] = NO_COUNTS  # replaced when scored
        self.suspect = False
        self.cluster: str | None = None
        self.cohort_t = _NEVER
        self.cohort = 0.0
        self.in_sample = False  # learns the cohort and the population baselines
        # calls since the latest model release (at rel_t), and those to the released
        # model: the pivot test sums them over a cluster's members, calls made before
        # an account joined the cluster included
        self.rel_t = _NEVER
        self.rel_n = 0
        self.rel_new = 0
        self.link_keys: list | None = None  # cached per scoring
        self.keys_t = _NEVER

    def __reduce__(self) -> tuple:
        # the same pickle from the compiled and the pure-Python build (checkpoints move
        # between them): the field values in __slots__ order
        return _restore_account, (field_values(self, _FIELDS),)

    def observe(self, ev, template_id: int | None, proxy_key: str,
                release: tuple[str, float] | None = None) -> None:
        """Count one API call (already decoded and in event-time order); ``release``
        is the latest model release (model, time) as of the current tick's start.

        The engine runs an inlined copy of this method on its per-event path
        (``Engine._apply``): change both together.
        """
        t = ev.t
        if self.n:
            # log inter-arrival: humans are bursty (wide spread), scripts are not
            lg = math.log1p(t - self.last_t)
            self.p_gap_sum += lg
            self.p_gap_sq += lg * lg
        self.n += 1
        self.last_t = t
        self.in_tokens += ev.input_tokens
        self.out_tokens += ev.output_tokens
        cot = ev.cot
        if cot is not None:
            self.p_cot += cot
            self.p_cot_n += 1
        task = ev.task
        if task is not None:
            tasks = self.tasks
            if type(tasks) is tuple:
                if tasks[0] == task:
                    self.tasks = (tasks[0], tasks[1] + 1)
                else:
                    self.tasks = {tasks[0]: tasks[1], task: 1}
            elif tasks is NO_COUNTS:
                self.tasks = (task, 1)
            else:
                tasks[task] = tasks.get(task, 0) + 1
                if len(tasks) > 16:
                    _prune(tasks, 12)
        if ev.simhash is not None:
            self.n_hashed += 1
            if template_id is not None:
                templates = self.templates
                if templates is NO_COUNTS:
                    templates = self.templates = {}
                templates[template_id] = templates.get(template_id, 0) + 1
                if len(templates) > 2 * MAX_TEMPLATES:
                    _prune(templates, MAX_TEMPLATES)
        proxies = self.proxies
        main = self.main_proxy
        if proxies is NO_COUNTS and (main is None or proxy_key == main):
            self.main_proxy = proxy_key
            self.main_count += 1
        else:
            if proxies is NO_COUNTS:
                proxies = self.proxies = {main: self.main_count}  # type: ignore[dict-item]
            count = proxies.get(proxy_key, 0) + 1
            proxies[proxy_key] = count
            if proxy_key != main and (main is None or count > proxies.get(main, 0)):
                self.main_proxy = proxy_key
            if len(proxies) > 2 * MAX_PROXIES:
                _prune(proxies, MAX_PROXIES)
        models = self.tick_models
        if models is not None:  # only kept for accounts inside an alerted cluster
            models[ev.model] = models.get(ev.model, 0) + 1
        if release is not None:
            if self.rel_t != release[1]:
                self.rel_t = release[1]
                self.rel_n = self.rel_new = 0
            self.rel_n += 1
            if ev.model == release[0]:
                self.rel_new += 1
        if ev.account_created_t is not None:
            self.created_t = ev.account_created_t
        self.last_event_id = ev.event_id
        recent = self.recent_t
        recent.append(t)
        if len(recent) > RECENT_TIMES:
            del recent[0]

    def fold(self, now: float, half_life_s: float) -> None:
        """Decay the running sums to ``now`` and add what was counted since the last fold."""
        dt = now - self.w_t
        decay = math.exp(-_LN2 * dt / half_life_s) if dt > 0.0 else 1.0
        self.w_n = self.w_n * decay + (self.n - self.n_folded)
        # (an account that never sent a cot score keeps the shared 0.0, not a float of its own)
        self.w_cot = self.w_cot * decay + self.p_cot or 0.0
        self.w_cot_n = self.w_cot_n * decay + self.p_cot_n or 0.0
        # every event but the account's very first one closes a gap
        gaps = self.n - self.n_folded - (1 if self.n_folded == 0 and self.n > 0 else 0)
        self.gap_n = self.gap_n * decay + gaps
        self.gap_sum = self.gap_sum * decay + self.p_gap_sum
        self.gap_sq = self.gap_sq * decay + self.p_gap_sq
        if dt > 0.0:
            self.w_t = now
        self.n_folded = self.n
        self.p_cot = 0.0
        self.p_cot_n = 0
        self.p_gap_sum = 0.0
        self.p_gap_sq = 0.0

    def volume_at(self, now: float, half_life_s: float) -> float:
        """Decayed request count as of ``now`` (without folding)."""
        dt = max(0.0, now - self.w_t)
        return self.w_n * math.exp(-_LN2 * dt / half_life_s) + (self.n - self.n_folded)

    # -- derived quantities (valid after fold) -------------------------------
    def cot_mean(self) -> float:
        return self.w_cot / self.w_cot_n if self.w_cot_n > 0.0 else 0.0

    def gap_spread(self) -> float | None:
        """Standard deviation of log inter-arrival times (None with too few gaps)."""
        if self.gap_n < 3.0:
            return None
        mean = self.gap_sum / self.gap_n
        var = max(0.0, self.gap_sq / self.gap_n - mean * mean)
        return math.sqrt(var)

    def task_counts(self) -> dict[str, int]:
        """Calls per task, in order of first use."""
        tasks = self.tasks
        return {tasks[0]: tasks[1]} if type(tasks) is tuple else tasks  # type: ignore[return-value]

    def top_proxy(self) -> str | None:
        """The egress network this account used most (first to reach the top on ties)."""
        return self.main_proxy

    def age_days(self) -> float | None:
        if self.created_t is None:
            return None
        return max(0.0, (self.first_t - self.created_t) / 86400.0)


_FIELDS = AccountState.__slots__


def _restore_account(values: tuple) -> AccountState:
    return restore_fields(AccountState, _FIELDS, values)
