"""What a call asks for, without its text: task, features, SimHash, CoT score, tokens.

The SimHash model: a diverse human prompt is a fresh random 64-bit value; an
instance of a template is the template's base hash with 0..`noise_bits`
random bits flipped, so near-duplicates sit within a small Hamming distance.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

from .network import cumulative

__all__ = [
    "NORMAL",
    "NORMAL_BITS",
    "FeatureDraw",
    "Mix",
    "Template",
    "make_templates",
    "simhash_instance",
    "token_counts",
]

# Standard normal deviates at 2**14 quantiles: `NORMAL[rng.getrandbits(NORMAL_BITS)]` is a
# normal draw six times cheaper than `rng.gauss`, with tails cut near 3.9 sd.
NORMAL_BITS = 14
NORMAL = tuple(NormalDist().inv_cdf((i + 0.5) / (1 << NORMAL_BITS)) for i in range(1 << NORMAL_BITS))

# Per task: (median input tokens, log-sd, median output tokens, log-sd).
_TASK_TOKENS: dict[str, tuple[float, float, float, float]] = {
    "coding": (1800, 1.1, 600, 0.9),
    "agentic": (6000, 0.9, 400, 0.9),
    "reasoning": (600, 0.9, 1200, 0.8),
    "math": (300, 0.8, 900, 0.8),
    "vision": (1500, 0.6, 300, 0.8),
    "data_analysis": (3000, 1.0, 500, 0.8),
    "writing": (700, 1.0, 800, 0.8),
    "chat": (250, 1.0, 350, 0.9),
    "grading": (1200, 0.7, 250, 0.7),
    "other": (500, 1.1, 300, 1.0),
}
TOKEN_MODEL = {task: (math.log(mi), si, math.log(mo), so) for task, (mi, si, mo, so) in
               _TASK_TOKENS.items()}

# Per task: probability of each product feature on a call.
TASK_FEATURES: dict[str, dict[str, float]] = {
    "coding": {"tools": 0.25, "code_exec": 0.12, "files": 0.08, "extended_thinking": 0.08},
    "agentic": {"tools": 0.95, "computer_use": 0.12, "web_search": 0.25, "code_exec": 0.3,
                "files": 0.1},
    "reasoning": {"extended_thinking": 0.35},
    "math": {"extended_thinking": 0.3, "code_exec": 0.1},
    "vision": {"vision": 1.0, "files": 0.2},
    "data_analysis": {"files": 0.5, "code_exec": 0.45, "tools": 0.2},
    "writing": {"web_search": 0.05, "files": 0.05},
    "chat": {"web_search": 0.12, "files": 0.04},
    "grading": {},
    "other": {"tools": 0.05},
}
_FEATURE_ORDER = ("tools", "computer_use", "vision", "code_exec", "extended_thinking",
                  "web_search", "files", "batch")


class Mix:
    """A weighted choice among names.

    >>> Mix({"a": 1.0, "b": 0.0}).pick(random.Random(0))
    'a'
    """

    __slots__ = ("names", "_cum")

    def __init__(self, weights: Mapping[str, float]) -> None:
        items = [(name, w) for name, w in weights.items() if w > 0]
        self.names = tuple(name for name, _ in items)
        self._cum = cumulative([w for _, w in items])

    def pick(self, rng: random.Random) -> str:
        return self.names[bisect.bisect(self._cum, rng.random())]


class FeatureDraw:
    """Independent Bernoulli draws of features, sampled as one draw from their joint
    distribution; result tuples are shared objects.

    >>> draw = FeatureDraw({"vision": 1.0}, {"files": 0.0})
    >>> draw(random.Random(0))
    ('vision',)
    """

    __slots__ = ("_cum", "_outcomes")

    def __init__(self, *prob_maps: Mapping[str, float]) -> None:
        merged: dict[str, float] = {}
        for probs in prob_maps:
            for name, p in probs.items():
                merged[name] = 1.0 - (1.0 - merged.get(name, 0.0)) * (1.0 - min(1.0, p))
        names = [n for n in _FEATURE_ORDER if merged.get(n, 0.0) > 0.0]
        outcomes: list[tuple[str, ...]] = []
        weights: list[float] = []
        for mask in range(1 << len(names)):
            weight = 1.0
            for i, name in enumerate(names):
                weight *= merged[name] if mask >> i & 1 else 1.0 - merged[name]
            if weight > 0.0:
                outcomes.append(tuple(n for i, n in enumerate(names) if mask >> i & 1))
                weights.append(weight)
        self._outcomes = tuple(outcomes)
        self._cum = cumulative(weights)

    def __call__(self, rng: random.Random) -> tuple[str, ...]:
        return self._outcomes[bisect.bisect(self._cum, rng.random())]


def feature_draws(*extra: Mapping[str, float]) -> dict[str, FeatureDraw]:
    """One `FeatureDraw` per task, each merged with the `extra` probabilities."""
    return {task: FeatureDraw(probs, *extra) for task, probs in TASK_FEATURES.items()}


def simhash_instance(base: int, noise_bits: int, rng: random.Random) -> int:
    """`base` with 0..`noise_bits` random bits flipped.

    >>> rng = random.Random(3)
    >>> all(bin(simhash_instance(0, 4, rng)).count("1") <= 4 for _ in range(100))
    True
    """
    for _ in range(int(rng.random() * (noise_bits + 1))):
        base ^= 1 << int(rng.random() * 64)
    return base


def token_counts(task: str, cot: float, rng: random.Random) -> tuple[int, int]:
    """(input, output) tokens for a call; step-by-step answers run longer."""
    mu_in, s_in, mu_out, s_out = TOKEN_MODEL[task]
    tin = int(math.exp(mu_in + s_in * NORMAL[rng.getrandbits(14)]))
    tout = int(math.exp(mu_out + s_out * NORMAL[rng.getrandbits(14)]) * (1.0 + 1.5 * cot))
    tin = 8 if tin < 8 else (190_000 if tin > 190_000 else tin)
    tout = 1 if tout < 1 else (32_000 if tout > 32_000 else tout)
    return tin, tout


@dataclass(frozen=True)
class Template:
    """A prompt template: its SimHash, task and typical input length."""

    simhash: int
    task: str
    input_tokens: int


def make_templates(count: int, tasks: Mix, rng: random.Random) -> list[Template]:
    """`count` templates with tasks drawn from `tasks`."""
    out = []
    for _ in range(count):
        task = tasks.pick(rng)
        mu_in, s_in, _, _ = TOKEN_MODEL[task]
        length = int(math.exp(mu_in + 0.5 * s_in * rng.gauss(0.0, 1.0)))
        out.append(Template(rng.getrandbits(64), task, max(length, 40)))
    return out


def zipf_cumulative(count: int, exponent: float = 1.0) -> list[float]:
    """Cumulative Zipf weights for picking among `count` items (first most popular)."""
    return cumulative([1.0 / (i + 1) ** exponent for i in range(count)])
