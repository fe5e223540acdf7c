"""An account's own history: learning its completed days into its baselines and detectors.

:class:`HistoryLearner` brings an :class:`~detectors.account_state.AccountDetectorState` up through the
completed days of its window, each day once (``state.learned_through``): the gap tracker, the support rate,
the engagement tracker, and, except on days the whole population was quiet, the seasonal baselines and
their drift detectors. A flagged drop freezes the baselines (a decline must not become the new normal)
until usage recovers, or re-levels them after ``max_freeze_days``. It also tracks the reference MRR that
downgrades are measured against.
"""

from __future__ import annotations

from detectors.account_state import AccountDetectorState
from detectors.baseline import SeasonalBaseline, half_life_alpha
from detectors.calendar_effects import PopulationCalendar
from detectors.config import DetectorConfig
from detectors.windows import (
    ACTIVE_USERS,
    KEY_EVENTS,
    TICKETS_HIGH,
    TICKETS_LOW,
    TICKETS_NORMAL,
    TICKETS_URGENT,
    USAGE,
    AccountWindow,
    WindowConfig,
)

__all__ = ["HistoryLearner"]


class HistoryLearner:
    """Learns accounts' completed days under one configuration."""

    def __init__(self, config: DetectorConfig, window_config: WindowConfig) -> None:
        self.config = config
        self.window_config = window_config
        self._ticket_alpha = half_life_alpha(56.0)
        self._mrr_decay = 0.5 ** (1.0 / 60.0)

    def learn_days(
        self, window: AccountWindow, state: AccountDetectorState, last_day: int, calendar: PopulationCalendar
    ) -> int:
        """Learn the completed days ``learned_through + 1 .. last_day`` (``calendar``: the population's
        quiet days, as of now); returns how many were new."""
        start = state.learned_through + 1 if state.learned_through is not None else None
        if start is None:
            if not window.days:
                return 0
            start = min(window.days)
        if start > last_day:
            return 0
        # Days beyond the window's retention are gone; they were empty or the account would have been seen.
        start = max(start, last_day - self.window_config.retention_days + 1)
        new_days = last_day - start + 1
        cfg = self.config
        days = window.days
        open_key = window.open_key_events()
        for day in range(start, last_day + 1):
            bucket = days.get(day)
            usage = bucket[USAGE] if bucket is not None else 0
            if state.first_active_day is None:
                if usage == 0:
                    continue
                state.first_active_day = day
            if usage > 0:
                state.gaps.learn_one(day)
            tickets = (
                bucket[TICKETS_LOW] + bucket[TICKETS_NORMAL] + bucket[TICKETS_HIGH] + bucket[TICKETS_URGENT]
                if bucket is not None
                else 0
            )
            state.ticket_days += 1
            alpha = max(self._ticket_alpha, 1.0 / state.ticket_days)
            state.ticket_rate = round(state.ticket_rate + alpha * (tickets - state.ticket_rate), 5)
            if bucket is None:
                values = (0.0, 0.0, 0.0)
            else:
                key = open_key.get(day, bucket[KEY_EVENTS])  # window.key_events(day), with the bucket at hand
                values = (float(usage), float(bucket[ACTIVE_USERS]), float(key))
            # A day the whole population was quiet (a holiday) says nothing about this account's normal.
            quiet = calendar.is_quiet(day)
            state.engagement.learn_one(values[0], values[1], quiet=quiet)
            if state.cycle is not None:
                state.cycle.learn_one(day, values[0])
            if not quiet:
                self._learn_signals(window, state, day, values, cfg)
        state.learned_through = last_day
        return new_days

    def _learn_signals(
        self,
        window: AccountWindow,
        state: AccountDetectorState,
        day: int,
        values: tuple[float, float, float],
        cfg: DetectorConfig,
    ) -> None:
        assert state.first_active_day is not None
        warm = day - state.first_active_day >= cfg.min_history_days
        if state.drop_since is None:
            flagged = 0
            if warm:
                for i, baseline in enumerate(state.baselines):
                    # Signals too small to have a level (an account without user ids) are not tested.
                    if baseline.level() < 1.0:
                        continue
                    if state.drifts[i].update(baseline.score_one(day, values[i])):
                        flagged |= 1 << i
            if flagged:
                state.drop_since = day
                state.drop_signals = flagged
                state.recovered_days = 0
                ratio = self._recent_ratio(window, state.baselines[0], USAGE, day, 3)
                state.drop_depth = round(max(0.0, min(1.0, 1.0 - ratio)), 4)
            else:
                for baseline, value in zip(state.baselines, values, strict=True):
                    baseline.learn_one(day, value)
            return
        # A drop is flagged: the baseline is frozen so the decline does not become the new normal.
        ratio = self._recent_ratio(window, state.baselines[0], USAGE, day, 7)
        state.recovered_days = state.recovered_days + 1 if ratio >= cfg.recover_ratio else 0
        if state.recovered_days >= cfg.recover_days:
            self._clear_drop(state)
        elif day - state.drop_since >= cfg.max_freeze_days:
            for baseline in state.baselines:
                baseline.rescale(max(ratio, 0.05))
            self._clear_drop(state)

    @staticmethod
    def _clear_drop(state: AccountDetectorState) -> None:
        state.drop_since = None
        state.drop_signals = 0
        state.drop_depth = 0.0
        state.recovered_days = 0
        for detector in state.drifts:
            detector.reset()

    @staticmethod
    def _recent_ratio(
        window: AccountWindow, baseline: SeasonalBaseline, column: int, last_day: int, length: int
    ) -> float:
        days = window.days
        actual = 0
        for day in range(last_day - length + 1, last_day + 1):
            bucket = days.get(day)
            if bucket is not None:
                actual += bucket[column]
        expected = baseline.expected_total(last_day - length + 1, last_day)
        return actual / expected if expected > 0 else 1.0

    def track_mrr(self, window: AccountWindow, state: AccountDetectorState, new_days: int) -> None:
        """Follow the reference MRR: the recent peak, decaying towards the current MRR by day."""
        mrr = window.mrr
        if mrr is None:
            return
        if state.ref_mrr is None or mrr >= state.ref_mrr:
            state.ref_mrr = mrr
        elif new_days:
            state.ref_mrr = round(mrr + (state.ref_mrr - mrr) * self._mrr_decay**new_days, 2)
