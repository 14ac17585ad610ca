"""Per-group aggregates: one egress network ("proxy") or one payment fingerprint.

Quix-style aggregator over plain data: ``initialize() -> state``,
``update(state, ...)`` per API call, ``result(state) -> dict`` when asked.
The state is a small dict with a format version, so it can be checkpointed
and read back by a later version. Accounts are remembered up to a cap.

>>> state = initialize(0.0)
>>> update(state, "a", 10.0, "coding", "m-3", 0.9, True)
>>> update(state, "b", 20.0, "coding", "m-4", None, False)
>>> out = result(state)
>>> out["requests"], out["accounts"], out["template_share"], out["cot_mean"], out["top_task"]
(2, 2, 0.5, 0.9, 'coding')
"""

from __future__ import annotations

from typing import Any

__all__ = ["STATE_VERSION", "MAX_ACCOUNTS", "initialize", "update", "result"]

STATE_VERSION = 1
MAX_ACCOUNTS = 5000


def initialize(t: float) -> dict[str, Any]:
    return {"v": STATE_VERSION, "n": 0, "templated": 0, "cot_sum": 0.0, "cot_n": 0,
            "first_t": t, "last_t": t, "accounts": set(), "tasks": {}, "models": {}}


def update(state: dict[str, Any], account_id: str, t: float, task: str | None, model: str,
           cot: float | None, templated: bool) -> None:
    """Count one API call (positional arguments: this runs for every event)."""
    state["n"] += 1
    state["last_t"] = t
    accounts = state["accounts"]
    if len(accounts) < MAX_ACCOUNTS:
        accounts.add(account_id)
    if templated:
        state["templated"] += 1
    if cot is not None:
        state["cot_sum"] += cot
        state["cot_n"] += 1
    if task is not None:
        tasks = state["tasks"]
        if task in tasks or len(tasks) < 16:
            tasks[task] = tasks.get(task, 0) + 1
    models = state["models"]
    if model in models or len(models) < 16:
        models[model] = models.get(model, 0) + 1


def result(state: dict[str, Any]) -> dict[str, Any]:
    n = state["n"]
    tasks, models = state["tasks"], state["models"]
    top_task = min(tasks.items(), key=lambda kv: (-kv[1], kv[0]))[0] if tasks else None
    top_model = min(models.items(), key=lambda kv: (-kv[1], kv[0]))[0] if models else None
    return {
        "requests": n,
        "accounts": len(state["accounts"]),
        "template_share": round(state["templated"] / n, 4) if n else 0.0,
        "cot_mean": round(state["cot_sum"] / state["cot_n"], 4) if state["cot_n"] else None,
        "top_task": top_task,
        "top_task_share": round(tasks[top_task] / n, 4) if top_task else 0.0,
        "top_model": top_model,
        "first_t": state["first_t"],
        "last_t": state["last_t"],
    }
