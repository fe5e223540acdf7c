"""What answers do to the gateway's metrics, and the reason kinds they are counted by (no broker).

The routes here produce into a list instead of Kafka; tests/test_feedback_kafka.py sends answers through the
real routes of a real gateway on the real broker and reads its /metrics.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import CollectorRegistry

from detectors.features.billing import MrrDrop, PaymentFailed, PaymentUnresolved
from detectors.features.level import (
    InactiveAhead,
    Infrequent,
    Lapsed,
    LowActivity,
    LowDepth,
    LowEngagement,
    NewAccount,
    Recency,
    Trend,
)
from detectors.features.silence import Silence
from detectors.features.support import LowCsat, Tickets
from detectors.features.usage import Abrupt, Decline, SignalDrop, SustainedDrop
from detectors.reasons import OTHER_REASON, REASON_KINDS, Evidence, describe, explain, reason_kind
from detectors.risk import FEATURES
from streams.feedback import Feedback, FeedbackLabel, FeedbackSource
from streams.gateway.alert_index import AlertIndex
from streams.gateway.answers import count_answer
from streams.gateway.feedback import Answer, FeedbackRoutes
from streams.gateway.metrics import GatewayMetrics
from streams.gateway.outbox import Record
from tests.kafka_harness import make_alert

EVIDENCE: dict[str, Evidence] = {
    e.feature: e
    for e in (
        SignalDrop("usage_drop", 0.6, 3.0, 9.0, 7),
        SignalDrop("users_drop", 0.5, 2.0, 5.0, 7),
        SignalDrop("key_drop", 0.7, 1.0, 4.0, 7),
        SustainedDrop(2.0, 20_000),
        Abrupt(0.5),
        Decline(0.4, 3.0, 6.0, 0.5),
        Silence(2.0, 9, 1.2),
        Tickets("ticket_burst", 1.0, 5, 1.0, 2, 1),
        Tickets("urgent", 3.0, 5, 1.0, 2, 1),
        LowCsat(1.4, 2.1, 3),
        PaymentFailed(2.0, 2, 1_000, None),
        PaymentUnresolved(1.0, 20_000),
        MrrDrop(0.6, 500.0, 200.0),
        Lapsed(0.8, 12, 40, 90),
        LowEngagement(0.93, 0.07, 2.1, "pro"),
        LowActivity(0.96, 0.04, 1.2),
        LowDepth(0.9, 0.1, 0.4, "pro"),
        InactiveAhead(0.7, 12, 40, 90, 30),
        Infrequent(0.6),
        Recency(0.7, 11),
        NewAccount(0.8, 20),
        Trend("trend_4w", 0.3, 4),
        Trend("trend_8w", 0.3, 8),
    )
}
KIND_OF = {"ticket_burst": "tickets", "urgent": "tickets"}  # one sentence for both features


def test_every_feature_has_evidence_and_all_but_abrupt_a_sentence() -> None:
    assert set(EVIDENCE) == set(FEATURES)
    assert [name for name in FEATURES if not describe(name, 0.5, EVIDENCE)] == ["abrupt"]


@pytest.mark.parametrize("feature", [name for name in FEATURES if describe(name, 0.5, EVIDENCE)])
def test_every_reason_sentence_reads_back_to_its_kind(feature: str) -> None:
    for value in (0.05, 0.5, 0.95):
        sentence = describe(feature, value, EVIDENCE)
        assert reason_kind(sentence) == KIND_OF.get(feature, feature), sentence
    assert KIND_OF.get(feature, feature) in REASON_KINDS


def test_base_rate_sentence_and_unknown_sentences_have_kinds() -> None:
    (sentence,) = explain({}, {}, {}, min_logodds=1, max_reasons=3, at_least_one=True)
    assert reason_kind(sentence) == "base_rate"
    assert reason_kind("subscription canceled at 2026-01-01T00:00:00Z") == "canceled"
    assert reason_kind("live metrics test") == OTHER_REASON
    assert len(REASON_KINDS) == len(set(REASON_KINDS)) <= 30  # few label values


class Routes:
    """Answer routes over a real index and real metrics, producing into a list."""

    def __init__(self, now_s: float = 1_800_000_000.0) -> None:
        self.now_s = now_s
        self.registry = CollectorRegistry()
        self.metrics = GatewayMetrics.build(self.registry)
        self.index = AlertIndex(max_alerts=100, memory_ms=86_400_000, clock_ms=lambda: int(self.now_s * 1000))
        self.produced: list[Record] = []
        self.routes = FeedbackRoutes(
            index=self.index,
            produce=self.produce,
            http=httpx.AsyncClient(),
            clock=lambda: self.now_s,
            topic_feedback="feedback",
            topic_alerts="alerts",
            on_answer=lambda recorded: count_answer(self.metrics, recorded),
        )

    async def produce(self, records: list[Record]) -> int:
        await asyncio.sleep(0)  # a real write yields to the loop: racing requests interleave here
        self.produced.extend(records)
        return len(records)

    def alert(self, account: str, reason: str, detected_s_ago: float) -> str:
        alert = make_alert(account, episode_ts_ms=int((self.now_s - detected_s_ago) * 1000) - 1_000)
        body = alert.to_dict()
        body["reasons"] = [reason, "new account (20 days)"]
        self.index.add_alert(body)
        return alert.idempotency_key

    async def answer(self, alert_id: str, label: FeedbackLabel, user: str = "ana") -> bool:
        _, duplicate = await self.routes.record(Answer(label, user, alert_id), FeedbackSource.API)
        return duplicate

    def answered(self, label: str, reason: str) -> float:
        labels = {"label": label, "reason": reason}
        return self.registry.get_sample_value("churnwatch_feedback_alerts_answered_total", labels) or 0.0

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


async def test_answers_count_once_per_alert_and_label_by_the_first_reason() -> None:
    routes = Routes()
    silent = routes.alert("a", "silent for 9 days (usually active every 1.2 days)", detected_s_ago=600)
    csat = routes.alert("b", "CSAT 2.1/5 over 3 ratings in 30 days", detected_s_ago=7_200)

    assert [
        await routes.answer(silent, FeedbackLabel.FALSE_ALARM),
        await routes.answer(silent, FeedbackLabel.FALSE_ALARM),  # the same click again
        await routes.answer(silent, FeedbackLabel.FALSE_ALARM, user="bo"),  # a second person agreeing
        await routes.answer(silent, FeedbackLabel.REAL, user="cy"),  # and one disagreeing
        await routes.answer(csat, FeedbackLabel.REAL),
    ] == [False, True, False, False, False]

    assert len(routes.produced) == 4
    assert routes.answered("false-alarm", "silence") == 1
    assert routes.answered("real", "silence") == 1
    assert routes.answered("real", "low_csat") == 1
    assert routes.answered("false-alarm", "low_csat") == 0
    answers = "churnwatch_feedback_answers_total"
    assert routes.sample(answers, source="api", label="false-alarm", duplicate="false") == 2
    assert routes.sample(answers, source="api", label="false-alarm", duplicate="true") == 1
    # Time to first answer: once per alert, from its detection (10 min and 2 h ago).
    assert routes.sample("churnwatch_feedback_first_answer_seconds_count") == 2
    assert routes.sample("churnwatch_feedback_first_answer_seconds_sum") == pytest.approx(600 + 7_200)
    assert routes.sample("churnwatch_feedback_first_answer_seconds_bucket", le="900.0") == 1


async def test_racing_identical_clicks_record_and_count_once() -> None:
    routes = Routes()
    alert_id = routes.alert("a", "usage -62% vs its usual level (...)", detected_s_ago=60)
    results = await asyncio.gather(*(routes.answer(alert_id, FeedbackLabel.REAL) for _ in range(5)))
    assert sorted(results) == [False, True, True, True, True]
    assert len(routes.produced) == 1
    assert routes.answered("real", "usage_drop") == 1
    assert routes.sample("churnwatch_feedback_first_answer_seconds_count") == 1
    assert not routes.routes._serial  # no lock left behind


async def test_answers_read_back_from_the_topic_are_not_counted_again() -> None:
    """Another gateway recorded the first answer: this one learns it from the topic and counts only news."""
    other, routes = Routes(), Routes()
    alert_id = other.alert("a", "MRR 500 -> 200 (-60%, downgrade)", detected_s_ago=60)
    routes.alert("a", "MRR 500 -> 200 (-60%, downgrade)", detected_s_ago=60)
    await other.answer(alert_id, FeedbackLabel.FALSE_ALARM)
    (record,) = other.produced
    routes.index.remember_answer(Feedback.from_bytes(record.value))  # what the follower does
    assert await routes.answer(alert_id, FeedbackLabel.FALSE_ALARM) is True
    await routes.answer(alert_id, FeedbackLabel.FALSE_ALARM, user="bo")
    assert routes.answered("false-alarm", "mrr_drop") == 0  # not this alert's first false alarm
    assert routes.sample("churnwatch_feedback_first_answer_seconds_count") == 0
    assert other.answered("false-alarm", "mrr_drop") == 1  # summed over both gateways: one
