"""Silence evidence: how unusual the account's current run of silent days is for its own rhythm.

``silence``
    The surprise (in nats, halved, capped at 10) of the silent days since the last activity: for daily
    accounts the per-weekday/weekend chance of a silent day under the usage baseline, for regular sparse
    accounts the Gaussian tail of the gap beyond one spread. Days the whole population was quiet (holidays)
    do not count. With ``silence_outcomes`` (an option, off by default) the surprise is weighed by the
    share of the base's silent spells as long as this one that did *not* come back within the horizon
    (:meth:`~detectors.population.PopulationModel.silence_fate`; 1 until the base has shown otherwise): a
    silence that, in this base, usually ends in a return weighs little however unusual it is for the
    account. Either way the reason says how often silences this long came back here.
"""

from __future__ import annotations

from dataclasses import dataclass

from detectors.account_state import AccountDetectorState
from detectors.features.sums import Rhythm
from detectors.population import PopulationModel
from detectors.reasons import Evidence, plural

__all__ = ["Silence", "silence_evidence"]


@dataclass(frozen=True, slots=True)
class Silence:
    """Silent for ``silent_days`` days where the account is usually active every ``mean_gap`` days;
    ``back``: the share of the base's spells this long that came back (None: not known)."""

    value: float
    silent_days: int
    mean_gap: float
    back: float | None = None
    feature: str = "silence"

    def describe(self, value: float) -> str:
        """The reason sentence.

        >>> Silence(2.0, 8, 1.14).describe(2.0)
        'silent for 8 days (usually active every 1.1 days)'
        >>> for part in Silence(2.0, 9, 1.0, back=0.2).describe(2.0).split("; "):
        ...     print(part)
        silent for 9 days (usually active every 1.0 days)
        in this base 20% of accounts silent this long came back
        """
        own = f"silent for {plural(self.silent_days, 'day')} (usually active every {self.mean_gap:.1f} days)"
        if self.back is None:
            return own
        return f"{own}; in this base {self.back:.0%} of accounts silent this long came back"


def silence_evidence(
    state: AccountDetectorState, rhythm: Rhythm, population: PopulationModel
) -> list[Evidence]:
    """The silence feature of a warm account (none when it is active or its silence is ordinary)."""
    calendar = population.calendar
    gaps = state.gaps
    today, last = rhythm.today, rhythm.last
    silent_days = gaps.silent_days(today)
    if not silent_days:
        return []
    silent_from = last - min(silent_days, 56) + 1
    holidays = calendar.quiet_between(silent_from, last)  # silent holidays are no news
    if rhythm.sparse:
        # Regular sparse rhythm: Gaussian tail of the gap excess beyond one spread, in nats.
        z = max(0.0, gaps.score_one(today - len(holidays)) - 1.0)
        surprise = 0.5 * z * z
    else:
        baseline = state.baselines[0]
        surprise = baseline.silence_surprise(silent_from, last)
        surprise -= sum(baseline.silent_day_cost(q) for q in holidays)
    weight, back = population.silence_fate(state, silent_days)
    silence = round(min(10.0, surprise / 2.0) * weight, 4)
    return [Silence(silence, silent_days, rhythm.mean_gap, back)] if silence > 0 else []
