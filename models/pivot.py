"""Pivot detection: a cluster moving its traffic to a newly released model.

Everyone adopts a new model eventually, and the whole population surges after
a release, so the detector follows the cluster's *excess* share on the new
model (cluster share minus population share) per tick. Before the release
that excess is zero by definition; a River Page-Hinkley test then looks for
an upward change, and the pivot is declared when the change is confirmed by
an excess share that is large in absolute terms, well above the population's
share, and significant (a two-proportion z-test over the window).

>>> det = PivotDetector(min_events=20)
>>> [det.update(0, 50, 10, 1000) for _ in range(3)]
[False, False, False]
>>> fired = [det.update(25, 50, 50, 1000) for _ in range(3)]
>>> fired[-1], round(det.share, 2)
(True, 0.5)
"""

from __future__ import annotations

import math
from collections import deque

from river import drift

__all__ = ["PivotDetector", "PivotWatch"]


class PivotDetector:
    """Page-Hinkley change-point on a cluster's excess share of a new model.

    Parameters
    ----------
    min_excess
        Cluster share minus population share (over the window) needed.
    ratio
        Cluster share must exceed ``ratio`` times the population share.
    min_z
        Two-proportion z statistic needed (cluster against population).
    min_events
        Cluster events needed in the window.
    window_ticks
        Ticks the shares are measured over.
    threshold, delta
        Page-Hinkley parameters, on excess share per tick.
    baseline_ticks
        Zero-excess ticks fed first: before a release nobody used the model.
    """

    def __init__(
        self,
        min_excess: float = 0.08,
        ratio: float = 1.5,
        min_z: float = 4.0,
        min_events: int = 30,
        window_ticks: int = 3,
        threshold: float = 0.08,
        delta: float = 0.005,
        baseline_ticks: int = 12,
    ):
        self.min_excess = min_excess
        self.ratio = ratio
        self.min_z = min_z
        self.min_events = min_events
        self.window_ticks = window_ticks
        self.threshold = threshold
        self.delta = delta
        self.baseline_ticks = baseline_ticks
        self._test = drift.PageHinkley(
            min_instances=baseline_ticks, delta=delta, threshold=threshold, mode="up"
        )
        for _ in range(baseline_ticks):
            self._test.update(0.0)
        self._window: deque[tuple[int, int, int, int]] = deque(maxlen=window_ticks)
        self._changed = False
        self._new_seen = self._total_seen = 0
        self.share = 0.0
        self.population_share = 0.0
        self.events = 0
        self.z = 0.0

    def update_totals(self, new_total: int, total: int, population_new: int,
                      population_total: int) -> bool:
        """:meth:`update` from the cluster's running totals since the release (this
        tick's part is what they grew by; a total that shrank, members gone, adds 0)."""
        new = max(0, new_total - self._new_seen)
        calls = max(new, total - self._total_seen)
        self._new_seen, self._total_seen = new_total, total
        return self.update(new, calls, population_new, population_total)

    def update(self, new: int, total: int, population_new: int, population_total: int) -> bool:
        """Feed one tick of counts; return True while a pivot is established."""
        self._window.append((new, total, population_new, population_total))
        if total > 0 and population_total > 0:
            excess = new / total - population_new / population_total
            self._test.update(max(0.0, excess))
            if self._test.drift_detected:
                self._changed = True
        cn = sum(w[0] for w in self._window)
        ct = sum(w[1] for w in self._window)
        pn = sum(w[2] for w in self._window)
        pt = sum(w[3] for w in self._window)
        self.events = ct
        self.share = cn / ct if ct else 0.0
        self.population_share = pn / pt if pt else 0.0
        if not self._changed or ct < self.min_events or pt == 0:
            return False
        pooled = (cn + pn) / (ct + pt)
        spread = math.sqrt(max(pooled * (1.0 - pooled), 1e-12) * (1.0 / ct + 1.0 / pt))
        self.z = (self.share - self.population_share) / spread
        return (
            self.share - self.population_share >= self.min_excess
            and self.share >= self.ratio * self.population_share
            and self.z >= self.min_z
        )


class PivotWatch:
    """Two views of one cluster's move to a released model, each a :class:`PivotDetector`.

    ``active`` takes the calls the cluster's members made in the tick: what the cluster
    does now. ``joined`` takes its members' calls since the release, those a member made
    before it joined included (a tick adds what the totals grew by): a campaign's
    accounts call in bursts hours apart, and the ones that move first are often the ones
    the cluster is only now linking. A joiner's older calls on the old model slow that
    view down; the first view has none. A pivot is established while either view
    establishes one; ``share``, ``population_share``, ``z`` and ``events`` are those of
    the view reported (one that fires, the larger share first, ``active`` on a tie).

    >>> watch = PivotWatch(min_events=20)
    >>> [watch.update(0, 40, 0, 40 * (i + 1), 10, 1000) for i in range(3)]
    [False, False, False]
    >>> watch.update(0, 5, 45, 180, 10, 1000), watch.lead is watch.joined  # joiners moved
    (True, True)
    """

    def __init__(self, **params: float) -> None:
        self.active = PivotDetector(**params)  # type: ignore[arg-type]
        self.joined = PivotDetector(**params)  # type: ignore[arg-type]
        self.lead = self.active

    def update(self, tick_new: int, tick_total: int, new_total: int, total: int,
               population_new: int, population_total: int) -> bool:
        """One tick: the members' calls in it, their totals since the release, and
        the population's calls in it (without the cluster's)."""
        now = self.active.update(tick_new, tick_total, population_new, population_total)
        joined = self.joined.update_totals(new_total, total, population_new, population_total)
        if now != joined:
            self.lead = self.active if now else self.joined
        else:
            self.lead = self.joined if self.joined.share > self.active.share else self.active
        return now or joined

    @property
    def share(self) -> float:
        return self.lead.share

    @property
    def population_share(self) -> float:
        return self.lead.population_share

    @property
    def z(self) -> float:
        return self.lead.z

    @property
    def events(self) -> int:
        return self.lead.events
