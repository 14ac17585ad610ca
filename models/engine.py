"""The engine: a stream of API calls in, a stream of alerts and dead letters out.

Event time only. Accepted events wait in a small buffer until the watermark
(the largest event time seen minus ``lateness_s``) passes them, and are then
applied in ``(ts, event_id)`` order (in a batch, once the next tick is due),
so the same set of events gives the same state whatever order they arrived
in within the lateness bound. Every
``tick_s`` of event time the engine scores the accounts active in that tick;
every ``cluster_every_ticks`` ticks it links suspects into clusters, scores
the clusters and runs the alert lifecycle. Nothing here reads the clock.

State stays bounded on an endless stream: every 36 ticks (6 h) accounts idle
for ``idle_ttl_s`` (3 days) are evicted and leave every template and payment
group they used, so these count their *tracked* users (see
``models/templates.py``); an egress network counts the tracked accounts that
have it in their egress mix (at most 8 networks each, so an account roaming
through a proxy pool is not counted in every network it ever touched).
Templates and groups idle that long are forgotten, expired template ids
leave the accounts' template mixes, and the ids of merged templates that no
account holds any more are forgotten. An idle member of an open alert
episode is evicted too: the episode keeps its id (it was announced, and
counts in ``accounts_total``) and its owner (for the owner count), and it
rejoins the episode if it comes back.

>>> engine = Engine()
>>> out = engine.process(b'{"v": 1}', source={"file": "x.jsonl", "line": 1})
>>> out[0][0], out[0][1]["reason"]
('dead_letter', 'missing_field')
"""

from __future__ import annotations

import math
import sys
import zlib
from bisect import bisect_left
from dataclasses import asdict, dataclass, field
from functools import partial
from operator import attrgetter
from typing import Any

from river import drift

from models import aggregate
from models._state import field_values, restore_fields
from models.account import (
    MAX_PROXIES,
    MAX_TEMPLATES,
    NO_COUNTS,
    RECENT_TIMES,
    AccountState,
    _prune,
)
from models.account_score import AccountScorer
from models.aggregate import update as update_group
from models.alerts import MAX_PAGES, SEVERITY_RANK, AlertEpisode
from models.cluster_score import ClusterScorer, co_activity, dispersion_balance, js_divergence
from models.cohort import CohortScorer
from models.contract import (
    ApiCall,
    ContractError,
    dead_letter,
    decode_model_release,
    format_rfc3339,
)
from models.egress import EgressKeyer
from models.evidence import explain_cluster
from models.linking import link_components
from models.pivot import PivotWatch
from models.ranking import ranked
from models.templates import TemplateIndex
from models.wire import decode as decode_event

__all__ = ["Engine", "EngineConfig", "DETECTOR_VERSION"]

DETECTOR_VERSION = "extraction-watch/0.1.0"
_LN2 = math.log(2.0)
_NOTHING: tuple = ()
_EMPTY: frozenset = frozenset()
_BY_ID = attrgetter("account_id")
_EVENT_T = attrgetter("t")
_EVENT_ORDER = attrgetter("t", "event_id")


def _sort_events(events: list[ApiCall]) -> None:
    """Sort ``events`` in place by ``(t, event_id)``: by ``t`` alone (a float key, which
    the sort compares fastest; the list is nearly sorted already, so this is about
    linear), then each run of equal times by event id."""
    events.sort(key=_EVENT_T)
    n = len(events)
    i = 0
    while i < n - 1:
        first = events[i]
        t = first.t
        j = i + 1
        while j < n:
            ev = events[j]
            if ev.t != t:
                break
            j += 1
        if j - i > 1:
            events[i:j] = sorted(events[i:j], key=_EVENT_ORDER)
        i = j


def _shared(name: str) -> str:
    """One copy of a task or model name for all the mixes that count it (memory)."""
    return sys.intern(name) if type(name) is str else name


def _join_group(groups: dict, key: str, member: str) -> str | set[str]:
    """Add ``member`` to ``groups[key]``: the bare member while it is alone (most
    payment methods have one user, and a set costs ten times a dict slot), then a set."""
    members = groups.get(key)
    if members is None:
        members = groups[key] = member
    elif type(members) is str:
        if members != member:
            members = groups[key] = {members, member}
    else:
        members.add(member)
    return members


def _leave_group(groups: dict, key: str, member: str) -> None:
    """Remove ``member`` from ``groups[key]``, and the group once it is empty."""
    members = groups.get(key)
    if members is None:
        return
    if type(members) is str:
        if members == member:
            del groups[key]
    else:
        members.discard(member)
        if not members:
            del groups[key]


def _group_size(groups: dict, key: str | None) -> int:
    members = groups.get(key) if key is not None else None
    if members is None:
        return 0
    return 1 if type(members) is str else len(members)


def _group_members(groups: dict, key: str) -> tuple[str, ...] | set[str]:
    members = groups.get(key)
    if members is None:
        return ()
    return (members,) if type(members) is str else members


@dataclass(frozen=True)
class EngineConfig:
    """Hyperparameters of the engine (event-time seconds unless named otherwise)."""

    lateness_s: float = 300.0
    max_future_s: float = 86400.0
    dedup_horizon_s: float = 3600.0
    tick_s: float = 600.0
    cluster_every_ticks: int = 3
    idle_ttl_s: float = 3 * 86400.0
    half_life_s: float = 12 * 3600.0
    template_max_distance: int = 7
    template_min_owners: int = 3
    youth_days: float = 30.0
    min_events: int = 2
    suspect_score: float = 0.30
    suspect_exit: float = 0.24
    suspect_ttl_s: float = 24 * 3600.0
    score_interval_s: float = 3600.0
    cohort_interval_s: float = 3600.0
    cohort_min_score: float = 0.24
    cohort_learn_one_in: int = 8
    cluster_min_owners: int = 3
    min_coordination: float = 0.4
    org_max_youth: float = 0.3
    org_max_template_share: float = 0.15
    org_min_egress_overlap: float = 0.5
    balance_min_span_s: float = 12 * 3600.0
    min_cluster_rate_per_h: float = 60.0
    min_account_rate_per_h: float = 4.0
    sync_sample_accounts: int = 400
    campaign_template_share: float = 0.6
    link_suspect_share: float = 0.3
    egress_min_suspects: int = 5
    joiner_task_share: float = 0.5
    profile_min_calls: int = 50
    expand_template_share: float = 0.3
    expand_min_score: float = 0.15
    sync_window_s: float = 6 * 3600.0
    warning_score: float = 0.45
    critical_score: float = 0.62
    critical_min_owners: int = 10
    update_interval_s: float = 3600.0
    quiet_s: float = 6 * 3600.0
    release_warmup_s: float = 24 * 3600.0
    pivot_horizon_s: float = 48 * 3600.0
    pivot_min_excess: float = 0.08
    pivot_ratio: float = 1.5
    pivot_min_events: int = 30
    seed: int = 7
    detector_version: str = DETECTOR_VERSION


