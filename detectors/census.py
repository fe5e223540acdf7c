"""What one live account adds to the day's population census: its :class:`CensusRecord`, read from its state.

:class:`~detectors.population.PopulationModel` takes the census once per day (its ``take_census``); the
records are built here, from each account's window and detector state alone, so that processes owning
different accounts can build theirs and hand them to the one that takes the census (the lock-step replay,
``streams/offline/replay_lockstep.py``). The account's BTYD summary (:func:`btyd_summary`) and newness
(:func:`newness`) are read the same way by the level features (:mod:`detectors.features.level`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from detectors.windows import DAY_MS, USAGE, AccountWindow, day_of

if TYPE_CHECKING:
    from detectors.account_state import AccountDetectorState
    from detectors.calendar_effects import PopulationCalendar

__all__ = ["TENURE_DAYS", "CensusRecord", "btyd_summary", "census_record", "live_accounts", "newness"]

TENURE_DAYS = 90  # an account is "new" for this long (``new_account``)


def newness(tenure_days: float) -> float:
    """``1 - tenure / 90 days``, in [0, 1] (0 from 90 days on): how new an account is, on its own.

    >>> newness(0), newness(45), newness(200)
    (1.0, 0.5, 0.0)
    """
    return 1.0 - min(TENURE_DAYS, max(0.0, tenure_days)) / TENURE_DAYS


@dataclass(slots=True)
class CensusRecord:
    """What one live account adds to a day's census (:func:`census_record`): small and picklable, so that
    processes owning different accounts can hand theirs to the one that takes the census.

    ``tallies`` are the calendar's ``(day, usage, expected)``; ``usage`` is None for an account without
    engagement yet (then neither the segments nor BTYD learn from it); ``btyd`` is its summary ``(x, t_x,
    T)``, None for a daily account (which BTYD forgets).
    """

    account_id: str
    plan: str | None
    newness: float | None  # its newness, when its first event is known
    tallies: list[tuple[int, float, float]]
    usage: float | None = None
    per_user: float | None = None  # None: no users seen
    btyd: tuple[int, int, int] | None = None
    risk: tuple[float, float, bool] | None = None  # alert budget: (risk the day before, risk, free)


def live_accounts(
    accounts: Iterable[tuple[str, AccountWindow, AccountDetectorState]], today: int
) -> Iterator[tuple[str, AccountWindow, AccountDetectorState]]:
    """The accounts active at least once and not cancelled before ``today``."""
    for account_id, window, state in accounts:
        canceled = window.canceled_ts_ms
        if state.first_active_day is not None and (canceled is None or canceled >= today * DAY_MS):
            yield account_id, window, state


def census_record(
    account_id: str,
    window: AccountWindow,
    state: AccountDetectorState,
    today: int,
    *,
    min_history_days: int,
    sparse_gap_days: float,
    calendar: PopulationCalendar,
    budgeted: bool,
) -> CensusRecord:
    """One live account's contribution to the census of ``today``, under the population model's parameters:
    its days since ``learned + 1`` (the last week at most) are tallied once it has been active for
    ``min_history_days``, outside a flagged drop; accounts whose usual gap is shorter than
    ``sparse_gap_days`` (daily accounts) get no BTYD summary; its risk crossing is counted only when the
    model has an alert budget (``budgeted``). Reads the calendar's quiet days, which only the census
    changes, at its end."""
    first = state.first_active_day
    assert first is not None
    learned = state.learned_through
    tallies: list[tuple[int, float, float]] = []
    if learned is not None and learned - first >= min_history_days and state.drop_since is None:
        baseline = state.baselines[0]
        for day in range(max(learned + 1, today - 7), today):
            bucket = window.days.get(day)
            tallies.append((day, float(bucket[USAGE]) if bucket else 0.0, baseline.expected(day)))
    seen = window.first_seen_ms
    record = CensusRecord(
        account_id, window.plan, newness(today - day_of(seen)) if seen is not None else None, tallies
    )
    risk_days = state.risk_days
    if budgeted and risk_days is not None and risk_days[0] == today - 1:
        record.risk = (risk_days[1], risk_days[2], bool(risk_days[3]))
    engagement = state.engagement
    last_active = state.gaps.last_active_day
    if not engagement.n_days or last_active is None:
        return record
    record.usage = engagement.usage
    record.per_user = engagement.per_user if engagement.users > 0 else None
    gaps = state.gaps
    if not (gaps.n_gaps >= gaps.min_gaps and gaps.mean_gap < sparse_gap_days):
        # Daily accounts have none: the BTYD model describes (and scores) the irregular ones only.
        record.btyd = btyd_summary(state, last_active, today, calendar)
    return record


def btyd_summary(
    state: AccountDetectorState, last_active: int, today: int, calendar: PopulationCalendar
) -> tuple[int, int, int]:
    """BTYD summary ``(x, t_x, T)`` in days; quiet (holiday) days after the last activity do not count."""
    first = state.first_active_day
    assert first is not None
    quiet = len(calendar.quiet_between(last_active + 1, today - 1))
    t_x = last_active - first
    return max(0, state.engagement.n_active - 1), t_x, max(t_x, today - first - quiet)
