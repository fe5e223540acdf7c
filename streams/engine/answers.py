"""Answers to alerts folded by the engine (issue 18): each label to its effect on the account and the model.

Answers arrive in the engine's input next to events (:class:`AnswerArrival`: the live worker reads them from
the ``churnwatch.feedback`` topic, replay from ``--feedback FILE``). For the account that owns the alert:

- *false alarm*: the alert's reason kinds are muted, then damped, for the account
  (:class:`~detectors.answers.AnswerBook`); the features the alert was scored on are a negative label
  for the risk model;
- *real*: those features are a positive label;
- *handled*: the alert's episode closes with the outcome "action taken" (a ``resolved`` alert says so);
- *snooze*: the account's alerts are held back for :data:`~streams.feedback.SNOOZE_DAYS`.

Labels weigh ``AnswerPolicy.label_weight`` cancellations each. Time is the engine's: answers act from the
clock of the last sweep (event time in replay), not from the answer's own timestamp, so a backtest and the
live worker agree. The same answer twice (:attr:`~streams.feedback.Feedback.feedback_id`) counts once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from detectors.alerts import Alert, AlertKind, Severity, Transition
from detectors.answers import AnswerBook, AnsweredAlert, AnswerPolicy, close_episode
from detectors.monitor import AccountMonitor, Assessment
from streams.engine.state import AccountState
from streams.feedback import DAY_MS, SNOOZE_DAYS, Feedback, FeedbackLabel

HANDLED_OUTCOME = "action taken"


@dataclass(slots=True)
class AnswerArrival:
    """One answer and where it came from (the driver's record, or a line of a feedback file)."""

    feedback: Feedback
    partition: int
    offset: int
    source: Any = None


@dataclass(slots=True)
class AnswerCounts:
    """What the engine did with the answers it read."""

    applied: dict[str, int] = field(default_factory=dict)  # by label
    duplicates: int = 0
    unknown: int = 0  # no state for the account, or the alert is not among those it remembers
    learned: int = 0  # labels given to the risk model

    def count(self, label: FeedbackLabel) -> None:
        self.applied[label.value] = self.applied.get(label.value, 0) + 1


def book_of(state: AccountState) -> AnswerBook:
    if state.answers is None:
        state.answers = AnswerBook()
    return state.answers


def remember_alerts(
    alerts: Iterable[Alert], assessments: Iterable[Assessment], states: dict[str, AccountState]
) -> list[str]:
    """Keep each delivered account alert that can be answered in its account's book; the accounts changed."""
    features = {a.account_id: a.features for a in assessments}
    changed: list[str] = []
    for alert in alerts:
        if alert.kind is not AlertKind.ACCOUNT_RISK or alert.transition is Transition.RESOLVED:
            continue
        state = states.get(alert.account_id)
        if state is None:
            continue
        book_of(state).remember(
            alert.idempotency_key, alert.event_ts_ms, alert.reasons, features.get(alert.account_id, {})
        )
        changed.append(alert.account_id)
    return changed


class Answering:
    """Applies answers to account states and to the monitor's risk model, under one :class:`AnswerPolicy`."""

    def __init__(self, monitor: AccountMonitor, policy: AnswerPolicy) -> None:
        self.monitor = monitor
        self.policy = policy
        self.counts = AnswerCounts()

    def apply(self, state: AccountState, detector: Any, feedback: Feedback, now_ms: int) -> list[Alert]:
        """Apply ``feedback`` to the account's ``state`` (``detector``: its decoded detector state) at
        ``now_ms``; the alerts it raises (a *handled* episode's resolution). The caller writes the state."""
        book = book_of(state)
        if not book.first_time(feedback.feedback_id):
            self.counts.duplicates += 1
            return []
        label = feedback.label
        if label is FeedbackLabel.SNOOZE:
            self.monitor.snooze(detector, now_ms + SNOOZE_DAYS * DAY_MS)
            self.counts.count(label)
            return []
        if label is FeedbackLabel.HANDLED:
            return self._handled(detector, feedback, now_ms)
        alert = book.alert(feedback.alert_id)
        if alert is None:
            self.counts.unknown += 1
            return []
        if label is FeedbackLabel.FALSE_ALARM:
            book.false_alarm(alert, now_ms=now_ms, policy=self.policy)
        self._learn(alert, label is FeedbackLabel.REAL)
        self.counts.count(label)
        return []

    def _learn(self, alert: AnsweredAlert, real: bool) -> None:
        if alert.features and self.policy.label_weight > 0:
            self.monitor.risk_model.learn_one(alert.features, real, self.policy.label_weight)
            self.counts.learned += 1

    def _handled(self, detector: Any, feedback: Feedback, now_ms: int) -> list[Alert]:
        episode_id = Alert.episode_of(feedback.alert_id)
        closed = close_episode(
            detector, episode_id, now_ms=now_ms, cooldown_days=self.monitor.config.cooldown_days
        )
        if not closed:
            self.counts.unknown += 1
            return []
        self.counts.count(FeedbackLabel.HANDLED)
        return [
            Alert(
                kind=AlertKind.ACCOUNT_RISK,
                account_id=feedback.account_id,
                episode_id=episode_id,
                transition=Transition.RESOLVED,
                severity=Severity.LOW,
                risk=0.0,
                reasons=(f"{HANDLED_OUTCOME} (marked handled by {feedback.user})",),
                event_ts_ms=now_ms,
                detected_ts_ms=now_ms,
                extra={"outcome": HANDLED_OUTCOME},
            )
        ]
