"""Per-group aggregates: one egress network ("proxy") or one payment fingerprint.

Quix-style aggregator over plain data: ``initialize() -> state``,
``update(state, ...)`` per API call, ``result(state) -> dict`` when asked.
The state is a small record of plain values (a slotted object: less than
half a dict's memory, and cheaper to update) with a format version, so it
can be checkpointed and read back by a later version. Accounts are
remembered up to a cap (``MAX_ACCOUNTS``), and only while they are tracked:
the engine calls :func:`retain` when it evicts idle accounts, so a group that
lives for months (a NAT, a proxy pool) counts its current accounts, not every
account that ever used it.

>>> state = initialize(0.0)
>>> update(state, "a", 10.0, "coding", "m-3", 0.9, True)
>>> update(state, "b", 20.0, "coding", "m-4", None, False)
>>> out = result(state)
>>> out["requests"], out["accounts"], out["template_share"], out["cot_mean"], out["top_task"]
(2, 2, 0.5, 0.9, 'coding')
>>> retain(state, {"b"}.__contains__), account_count(state)
(1, 1)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from models._state import field_values, restore_fields
from models.ranking import by_value_desc

__all__ = ["STATE_VERSION", "MAX_ACCOUNTS", "GroupState", "account_count", "initialize", "update",
           "result", "retain"]

STATE_VERSION = 2  # 1 was a dict with the same fields
MAX_ACCOUNTS = 5000


class GroupState:
    """One group's counters (the fields of the version 1 dict, as attributes)."""

    __slots__ = ("v", "n", "templated", "cot_sum", "cot_n", "first_t", "last_t", "accounts",
                 "tasks", "models")

    def __init__(self, t: float) -> None:
        self.v = STATE_VERSION
        self.n = 0
        self.templated = 0
        self.cot_sum = 0.0
        self.cot_n = 0
        self.first_t = t
        self.last_t = t
        # no account yet (None), one (its id), or a set of them
        self.accounts: str | set[str] | None = None
        self.tasks: dict[str, int] = {}
        self.models: dict[str, int] = {}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> GroupState:
        """Read a version 1 (dict) state back."""
        group = cls(state["first_t"])
        for name in cls.__slots__[1:]:
            setattr(group, name, state[name])
        return group

    def __reduce__(self) -> tuple:
        # the same pickle from the compiled and the pure-Python build
        return _restore_group, (field_values(self, _FIELDS),)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other: object) -> bool:
        if type(other) is not GroupState:
            return NotImplemented
        return self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"GroupState(n={self.n}, accounts={account_count(self)}, last_t={self.last_t})"


_FIELDS = GroupState.__slots__


def _restore_group(values: tuple) -> GroupState:
    return restore_fields(GroupState, _FIELDS, values)


def initialize(t: float) -> GroupState:
    return GroupState(t)


def update(state: GroupState, account_id: str, t: float, task: str | None, model: str,
           cot: float | None, templated: bool) -> None:
    """Count one API call (positional arguments: this runs for every event; the
    compiled engine calls it as a C function, aggregate.pxd)."""
    state.n += 1
    state.last_t = t
    accounts = state.accounts
    if type(accounts) is set:
        if len(accounts) < MAX_ACCOUNTS:
            member_set = accounts
            member_set.add(account_id)
    elif accounts is None:
        state.accounts = account_id  # most groups only ever see one account
    elif accounts != account_id:
        state.accounts = {accounts, account_id}  # type: ignore[arg-type]
    if templated:
        state.templated += 1
    if cot is not None:
        state.cot_sum += cot
        state.cot_n += 1
    if task is not None:
        _bump(state.tasks, task)
    _bump(state.models, model)


def _bump(mix: dict, name: str) -> None:
    """Count ``name`` in a mix of at most 16 names (one shared copy of each name)."""
    count = mix.get(name)
    if count is not None:
        mix[name] = count + 1
    elif len(mix) < 16:
        mix[sys.intern(name)] = 1


def account_count(state: GroupState) -> int:
    """Distinct accounts seen (up to the cap)."""
    accounts = state.accounts
    return 0 if accounts is None else 1 if type(accounts) is str else len(accounts)


def retain(state: GroupState, tracked: Callable[[str], bool]) -> int:
    """Forget the accounts ``tracked`` says are gone; return how many were dropped."""
    accounts = state.accounts
    if accounts is None:
        return 0
    if not isinstance(accounts, set):  # one account, by its id
        if tracked(accounts):
            return 0
        state.accounts = None
        return 1
    gone = [a for a in accounts if not tracked(a)]
    if gone:
        accounts.difference_update(gone)
        if len(accounts) <= 1:
            state.accounts = next(iter(accounts), None)
    return len(gone)


def result(state: GroupState | dict[str, Any]) -> dict[str, Any]:
    if isinstance(state, dict):
        state = GroupState.from_dict(state)
    n = state.n
    tasks, models = state.tasks, state.models
    top_task = min(tasks.items(), key=by_value_desc)[0] if tasks else None
    top_model = min(models.items(), key=by_value_desc)[0] if models else None
    return {
        "requests": n,
        "accounts": account_count(state),
        "template_share": round(state.templated / n, 4) if n else 0.0,
        "cot_mean": round(state.cot_sum / state.cot_n, 4) if state.cot_n else None,
        "top_task": top_task,
        "top_task_share": round(tasks[top_task] / n, 4) if top_task else 0.0,
        "top_model": top_model,
        "first_t": state.first_t,
        "last_t": state.last_t,
    }
