"""Which alerts the gateway accepts answers to: a bounded, time-expiring index fed by the alerts topic.

The gateway follows the alerts topic (from ``CHURNWATCH_FEEDBACK_ALERT_MEMORY_DAYS`` ago, found with
``offsets_for_times``) and keeps alert id (the idempotency key) -> account for account alerts detected within
that window, at most ``CHURNWATCH_FEEDBACK_ALERT_MEMORY_MAX`` of them (the oldest forgotten first), with
the kind of the alert's first (strongest) reason. An answer to an alert outside the index is refused with 404.
It also reads the compacted feedback topic, so answers already recorded (by any gateway, before a restart)
are not recorded again, and :meth:`AlertIndex.news` can tell an alert's first answer (and its first answer
with a label) from later ones; compaction keeps the latest answer per account, so after compaction only that
one is known.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from detectors.alerts import AlertKind
from detectors.reasons import OTHER_REASON, reason_kind
from streams.feedback import Feedback, FeedbackLabel
from streams.gateway.follower import Batches, TopicFollower
from streams.live.kafka_client import topic_partitions
from streams.settings import Settings

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class KnownAlert:
    alert_id: str
    account_id: str
    detected_ts_ms: int
    reason: str = OTHER_REASON  # the kind of its first reason (detectors.reasons.reason_kind)


@dataclass(frozen=True, slots=True)
class AnswerNews:
    """What an answer adds to what is known of its alert (before it is remembered)."""

    first_answer: bool  # the alert had no answer yet, of any label
    first_of_label: bool  # the alert had no answer with this label yet (by anyone)


class AlertIndex:
    """Alert id -> account for recent account alerts; feedback ids already recorded.

    Examples
    --------
    >>> index = AlertIndex(max_alerts=2, memory_ms=1_000, clock_ms=lambda: 10_000)
    >>> for i in range(3):
    ...     index.add_alert({"kind": "account_risk", "account_id": "a", "idempotency_key": f"a:{i}:opened",
    ...                      "detected_ts_ms": 9_500})
    >>> index.find("a:0:opened") is None, index.find("a:2:opened").account_id, index.latest("a")
    (True, 'a', 'a:2:opened')
    >>> index.add_alert({"kind": "account_risk", "account_id": "b", "idempotency_key": "b:1:opened",
    ...                  "detected_ts_ms": 8_000})  # older than the memory: not kept
    >>> index.find("b:1:opened") is None, len(index)
    (True, 2)
    >>> index.find("a:2:opened").reason  # no reasons in the record
    'other'
    """

    def __init__(self, *, max_alerts: int, memory_ms: int, clock_ms: Callable[[], int]) -> None:
        self.max_alerts = max_alerts
        self.memory_ms = memory_ms
        self.clock_ms = clock_ms
        self._alerts: OrderedDict[str, KnownAlert] = OrderedDict()
        self._latest: dict[str, str] = {}  # account -> its latest alert id
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._labels: OrderedDict[str, set[FeedbackLabel]] = OrderedDict()  # alert id -> labels answered

    def __len__(self) -> int:
        """Alerts answerable now (expired ones are forgotten first)."""
        self._prune()
        return len(self._alerts)

    def _fresh(self, alert: KnownAlert) -> bool:
        return alert.detected_ts_ms >= self.clock_ms() - self.memory_ms

    def add_alert(self, body: Any) -> None:
        """Index one alerts-topic value (snooze records and pipeline incidents are skipped)."""
        if not isinstance(body, dict) or body.get("kind") != AlertKind.ACCOUNT_RISK.value:
            return
        alert_id, account, detected = (
            body.get("idempotency_key"),
            body.get("account_id"),
            body.get("detected_ts_ms"),
        )
        if not isinstance(alert_id, str) or not isinstance(account, str) or not isinstance(detected, int):
            return
        reasons = body.get("reasons")
        first = reasons[0] if isinstance(reasons, list) and reasons and isinstance(reasons[0], str) else ""
        known = KnownAlert(alert_id, account, detected, reason_kind(first) if first else OTHER_REASON)
        if not self._fresh(known):
            return
        self._alerts[alert_id] = known
        self._alerts.move_to_end(alert_id)
        latest = self._alerts.get(self._latest.get(account, ""))
        if latest is None or latest.detected_ts_ms <= detected:
            self._latest[account] = alert_id
        self._prune()

    def _prune(self) -> None:
        while self._alerts:
            oldest = next(iter(self._alerts.values()))
            if len(self._alerts) <= self.max_alerts and self._fresh(oldest):
                break
            self._alerts.popitem(last=False)
            if self._latest.get(oldest.account_id) == oldest.alert_id:
                del self._latest[oldest.account_id]
        while len(self._answered) > self.max_alerts:
            self._answered.popitem(last=False)
        while len(self._labels) > self.max_alerts:
            self._labels.popitem(last=False)

    def find(self, alert_id: str) -> KnownAlert | None:
        known = self._alerts.get(alert_id)
        return known if known is not None and self._fresh(known) else None

    def latest(self, account_id: str) -> str | None:
        """The id of the account's latest alert still remembered."""
        alert_id = self._latest.get(account_id)
        return alert_id if alert_id is not None and self.find(alert_id) is not None else None

    def answered(self, feedback_id: str) -> bool:
        return feedback_id in self._answered

    def news(self, feedback: Feedback) -> AnswerNews:
        """Whether ``feedback`` would be its alert's first answer, and its first with that label."""
        labels = self._labels.get(feedback.alert_id, set())
        return AnswerNews(first_answer=not labels, first_of_label=feedback.label not in labels)

    def remember_answer(self, feedback: Feedback) -> None:
        """Record an answer (idempotent: the follower reads back what this gateway recorded)."""
        self._answered[feedback.feedback_id] = None
        self._labels.setdefault(feedback.alert_id, set()).add(feedback.label)
        self._labels.move_to_end(feedback.alert_id)
        self._prune()


class AlertFollower(TopicFollower):
    """Loads the alerts topic (the memory window) and the feedback topic into an index, then follows both."""

    name = "alert_index"

    def __init__(self, settings: Settings, index: AlertIndex) -> None:
        super().__init__(settings)
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    async def _seek(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        alerts = await topic_partitions(consumer, self.settings.topics.alerts)
        answers = await topic_partitions(consumer, self.settings.topics.feedback)
        consumer.assign([*alerts, *answers])
        since = self.index.clock_ms() - self.index.memory_ms
        found = await consumer.offsets_for_times(dict.fromkeys(alerts, since))
        ends = await consumer.end_offsets(alerts)
        for tp in alerts:
            at = found.get(tp)
            consumer.seek(tp, at.offset if at is not None else ends[tp])
        await consumer.seek_to_beginning(*answers)
        return [*alerts, *answers]

    def _apply(self, batches: Batches) -> None:
        for tp, records in batches.items():
            for record in records:
                if record.value is None:
                    continue
                try:
                    if tp.topic == self.settings.topics.feedback:
                        self.index.remember_answer(Feedback.from_bytes(bytes(record.value)))
                    else:
                        self.index.add_alert(orjson.loads(bytes(record.value)))
                except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
                    continue  # not ours to judge: the notifier dead-letters bad alert records
