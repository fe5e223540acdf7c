"""Outcomes: snapshots of an account's scored features, labelled once it is known whether it then churned.

Every ``snapshot_every_days`` a warm account's features and risk are kept as a
:class:`~detectors.account_state.Snapshot`. A snapshot becomes an :class:`Outcome` when its horizon passes
(a negative, unless the account did nothing at all since and inactivity counts as churn) or when the
account cancels within the horizon (a positive). Labelling changes no model: the outcomes are handed to
the caller, which learns them (``AccountMonitor.learn``) when it chooses (the engine: at its next sweep, so
that every account of a sweep is scored by the same model); with ``DetectorConfig.learn_at_horizon``
only once they are :func:`ripe`: when the snapshot's horizon has closed, whatever its label.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from detectors.account_state import AccountDetectorState, Snapshot
from detectors.config import DetectorConfig
from detectors.windows import DAY_MS

__all__ = ["Outcome", "OutcomeLabeller", "ripe"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A labelled snapshot: the features and risk an account had on ``day`` and whether it then cancelled."""

    account_id: str
    day: int
    risk: float
    features: dict[str, float]
    label: bool

    @classmethod
    def of(cls, account_id: str, snapshot: Snapshot, label: bool) -> Outcome:
        return cls(account_id, snapshot.day, snapshot.risk, snapshot.features(), label)

    def to_state(self) -> list[Any]:
        """A JSON-able form (saved with the risk model while the outcome waits to be learned).

        >>> outcome = Outcome("acme", 20_000, 0.4, {"recency": 1.0}, True)
        >>> Outcome.from_state(outcome.to_state()) == outcome
        True
        """
        return [self.account_id, self.day, self.risk, self.features, self.label]

    @classmethod
    def from_state(cls, state: list[Any]) -> Outcome:
        account_id, day, risk, features, label = state
        return cls(account_id, day, risk, dict(features), bool(label))


def ripe(outcomes: Iterable[Outcome], today: int, horizon_days: int) -> tuple[list[Outcome], list[Outcome]]:
    """``(to learn now, to keep waiting)``: an outcome is learned once its snapshot's horizon has closed by
    ``today``, whatever its label.

    A negative is known only when the horizon has passed; a positive as soon as the account cancels, up to
    ``horizon_days`` earlier. Learned as soon as they were known, the model would at every moment have
    learned positives from the last ``horizon_days`` of snapshots but negatives only from before them, so
    whatever drifts with calendar time for the whole base (tenure and ``new_account`` as a base ages, the
    share of accounts still warming up) would separate the labels by *when* the snapshot was taken rather
    than by whether the account churned. On ChurnSim (accounts that joined in the file churn more) that
    taught the regression a weight of -1.3 on ``new_account`` and ranked the accounts worse than chance by
    the third month (``docs/detection.md``, fifth pass; since the seventh, ``new_account`` is read against
    the base's mean, ``DetectorConfig.relative_tenure``, and no longer drifts). Waiting costs the model up
    to ``horizon_days`` of lag on the positives (negatives and inactivity outcomes are labelled at the
    horizon and pass at once), and on the tuning data that lag cost more AUC than the bias:
    ``DetectorConfig.learn_at_horizon`` is off by default.

    >>> fresh = Outcome("acme", 100, 0.4, {}, True)  # cancelled 10 days after its snapshot
    >>> old = Outcome("bolt", 70, 0.1, {}, False)  # survived its horizon
    >>> ripe([fresh, old], today=110, horizon_days=30) == ([old], [fresh])
    True
    >>> ripe([fresh], today=130, horizon_days=30) == ([fresh], [])
    True
    """
    now: list[Outcome] = []
    wait: list[Outcome] = []
    for outcome in outcomes:
        (now if today - outcome.day >= horizon_days else wait).append(outcome)
    return now, wait


class OutcomeLabeller:
    """Takes snapshots and labels them under one :class:`~detectors.config.DetectorConfig`."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config

    def label_and_snapshot(
        self,
        account_id: str,
        state: AccountDetectorState,
        today: int,
        risk: float,
        features: dict[str, float],
    ) -> list[Outcome]:
        """Label the snapshots whose horizon passed by ``today``; then take today's, when one is due (warm
        accounts, every ``snapshot_every_days``). ``features`` are the account's as observed (unweighed)."""
        cfg = self.config
        horizon = cfg.horizon_days
        last_active = state.gaps.last_active_day
        outcomes: list[Outcome] = []
        while state.pending and today - state.pending[0].day >= horizon:
            # Survived the horizon after the snapshot: a negative, unless it did nothing at all since (when
            # inactivity counts as churn: data without explicit cancellations).
            snapshot = state.pending.pop(0)
            inactive = last_active is None or last_active < snapshot.day
            outcomes.append(Outcome.of(account_id, snapshot, cfg.inactivity_is_churn and inactive))
        first = state.first_active_day
        last = state.learned_through
        if first is None or last is None or last - first < cfg.min_history_days:
            return outcomes
        if state.last_snapshot_day is None or today - state.last_snapshot_day >= cfg.snapshot_every_days:
            state.pending.append(Snapshot.taken(today, risk, features))
            state.last_snapshot_day = today
        return outcomes

    def canceled(self, account_id: str, state: AccountDetectorState, canceled_ts_ms: int) -> list[Outcome]:
        """The account cancelled at ``canceled_ts_ms``: its snapshots within the horizon before are
        positives (the others are dropped unlabelled), once per cancellation. Its episode ends with the
        subscription (no alert: the cancellation is the news)."""
        if state.canceled_ts_ms == canceled_ts_ms:
            return []
        state.canceled_ts_ms = canceled_ts_ms
        horizon_ms = self.config.horizon_days * DAY_MS
        outcomes = [
            Outcome.of(account_id, snapshot, True)
            for snapshot in state.pending
            if 0 <= canceled_ts_ms - snapshot.day * DAY_MS <= horizon_ms
        ]
        state.pending = []
        state.episode = None
        return outcomes
