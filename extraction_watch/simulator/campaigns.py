"""Extraction campaigns: one driver per campaign spreads work across its accounts.

A campaign is an operator with a global work rate, not a set of independent
people. The driver starts *episodes* (one prompt, or an agent loop of several
calls) at a steady rate or in coordinated waves, hands each to an account
(round-robin with probability `synchrony`, the load balancing seen in public
reports, otherwise at random), replaces "banned" accounts during the run
(`churn`), and after a model release moves `pivot_share` of new episodes to
the new model. Reasoning, agentic and hydra campaigns are this one driver
with different parameters.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from typing import Any

from .clock import DAY_MS, HOUR_MS, format_ms, week_profile
from .content import (
    NORMAL,
    Mix,
    Template,
    feature_draws,
    make_templates,
    simhash_instance,
    token_counts,
    zipf_cumulative,
)
from .network import Asn, official_client, random_ja4
from .sink import Ident, Profile
from .world import World

__all__ = ["CampaignDriver"]

Address = tuple[str, int | None]
_NEVER = 1 << 62
# Official software an attacker's client imitates on each path (User-Agent only).
_IMITATED = {"api": "sdk-python", "agent": "agent-cli", "chat": "chrome", "cloud": "cloud-gateway",
             "other": "requests"}


class CampaignAccount:
    __slots__ = ("ident", "prof", "address", "used")

    def __init__(self, ident: Ident, prof: Profile, address: Address | None) -> None:
        self.ident = ident
        self.prof = prof
        self.address = address  # None: each episode egresses from the campaign's pool
        self.used = False  # only an account that has worked gets banned


class CampaignDriver:
    """The operator of one campaign, an entity of the simulation loop."""

    def __init__(self, world: World, archetype: str, campaign_id: str, index: int,
                 cp: dict[str, Any]) -> None:
        self.world = world
        self.archetype = archetype
        self.campaign_id = campaign_id
        self.index = index
        self.cp = cp
        self.rng = rng = world.rng(f"campaign:{archetype}")
        self.sink = world.sink
        self.start_ms = world.at(cp["start_h"])
        end_h = cp["end_h"]
        self.end_ms = min(world.end_ms, world.at(end_h) if end_h is not None else world.end_ms)
        phase2_at = cp["phase2_at"]
        self.phase2_ms = (self.start_ms + int(phase2_at * (self.end_ms - self.start_ms))
                          if phase2_at is not None else _NEVER)
        self.pivot_start_ms = world.release_ms + int(cp["pivot_delay_h"] * HOUR_MS)
        self.pivot_ramp_ms = max(1, int(cp["pivot_ramp_h"] * HOUR_MS))
        pivots = self.start_ms <= world.release_ms < self.end_ms and self.pivot_start_ms < self.end_ms
        self.pivot_share = cp["pivot_share"] if pivots else 0.0

        # shared infrastructure of the operator
        ids = world.ids
        self.payments = [ids.payment(rng) for _ in range(max(1, cp["payment_methods"]))]
        self.orgs = [ids.org(rng) for _ in range(cp["orgs"])]
        self.custom_tls = [random_ja4(rng) for _ in range(max(1, cp["tls_fingerprints"]))]
        self.paths = Mix(cp["access_paths"])
        self.egress_pool, self._mixed_prefixes = self._build_egress()

        # content
        self.tasks = Mix(cp["task_mix"])
        self.templates = make_templates(cp["templates"], self.tasks, rng)
        self.phase2_tasks = Mix(cp["phase2_task_mix"])
        self.phase2_templates = make_templates(cp["phase2_templates"], self.phase2_tasks, rng)
        self.template_cum = zipf_cumulative(len(self.templates), 0.8) if self.templates else []
        self.phase2_cum = (zipf_cumulative(len(self.phase2_templates), 0.8)
                           if self.phase2_templates else [])
        self.features = feature_draws(cp["extra_features"])
        self.models = Mix(cp["models"])

        # timing
        per_episode = cp["calls_per_episode"]
        episodes_per_ms = cp["rate_per_hour"] / per_episode / HOUR_MS
        self.week = week_profile(cp["diurnal_amplitude"], 1.0)
        self.mod_max = max(self.week)
        self.tz_ms = int(cp["tz_offset_h"] * HOUR_MS)
        wave = cp["wave_size"] if cp["timing"] == "waves" else 1.0
        self.wave = max(1.0, wave)
        self.steady = cp["timing"] == "steady"
        self.wave_spread_ms = int(cp["wave_spread_s"] * 1000)
        # candidate dispatches per ms at the week's peak (thinned to the local hour)
        self.lam = episodes_per_ms / self.wave * self.mod_max
        self.regularity = cp["regularity"]
        self.call_gap_mu = math.log(max(0.2, cp["call_gap_s"]) * 1000.0)
        self.cot_sd = cp["cot_sd"]

        # accounts: an initial pool, then replacements for banned ones
        total = max(1, cp["accounts"])
        replacements = min(total - 1, round(total * cp["churn"]))
        self.pool = [self._new_account(self.start_ms) for _ in range(total - replacements)]
        self.account_ids = [a.ident[0] for a in self.pool]
        latest = max(self.start_ms, self.end_ms - 2 * HOUR_MS)
        self.replace_at = sorted(self.start_ms + int(rng.random() * (latest - self.start_ms))
                                 for _ in range(replacements))
        self._replaced = 0
        self.fresh: deque[CampaignAccount] = deque()
        self.rr = 0
        self.episodes: list[list[Any]] = []
        self._seq = 0
        self.next_arrival = self._next_arrival(self.start_ms - 1)
        self.next_ms = self.next_arrival

    # -- set-up ------------------------------------------------------------------------

    def _build_egress(self) -> tuple[list[Address], list[tuple[Asn, str]]]:
        cp, rng, net = self.cp, self.rng, self.world.internet
        if cp["egress"] == "proxy":
            return self.world.proxy_pool, []
        asns: list[Asn] = []
        for i in range(max(1, cp["egress_asns"])):
            if cp["egress"] == "datacenter" or i % 2 == 0:
                asn = net.pick_hosting(rng)
                if asn in asns and len(asns) < len(net.hosting):
                    asn = next(a for a in net.hosting if a not in asns)
            else:
                asn = net.pick_residential(rng)
            asns.append(asn)
        prefixes = [(asns[i % len(asns)], asns[i % len(asns)].prefix24(rng))
                    for i in range(max(1, cp["egress_prefixes"]))]
        # a fleet of a dozen hosts in each prefix
        pool: list[Address] = [(f"{prefix}.{rng.randint(1, 254)}", asn.number)
                               for asn, prefix in prefixes for _ in range(12)]
        return pool, prefixes

    def _new_account(self, at_ms: int, replacement: bool = False) -> CampaignAccount:
        cp, rng, ids = self.cp, self.rng, self.world.ids
        if replacement:
            lo, hi = cp["replacement_age_h"]
            created_ms = at_ms - int((lo + (hi - lo) * rng.random()) * HOUR_MS)
        else:
            lo, hi = cp["aged_age_days"] if rng.random() < cp["aged_share"] else cp["account_age_days"]
            created_ms = at_ms - int((lo + (hi - lo) * rng.random()) * DAY_MS)
        org_id: str | None = None
        if rng.random() < cp["org_share"]:
            org_id = self.orgs[int(rng.random() * len(self.orgs))] if self.orgs else ids.org(rng)
        ident: Ident = (ids.account(rng), org_id, format_ms(created_ms - created_ms % 1000))
        path = self.paths.pick(rng)
        if rng.random() < cp["custom_tls_share"]:
            tls: str | None = self.custom_tls[int(rng.random() * len(self.custom_tls))]
            _, ua = official_client(_IMITATED[path], rng)
        else:
            tls, ua = official_client(_IMITATED[path] if path != "api" else
                                      ("sdk-python", "sdk-typescript")[int(rng.random() * 2)], rng)
        key = ids.api_key(rng) if path in ("api", "agent", "other") else None
        payment = None if path == "cloud" else self.payments[int(rng.random() * len(self.payments))]
        address: Address | None = None
        if self._mixed_prefixes:
            asn, prefix = self._mixed_prefixes[int(rng.random() * len(self._mixed_prefixes))]
            address = (f"{prefix}.{rng.randint(1, 254)}", asn.number)
        return CampaignAccount(ident, (path, key, tls, ua, payment), address)

    # -- the simulation loop -----------------------------------------------------------

    def _next_arrival(self, t: int) -> int:
        rng, lam = self.rng, self.lam
        if lam <= 0:
            return _NEVER
        week, tz, mod_max, k = self.week, self.tz_ms, self.mod_max, self.regularity
        steady = self.steady
        while True:
            if steady:
                t += int(rng.gammavariate(k, 1.0 / k) / lam) + 1
            else:
                t += int(-math.log(1.0 - rng.random()) / lam) + 1
            if t >= self.end_ms:
                return _NEVER
            if mod_max == 1.0 or rng.random() * mod_max < week[((t + tz) // HOUR_MS + 72) % 168]:
                return t

    def _apply_churn(self, t: int) -> None:
        """Replace the accounts banned up to `t` with fresh ones."""
        replace_at, rng, pool = self.replace_at, self.rng, self.pool
        while self._replaced < len(replace_at) and replace_at[self._replaced] <= t:
            start = int(rng.random() * len(pool))
            slot = next((s % len(pool) for s in range(start, start + len(pool))
                         if pool[s % len(pool)].used), None)
            if slot is None:
                return  # nothing has worked yet, so nothing can have been banned
            self._replaced += 1
            account = self._new_account(t, replacement=True)
            self.account_ids.append(account.ident[0])
            pool[slot] = account
            self.fresh.append(account)

    def _pick_account(self) -> CampaignAccount:
        if self.fresh:
            account = self.fresh.popleft()  # a new account goes to work at once
        else:
            pool = self.pool
            if self.rng.random() < self.cp["synchrony"]:
                self.rr = (self.rr + 1) % len(pool)
                account = pool[self.rr]
            else:
                account = pool[int(self.rng.random() * len(pool))]
        account.used = True
        return account

    def _dispatch(self, t: int) -> None:
        rng, cp = self.rng, self.cp
        self._apply_churn(t)
        phase2 = t >= self.phase2_ms
        if phase2 and self.phase2_templates:
            templates, cum = self.phase2_templates, self.phase2_cum
        else:
            templates, cum = self.templates, self.template_cum
        tasks = self.phase2_tasks if phase2 else self.tasks
        cot_mean = cp["phase2_cot_mean"] if phase2 else cp["cot_mean"]
        size = 1 if self.steady else max(1, int(self.wave * (0.5 + rng.random()) + 0.5))
        for _ in range(size):
            account = self._pick_account()
            tpl: Template | None = None
            if templates and rng.random() < cp["templated_share"]:
                tpl = templates[bisect.bisect(cum, rng.random())]
                task = tpl.task
            else:
                task = tasks.pick(rng)
            model = self.models.pick(rng)
            if self.pivot_share > 0.0 and t >= self.pivot_start_ms:
                progress = min(1.0, (t - self.pivot_start_ms) / self.pivot_ramp_ms)
                if rng.random() < self.pivot_share * progress:
                    model = self.world.new_model
            if account.address is not None and rng.random() > 0.2:
                ip, asn = account.address
            else:
                ip, asn = self.egress_pool[int(rng.random() * len(self.egress_pool))]
            calls = 1
            if cp["calls_per_episode"] > 1:
                p = 1.0 / cp["calls_per_episode"]
                calls += int(math.log(1.0 - rng.random()) / math.log(1.0 - p))
            first = t + (int(rng.random() * self.wave_spread_ms) if self.wave_spread_ms else 0)
            self._seq += 1
            heapq.heappush(self.episodes,
                           [first, self._seq, account, calls, tpl, task, ip, asn, 0, 0, model, cot_mean])

    def _call(self, t: int) -> None:
        rng, cp = self.rng, self.cp
        episodes = self.episodes
        ep = episodes[0]
        _, _, account, left, tpl, task, ip, asn, prev_in, prev_out, model, cot_mean = ep
        cot = cot_mean + self.cot_sd * NORMAL[rng.getrandbits(14)]
        cot = 0.0 if cot < 0.0 else (1.0 if cot > 1.0 else cot)
        tin, tout = token_counts(task, cot, rng)
        if prev_in:  # the agent loop resends its growing context
            tin = min(190_000, prev_in + prev_out + int(math.exp(6.5 + 0.8 * NORMAL[rng.getrandbits(14)])))
        else:
            self.sink.seen.add(account.ident[0])
            if tpl is not None:
                tin = int(tpl.input_tokens * (0.9 + 0.4 * rng.random())) + tin // 8
        if tpl is not None:
            simhash = simhash_instance(tpl.simhash, cp["template_noise_bits"], rng)
        else:
            simhash = rng.getrandbits(64)
        self.sink.call(rng, self.index, t, account.ident, account.prof, ip, asn, model, task,
                       self.features[task](rng), simhash, cot, tin, tout)
        if left > 1:
            ep[0] = t + 300 + int(math.exp(self.call_gap_mu + 0.5 * NORMAL[rng.getrandbits(14)]))
            ep[3] = left - 1
            ep[8] = tin
            ep[9] = tout
            heapq.heapreplace(episodes, ep)
        else:
            heapq.heappop(episodes)

    def step(self, t: int) -> int:
        """Start the episodes or make the call due at `t`; return when the next is due."""
        episodes = self.episodes
        if self.next_arrival <= t and (not episodes or self.next_arrival <= episodes[0][0]):
            self._dispatch(t)
            self.next_arrival = self._next_arrival(t)
        else:
            self._call(t)
        nxt = self.next_arrival
        if episodes and episodes[0][0] < nxt:
            nxt = episodes[0][0]
        self.next_ms = nxt
        return nxt

    # -- ground truth ------------------------------------------------------------------

    def truth(self) -> dict[str, Any]:
        cp, world = self.cp, self.world
        seen = world.sink.seen
        pivot = None
        if self.pivot_share > 0:
            pivot = {
                "model": world.new_model,
                "release_at": format_ms(world.release_ms),
                "start": format_ms(self.pivot_start_ms),
                "target_share": self.pivot_share,
                "full_at": format_ms(self.pivot_start_ms + self.pivot_ramp_ms),
            }
        return {
            "id": self.campaign_id,
            "archetype": self.archetype,
            "accounts": sorted(a for a in self.account_ids if a in seen),
            "start": format_ms(self.start_ms),
            "end": format_ms(self.end_ms),
            "events": world.sink.counts[self.index],
            "pivot": pivot,
            "payment_methods": len(self.payments),
            "templates": len(self.templates) + len(self.phase2_templates),
            "phase2_at": format_ms(self.phase2_ms) if self.phase2_ms != _NEVER else None,
            "egress": cp["egress"],
        }

