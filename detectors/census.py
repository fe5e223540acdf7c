"""What one live account adds to the day's population census: its :class:`CensusRecord`, read from its state.

:class:`~detectors.population.PopulationModel` takes the census once per day (its ``take_census``); the
records are built here, from each account's window and detector state alone, so that processes owning
different accounts can build theirs and hand them to the one that takes the census (the lock-step replay,
``streams/offline/replay_lockstep.py``). The account's BTYD summary (:func:`btyd_summary`) and newness
(:func:`newness`) are read the same way by the level features (:mod:`detectors.features.level`).

The census reads only a few numbers of a detector state (:class:`CensusInputs`), so a worker that keeps
detector states only in their stored form can read those numbers without decoding the whole state
(``streams/engine/stored_census.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from detectors.baseline import is_weekend
from detectors.windows import DAY_MS, USAGE, AccountWindow, day_of

if TYPE_CHECKING:
    from detectors.account_state import AccountDetectorState
    from detectors.calendar_effects import PopulationCalendar

__all__ = [
    "TENURE_DAYS",
    "CensusInputs",
    "CensusRecord",
    "btyd_summary",
    "census_inputs",
    "census_record",
    "live_accounts",
    "newness",
]

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


@dataclass(frozen=True, slots=True)
class CensusInputs:
    """The numbers of one account's detector state that the census reads (:func:`census_record`).

    ``levels`` are the usage baseline's expectations on a weekday and on a weekend day (what
    ``SeasonalBaseline.expected`` returns for such a day); ``regular_gap`` is the mean gap between active days
    once the gap tracker has its ``min_gaps``, else None; ``risk_days`` is the alert budget's ``[day, risk the
    day before, risk, free 0/1]``.

    >>> from detectors.account_state import AccountDetectorState
    >>> from detectors.config import DetectorConfig
    >>> inputs = CensusInputs.of(AccountDetectorState(DetectorConfig()))
    >>> inputs.first_active_day, inputs.n_days, inputs.regular_gap
    (None, 0, None)
    """

    first_active_day: int | None
    learned_through: int | None
    drop_since: int | None
    risk_days: tuple[int, float, float, int] | None
    levels: tuple[float, float]
    n_days: int
    n_active: int
    usage: float
    users: float
    last_active_day: int | None
    regular_gap: float | None

    @classmethod
    def of(cls, state: AccountDetectorState) -> CensusInputs:
        """What the census reads of a decoded detector state."""
        stats = state.baselines[0].stats
        engagement, gaps = state.engagement, state.gaps
        risk = state.risk_days
        return cls(
            state.first_active_day,
            state.learned_through,
            state.drop_since,
            (risk[0], risk[1], risk[2], risk[3]) if risk is not None else None,
            (stats[1] if stats[0] else stats[6], stats[6] if stats[5] else stats[1]),
            engagement.n_days,
            engagement.n_active,
            engagement.usage,
            engagement.users,
            gaps.last_active_day,
            gaps.mean_gap if gaps.n_gaps >= gaps.min_gaps else None,
        )

    def expected(self, day: int) -> float:
        """The usage baseline's expectation on ``day`` (``SeasonalBaseline.expected``)."""
        return self.levels[is_weekend(day)]


def census_inputs(state: AccountDetectorState | CensusInputs) -> CensusInputs:
    """``state``'s census inputs (itself when it is already :class:`CensusInputs`)."""
    return state if isinstance(state, CensusInputs) else CensusInputs.of(state)


def live_accounts(
    accounts: Iterable[tuple[str, AccountWindow, AccountDetectorState | CensusInputs]], today: int
) -> Iterator[tuple[str, AccountWindow, CensusInputs]]:
    """The accounts active at least once and not cancelled before ``today``, with their census inputs."""
    for account_id, window, state in accounts:
        inputs = census_inputs(state)
        canceled = window.canceled_ts_ms
        if inputs.first_active_day is not None and (canceled is None or canceled >= today * DAY_MS):
            yield account_id, window, inputs


def census_record(
    account_id: str,
    window: AccountWindow,
    state: CensusInputs,
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
        for day in range(max(learned + 1, today - 7), today):
            bucket = window.days.get(day)
            tallies.append((day, float(bucket[USAGE]) if bucket else 0.0, state.expected(day)))
    seen = window.first_seen_ms
    record = CensusRecord(
        account_id, window.plan, newness(today - day_of(seen)) if seen is not None else None, tallies
    )
    risk_days = state.risk_days
    if budgeted and risk_days is not None and risk_days[0] == today - 1:
        record.risk = (risk_days[1], risk_days[2], bool(risk_days[3]))
    last_active = state.last_active_day
    if not state.n_days or last_active is None:
        return record
    record.usage = state.usage
    record.per_user = state.usage / state.users if state.users > 0 else None
    gap = state.regular_gap
    if not (gap is not None and gap < sparse_gap_days):
        # Daily accounts have none: the BTYD model describes (and scores) the irregular ones only.
        record.btyd = btyd_summary(first, state.n_active, last_active, today, calendar)
    return record


def btyd_summary(
    first: int, n_active: int, last_active: int, today: int, calendar: PopulationCalendar
) -> tuple[int, int, int]:
    """BTYD summary ``(x, t_x, T)`` in days of an account active ``n_active`` days from ``first`` to
    ``last_active``; quiet (holiday) days after the last activity do not count."""
    quiet = len(calendar.quiet_between(last_active + 1, today - 1))
    t_x = last_active - first
    return max(0, n_active - 1), t_x, max(t_x, today - first - quiet)
