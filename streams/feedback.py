"""Answers to alerts (issue #18): the typed record on the compacted ``churnwatch.feedback`` topic.

An answer names the alert it answers by the alert's id, its idempotency key (``"{episode_id}:{transition}"``,
what every sink already carries). Records are keyed by account id, so the worker that owns the account folds
them. :attr:`Feedback.feedback_id` (alert id + label + who answered) makes a repeated click the same answer:
the gateway produces it once, and a consumer can drop repeats by it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import orjson

SNOOZE_DAYS = 14
DAY_MS = 86_400_000


class FeedbackLabel(StrEnum):
    """What the person answering says about an alert."""

    REAL = "real"  # a real churn risk
    FALSE_ALARM = "false-alarm"  # the pattern is normal for this account
    HANDLED = "handled"  # action was taken: the episode closes with that outcome
    SNOOZE = "snooze"  # hold back this account's alerts for SNOOZE_DAYS (Slack button)

    @property
    def phrase(self) -> str:
        """How a message update says it: ``marked false alarm by @ana``."""
        return {
            FeedbackLabel.REAL: "marked real risk",
            FeedbackLabel.FALSE_ALARM: "marked false alarm",
            FeedbackLabel.HANDLED: "marked handled",
            FeedbackLabel.SNOOZE: f"snoozed for {SNOOZE_DAYS} days",
        }[self]


class FeedbackSource(StrEnum):
    SLACK = "slack"
    API = "api"  # POST /churnwatch/feedback/ (CRMs, tools, `churnwatch alerts feedback`)


@dataclass(frozen=True, slots=True, kw_only=True)
class Feedback:
    """One answer to one alert, as written to the feedback topic.

    Examples
    --------
    >>> f = Feedback(account_id="acme", alert_id="acme:1764151200000:opened", label=FeedbackLabel.FALSE_ALARM,
    ...              user="ana", source=FeedbackSource.SLACK, answered_ts_ms=1764151300000)
    >>> f.feedback_id
    'acme:1764151200000:opened|false-alarm|ana'
    >>> Feedback.from_bytes(f.to_bytes()) == f
    True
    >>> f.to_dict()["label"], f.snooze_until_ms
    ('false-alarm', None)
    """

    account_id: str
    alert_id: str
    label: FeedbackLabel
    user: str
    source: FeedbackSource
    answered_ts_ms: int
    note: str | None = None

    @property
    def feedback_id(self) -> str:
        return f"{self.alert_id}|{self.label.value}|{self.user}"

    @property
    def snooze_until_ms(self) -> int | None:
        return self.answered_ts_ms + SNOOZE_DAYS * DAY_MS if self.label is FeedbackLabel.SNOOZE else None

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["label"], body["source"] = self.label.value, self.source.value
        body["feedback_id"] = self.feedback_id
        body["snooze_until_ms"] = self.snooze_until_ms
        return body

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Feedback:
        body = orjson.loads(raw)
        return cls(
            account_id=body["account_id"],
            alert_id=body["alert_id"],
            label=FeedbackLabel(body["label"]),
            user=body["user"],
            source=FeedbackSource(body["source"]),
            answered_ts_ms=int(body["answered_ts_ms"]),
            note=body.get("note"),
        )
