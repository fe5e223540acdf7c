"""Risk features, one extractor per signal, each returning typed evidence that explains itself.

:func:`extract` reads an account's window and detector state on ``today`` and returns its
:class:`Features`: the non-zero feature values the risk model scores (in
:data:`~detectors.risk.FEATURES` order) and, for each, the :class:`~detectors.reasons.Evidence` behind it
(a small dataclass holding the numbers, whose ``describe`` writes the reason sentence). The extractors:

* :mod:`~detectors.features.usage`: drops of usage, active users and key events, the flagged sustained
  drop, the two-week decline (warm accounts);
* :mod:`~detectors.features.silence`: how unusual the current silence is for the account's rhythm (warm
  accounts);
* :mod:`~detectors.features.support`: ticket bursts, urgent tickets and escalations, low CSAT;
* :mod:`~detectors.features.billing`: failed and unresolved payments, downgrades;
* :mod:`~detectors.features.level`: the account against the whole customer base (percentiles, BTYD,
  recency, tenure, weekly trends).

With ``monthly_cycles``, an account on its monthly schedule (:class:`~detectors.cycle.MonthlyCycle`) keeps
none of the :data:`ABSENCE` features: its quiet weeks are its rhythm, as a weekday-only team's weekends are.

They share one pass over the window (:mod:`~detectors.features.sums`), so extraction stays O(retention)
per account-day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from detectors.account_state import AccountDetectorState
from detectors.config import DetectorConfig
from detectors.features.billing import billing_evidence
from detectors.features.level import level_evidence
from detectors.features.silence import silence_evidence
from detectors.features.sums import Rhythm, window_sums
from detectors.features.support import support_evidence
from detectors.features.usage import usage_evidence
from detectors.population import PopulationModel
from detectors.reasons import Evidence
from detectors.windows import AccountWindow

__all__ = ["ABSENCE", "Features", "extract"]

# The features that read the account's absence: left out while a monthly account is on schedule.
ABSENCE = frozenset(
    {
        "usage_drop",
        "users_drop",
        "key_drop",
        "drop_weeks",
        "abrupt",
        "decline",
        "silence",
        "recency",
        "lapsed",
        "inactive_ahead",
        "trend_4w",
        "trend_8w",
    }
)


@dataclass(slots=True)
class Features:
    """An account's risk features (only the non-zero ones) and the evidence behind each, by feature;
    ``scheduled``: a monthly account on schedule (its :data:`ABSENCE` features left out)."""

    values: dict[str, float]
    evidence: dict[str, Evidence]
    scheduled: bool = False

    @classmethod
    def of(cls, items: Iterable[Evidence], scheduled: bool = False) -> Features:
        evidence = {item.feature: item for item in items}
        return cls({name: item.value for name, item in evidence.items()}, evidence, scheduled)


def extract(
    window: AccountWindow,
    state: AccountDetectorState,
    today: int,
    config: DetectorConfig,
    population: PopulationModel,
    retention_days: int,
) -> Features:
    """The account's features on ``today`` (days before it are complete; today's support and billing
    events count already)."""
    quiet = population.calendar.quiet
    rhythm = Rhythm.of(state, today, config, retention_days).past_quiet(quiet, today - retention_days)
    first = state.first_active_day
    trends = first is not None and today - first >= 28  # level_evidence's weekly trends: summed in the pass
    sums = window_sums(window, rhythm, quiet, weekly=trends, usual=state.engagement.usage, since=first)
    items: list[Evidence] = []
    if rhythm.warm:
        items += usage_evidence(state, sums, rhythm, population, config)
        items += silence_evidence(state, rhythm, population)
    items += support_evidence(state, sums)
    items += billing_evidence(window, state, sums, today)
    items += level_evidence(population, window, state, today, irregular=rhythm.irregular, weekly=sums.weekly)
    scheduled = state.cycle is not None and state.cycle.on_schedule(today, state.gaps.last_active_day)
    if scheduled:
        items = [item for item in items if item.feature not in ABSENCE]  # its usual quiet part of the month
    return Features.of(items, scheduled)
