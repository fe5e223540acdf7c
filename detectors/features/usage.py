"""Usage evidence: drops of usage, active users and key events against the account's own baselines, the
flagged sustained drop, and the two-week decline.

``usage_drop``, ``users_drop``, ``key_drop``
    ``1 - (actual + k) / (expected + k)`` over the signal window (a week of ordinary days; whole weeks
    covering two usual gaps for sparse accounts), expected from the seasonal baseline; the population's
    quiet days (holidays) are left out and the window reaches back past them
    (:meth:`~detectors.features.sums.Rhythm.past_quiet`); ``k`` (``drop_pseudo_count``) shrinks small
    counts' ratios.
``drop_weeks``, ``abrupt``
    Weeks since the drift detector flagged a sustained drop (capped at 8), and how deep the drop was in its
    first three days (vacations start abruptly).
``decline``
    Usage of the last 2 weeks against 4-8 weeks ago, for non-sparse accounts with 8 weeks of history.

While a sustained drop is flagged, with ``drop_outcomes`` (an option, off by default) the three drops and
``drop_weeks`` are weighed by the share of the base's flagged drops as old that did not recover
(:meth:`~detectors.population.PopulationModel.drop_fate`; 1 until the base has shown otherwise): a drop
that, in this base, usually ends in a recovery at this age (a vacation) weighs little.
"""

from __future__ import annotations

from dataclasses import dataclass

from detectors.account_state import AccountDetectorState
from detectors.config import DetectorConfig
from detectors.features.sums import Rhythm, WindowSums
from detectors.outage import iso_day
from detectors.population import PopulationModel
from detectors.reasons import SIGNALS, Evidence

__all__ = ["Abrupt", "Decline", "SignalDrop", "SustainedDrop", "usage_evidence"]

DROP_FEATURES = ("usage_drop", "users_drop", "key_drop")  # one per signal of SIGNALS


@dataclass(frozen=True, slots=True)
class SignalDrop:
    """A signal below its usual level over the last ``days`` days."""

    feature: str  # one of DROP_FEATURES
    value: float
    actual_per_day: float
    expected_per_day: float
    days: int

    def describe(self, value: float) -> str:
        label = SIGNALS[DROP_FEATURES.index(self.feature)]
        return (
            f"{label} -{value:.0%} vs its usual level ({self.actual_per_day:.1f}/day over the last "
            f"{self.days} days, {self.expected_per_day:.1f}/day expected for those weekdays/weekends)"
        )


@dataclass(frozen=True, slots=True)
class SustainedDrop:
    """The drift detector flagged a sustained drop on ``since_day``, ``days`` ago; ``back``: the share of the
    base's flagged drops as old that recovered (None: not known).

    >>> SustainedDrop(0.5, 20_600, 6, back=0.75).describe(0.5)
    'sustained decline flagged since 2026-05-27 (6 days); in this base 75% of drops this old recovered'
    """

    value: float
    since_day: int
    days: int | None = None  # None: read from the value (weeks)
    back: float | None = None
    feature: str = "drop_weeks"

    def describe(self, value: float) -> str:
        days = self.days if self.days is not None else round(value * 7)
        own = f"sustained decline flagged since {iso_day(self.since_day)} ({days} days)"
        return (
            own if self.back is None else f"{own}; in this base {self.back:.0%} of drops this old recovered"
        )


@dataclass(frozen=True, slots=True)
class Abrupt:
    """How deep the flagged drop was in its first 3 days: it qualifies the drop, no sentence of its own."""

    value: float
    feature: str = "abrupt"

    def describe(self, value: float) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class Decline:
    """Usage per day of the last 2 weeks against 4-8 weeks ago."""

    value: float
    recent_per_day: float
    old_per_day: float
    change: float  # 1 - recent / old
    feature: str = "decline"

    def describe(self, value: float) -> str:
        return (
            f"usage -{self.change:.0%} over the last 2 weeks vs 4-8 weeks ago "
            f"({self.recent_per_day:.1f}/day vs {self.old_per_day:.1f}/day)"
        )


def usage_evidence(
    state: AccountDetectorState,
    sums: WindowSums,
    rhythm: Rhythm,
    population: PopulationModel,
    cfg: DetectorConfig,
) -> list[Evidence]:
    """The usage features of a warm account (see the module docstring), in :data:`FEATURES` order."""
    out: list[Evidence] = []
    calendar = population.calendar
    since = state.drop_since
    weight, back = population.drop_fate(rhythm.today - since) if since is not None else (1.0, None)
    last, length, signal_from = rhythm.last, rhythm.length, rhythm.signal_from
    quiet = calendar.quiet_between(signal_from, last)
    pseudo = cfg.drop_pseudo_count
    for i, name in enumerate(DROP_FEATURES):
        baseline = state.baselines[i]
        actual = sums.actual[i]
        expected = baseline.expected_total(signal_from, last)
        for q in quiet:  # holidays are left out of the window: neither their usage nor their expectation
            expected -= baseline.expected(q)
        if expected >= cfg.min_expected_events and actual < expected:
            # The pseudo-count shrinks ratios of small counts: 2 of 5 events is weak evidence.
            value = round((1.0 - (actual + pseudo) / (expected + pseudo)) * weight, 4)
            out.append(SignalDrop(name, value, actual / length, expected / length, length))
    if since is not None:
        days = rhythm.today - since
        out.append(SustainedDrop(round(min(8.0, days / 7.0) * weight, 4), since, days, back))
        if state.drop_depth:
            out.append(Abrupt(state.drop_depth))
    first = state.first_active_day
    assert first is not None
    recent, old = sums.recent, sums.old
    if not rhythm.sparse and last - first >= 55 and old >= 28:
        # +1/day shrinks small accounts' ratios; declines under 25% are ordinary seat churn.
        ratio = (recent / 14 + 1.0) / (old / 28 + 1.0)
        if ratio < 0.75:
            out.append(
                Decline(round((0.75 - ratio) / 0.75, 4), recent / 14, old / 28, 1.0 - recent * 2 / old)
            )
    return out
