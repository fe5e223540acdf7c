"""Answers to alerts folded by the engine (issue 18): each label to its effect on the account and the model.

Answers arrive in the engine's input next to events (:class:`AnswerArrival`: the live worker reads them from
the ``churnwatch.feedback`` topic, replay from ``--feedback FILE``). For the account that owns the alert:

- *false alarm*: the alert's reason kinds are muted, then damped, for the account
  (:class:`~detectors.answers.AnswerBook`); the features the alert was scored on are a negative label
  for the risk model;
- *real*: those features are a positive label;
- *handled*: the alert's episode closes with the outcome "action taken" (a ``resolved`` alert says so);
- *snooze*: the account's alerts are held back for :data:`~streams.feedback.SNOOZE_DAYS`.

Labels weigh ``AnswerPolicy.label_weight`` cancellations each. Answers act at their own time
(``answered_ts_ms``): a snooze lasts until the gateway's ``snooze_until_ms``, a mute from the answer, in the
worker and in a backtest alike. The same answer twice (:attr:`~streams.feedback.Feedback.feedback_id`) counts
once. Each answer folded is reported to ``Answering.listener`` (label, what became of it), for metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from detectors.alerts import Alert, AlertKind, Severity, Transition
from detectors.answer_segments import SegmentAnswers
from detectors.answers import AnswerBook, AnsweredAlert, AnswerPolicy, close_episode
from detectors.monitor import AccountMonitor, Assessment
from streams.engine.state import AccountState
from streams.engine.steps import Steps
from streams.feedback import DAY_MS, SNOOZE_DAYS, Feedback, FeedbackLabel

HANDLED_OUTCOME = "action taken"


@dataclass(slots=True)
class AnswerArrival:
    """One answer and where it came from (the driver's record, or a line of a feedback file)."""

    feedback: Feedback
    partition: int
    offset: int
    source: Any = None


class AnswerOutcome(Enum):
    """What became of an answer the engine read."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # the same answer (alert + label + person) again
    UNKNOWN = "unknown"  # no state for the account, or an alert (episode) it no longer remembers


AnswerListener = Callable[[FeedbackLabel, AnswerOutcome], None]


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


def remembering_alerts(
    alerts: Iterable[Alert],
    assessments: Iterable[Assessment],
    states: dict[str, AccountState],
    weights: Mapping[str, Mapping[str, float]] | None = None,
) -> Steps[list[str]]:
    """Keep each delivered account alert that can be answered in its account's book; the accounts changed.
    In steps, one alert each (a sweep may raise thousands).

    ``weights``: by account, the multipliers answers put on its features when it was scored; the book keeps
    the features as observed (a label teaches the model about the account as it is, as snapshots do)."""
    weights = weights or {}
    features = {a.account_id: a.features for a in assessments}
    changed: list[str] = []
    for alert in alerts:
        if alert.kind is not AlertKind.ACCOUNT_RISK or alert.transition is Transition.RESOLVED:
            continue
        state = states.get(alert.account_id)
        if state is None:
            continue
        book_of(state).remember(
            alert.idempotency_key,
            alert.event_ts_ms,
            alert.reasons,
            observed(features.get(alert.account_id, {}), weights.get(alert.account_id)),
        )
        changed.append(alert.account_id)
        yield
    return changed


def observed(features: Mapping[str, float], weights: Mapping[str, float] | None) -> dict[str, float]:
    """Features as observed, from features scored under ``weights`` (a feature weighted 0 stays out).

    >>> observed({"silence": 1.0, "lapsed": 0.3}, {"silence": 0.25, "recency": 0.0})
    {'silence': 4.0, 'lapsed': 0.3}
    """
    if not weights:
        return dict(features)
    out: dict[str, float] = {}
    for name, value in features.items():
        weight = weights.get(name, 1.0)
        out[name] = value / weight if weight > 0 else value
    return out


class Answering:
    """Applies answers to account states and to the monitor's risk model, under one :class:`AnswerPolicy`."""

    def __init__(self, monitor: AccountMonitor, policy: AnswerPolicy, segments: SegmentAnswers) -> None:
        self.monitor = monitor
        self.policy = policy
        self.segments = segments
        self.counts = AnswerCounts()
        self.listener: AnswerListener | None = None

    def _told(self, feedback: Feedback, outcome: AnswerOutcome) -> None:
        if outcome is AnswerOutcome.APPLIED:
            self.counts.count(feedback.label)
        elif outcome is AnswerOutcome.DUPLICATE:
            self.counts.duplicates += 1
        else:
            self.counts.unknown += 1
        if self.listener is not None:
            self.listener(feedback.label, outcome)

    def unknown(self, feedback: Feedback) -> None:
        """An answer for an account the engine holds no state of."""
        self._told(feedback, AnswerOutcome.UNKNOWN)

    def apply(self, state: AccountState, detector: Any, feedback: Feedback, now_ms: int) -> list[Alert]:
        """Apply ``feedback`` to the account's ``state`` (``detector``: its decoded detector state) at
        ``now_ms``; the alerts it raises (a *handled* episode's resolution). The caller writes the state."""
        book = book_of(state)
        if not book.first_time(feedback.feedback_id):
            self._told(feedback, AnswerOutcome.DUPLICATE)
            return []
        label = feedback.label
        if label is FeedbackLabel.SNOOZE:
            self.monitor.snooze(detector, feedback.snooze_until_ms or now_ms + SNOOZE_DAYS * DAY_MS)
            self._told(feedback, AnswerOutcome.APPLIED)
            return []
        if label is FeedbackLabel.HANDLED:
            return self._handled(detector, feedback, now_ms)
        alert = book.alert(feedback.alert_id)
        if alert is None:
            self._told(feedback, AnswerOutcome.UNKNOWN)
            return []
        real = label is FeedbackLabel.REAL
        if not real:
            book.false_alarm(alert, now_ms=now_ms, policy=self.policy)
        self.segments.record(state.window.plan, alert.kinds, real=real, now_ms=now_ms, policy=self.policy)
        self._learn(alert, real)
        self._told(feedback, AnswerOutcome.APPLIED)
        return []

    def _learn(self, alert: AnsweredAlert, real: bool) -> None:
        if alert.features and self.policy.label_weight > 0:
            day = alert.ts_ms // DAY_MS  # the day its features were scored: matched by the rank weights
            self.monitor.risk_model.learn_one(alert.features, real, self.policy.label_weight, day)
            self.counts.learned += 1

    def _handled(self, detector: Any, feedback: Feedback, now_ms: int) -> list[Alert]:
        episode_id = Alert.episode_of(feedback.alert_id)
        closed = close_episode(
            detector, episode_id, now_ms=now_ms, cooldown_days=self.monitor.config.cooldown_days
        )
        if not closed:
            self._told(feedback, AnswerOutcome.UNKNOWN)
            return []
        self._told(feedback, AnswerOutcome.APPLIED)
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