@dataclass
class EngineStats:
    """Counters for summaries and metrics (plain data, cheap to read)."""

    received: int = 0
    processed: int = 0
    raw_text_dropped: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    ticks: int = 0
    evicted_accounts: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Engine:
    """Turn api_call events into alert v1 records and dead letters.

    ``process`` returns a (possibly empty) sequence of ``(kind, record)``
    pairs, ``kind`` being ``"alert"`` or ``"dead_letter"``; alert records have
    ``emitted_at`` set to ``None`` for the publisher to stamp.
    """

    def __init__(self, config: EngineConfig | None = None):
        self.config = cfg = config or EngineConfig()
        self.stats = EngineStats()
        # read for every event (a typed copy in the compiled build: engine.pxd)
        self._lateness_s = cfg.lateness_s
        self._max_future_s = cfg.max_future_s
        self._dedup_horizon_s = cfg.dedup_horizon_s
        self._max_t: float | None = None
        self._watermark = -math.inf
        # partitioned sources: the watermark is the lowest of the partitions'
        # largest event times (idle partitions excepted), minus the lateness
        self._partitions: set[Any] = set()
        self._partition_max: dict[Any, float] = {}
        self._idle: set[Any] = set()
        self._deferring = False
        # accepted events not applied yet, in arrival order (sorted when released);
        # the largest (ts, event_id) appended so far, and whether one came in below it
        self._buffer: list[ApiCall] = []
        self._tail_t = -math.inf
        self._tail_id = ""
        self._unsorted = False
        # a tick is due once the watermark passes the earliest buffered event at or
        # after the next tick boundary (before the first tick: the earliest event)
        self._due_from = -math.inf
        self._due_at = math.inf
        # event ids by event-time bucket (one dedup horizon wide): a repeat in
        # the same or a neighbouring bucket is a duplicate, whatever the order
        # of arrival; buckets behind the watermark are dropped at each tick
        self._dedup: dict[int, set[str]] = {}
        self._next_tick: float | None = None
        self._tick_index = 0
        self._tick_active: list[AccountState] = []
        self._unscored: dict[str, AccountState] = {}
        self._tick_models: dict[str, int] = {}
        # the latest model release (model, time) as of the current tick's start: each
        # account counts its calls since then, and those to that model
        self._tick_release: tuple[str, float] | None = None
        self._stream_start: float | None = None
        self._accounts: dict[str, AccountState] = {}
        self._suspects: dict[str, AccountState] = {}
        # payment fingerprint -> owners, and -> accounts (see _join_group)
        self._payments: dict[str, str | set[str]] = {}
        self._payment_accounts: dict[str, str | set[str]] = {}
        self._proxy_stats: dict[str, aggregate.GroupState] = {}
        self._payment_stats: dict[str, aggregate.GroupState] = {}
        self._pop_tasks: dict[str, int] = {}
        self._models_first_seen: dict[str, float] = {}
        self._releases: dict[str, float] = {}
        self._explicit_releases: set[str] = set()
        self._templates = TemplateIndex(max_distance=cfg.template_max_distance)
        self._egress = EgressKeyer()
        self._egress_cache = self._egress._cache  # read on the hot path
        self._applied = 0
        self._scorer = AccountScorer(youth_days=cfg.youth_days,
                                     min_template_owners=cfg.template_min_owners)
        self._cluster_scorer = ClusterScorer()
        self._cohort = CohortScorer(seed=cfg.seed)
        self._baseline_sums: dict[str, float] = {}
        self._baseline_n = 0
        self._episodes: dict[str, AlertEpisode] = {}
        self._member_episode: dict[str, str] = {}
        # open episode id -> owners of its members evicted while idle (their ids stay
        # in the episode and in _member_episode, their state goes)
        self._gone_owners: dict[str, set[str]] = {}
        self._pivot_tests: dict[tuple[str, str], PivotWatch] = {}
        self._pivot_episodes: dict[tuple[str, str], AlertEpisode] = {}
        self._cot_tests: dict[str, drift.PageHinkley] = {}
        self._cluster_view: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ input
    def add_release(self, payload: Any, source: dict | None = None) -> list[tuple[str, dict]]:
        """Register an explicit model release (it wins over an inferred one)."""
        try:
            release = decode_model_release(payload)
        except ContractError as err:
            return [self._dead(err.reason, err.message, source, payload)]
        self._catch_up()
        self._releases[release.model] = release.t
        self._explicit_releases.add(release.model)
        return []

    def process(self, payload: Any, source: dict | None = None,
                partition: Any = None) -> list | tuple:
        """Decode, validate and process one raw api_call payload.

        ``partition`` names the source partition the event came from when the
        input is partitioned (see :meth:`set_partitions`); leave it ``None``
        for a single ordered stream such as a file.
        """
        self.stats.received += 1
        try:
            event = decode_event(payload)  # decode_api_call without its interpreted frame
        except ContractError as err:
            return [self._dead(err.reason, err.message, source, payload)]
        return self._accept(event, payload, source, partition)

    def process_lines(self, lines: list[bytes], source_name: str,
                      first_line: int = 1) -> tuple[list, int]:
        """:meth:`process` over consecutive JSONL lines of one file (numbered from
        ``first_line``), skipping blank ones; returns the outputs, in order, and how
        many lines were blank. The loop of ``replay --file``: a dead letter's source
        (``{"file": source_name, "line": n}``) is only built when one is written."""
        out: list = []
        blank = 0
        n = first_line - 1
        for line in lines:
            n += 1
            # blank: as `not line.strip()`, without copying it (an event starts with "{")
            if not line or (line[0] != 123 and line.isspace()):
                blank += 1
                continue
            try:
                event = decode_event(line)
            except ContractError as err:
                out.append(self._dead(err.reason, err.message, (source_name, n), line))
                continue
            result = self._accept(event, line, (source_name, n), None)  # (a C call compiled)
            if result:
                out.extend(result)
        self.stats.received += n - (first_line - 1) - blank
        return out, blank

    def process_event(self, event: ApiCall, source: dict | None = None,
                      partition: Any = None) -> list | tuple:
        """Process an already decoded event."""
        self.stats.received += 1
        return self._accept(event, None, source, partition)

    # ----------------------------------------------------- partitioned input
    def process_batch(self, events: list[ApiCall], partition: Any,
                      offsets: list[int] | None = None, topic: str | None = None) -> list:
        """Already decoded events of one source partition, in its order.

        Same result as :meth:`process_event` on each, but the watermark moves
        once, after the batch (its movement only decides *when* released
        events are applied, never which events are accepted or in what order).
        With ``offsets``, a dead letter names its event's source: the record
        ``offsets[i]`` of ``topic``'s ``partition``.
        """
        out: list = []
        self._deferring = True
        try:
            for i, event in enumerate(events):
                # (a tuple: the source's dict is built for a dead letter only)
                source = (topic, partition, offsets[i]) if offsets is not None else None
                result = self._accept(event, None, source, partition)
                if result:
                    out.extend(result)
        finally:
            self._deferring = False
        self.stats.received += len(events)
        out.extend(self._advance_watermark())
        return out

    def set_partitions(self, partitions) -> list | tuple:
        """Declare the source partitions (e.g. all partitions of the events topic).

        With a partitioned source each partition is in event-time order only
        up to the lateness, and partitions advance at different speeds, so the
        watermark is the smallest of the partitions' largest event times minus
        ``lateness_s`` (as in Flink or Beam). An event is late when it is more
        than the lateness behind its own partition (or behind the watermark,
        which for a partition that is not idle is never later), so lateness
        does not depend on how the partitions were interleaved: the same
        events give the same alerts whatever the number of consumers. A
        partition seen in an event but not declared joins automatically.
        """
        self._partitions.update(partitions)
        return self._advance_watermark()

    def mark_idle(self, partition: Any) -> list | tuple:
        """A partition has nothing more to read for now: stop holding the watermark back.

        Its next event makes it active again (and is late if the others have
        moved on by more than the lateness, the usual price of idleness).
        """
        self._partitions.add(partition)
        self._idle.add(partition)
        return self._advance_watermark()

    def _advance_partition(self, partition: Any, t: float) -> list | tuple:
        if t > self._max_t:  # type: ignore[operator]
            self._max_t = t
        partitions = self._partitions
        if partition not in partitions:
            partitions.add(partition)
        idle = self._idle
        idle.discard(partition)
        pmax = self._partition_max
        if t <= pmax.get(partition, -math.inf):
            return _NOTHING
        pmax[partition] = t
        if self._deferring:
            return _NOTHING
        return self._advance_watermark()

    def _advance_watermark(self) -> list | tuple:
        if self._max_t is None:
            return _NOTHING
        pmax = self._partition_max
        active = [pmax.get(p, -math.inf) for p in self._partitions if p not in self._idle]
        low = min(active) if active else self._max_t
        watermark = low - self.config.lateness_s
        if watermark <= self._watermark:
            return _NOTHING
        self._watermark = watermark
        out: list = []
        self._release(watermark, out)
        return out or _NOTHING

    def flush(self) -> list[tuple[str, dict]]:
        """End of input: apply everything buffered and evaluate the last tick."""
        out: list = []
        if self._max_t is None:
            return out
        final = self._max_t + self.config.lateness_s + self.config.tick_s
        self._apply_released(math.inf, out)
        while self._next_tick is not None and self._next_tick <= final:
            self._tick(self._next_tick, out)
        self._rearm()
        self.stats.processed = self._applied
        return out

    def _dead(self, reason: str, message: str, source: dict | tuple | None,
              payload: Any) -> tuple[str, dict]:
        counts = self.stats.dead_letters
        counts[reason] = counts.get(reason, 0) + 1
        if isinstance(source, tuple):  # file and line (process_lines), or a topic's record
            where = {"file": source[0], "line": source[1]} if len(source) == 2 else \
                {"topic": source[0], "partition": source[1], "offset": source[2]}
        else:
            where = source or {}
        return ("dead_letter", dead_letter(reason, message, where, payload))

    def _accept(self, ev: ApiCall, payload: Any, source: dict | tuple | None,
                partition: Any = None) -> list | tuple:
        lateness = self._lateness_s
        if ev.raw_text_dropped:
            self.stats.raw_text_dropped += ev.raw_text_dropped
        t = ev.t
        max_t = self._max_t
        if max_t is None:
            max_t = self._max_t = t
            if partition is None:
                self._watermark = t - lateness
        elif t < self._watermark or (
                partition is not None
                and t < self._partition_max.get(partition, t) - lateness):
            floor = self._watermark if partition is None else max(
                self._watermark, self._partition_max.get(partition, t) - lateness)
            return [self._dead("late", f"event time {ev.ts} is behind the watermark "
                               f"{format_rfc3339(floor)}", source, payload or ev.to_dict())]
        elif t > max_t + self._max_future_s:
            return [self._dead("time_out_of_range", f"event time {ev.ts} is more than "
                               f"{self._max_future_s:.0f}s ahead of stream time "
                               f"{format_rfc3339(max_t)}", source, payload or ev.to_dict())]
        # dedup by event time: a repeat within the horizon (and at most two
        # horizons) of the first copy counts once, in any order of arrival
        eid = ev.event_id
        buckets = self._dedup
        bucket = int(t // self._dedup_horizon_s)
        ids = buckets.get(bucket)
        if ids is None:
            ids = buckets[bucket] = set()
        elif eid in ids:
            return [self._dead("duplicate", f"event_id {eid[:64]!r} was already seen",
                               source, payload or ev.to_dict())]
        if eid in buckets.get(bucket - 1, _EMPTY) or eid in buckets.get(bucket + 1, _EMPTY):
            return [self._dead("duplicate", f"event_id {eid[:64]!r} was already seen",
                               source, payload or ev.to_dict())]
        ids.add(eid)
        self._buffer.append(ev)
        if t > self._tail_t or (t == self._tail_t and eid > self._tail_id):
            self._tail_t = t
            self._tail_id = eid
        else:
            self._unsorted = True
        if t < self._due_at and t >= self._due_from:
            self._due_at = t
        if partition is not None:
            return self._advance_partition(partition, t)
        if t > max_t:
            self._max_t = t
            watermark = t - lateness
            if watermark > self._watermark:
                self._watermark = watermark
                if watermark > self._due_at:
                    out: list = []
                    self._apply_released(watermark, out)
                    return out or _NOTHING
        return _NOTHING

    def _release(self, watermark: float, out: list) -> None:
        """The watermark moved to ``watermark``: apply what it passed if a tick is due.

        Events the watermark passed are *released*: their order is final, since
        any event still to come is at or after the watermark. Released events
        wait in the buffer until a tick is due (the watermark passed an event
        at or after the next tick boundary), because nothing reads their effect
        before that tick; then they are applied in ``(ts, event_id)`` order,
        each tick evaluated just before the first event at or after its
        boundary, so the state every tick sees (and every alert) is exactly
        what applying each event the moment it was released would give.
        """
        if watermark > self._due_at:
            self._apply_released(watermark, out)

    def _apply_released(self, watermark: float, out: list) -> None:
        buffer = self._buffer
        if buffer:
            if self._unsorted:
                _sort_events(buffer)
                self._unsorted = False
            cut = len(buffer) if watermark == math.inf else \
                bisect_left(buffer, watermark, key=_EVENT_T)
            if cut:
                released = buffer[:cut]
                del buffer[:cut]
                next_tick = self._next_tick
                if next_tick is None:
                    # the tick grid and the stream start come from the first event
                    # applied (the earliest), not the first to arrive
                    first = released[0].t
                    self._stream_start = first
                    next_tick = self._next_tick = (math.floor(first / self.config.tick_s) + 1) \
                        * self.config.tick_s
                last = released[-1].t
                start = 0
                while next_tick <= last:
                    stop = bisect_left(released, next_tick, start, key=_EVENT_T)
                    if stop > start:
                        self._apply(released[start:stop])
                        start = stop
                    self._tick(next_tick, out)
                    next_tick = self._next_tick
                    assert next_tick is not None
                self._apply(released[start:] if start else released)
        self._rearm()

    def _rearm(self) -> None:
        """Find the buffered event whose release makes the next tick due (buffer sorted)."""
        next_tick = self._next_tick
        buffer = self._buffer
        if next_tick is None:
            self._due_from = -math.inf
            self._due_at = buffer[0].t if buffer else math.inf
        else:
            self._due_from = next_tick
            i = bisect_left(buffer, next_tick, key=_EVENT_T)
            self._due_at = buffer[i].t if i < len(buffer) else math.inf

    def _catch_up(self) -> None:
        """Apply the released events still waiting for a tick (before a query reads state)."""
        if self._buffer and self._next_tick is not None:
            # released events all lie before the next tick boundary: no tick runs here
            self._apply_released(min(self._watermark, self._next_tick), [])

    # ------------------------------------------------------------ per event
    def _apply(self, events: list[ApiCall]) -> None:
        """Apply released events, in order, all before the next tick boundary.

        The per-event path: plain counters only, everything else waits for the tick.
        """
        self._applied += len(events)
        accounts = self._accounts
        member_episode = self._member_episode
        templates = self._templates  # (typed in engine.pxd: match is a C call)
        egress_cache = self._egress_cache
        egress_key = self._egress.key
        proxy_stats = self._proxy_stats
        payment_stats = self._payment_stats
        tick_index = self._tick_index
        tick_active = self._tick_active
        unscored = self._unscored
        models = self._tick_models
        models_first_seen = self._models_first_seen
        pop_tasks = self._pop_tasks
        learn_one_in = self.config.cohort_learn_one_in
        log1p = math.log1p
        max_templates = 2 * MAX_TEMPLATES
        max_proxies = 2 * MAX_PROXIES
        release = self._tick_release
        rel_model = None
        rel_t = 0.0
        if release is not None:
            rel_model = release[0]
            rel_t = release[1]
        for ev in events:
            account_id = ev.account_id
            t = ev.t
            acc = accounts.get(account_id)
            if acc is None:
                acc = accounts[account_id] = AccountState(account_id, ev.org_id, t)
                acc.in_sample = zlib.crc32(account_id.encode()) % learn_one_in == 0
                if member_episode and account_id in member_episode:
                    self._join(account_id, member_episode[account_id])  # back after eviction
            else:
                # the tracked account's own id string: the sets and dicts below find it
                # by identity (no character comparison), and keep no second copy of it
                account_id = acc.account_id
            simhash = ev.simhash
            tid = None if simhash is None else templates.match(simhash, acc.owner, t, account_id)
            client_ip = ev.client_ip
            hit = egress_cache.get(client_ip)
            proxy = hit[1] if hit is not None and hit[0] == ev.asn else \
                egress_key(client_ip, ev.asn)
            task, model, cot = ev.task, ev.model, ev.cot
            templated = tid is not None

            # the account: AccountState.observe(ev, tid, proxy), inlined (keep in step;
            # tests/models/test_engine.py checks that both give the same state)
            if acc.n:
                lg = log1p(t - acc.last_t)
                acc.p_gap_sum += lg
                acc.p_gap_sq += lg * lg
            acc.n += 1
            acc.last_t = t
            acc.in_tokens += ev.input_tokens
            acc.out_tokens += ev.output_tokens
            if cot is not None:
                acc.p_cot += cot
                acc.p_cot_n += 1
            # (a mix can only outgrow its bound when a key is added; a mix is the shared
            # NO_COUNTS, a pair or a dict of its own, and `mix`, dict-typed compiled,
            # only ever holds the account's own dict)
            if task is not None:
                pair = acc.tasks
                if type(pair) is tuple:
                    if pair[0] == task:
                        acc.tasks = (pair[0], pair[1] + 1)
                    else:
                        acc.tasks = {pair[0]: pair[1], _shared(task): 1}
                elif pair is NO_COUNTS:
                    acc.tasks = (_shared(task), 1)
                else:
                    mix = pair
                    count = mix.get(task)
                    if count is None:
                        mix[_shared(task)] = 1
                        if len(mix) > 16:
                            _prune(mix, 12)
                    else:
                        mix[task] = count + 1
            if simhash is not None:
                acc.n_hashed += 1
                if tid is not None:
                    if acc.templates is NO_COUNTS:
                        acc.templates = {tid: 1}
                    else:
                        mix = acc.templates
                        count = mix.get(tid)
                        if count is None:
                            mix[tid] = 1
                            if len(mix) > max_templates:
                                _prune(mix, MAX_TEMPLATES)
                        else:
                            mix[tid] = count + 1
            main = acc.main_proxy
            if acc.proxies is NO_COUNTS and proxy == main:  # one egress network so far
                acc.main_count += 1
            elif acc.proxies is NO_COUNTS and main is None:
                acc.main_proxy = proxy
                acc.main_count = 1
            else:
                if acc.proxies is NO_COUNTS:
                    acc.proxies = {main: acc.main_count}  # type: ignore[dict-item]
                mix = acc.proxies
                count = mix.get(proxy, 0) + 1
                mix[proxy] = count
                if proxy != main and (main is None or count > mix.get(main, 0)):
                    acc.main_proxy = proxy
                if count == 1 and len(mix) > max_proxies:
                    _prune(mix, MAX_PROXIES)
            cluster_models = acc.tick_models
            if cluster_models is not None:  # only kept for accounts inside an alerted cluster
                cluster_models[model] = cluster_models.get(model, 0) + 1
            if rel_model is not None:
                if acc.rel_t != rel_t:
                    acc.rel_t = rel_t
                    acc.rel_n = acc.rel_new = 0
                acc.rel_n += 1
                if model == rel_model:
                    acc.rel_new += 1
            if ev.account_created_t is not None:
                acc.created_t = ev.account_created_t
            acc.last_event_id = ev.event_id
            recent = acc.recent_t
            recent.append(t)
            if len(recent) > RECENT_TIMES:
                del recent[0]

            # its egress network
            group = proxy_stats.get(proxy)
            if group is None:
                group = proxy_stats[proxy] = aggregate.initialize(t)
            update_group(group, account_id, t, task, model, cot, templated)

            pf = ev.payment_fingerprint
            if pf is not None:
                if acc.payment != pf:
                    self._new_payment(acc, pf, t)
                group = payment_stats.get(pf)
                if group is not None:
                    update_group(group, account_id, t, task, model, cot, templated)
            if acc.tick != tick_index:
                acc.tick = tick_index
                tick_active.append(acc)
                unscored[account_id] = acc

            # the population's model and task mixes of this tick
            count = models.get(model)
            if count is None:
                models[model] = 1
                if model not in models_first_seen:  # (a model new to this tick may be)
                    self._first_sighting(model, t)
            else:
                models[model] = count + 1
            if task is not None:
                pop_tasks[task] = pop_tasks.get(task, 0) + 1

    def _new_payment(self, acc: AccountState, pf: str, t: float) -> None:
        acc.payment = pf
        owners = _join_group(self._payments, pf, acc.owner)
        _join_group(self._payment_accounts, pf, acc.account_id)
        if type(owners) is not str and len(owners) >= 2 and pf not in self._payment_stats:
            # aggregated from the moment a second owner shows up: a card used
            # by one customer is not worth the memory
            self._payment_stats[pf] = aggregate.initialize(t)

    def _first_sighting(self, model: str, t: float) -> None:
        self._models_first_seen[model] = t
        start = self._stream_start if self._stream_start is not None else t
        if t - start >= self.config.release_warmup_s and model not in self._releases:
            self._releases[model] = t  # inferred release: first sighting

    # ------------------------------------------------------------- per tick
    def _tick(self, boundary: float, out: list) -> None:
        cfg = self.config
        self.stats.ticks += 1
        # no event still to come lies before the watermark: older id buckets go
        low = int(self._watermark // cfg.dedup_horizon_s) - 1 \
            if self._watermark > -math.inf else None
        if low is not None:
            for key in [k for k in self._dedup if k < low]:
                del self._dedup[key]
        self.stats.processed = self._applied
        active = self._tick_active
        self._tick_active = []
        population_models = self._tick_models
        self._tick_models = {}
        # accounts new to the stream are rescored every tick for their first hour,
        # so a fresh campaign is seen within minutes; then at most hourly
        interval = cfg.score_interval_s
        due = []
        for acc in self._unscored.values():  # (a loop over typed accounts compiled)
            if boundary - acc.scored_t >= interval or boundary - acc.first_t <= interval:
                due.append(acc)
        due.sort(key=_BY_ID)
        for acc in due:
            del self._unscored[acc.account_id]
            self._score_account(acc, boundary)
        cluster_models: dict[str, dict[str, int]] = {}
        pivot_model = self._tick_release = self._current_release(boundary)
        for acc in active:
            models = acc.tick_models
            if models is None:
                continue
            ep_id = acc.cluster
            if ep_id is not None:
                into = cluster_models.get(ep_id)
                if into is None:
                    into = cluster_models[ep_id] = {}
                for model, count in models.items():
                    into[model] = into.get(model, 0) + count
                episode = self._episodes.get(ep_id)
                if episode is not None:
                    episode.last_active_t = max(episode.last_active_t, acc.last_t)
            acc.tick_models = {}
        index = self._tick_index
        self._tick_index += 1
        self._next_tick = boundary + cfg.tick_s
        if index % cfg.cluster_every_ticks == 0:
            self._rebuild_clusters(boundary, out)
        if pivot_model is not None:
            self._check_pivots(boundary, pivot_model, cluster_models, population_models, out)
        self._resolve_quiet(boundary, out)
        if index % 36 == 0:
            self._evict(boundary)

    def _score_account(self, acc: AccountState, now: float) -> None:
        cfg = self.config
        acc.scored_t = now
        acc.fold(now, cfg.half_life_s)
        if acc.n < cfg.min_events:
            return
        pay_owners = _group_size(self._payments, acc.payment) if acc.payment else 0
        if not acc.suspect and not acc.in_sample:
            bound = self._scorer.upper_bound(acc, self._templates.owners, pay_owners)
            if bound < cfg.suspect_exit:
                acc.score = bound  # cannot be a suspect: skip the full scoring
                return
        features = self._scorer.features(acc, self._templates.owners, pay_owners)
        preliminary = self._scorer.score(features, 0.0)
        if now - acc.cohort_t >= cfg.cohort_interval_s:
            learn = not acc.suspect and acc.in_sample
            if preliminary >= cfg.cohort_min_score or learn:
                acc.cohort = self._cohort.score_then_learn(features, learn=learn)
                acc.cohort_t = now
        # (with no cohort score the final score is the preliminary one)
        score = preliminary if acc.cohort == 0.0 else self._scorer.score(features, acc.cohort)
        acc.score = score
        acc.features = features
        if score >= cfg.suspect_score:
            if not acc.suspect:
                acc.suspect = True
                self._suspects[acc.account_id] = acc
        elif acc.suspect and score < cfg.suspect_exit:
            acc.suspect = False
            self._suspects.pop(acc.account_id, None)
        if not acc.suspect and acc.in_sample:
            # population baselines learn only from accounts the rules did not flag
            sums = self._baseline_sums
            for name, value in features.items():
                sums[name] = sums.get(name, 0.0) + value
            self._baseline_n += 1

    def _baseline(self, name: str) -> float | None:
        if not self._baseline_n or name not in self._baseline_sums:
            return None
        return round(self._baseline_sums[name] / self._baseline_n, 4)

    # ---------------------------------------------------------- clustering
    def _link_keys(self, acc: AccountState) -> list:
        if acc.link_keys is not None and acc.keys_t == acc.scored_t:
            return acc.link_keys
        cfg = self.config
        keys: list = []
        if _group_size(self._payments, acc.payment) >= 2:
            keys.append(("pay", acc.payment))
        if acc.n_hashed:
            floor = 0.2 * acc.n_hashed
            for tid, count in acc.templates.items():
                if count >= floor and self._templates.owners(tid) >= cfg.template_min_owners:
                    keys.append(("tpl", tid))
        proxy = acc.top_proxy()
        f = acc.features
        # sharing an egress network is weak on its own (proxy services have ordinary
        # customers): it links only accounts that carry another campaign trait
        if proxy is not None and (f.get("shared_payment", 0.0) > 0.0
                                  or f.get("template_share", 0.0) >= 0.2
                                  or f.get("cot", 0.0) >= 0.5):
            keys.append(("egress", proxy))
        acc.link_keys = keys
        acc.keys_t = acc.scored_t
        return keys

    def _users_of(self, key: tuple) -> int:
        if key[0] == "tpl":
            return len(self._templates.accounts(key[1]))
        group = self._proxy_stats.get(key[1])
        return aggregate.account_count(group) if group is not None else 0

    def _rebuild_clusters(self, now: float, out: list) -> None:
        cfg = self.config
        ttl = cfg.suspect_ttl_s
        live = []
        for m in self._suspects.values():
            if now - m.last_t <= ttl:
                live.append(m)
        if not live:
            return
        live.sort(key=_BY_ID)
        keys_by_id = {}
        by_id = {}
        for m in live:
            keys_by_id[m.account_id] = self._link_keys(m)
            by_id[m.account_id] = m
        # A template or an egress network links suspects only when suspects are a good
        # part of its users: a popular public template or a NAT full of ordinary people
        # never glues its few odd users together.
        suspects_on: dict = {}
        for keys in keys_by_id.values():
            for key in keys:
                suspects_on[key] = suspects_on.get(key, 0) + 1
        crowded = {k for k, n in suspects_on.items()
                   if k[0] != "pay" and (n < cfg.link_suspect_share * self._users_of(k)
                                         or (k[0] == "egress" and n < cfg.egress_min_suspects))}
        for account_id, keys in keys_by_id.items():
            kept = keys if crowded.isdisjoint(keys) else [k for k in keys if k not in crowded]
            # an egress network only joins accounts already tied by a payment method or a
            # non-crowded template (or that elicit reasoning traces): it bridges fragments
            # of one operation, it does not recruit its ordinary neighbours (an egress
            # key is an account's last key, so it is first only when it is alone)
            if (not kept or kept[0][0] == "egress") and \
                    by_id[account_id].features.get("cot", 0.0) < 0.5:
                kept = []
            keys_by_id[account_id] = kept
        for component in link_components(list(by_id), keys_by_id.__getitem__):
            members = self._on_profile([by_id[a] for a in component], keys_by_id)
            owners = set()
            for m in members:
                owners.add(m.owner)
            if len(owners) < cfg.cluster_min_owners:
                continue
            # an alerted cluster that gained nobody is re-evaluated at the update cadence
            ep_id = members[0].cluster
            known = self._episodes.get(ep_id) if ep_id is not None else None
            if known is not None and now - known.eval_t < cfg.update_interval_s:
                # (all(m.cluster == ep_id for m in members), without a generator: a
                # closure is not allowed in a cpdef method of the compiled build)
                gained = False
                for m in members:
                    if m.cluster != ep_id:
                        gained = True
                        break
                if not gained:
                    continue
            features = self._cluster_features(members, now)
            score = self._cluster_scorer.score(features, len(owners))
            episode = self._update_episode(members, owners, features, score, now, out)
            if episode is not None:
                self._expand(episode, members, now)

    def _on_profile(self, members: list[AccountState], keys_by_id: dict) -> list[AccountState]:
        """``members`` without those tied to the others by an egress network alone whose
        calls go mostly to tasks the others do not do.

        A proxy network or a datacenter carries ordinary customers beside a campaign, and
        some of them ask for reasoning traces (what lets an egress network alone link an
        account); a campaign's accounts share its narrow capability focus. So a member
        linked only through egress must spend at least ``joiner_task_share`` of its calls
        on tasks that make up at least 5% of the calls of the members tied by a payment
        method or a template (when those made ``profile_min_calls`` calls or more; with
        fewer, or none, nobody is dropped).
        """
        cfg = self.config
        anchored: dict[str, int] = {}
        joiners = []
        for m in members:
            kept = keys_by_id[m.account_id]
            if kept and kept[0][0] == "egress":
                joiners.append(m)
            else:
                for task, count in m.task_counts().items():
                    anchored[task] = anchored.get(task, 0) + count
        if not joiners:
            return members
        total = 0
        for count in anchored.values():
            total += count
        if total < cfg.profile_min_calls:
            return members
        floor = 0.05 * total
        dropped = set()
        for m in joiners:
            calls = on = 0
            for task, count in m.task_counts().items():
                calls += count
                if anchored.get(task, 0) >= floor:
                    on += count
            if calls and on < cfg.joiner_task_share * calls:
                dropped.add(m.account_id)
        if not dropped:
            return members
        return [m for m in members if m.account_id not in dropped]

    def _cluster_features(self, members: list[AccountState], now: float) -> dict[str, float]:
        cfg = self.config
        n = len(members)
        half_life_s = cfg.half_life_s
        exp = math.exp
        tasks: dict[str, int] = {}
        volumes = []
        egress: dict[str, set[str]] = {}
        first_t = math.inf
        # running sums in member order (as sum() over the members would add them)
        age_sum = template_share = cot = youth = 0.0
        shared_payment = 0
        for m in members:
            mix = m.tasks  # m.task_counts(), inlined: a (task, count) pair or a dict
            if type(mix) is tuple:
                task = mix[0]
                tasks[task] = tasks.get(task, 0) + mix[1]
            else:
                for task, count in mix.items():
                    tasks[task] = tasks.get(task, 0) + count
            # m.volume_at(now, half_life_s), inlined
            dt = now - m.w_t
            volumes.append((m.w_n * exp(-_LN2 * dt / half_life_s) if dt > 0.0 else m.w_n)
                           + (m.n - m.n_folded))
            proxy = m.main_proxy
            if proxy is not None:
                owners = egress.get(proxy)
                if owners is None:
                    egress[proxy] = {m.owner}
                else:
                    owners.add(m.owner)
            if m.first_t < first_t:
                first_t = m.first_t
            age_sum += now - m.first_t
            f = m.features
            template_share += f.get("template_share", 0.0)
            cot += f.get("cot", 0.0)
            youth += f.get("youth", 0.0)
            if f.get("shared_payment", 0.0) > 0:
                shared_payment += 1
        # members whose main egress network carries at least two other owners of the cluster
        shared = 0
        for owners in egress.values():
            if len(owners) >= 3:
                shared += len(owners)
        overlap = shared / n
        # request rate: decayed volume over the time it could have accumulated in
        span = now - first_t
        horizon_s = max(cfg.tick_s, min(span, cfg.half_life_s / _LN2))
        rate_per_h = sum(volumes) / horizon_s * 3600.0
        horizon = now - cfg.sync_window_s
        # a deterministic sample of members is plenty to see waves
        ratio = co_activity([[t for t in m.recent_t if t >= horizon]
                             for m in members[:cfg.sync_sample_accounts]])
        # ratio ~1 for independent people; a farm firing waves is far above
        synchrony = min(1.0, max(0.0, math.log(ratio) / math.log(50.0))) if ratio > 1.0 else 0.0
        return {
            "template_share": template_share / n,
            "cot": cot / n,
            "youth": youth / n,
            "shared_payment": shared_payment / n,
            # volumes only tell a farm from a crowd once heavy tails had time to show
            "balance": dispersion_balance(volumes) if age_sum >= n * cfg.balance_min_span_s
            else 0.0,
            "synchrony": synchrony,
            "divergence": js_divergence(tasks, self._pop_tasks),
            "egress_overlap": overlap,
            "request_rate": rate_per_h,
        }

    def _severity(self, score: float, owners: int) -> str:
        cfg = self.config
        if score >= cfg.critical_score and owners >= cfg.critical_min_owners:
            return "critical"
        if score >= cfg.warning_score:
            return "warning"
        return "info"

    def _expand(self, episode: AlertEpisode, members: list[AccountState], now: float) -> None:
        """Add accounts tied to an alerted cluster by its own templates or payment methods.

        A *campaign template* is one whose users are mostly members of this
        cluster, so a popular public template never qualifies; accounts that
        send it for a good part of their traffic, or that pay with a member's
        payment method, join even if their own score stayed below the suspect
        bar (a stealthy account of a detected campaign).
        """
        cfg = self.config
        member_ids = set(episode.members)
        usage: dict[int, int] = {}
        for m in members:
            for tid, count in m.templates.items():
                usage[tid] = usage.get(tid, 0) + count
        campaign_templates = []
        for tid in ranked(usage, 32):
            users = self._templates.accounts(tid)
            if len(users) >= cfg.template_min_owners and \
                    len(users & member_ids) >= cfg.campaign_template_share * len(users):
                campaign_templates.append(tid)
        candidates: set[str] = set()
        for tid in campaign_templates:
            candidates |= self._templates.accounts(tid)
        paid_together: set[str] = set()
        payments_seen: set[str] = set()
        for m in members:
            pf = m.payment
            if pf is not None and pf not in payments_seen:
                payments_seen.add(pf)
                if _group_size(self._payments, pf) >= 2:
                    paid_together.update(_group_members(self._payment_accounts, pf))
        candidates |= paid_together
        candidates -= member_ids
        for account_id in sorted(candidates):
            acc = self._accounts.get(account_id)
            if acc is None or now - acc.last_t > cfg.suspect_ttl_s or \
                    self._member_episode.get(account_id) not in (None, episode.alert_id):
                continue
            on_campaign = 0
            used = acc.templates
            for tid in campaign_templates:
                on_campaign += used.get(tid, 0)
            tied = account_id in paid_together or (
                acc.n_hashed and on_campaign >= cfg.expand_template_share * acc.n_hashed)
            if tied and acc.score >= cfg.expand_min_score:
                episode.members[account_id] = round(acc.score, 4)
                self._join(account_id, episode.alert_id)

    def _update_episode(self, members: list[AccountState], owners: set[str],
                        features: dict[str, float], score: float, now: float,
                        out: list) -> AlertEpisode | None:
        cfg = self.config
        member_episode = self._member_episode
        # episodes the members belong to, with how many (in member order, as a Counter)
        overlap: dict[str, int] = {}
        for m in members:
            ep_id = member_episode.get(m.account_id)
            if ep_id is not None:
                overlap[ep_id] = overlap.get(ep_id, 0) + 1
        episode = None
        if overlap:
            # the episode holding the most members, ties to the one opened first
            order = {ep_id: i for i, ep_id in enumerate(self._episodes)}
            best = ""
            best_key: tuple[int, int] | None = None
            for ep_id, count in overlap.items():
                key = (-count, order.get(ep_id, 0))
                if best_key is None or key < best_key:
                    best, best_key = ep_id, key
            episode = self._episodes.get(best)
        # youth alone is not coordination: new honest accounts are common
        coordinated = max(features["balance"], features["shared_payment"],
                          features["synchrony"], features["egress_overlap"]) >= cfg.min_coordination
        # extraction is bulk harvesting: a handful of people at modest volume is not a campaign
        rate = features["request_rate"]
        bulk = rate >= cfg.min_cluster_rate_per_h or (
            len(owners) >= 5 and rate >= cfg.min_account_rate_per_h * len(members))
        # a card and an office shared by established accounts that neither share prompt
        # templates nor act in concert is what an organisation looks like (a research team
        # whose members signed up one by one), not a farm; a farm of aged accounts sharing
        # cards spreads its egress instead. Even volumes do not count against it: a
        # team's members can use the service as evenly as a scheduler spreads a farm's
        # calls (in the sweep, excess dispersion 0.32-1.2 for teams, 0.0-0.67 for farms)
        if features["synchrony"] < cfg.min_coordination and \
                features["youth"] < cfg.org_max_youth and \
                features["template_share"] < cfg.org_max_template_share and \
                features["egress_overlap"] >= cfg.org_min_egress_overlap:
            coordinated = False
        coordinated = coordinated and bulk
        if episode is None:
            if score < cfg.warning_score or not coordinated:
                return None
            first_seen = members[0].first_t
            for m in members:
                if m.first_t < first_seen:
                    first_seen = m.first_t
            episode = AlertEpisode.open("cluster", members[0].account_id, first_seen, "cluster")
            self._episodes[episode.alert_id] = episode
        alert_id = episode.alert_id
        scores = episode.members
        last_active_t = episode.last_active_t
        for m in members:
            scores[m.account_id] = round(m.score, 4)
            # self._join(m.account_id, alert_id), inlined (a member is a tracked account)
            member_episode[m.account_id] = alert_id
            m.cluster = alert_id
            if m.tick_models is None:
                m.tick_models = {}
            if m.last_t > last_active_t:
                last_active_t = m.last_t
        episode.last_active_t = last_active_t
        # absorb episodes this cluster now contains
        for other_id in sorted(overlap):
            if other_id == episode.alert_id or other_id not in self._episodes:
                continue
            other = self._episodes[other_id]
            inside = 0
            for a in other.members:
                if member_episode.get(a) == alert_id:
                    inside += 1
            if inside * 2 >= len(other.members):
                for a, s in other.members.items():
                    episode.members.setdefault(a, s)
                    self._join(a, episode.alert_id)
                gone = self._gone_owners.pop(other_id, None)
                if gone:
                    self._gone_owners.setdefault(episode.alert_id, set()).update(gone)
                other.notes.add(f"merged into {episode.alert_id}")
                self._close(other, now, out, reason=f"merged into {episode.alert_id}")
        # cot drift: a campaign turning to reasoning-trace extraction
        test = self._cot_tests.get(episode.alert_id)
        if test is None:
            test = self._cot_tests[episode.alert_id] = drift.PageHinkley(
                min_instances=4, delta=0.02, threshold=0.6, mode="up")
        test.update(features["cot"])
        phase_change = test.drift_detected and "cot_shift" not in episode.notes
        if phase_change:
            episode.notes.add("cot_shift")
        severity = self._severity(score, len(owners)) if coordinated else "info"
        if episode.seq and SEVERITY_RANK[episode.severity] >= SEVERITY_RANK["warning"]:
            # no flapping: a confirmed campaign stays actionable until it goes quiet
            severity = max(severity, "warning", key=SEVERITY_RANK.__getitem__)
        escalated = SEVERITY_RANK[severity] > SEVERITY_RANK[episode.severity]
        due = now - episode.last_emit_t >= cfg.update_interval_s
        grown = len(episode.members) >= max(episode.emitted_total + 5, episode.emitted_total * 1.1)
        episode.score = score
        episode.eval_t = now
        accounts = self._accounts
        all_owners = set()
        for a in scores:
            acc = accounts.get(a)
            if acc is not None:
                all_owners.add(acc.owner)
        all_owners.update(self._gone_owners.get(episode.alert_id, _EMPTY))
        self._cluster_view[episode.alert_id] = {"features": features, "owners": len(all_owners),
                                                "members": members}
        if episode.seq == 0:
            episode.severity = severity
            self._emit(episode, now, out)
        # (an update is also due for any member never named, at the update cadence: in a
        # cluster of a handful of accounts one or two late joiners are a good part of it)
        elif escalated or phase_change or (due and (grown or severity != episode.severity
                                                    or episode.unannounced() > 0)):
            episode.severity = max(severity, episode.severity, key=SEVERITY_RANK.__getitem__) \
                if escalated else severity
            self._emit(episode, now, out)
        return episode

    def _join(self, account_id: str, episode_id: str | None) -> None:
        """Record (or clear) the cluster episode an account belongs to."""
        acc = self._accounts.get(account_id)
        if episode_id is None:
            self._member_episode.pop(account_id, None)
            if acc is not None:
                acc.cluster = None
                acc.tick_models = None
            return
        self._member_episode[account_id] = episode_id
        if acc is not None:
            acc.cluster = episode_id
            if acc.tick_models is None:
                acc.tick_models = {}

    # -------------------------------------------------------------- pivots
    def _current_release(self, now: float) -> tuple[str, float] | None:
        best = None
        for model, t in self._releases.items():
            if t <= now and now - t <= self.config.pivot_horizon_s:
                if best is None or (t, model) > (best[1], best[0]):
                    best = (model, t)
        return best

    def _check_pivots(self, now: float, release: tuple[str, float],
                      cluster_models: dict[str, dict[str, int]], population: dict[str, int],
                      out: list) -> None:
        cfg = self.config
        model, release_t = release
        pop_new = population.get(model, 0)
        pop_total = sum(population.values())
        accounts = self._accounts
        for ep_id, episode in list(self._episodes.items()):
            if episode.kind != "cluster" or episode.first_seen >= release_t:
                continue
            key = (ep_id, model)
            test = self._pivot_tests.get(key)
            if test is None:
                test = self._pivot_tests[key] = PivotWatch(
                    min_excess=cfg.pivot_min_excess, ratio=cfg.pivot_ratio,
                    min_events=cfg.pivot_min_events)
            # the members' calls since the release, those they made before they joined
            # included (models.pivot.PivotWatch: the view besides this tick's calls)
            new = total = 0
            movers = {}
            for a, member_score in episode.members.items():
                acc = accounts.get(a)
                if acc is not None and acc.rel_t == release_t:
                    new += acc.rel_new
                    total += acc.rel_n
                    if acc.rel_new > 0:
                        movers[a] = member_score
            # the members' calls of this tick; the population baseline excludes them
            counts = cluster_models.get(ep_id, {})
            own_new, own_total = counts.get(model, 0), sum(counts.values())
            pivoting = test.update(own_new, own_total, new, total, pop_new - own_new,
                                   pop_total - own_total)
            pivot = self._pivot_episodes.get(key)
            if not pivoting and pivot is None:
                continue
            if pivot is None:
                pivot = AlertEpisode.open("pivot", ep_id, release_t, "cluster", scope=model)
                pivot.entity_id = episode.entity_id
                self._pivot_episodes[key] = pivot
            grew = len(movers) >= max(pivot.emitted_total + 5, pivot.emitted_total * 1.1)
            pivot.members.update(movers)
            pivot.last_active_t = now
            severity = "critical" if test.share >= 0.35 and len(movers) >= cfg.critical_min_owners \
                else "warning"
            pivot.score = min(1.0, test.share / max(0.5, 2 * test.population_share + 0.1))
            pivot.score = max(pivot.score, 0.5)
            escalated = SEVERITY_RANK[severity] > SEVERITY_RANK[pivot.severity]
            if pivot.seq == 0 or escalated or (
                    pivoting and grew and now - pivot.last_emit_t >= cfg.update_interval_s):
                pivot.severity = severity if pivot.seq == 0 or escalated else pivot.severity
                self._emit_pivot(pivot, episode, model, release_t, test, now, out)

    # ---------------------------------------------------------- lifecycle
    def _resolve_quiet(self, now: float, out: list) -> None:
        for episode in list(self._episodes.values()):
            if now - episode.last_active_t >= self.config.quiet_s:
                self._close(episode, now, out, reason="quiet")

    def _close(self, episode: AlertEpisode, now: float, out: list, reason: str) -> None:
        episode.status = "resolved"
        episode.notes.add(reason)
        self._emit(episode, now, out)
        self._episodes.pop(episode.alert_id, None)
        self._cot_tests.pop(episode.alert_id, None)
        self._cluster_view.pop(episode.alert_id, None)
        self._gone_owners.pop(episode.alert_id, None)
        for a in episode.members:
            if self._member_episode.get(a) == episode.alert_id:
                self._join(a, None)
        for key in [k for k in self._pivot_episodes if k[0] == episode.alert_id]:
            pivot = self._pivot_episodes.pop(key)
            self._pivot_tests.pop(key, None)
            pivot.status = "resolved"
            self._emit_pivot(pivot, episode, key[1], pivot.first_seen, None, now, out)

    def _evict(self, now: float) -> None:
        cutoff = now - self.config.idle_ttl_s
        stale = [a for a, acc in self._accounts.items() if acc.last_t < cutoff]
        member_episode = self._member_episode
        for account_id in stale:
            acc = self._accounts.pop(account_id)
            self._suspects.pop(account_id, None)
            ep_id = member_episode.get(account_id)
            if ep_id is not None:
                # an idle member of an open episode: its id stays in the episode (and
                # in _member_episode, so it rejoins if it comes back), its owner is
                # still counted, its state goes
                gone = self._gone_owners.get(ep_id)
                if gone is None:
                    gone = self._gone_owners[ep_id] = set()
                gone.add(acc.owner)
            if acc.payment is not None:
                _leave_group(self._payments, acc.payment, acc.owner)
                _leave_group(self._payment_accounts, acc.payment, account_id)
        self.stats.evicted_accounts += len(stale)
        templates = self._templates
        templates.expire(cutoff)
        accounts = self._accounts
        for groups in (self._proxy_stats, self._payment_stats):
            for key in [k for k, g in groups.items() if g.last_t < cutoff]:
                del groups[key]
        # a payment group's (and a template's) users are the tracked accounts that used
        # it; an egress network's, the tracked accounts that count it among their
        # networks (an account's mix keeps at most 2 * MAX_PROXIES of them)
        tracked = accounts.__contains__
        for group in self._payment_stats.values():
            aggregate.retain(group, tracked)
        for key, group in self._proxy_stats.items():
            aggregate.retain(group, partial(self._uses_network, key))
        templates.retain(self._owner_of)
        # an expired template id never comes back: drop it from the mixes that count it;
        # ids merged into another template resolve only while a mix or link key holds them
        held: set[int] = set()
        for acc in accounts.values():
            used = acc.templates
            if used:
                expired = [tid for tid in used if tid not in templates]
                if expired:
                    if len(expired) == len(used):
                        acc.templates = NO_COUNTS
                    else:
                        for tid in expired:
                            del used[tid]
                held.update(acc.templates)
            if acc.link_keys:
                held.update(k[1] for k in acc.link_keys if k[0] == "tpl")
        templates.forget_aliases(held)

    def _uses_network(self, key: str, account_id: str) -> bool:
        acc = self._accounts.get(account_id)
        return acc is not None and (acc.main_proxy == key or key in acc.proxies)

    def _owner_of(self, account_id: str) -> str | None:
        acc = self._accounts.get(account_id)
        return acc.owner if acc is not None else None

    # ------------------------------------------------------------ records
    def _count_alert(self, record: dict) -> None:
        key = f"{record['kind']}/{record['severity']}"
        self.stats.alerts[key] = self.stats.alerts.get(key, 0) + 1

    def _samples(self, account_ids) -> list[str]:
        samples: list[str] = []
        for a in account_ids:
            acc = self._accounts.get(a)
            if acc is not None and acc.last_event_id:
                samples.append(acc.last_event_id)
            if len(samples) >= 20:
                break
        return samples

    def _emit(self, episode: AlertEpisode, now: float, out: list) -> None:
        """Publish an update; a cluster with more new accounts than one record holds
        (``MAX_ACCOUNTS``) gets further records of the same update, seq after seq,
        until every member has been named once (up to ``MAX_PAGES`` records)."""
        view = self._cluster_view.get(episode.alert_id)
        evidence, summary = self._explain_cluster(episode, view)
        samples = self._samples(ranked(episode.members))
        for _ in range(MAX_PAGES):
            record = episode.record(
                detected_at=format_rfc3339(now), first_seen=format_rfc3339(episode.first_seen),
                summary=summary, evidence=evidence, samples=samples,
                version=self.config.detector_version)
            self._count_alert(record)
            out.append(("alert", record))
            if not episode.unannounced():
                break
        episode.last_emit_t = now

    def _emit_pivot(self, pivot: AlertEpisode, cluster: AlertEpisode, model: str, release_t: float,
                    test: PivotWatch | None, now: float, out: list) -> None:
        hours = (now - release_t) / 3600.0
        evidence = []
        if test is not None:
            minutes = test.lead.window_ticks * self.config.tick_s / 60.0
            evidence = [
                {"signal": "new_model_share", "value": round(test.share, 4),
                 "baseline": round(test.population_share, 4),
                 "detail": f"{test.share:.0%} of the cluster's traffic over the last "
                           f"{minutes:.0f} min"
                           + ("" if test.lead is test.active else
                              " (with the calls since the release of the members that joined "
                              "it then)")
                           + f" is on {model}, against {test.population_share:.0%} of all "
                             "traffic"},
                {"signal": "hours_since_release", "value": round(hours, 2), "baseline": None,
                 "detail": f"{model} was released {hours:.1f} h before this update"},
                {"signal": "accounts_moved", "value": len(pivot.members), "baseline": None,
                 "detail": f"{len(pivot.members)} of the cluster's {len(cluster.members)} "
                           f"accounts called {model}"},
            ]
        summary = (f"Campaign cluster {cluster.entity_id} pivoted to newly released {model}: "
                   f"{test.share:.0%} of its traffic within {hours:.1f} h of release "
                   f"(population {test.population_share:.0%})"
                   if test is not None else
                   f"Pivot of cluster {cluster.entity_id} to {model} resolved with its cluster")
        record = pivot.record(
            detected_at=format_rfc3339(now), first_seen=format_rfc3339(release_t),
            summary=summary, evidence=evidence, samples=self._samples(ranked(pivot.members)),
            version=self.config.detector_version)
        pivot.last_emit_t = now
        self._count_alert(record)
        out.append(("alert", record))

    def _explain_cluster(self, episode: AlertEpisode,
                         view: dict[str, Any] | None) -> tuple[list[dict], str]:
        ranked = self._cluster_scorer.contributions(view["features"]) if view else []
        return explain_cluster(episode, view, ranked, self._baseline, self._templates,
                               self._group_summary)

    # --------------------------------------------------------- checkpoints
    def __reduce__(self) -> tuple:
        # the same pickle from the compiled build (a cdef class: engine.pxd) and the
        # pure-Python one: the state in _FIELDS order
        return _restore_engine, (type(self), field_values(self, _FIELDS))

    # ------------------------------------------------------------- queries
    def applied_events(self) -> int:
        """Events applied to state so far (later ones wait for the watermark)."""
        self._catch_up()
        return self._applied

    def buffered_events(self) -> int:
        """Accepted events waiting for the watermark to pass them."""
        return len(self._buffer)

    def tracked_accounts(self) -> int:
        self._catch_up()
        return len(self._accounts)

    def tracked_groups(self) -> dict[str, int]:
        self._catch_up()
        return {"proxy": len(self._proxy_stats), "payment": len(self._payment_stats),
                "template": len(self._templates)}

    def group_summary(self, kind: str, key: str) -> dict[str, Any] | None:
        """Aggregate of one egress network (``kind="proxy"``) or payment fingerprint."""
        self._catch_up()
        return self._group_summary(kind, key)

    def _group_summary(self, kind: str, key: str) -> dict[str, Any] | None:
        groups = self._proxy_stats if kind == "proxy" else self._payment_stats
        state = groups.get(key)
        return aggregate.result(state) if state is not None else None

    def watermark(self) -> float:
        return self._watermark

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)


# every attribute of an Engine (tests/models/test_engine.py checks the list is complete)
_FIELDS = (
    "config", "stats", "_lateness_s", "_max_future_s", "_dedup_horizon_s", "_max_t",
    "_watermark", "_partitions", "_partition_max", "_idle", "_deferring", "_buffer",
    "_tail_t", "_tail_id", "_unsorted", "_due_from", "_due_at", "_dedup", "_next_tick",
    "_tick_index", "_tick_active", "_unscored", "_tick_models", "_tick_release", "_stream_start",
    "_accounts",
    "_suspects", "_payments", "_payment_accounts", "_proxy_stats", "_payment_stats",
    "_pop_tasks", "_models_first_seen", "_releases", "_explicit_releases", "_templates",
    "_egress", "_applied", "_scorer", "_cluster_scorer", "_cohort", "_baseline_sums",
    "_baseline_n", "_episodes", "_member_episode", "_pivot_tests", "_pivot_episodes",
    "_cot_tests", "_cluster_view", "_gone_owners",
)


def _restore_engine(cls: type[Engine], values: tuple) -> Engine:
    engine = restore_fields(cls, _FIELDS, values)
    engine._egress_cache = engine._egress._cache  # the hot-path alias
    return engine
