"""What the feature extractors read: the account's rhythm (:class:`Rhythm`) and one pass over its window.

:func:`window_sums` walks the window's (at most ``retention_days``) buckets once; the extractors then work
from :class:`WindowSums` and the baselines' expected sums (O(1) each). It runs once per account-day in
sweeps, so it is kept lean: support and billing columns are skipped whole on the (most) days without them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from detectors.account_state import AccountDetectorState
from detectors.config import DetectorConfig
from detectors.engagement import fill_quiet
from detectors.windows import (
    ACTIVE_USERS,
    CSAT_COUNT,
    CSAT_SUM,
    ESCALATED,
    KEY_EVENTS,
    N_COLUMNS,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    TICKETS_HIGH,
    TICKETS_LOW,
    TICKETS_NORMAL,
    TICKETS_URGENT,
    USAGE,
    AccountWindow,
)

__all__ = ["Rhythm", "WindowSums", "window_sums"]

# Bucket columns from TICKETS_LOW on are support and billing; most days have none, so they are skipped whole.
# A tuple: closed days' buckets are tuples (a list never equals it, so open days always take the long way).
_SUPPORT_FROM = TICKETS_LOW
_NO_SUPPORT = (0,) * (N_COLUMNS - TICKETS_LOW)


@dataclass(slots=True)
class Rhythm:
    """How an account is judged on ``today``: warm or not, its usual gap, and its signal window.

    Accounts whose usual gap is at least ``sparse_gap_days`` are *sparse*; their signal window covers whole
    weeks and at least two usual gaps (so a sparse account's quiet weeks are normal), other accounts' a week.
    Not frozen: one is built per account-day, and a frozen dataclass's ``__init__`` costs ~4x (issue 15);
    nothing changes it once built.
    """

    today: int
    last: int  # the last complete day (today - 1)
    warm: bool  # min_history_days of history since the first active day
    mean_gap: float  # the usual gap between active days (1 until the gap tracker has enough gaps)
    sparse: bool
    length: int  # days of the signal window
    signal_from: int  # its first day (it ends on ``last``)
    # Judged by the BTYD model rather than by its own rhythm: not warm, no rhythm yet (fewer than 3 active
    # days), or sparse with irregular gaps (spread above half the mean gap).
    irregular: bool

    @classmethod
    def of(cls, state: AccountDetectorState, today: int, cfg: DetectorConfig, retention_days: int) -> Rhythm:
        last = today - 1
        first = state.first_active_day
        gaps = state.gaps
        mean_gap = gaps.mean_gap if gaps.n_gaps >= gaps.min_gaps else 1.0
        sparse = mean_gap >= cfg.sparse_gap_days
        length = min(retention_days, 7 * math.ceil(2.0 * (mean_gap + gaps.spread()) / 7.0)) if sparse else 7
        warm = first is not None and last - first >= cfg.min_history_days
        # Daily and regular sparse accounts are judged by the silence of their own rhythm (counting both
        # would count one silence twice).
        rhythmic = gaps.n_gaps >= gaps.min_gaps
        regular = rhythmic and math.sqrt(gaps.var_gap) <= 0.5 * gaps.mean_gap
        irregular = not warm or not rhythmic or (sparse and not regular)
        return cls(today, last, warm, mean_gap, sparse, length, last - length + 1, irregular)

    def past_quiet(self, quiet: Mapping[int, float] | None, first_kept: int) -> Rhythm:
        """The same rhythm with its signal window reaching back past the population's quiet days, so it
        holds ``length`` ordinary days: a holiday is left out of a drop, and the days left are as many as
        on any other day (a short window would read a weekend's lull as a drop); never before
        ``first_kept``, the window's oldest kept day.

        >>> r = Rhythm(100, 99, True, 1.0, False, 7, 93, False)
        >>> r.past_quiet({97: 0.1, 98: 0.1, 90: 0.1}, 0).signal_from, r.past_quiet(None, 0) is r
        (91, True)
        >>> r.past_quiet({97: 0.1, 98: 0.1, 90: 0.1}, 92).signal_from
        92
        """
        if not quiet:
            return self
        start = self.last - self.length + 1
        inside = sum(1 for d in quiet if start <= d <= self.last)
        while inside:  # each step adds the quiet days the extension itself reached
            earlier = start - inside
            inside = sum(1 for d in quiet if earlier <= d < start)
            start = earlier
        start = max(start, min(first_kept, self.signal_from))
        if start == self.signal_from:
            return self
        return Rhythm(
            self.today, self.last, self.warm, self.mean_gap, self.sparse, self.length, start, self.irregular
        )


@dataclass(slots=True)
class WindowSums:
    """Sums over the completed days before ``today`` (and today's support and billing events so far).

    ``actual`` (usage, active users, key events) covers the signal window (``signal_age`` days before
    today) but its quiet days (holidays), and is only summed for warm accounts; ``recent`` is usage of
    the last 14 days, ``old`` of the days 29-56 before today; tickets count 14 days, CSAT and payments 30
    days, all including today.
    """

    actual: list[int] = field(default_factory=lambda: [0, 0, 0])
    recent: int = 0
    old: int = 0
    tickets: int = 0
    urgent: int = 0
    escalated: int = 0
    csat_count: int = 0
    csat_sum: int = 0
    failed: int = 0
    success_day: int = -1  # the last day with a successful payment (-1: none in 30 days)
    failure_days: list[int] = field(default_factory=list)
    weekly: list[float] | None = None  # usage of the last 8 weeks, oldest first (when asked for)

    def add_support(self, bucket: Sequence[int], day: int, age: int) -> None:
        """Support and billing columns of a day ``age`` days before today (0: today)."""
        self.csat_sum += bucket[CSAT_SUM]
        self.csat_count += bucket[CSAT_COUNT]
        if bucket[PAYMENT_FAILED]:
            self.failed += bucket[PAYMENT_FAILED]
            self.failure_days.append(day)
        if bucket[PAYMENT_SUCCEEDED] and day > self.success_day:
            self.success_day = day
        if age < 14:
            self.tickets += bucket[TICKETS_LOW] + bucket[TICKETS_NORMAL] + bucket[TICKETS_HIGH]
            self.tickets += bucket[TICKETS_URGENT]
            self.urgent += bucket[TICKETS_HIGH] + bucket[TICKETS_URGENT]
            self.escalated += bucket[ESCALATED]


def window_sums(
    window: AccountWindow,
    rhythm: Rhythm,
    quiet: Mapping[int, float] | None = None,
    *,
    weekly: bool = False,
    usual: float = 0.0,
    since: int | None = None,
) -> WindowSums:
    """Sum ``window`` as of ``rhythm.today`` (days before it are complete); see :class:`WindowSums`.

    With ``weekly``, the same pass also fills ``sums.weekly``: the usage of each of the last 8 weeks, as
    :func:`~detectors.engagement.weekly_totals` gives it (``quiet``: the population's quiet days, counted as
    the account's ``usual`` day from its first active day ``since`` on).
    """
    sums = WindowSums()
    today, warm = rhythm.today, rhythm.warm
    signal_age = today - rhythm.signal_from  # ages (days before today) in the signal window: 1..signal_age
    actual = sums.actual
    recent = old = 0
    totals = sums.weekly = [0.0] * 8 if weekly else None
    open_key = window.open_key_events()
    only_old = max(29, signal_age) if warm else 29  # older days count in ``old`` and the weekly totals only
    days = window.days
    day = days.first - 1
    for bucket in days.slots:  # days.items() without building its list: this runs once per account-day
        day += 1
        if bucket is None:
            continue
        age = today - day
        if age > only_old:  # about half the days: the short way
            if age <= 56:
                usage = bucket[USAGE]
                old += usage
                if totals is not None and not (quiet and day in quiet):
                    totals[(56 - age) // 7] += usage
            continue
        if age <= 0:
            # Today (still open): only its support and billing events count already.
            if age == 0 and bucket[_SUPPORT_FROM:] != _NO_SUPPORT:
                sums.add_support(bucket, day, age)
            continue
        usage = bucket[USAGE]
        if age <= 14:
            recent += usage
        elif 29 <= age <= 56:
            old += usage
        if warm and age <= signal_age and not (quiet and day in quiet):  # holidays: left out (below)
            actual[0] += usage
            actual[1] += bucket[ACTIVE_USERS]
            actual[2] += open_key.get(day, bucket[KEY_EVENTS])  # window.key_events(day), inlined
        if totals is not None and age <= 56 and not (quiet and day in quiet):
            totals[(56 - age) // 7] += usage
        if age < 30 and bucket[_SUPPORT_FROM:] != _NO_SUPPORT:
            sums.add_support(bucket, day, age)
    sums.recent, sums.old = recent, old
    if totals is not None and quiet:
        fill_quiet(totals, quiet, today - 1, usual, today - 56 if since is None else since)
    return sums
