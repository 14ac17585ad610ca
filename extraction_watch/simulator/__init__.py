"""A deterministic traffic simulator with ground truth for extraction-watch.

`simulate(scenario, seed, out_dir)` writes api_call v1 events
(``events.jsonl``, in time order), model releases (``releases.jsonl``) and the
ground truth (``truth.json``: campaigns, false-positive traps, dirty lines).
The same seed and parameters give byte-identical files; every shape of the
traffic is a parameter (see ``params.DEFAULTS`` and docs/scenarios.md).
"""

from .params import DEFAULTS, SCENARIOS, resolve_params, scenario_names
from .run import simulate

__all__ = ["DEFAULTS", "SCENARIOS", "resolve_params", "scenario_names", "simulate"]
