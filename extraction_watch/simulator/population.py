"""Ordinary customers: the benign population and the false-positive traps.

A `HumanAccount` works in sessions: bursts of calls seconds to minutes apart,
then hours idle. Session starts follow a non-homogeneous Poisson process
(thinning) driven by the account's local hour of the week and the global
surge after a release. Applications (`app=True`) are accounts that serve
their own users: one call per "session", higher volume, flatter day.

The traps are ordinary accounts with one property bent the way an attack
would bend it: a templated batch job, a shared NAT address, a taste for
step-by-step answers, a fast move to the new model, a proxy's egress, a
popular public template.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .clock import DAY_MS, HOUR_MS, format_ms, week_profile
from .content import (
    NORMAL,
    FeatureDraw,
    Mix,
    Template,
    feature_draws,
    make_templates,
    simhash_instance,
    token_counts,
)
from .network import client_for_path
from .sink import STATUS_NORMAL, STATUS_THROTTLED, Ident, Profile
from .world import TIMEZONES, World

__all__ = ["BatchJob", "HumanAccount", "HumanGroup", "build_population"]

Address = tuple[str, int | None]
_NEVER = 1 << 62


class HumanGroup:
    """What the accounts of one group share: random stream, rhythm and content model."""

    def __init__(self, world: World, name: str, index: int, bp: dict[str, Any],
                 tasks: dict[str, float] | None = None) -> None:
        self.world = world
        self.name = name
        self.index = index
        self.rng = world.rng(f"group:{name}")
        self.sink = world.sink
        self.end_ms = world.end_ms
        self.release_ms = world.release_ms
        self.new_model = world.new_model
        self.human_week = week_profile(bp["diurnal_amplitude"], bp["weekend_factor"])
        self.app_week = week_profile(bp["diurnal_amplitude"] * 0.5, (1.0 + bp["weekend_factor"]) / 2)
        self.tasks = Mix(tasks or bp["task_mix"])
        self.features: dict[str, FeatureDraw] = feature_draws()
        self.session_calls = bp["session_calls_mean"]
        self.agent_calls = bp["agent_session_calls_mean"]
        self.gap = (math.log(bp["call_gap_median_s"] * 1000.0), bp["call_gap_sigma"])
        self.agent_gap = (math.log(bp["agent_call_gap_median_s"] * 1000.0), 0.6)
        self.accounts: list[HumanAccount] = []


@dataclass
class Org:
    org_id: str
    payment: str
    office: Address
    size: int


class HumanAccount:
    """A person or an application using the API in sessions."""

    __slots__ = (
        "g", "next_ms", "ident", "profiles", "ips", "ip_primary_p", "week", "tz_ms", "lam",
        "mod_max", "app", "left", "cur_prof", "cur_ip", "cur_asn", "cur_agent", "task", "task_p",
        "model", "adopt_mid", "adopt_inv_w", "adopt_max", "templates", "tmpl_share", "noise",
        "cot_bias", "cot_sd", "status_cut",
    )

    def __init__(self, g: HumanGroup, ident: Ident, profiles: Sequence[Profile],
                 ips: Sequence[Address]) -> None:
        self.g = g
        self.next_ms = _NEVER
        self.ident = ident
        self.profiles = tuple(profiles)
        self.ips = ips
        self.ip_primary_p = 0.8
        self.week = g.human_week
        self.tz_ms = 0
        self.lam = 0.0  # candidate session starts per ms, at the week's and surge's peak
        self.mod_max = 1.0
        self.app = False
        self.left = 0
        self.cur_prof = self.profiles[0]
        self.cur_ip, self.cur_asn = ips[0]
        self.cur_agent = False
        self.task = "chat"
        self.task_p = 0.5
        self.model = "claude-sim-3"
        self.adopt_mid = 0
        self.adopt_inv_w = 0.0
        self.adopt_max = 0.0
        self.templates: tuple[Template, ...] = ()
        self.tmpl_share = 0.0
        self.noise = 3
        self.cot_bias = 0.0
        self.cot_sd = 0.0
        self.status_cut = STATUS_NORMAL

    def set_rate(self, requests_per_day: float, active_from: int) -> None:
        """Set the volume and schedule the first session at or after `active_from`."""
        g = self.g
        mean_calls = 1.0 if self.app else (g.agent_calls if self.profiles[0][0] == "agent"
                                           else g.session_calls)
        self.mod_max = max(self.week) * g.world.surge_factor
        self.lam = requests_per_day / mean_calls / DAY_MS * self.mod_max
        self.left = 0
        self.next_ms = self._next_session(active_from)

    def _next_session(self, t: int) -> int:
        g = self.g
        rng = g.rng
        lam, week, tz, mod_max, end, surge = self.lam, self.week, self.tz_ms, self.mod_max, g.end_ms, g.world.surge
        if lam <= 0:
            return _NEVER
        while True:
            t += int(-math.log(1.0 - rng.random()) / lam) + 1
            if t >= end:
                return _NEVER
            level = week[((t + tz) // HOUR_MS + 72) % 168] * surge(t)
            if rng.random() * mod_max < level:
                return t

    def _begin_session(self) -> None:
        g = self.g
        rng = g.rng
        profiles = self.profiles
        if len(profiles) == 1 or rng.random() < 0.85:
            self.cur_prof = profiles[0]
        else:
            self.cur_prof = profiles[1 + int(rng.random() * (len(profiles) - 1))]
        ips = self.ips
        if rng.random() < self.ip_primary_p:
            self.cur_ip, self.cur_asn = ips[0]
        else:
            self.cur_ip, self.cur_asn = ips[int(rng.random() * len(ips))]
        self.cur_agent = self.cur_prof[0] == "agent"
        g.sink.seen.add(self.ident[0])
        mean = 1.0 if self.app else (g.agent_calls if self.cur_agent else g.session_calls)
        self.left = 1 + (int(math.log(1.0 - rng.random()) / math.log(1.0 - 1.0 / mean)) if mean > 1 else 0)

    def step(self, t: int) -> int:
        """Make the call due at `t`; return when the next one is due."""
        g = self.g
        rng = g.rng
        if self.left <= 0:
            self._begin_session()
        model = self.model
        if self.adopt_max > 0.0 and t >= g.release_ms:
            x = (t - self.adopt_mid) * self.adopt_inv_w
            if x > -30.0 and rng.random() * (1.0 + math.exp(-x)) < self.adopt_max:
                model = g.new_model
        templates = self.templates
        if templates and rng.random() < self.tmpl_share:
            tpl = templates[int(rng.random() * len(templates))]
            task = tpl.task
            simhash = simhash_instance(tpl.simhash, self.noise, rng)
        else:
            tpl = None
            if self.cur_agent:
                task = "agentic" if rng.random() < 0.55 else "coding"
            elif rng.random() < self.task_p:
                task = self.task
            else:
                task = g.tasks.pick(rng)
            simhash = rng.getrandbits(64)
        if self.cot_sd > 0.0:
            cot = self.cot_bias + self.cot_sd * NORMAL[rng.getrandbits(14)]
            cot = 0.0 if cot < 0.0 else (1.0 if cot > 1.0 else cot)
        else:
            u = rng.random()
            cot = u * u * u * 0.3 + self.cot_bias
            if cot > 1.0:
                cot = 1.0
        tin, tout = token_counts(task, cot, rng)
        if tpl is not None:
            tin = int(tpl.input_tokens * (0.9 + 0.4 * rng.random())) + tin // 8
        g.sink.call(rng, g.index, t, self.ident, self.cur_prof, self.cur_ip, self.cur_asn, model,
                    task, g.features[task](rng), simhash, cot, tin, tout, self.status_cut)
        self.left -= 1
        if self.left > 0:
            mu, sigma = g.agent_gap if self.cur_agent else g.gap
            nxt = t + 500 + int(math.exp(mu + sigma * NORMAL[rng.getrandbits(14)]))
        else:
            nxt = self._next_session(t)
        self.next_ms = nxt
        return nxt


class BatchJob:
    """An enterprise batch: one template at high volume inside a daily window."""

    __slots__ = ("g", "next_ms", "ident", "profiles", "ip", "asn", "template", "noise", "task",
                 "features", "lam", "window_start_ms", "window_ms", "tz_ms")

    def __init__(self, g: HumanGroup, ident: Ident, profiles: Sequence[Profile], address: Address,
                 template: Template, noise: int, rate_per_hour: float, window_local_start_h: float,
                 window_h: float, tz_offset_h: float) -> None:
        self.g = g
        self.ident = ident
        self.profiles = tuple(profiles)
        self.ip, self.asn = address
        self.template = template
        self.noise = noise
        self.task = template.task
        self.features = ("batch",)
        self.lam = rate_per_hour / HOUR_MS
        self.window_start_ms = int(window_local_start_h * HOUR_MS)
        self.window_ms = int(window_h * HOUR_MS)
        self.tz_ms = int(tz_offset_h * HOUR_MS)
        self.next_ms = self._advance(g.world.start_ms) if self.lam > 0 and self.window_ms > 0 else _NEVER

    def _advance(self, t: int) -> int:
        rng = self.g.rng
        t += int(-math.log(1.0 - rng.random()) / self.lam) + 1
        local = t + self.tz_ms
        day = local // DAY_MS * DAY_MS
        start = day + self.window_start_ms
        if local < start:
            local = start + int(-math.log(1.0 - rng.random()) / self.lam)
        elif local >= start + self.window_ms:
            local = start + DAY_MS + int(-math.log(1.0 - rng.random()) / self.lam)
        t = local - self.tz_ms
        return t if t < self.g.end_ms else _NEVER

    def step(self, t: int) -> int:
        g = self.g
        rng = g.rng
        tpl = self.template
        tin = tpl.input_tokens + int(math.exp(6.4 + 0.6 * NORMAL[rng.getrandbits(14)]))
        tout = int(math.exp(4.8 + 0.5 * NORMAL[rng.getrandbits(14)]))
        prof = self.profiles[int(rng.random() * len(self.profiles))]
        g.sink.seen.add(self.ident[0])
        g.sink.call(rng, g.index, t, self.ident, prof, self.ip, self.asn, "claude-sim-3", self.task,
                    self.features, simhash_instance(tpl.simhash, self.noise, rng),
                    rng.random() * 0.03, tin, tout, STATUS_THROTTLED)
        self.next_ms = nxt = self._advance(t)
        return nxt


# ----------------------------------------------------------------------------------------
# Building the population


def _pick_tz_ms(rng: random.Random) -> int:
    u = rng.random() * sum(w for _, w in TIMEZONES)
    for offset, weight in TIMEZONES:
        u -= weight
        if u < 0:
            return int(offset * HOUR_MS)
    return 0


def _created_at(world: World, rng: random.Random, age_days: float) -> str:
    ms = world.start_ms - int(age_days * DAY_MS)
    return format_ms(ms - ms % 1000)


def _profiles(world: World, rng: random.Random, paths: Mix, payment: str | None,
              primary: str | None = None) -> list[Profile]:
    """Client profiles of one account: a primary access path and maybe a second one."""
    ids = world.ids
    first = primary or paths.pick(rng)
    chosen = [first]
    if rng.random() < 0.3:
        other = paths.pick(rng)
        if other != first:
            chosen.append(other)
    out: list[Profile] = []
    for path in chosen:
        tls: str | None
        ua: str | None
        tls, ua = client_for_path(path, rng)
        if rng.random() < 0.01:
            tls = None
        if rng.random() < 0.005:
            ua = None
        key = ids.api_key(rng) if path in ("api", "agent", "other") else None
        pay = None if path == "cloud" else payment
        out.append((path, key, tls, ua, pay))
        if key is not None and rng.random() < 0.2:  # a second key, e.g. staging vs production
            out.append((path, ids.api_key(rng), tls, ua, pay))
    return out


def _home_addresses(world: World, rng: random.Random, bp: dict[str, Any], datacenter: bool,
                    previous: Address | None) -> list[Address]:
    net = world.internet
    if previous is not None and rng.random() < bp["shared_ip_share"]:
        home = previous  # a household or small office shared by two accounts
    elif datacenter:
        home = net.hosting_ip(rng)
    else:
        home = net.residential_ip(rng, bp["ipv6_share"])
    out: list[Address] = [home]
    if not datacenter and rng.random() < 0.35:
        out.append(net.mobile_ip(rng))
    if rng.random() < 0.15:
        out.append(net.residential_ip(rng, bp["ipv6_share"]))  # travel, a second office
    if rng.random() < 0.005:
        out = [(ip, None) for ip, _ in out]  # unknown to the ASN database
    return out


def standard_account(world: World, g: HumanGroup, bp: dict[str, Any], models: Mix, paths: Mix,
                     org: Org | None = None, previous: Address | None = None,
                     requests_per_day_median: float | None = None,
                     adjust: Callable[[HumanAccount], None] | None = None,
                     allow_app: bool = True, rate_sigma: float | None = None) -> HumanAccount:
    """An ordinary account drawn from the benign population's distributions.

    `adjust` bends the account (a trap) before its first session is scheduled.
    """
    rng = g.rng
    ids = world.ids
    app = allow_app and rng.random() < bp["app_share"]
    primary = "api" if app else paths.pick(rng)
    payment: str | None
    if org is not None:
        payment = org.payment if rng.random() < 0.9 else ids.payment(rng)
    elif primary == "chat" and rng.random() < 0.3:
        payment = None  # free tier
    else:
        payment = ids.payment(rng)
    profiles = _profiles(world, rng, paths, payment, primary)
    datacenter = app or (primary == "api" and rng.random() < bp["datacenter_share"])
    ips = _home_addresses(world, rng, bp, datacenter, previous)
    if org is not None and rng.random() < 0.6:
        ips.insert(0, org.office)
    new_account = rng.random() < bp["new_account_share"]
    if new_account:
        created_ms = world.start_ms + int(rng.random() * (world.end_ms - world.start_ms))
        created = format_ms(created_ms - created_ms % 1000)
    else:
        age = min(1800.0, max(2.0, bp["account_age_median_days"] * math.exp(0.9 * rng.gauss(0.0, 1.0))))
        created_ms = world.start_ms
        created = _created_at(world, rng, age)
    ident: Ident = (ids.account(rng), org.org_id if org else None,
                    None if rng.random() < 0.002 else created)
    acct = HumanAccount(g, ident, profiles, ips)
    acct.app = app
    acct.tz_ms = _pick_tz_ms(rng)
    acct.task = g.tasks.pick(rng)
    acct.task_p = 0.3 + 0.5 * rng.random()
    acct.model = models.pick(rng)
    if rng.random() < bp["adopter_share"]:
        delay_h = bp["adoption_median_h"] * math.exp(bp["adoption_sigma"] * rng.gauss(0.0, 1.0))
        acct.adopt_mid = world.release_ms + int(delay_h * HOUR_MS)
        acct.adopt_inv_w = 1.0 / (bp["adoption_width_h"] * (0.5 + rng.random()) * HOUR_MS)
        acct.adopt_max = bp["adoption_max_share"] * (0.5 + 0.5 * rng.random())
    if app:
        acct.week = g.app_week
        acct.templates = tuple(make_templates(1 + int(rng.random() * 2), g.tasks, rng))
        acct.tmpl_share = bp["app_template_share"]
        acct.noise = bp["app_template_noise_bits"]
        acct.ip_primary_p = 0.97
        median = bp["app_requests_per_day_median"]
    else:
        count = int(rng.random() * (bp["templates_max"] + 1))
        acct.templates = tuple(make_templates(count, g.tasks, rng))
        acct.tmpl_share = min(1.0, bp["template_share"] * 2.0 * rng.random())
        acct.noise = bp["template_noise_bits"]
        median = bp["requests_per_day_median"]
    if requests_per_day_median is not None:
        median = requests_per_day_median
    u = rng.random()
    if u < 0.03:
        acct.cot_bias = 0.35 + 0.25 * rng.random()
    elif u < 0.03 + bp["cot_moderate_share"]:
        acct.cot_bias = 0.1 + 0.25 * rng.random()
    sigma = bp["requests_per_day_sigma"] if rate_sigma is None else rate_sigma
    rate = min(5000.0, median * math.exp(sigma * rng.gauss(0.0, 1.0)))
    if adjust is not None:
        adjust(acct)
    acct.set_rate(rate, max(world.start_ms, created_ms) - 1)
    g.accounts.append(acct)
    return acct


def _new_org(world: World, rng: random.Random, bp: dict[str, Any], size: int,
             kind: str = "enterprise") -> Org:
    net = world.internet
    office_asn = net.new_asn(kind, 1) if kind != "residential" else net.pick_residential(rng)
    office = (office_asn.ipv4(rng), office_asn.number)
    return Org(world.ids.org(rng), world.ids.payment(rng), office, size)


def _build_benign(world: World, g: HumanGroup, bp: dict[str, Any], models: Mix, paths: Mix) -> None:
    rng = g.rng
    org: Org | None = None
    members = 0
    previous: Address | None = None
    for _ in range(bp["accounts"]):
        member_of = None
        if rng.random() < bp["org_share"]:
            if org is None or members >= org.size:
                size = 2 + int(-math.log(1.0 - rng.random()) * max(0.0, bp["org_size_mean"] - 2.0))
                kind = "residential" if size <= 3 else "enterprise"
                org, members = _new_org(world, rng, bp, size, kind), 0
            member_of, members = org, members + 1
        acct = standard_account(world, g, bp, models, paths, member_of, previous)
        previous = acct.ips[0]


def build_population(world: World, groups: dict[str, int]) -> tuple[list[Any], dict[str, list[HumanGroup]]]:
    """Entities of the benign population and the enabled traps.

    `groups` maps group names to sink indices; returns the entities and, per
    group name, the `HumanGroup`s whose accounts belong to it.
    """
    params = world.params
    bp = params["benign"]
    models = Mix(bp["models"])
    paths = Mix(bp["access_paths"])
    entities: list[Any] = []
    owners: dict[str, list[HumanGroup]] = {}

    g = HumanGroup(world, "benign", groups["benign"], bp)
    _build_benign(world, g, bp, models, paths)
    owners["benign"] = [g]

    def trap(name: str, tasks: dict[str, float] | None = None) -> HumanGroup | None:
        if name not in groups:
            return None
        group = HumanGroup(world, name, groups[name], bp, tasks)
        owners[name] = [group]
        return group

    p = params["enterprise_batch"]
    g_ent = trap("enterprise_batch")
    if g_ent is not None:
        rng = g_ent.rng
        org = _new_org(world, rng, bp, p["accounts"], "enterprise")
        egress = org.office
        tpl_task = Mix({p["task"]: 1.0})
        template = make_templates(1, tpl_task, rng)[0]
        for _ in range(p["accounts"]):
            created = _created_at(world, rng, p["account_age_days"] * (0.8 + 0.4 * rng.random()))
            ident: Ident = (world.ids.account(rng), org.org_id, created)
            tls, ua = client_for_path("api", rng)
            keys = [("api", world.ids.api_key(rng), tls, ua, org.payment) for _ in range(max(1, p["api_keys"]))]
            entities.append(BatchJob(g_ent, ident, keys, egress, template, p["template_noise_bits"],
                                     p["rate_per_hour"] / p["accounts"], p["window_local_start_h"],
                                     p["window_h"], p["tz_offset_h"]))
            # the same account's everyday developer traffic, from the same office
            dev = HumanAccount(g_ent, ident, keys[:1], [egress])
            dev.tz_ms = int(p["tz_offset_h"] * HOUR_MS)
            dev.ip_primary_p = 1.0
            dev.task = p["task"]
            dev.task_p = 0.5
            dev.templates = (template,)
            dev.tmpl_share = 0.3
            dev.noise = p["template_noise_bits"]
            dev.set_rate(p["requests_per_day_median"], world.start_ms - 1)
            g_ent.accounts.append(dev)

    p = params["nat"]
    g_nat = trap("nat")
    if g_nat is not None:
        rng = g_nat.rng
        campus = world.internet.new_asn("campus", 1)
        nat_ips: list[Address] = [(campus.ipv4(rng), campus.number) for _ in range(max(1, p["ips"]))]
        university = _new_org(world, rng, bp, p["accounts"], "campus")
        nat_paths = Mix({"chat": 0.6, "api": 0.3, "agent": 0.1})
        tz_nat = int(p["tz_offset_h"] * HOUR_MS)

        def behind_nat(acct: HumanAccount) -> None:
            acct.ips = nat_ips
            acct.ip_primary_p = 0.0
            acct.tz_ms = tz_nat

        for _ in range(p["accounts"]):
            standard_account(world, g_nat, bp, models, nat_paths,
                             university if rng.random() < 0.4 else None,
                             requests_per_day_median=p["requests_per_day_median"],
                             adjust=behind_nat, allow_app=False)
        world.nat_ips = [ip for ip, _ in nat_ips]

    p = params["research_team"]
    g_res = trap("research_team", p["task_mix"])
    if g_res is not None:
        rng = g_res.rng
        lab = _new_org(world, rng, bp, p["accounts"], "enterprise")
        tz_ms = _pick_tz_ms(rng)
        team_rng = rng

        def researcher(acct: HumanAccount) -> None:
            age = 365 + 700 * team_rng.random()
            org_id = lab.org_id if p["shared_org"] else None
            acct.ident = (acct.ident[0], org_id, _created_at(world, team_rng, age))
            acct.profiles = tuple(pr[:4] + (lab.payment,) for pr in acct.profiles)
            acct.ips = [lab.office, *acct.ips]
            acct.ip_primary_p = 0.85
            acct.tz_ms = tz_ms
            acct.task_p = 0.0
            acct.templates = ()
            acct.cot_bias = p["cot_mean"]
            acct.cot_sd = p["cot_sd"]

        for _ in range(p["accounts"]):
            standard_account(world, g_res, bp, models, Mix({"api": 0.7, "chat": 0.3}),
                             requests_per_day_median=p["requests_per_day_median"],
                             adjust=researcher, allow_app=False, rate_sigma=p["rate_sigma"])

    p = params["fast_adopters"]
    g_fast = trap("fast_adopters")
    if g_fast is not None:
        rng = g_fast.rng
        delay_ms = int(max(0.0, p["delay_h_max"] - 0.25) * HOUR_MS)

        def early_adopter(acct: HumanAccount) -> None:
            acct.adopt_mid = world.release_ms + HOUR_MS // 4 + int(rng.random() * delay_ms)
            acct.adopt_inv_w = 1.0 / (0.15 * HOUR_MS)
            acct.adopt_max = p["new_model_share"]

        for _ in range(p["accounts"]):
            standard_account(world, g_fast, bp, models, paths, adjust=early_adopter,
                             requests_per_day_median=p["requests_per_day_median"])

    p = params["proxy_customers"]
    g_proxy = trap("proxy_customers")
    if g_proxy is not None:
        def via_proxy(acct: HumanAccount) -> None:
            acct.ips = world.proxy_pool
            acct.ip_primary_p = 0.0

        for _ in range(p["accounts"]):
            standard_account(world, g_proxy, bp, models, paths, adjust=via_proxy,
                             requests_per_day_median=p["requests_per_day_median"])

    p = params["popular_template"]
    g_pop = trap("popular_template")
    if g_pop is not None:
        # a well-known tool's prompt: the same text for every user of the tool
        public = make_templates(1, Mix({"coding": 1.0}), world.rng("public-template"))
        share, noise = p["template_share"], p["template_noise_bits"]

        def tool_user(acct: HumanAccount) -> None:
            acct.templates = tuple(public)
            acct.tmpl_share = share
            acct.noise = noise

        for _ in range(p["accounts"]):
            standard_account(world, g_pop, bp, models, paths, adjust=tool_user,
                             requests_per_day_median=p["requests_per_day_median"])

    for group_list in owners.values():
        for group in group_list:
            entities.extend(group.accounts)
    return entities, owners
