"""Wiring of the answer routes into a running gateway: alert index and follower, HTTP client, metrics."""

from __future__ import annotations

import time
from functools import partial

import httpx
from pydantic import SecretStr

from detectors.reasons import REASON_KINDS
from streams.feedback import FeedbackLabel
from streams.gateway.alert_index import DAY_MS, AlertFollower, AlertIndex
from streams.gateway.app import Gateway
from streams.gateway.feedback import FeedbackRoutes, Recorded
from streams.gateway.metrics import GatewayMetrics
from streams.gateway.outbox import Record
from streams.settings import Settings

SLACK_UPDATE_TIMEOUT_S = 10.0


def answers_configured(settings: Settings) -> bool:
    """Whether any answer route is on (each needs its secret)."""
    secrets = (
        settings.feedback.slack_signing_secret,
        settings.feedback.token,
        settings.feedback.webhook_secret,
    )
    return any(secret is not None for secret in secrets)


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


class Answers:
    """Everything the answer routes need, started and stopped with the gateway."""

    def __init__(self, settings: Settings, gateway: Gateway, http: httpx.AsyncClient | None = None) -> None:
        self.index = AlertIndex(
            max_alerts=settings.feedback.alert_memory_max,
            memory_ms=int(settings.feedback.alert_memory_days * DAY_MS),
            clock_ms=lambda: int(gateway.clock() * 1000),
        )
        self.follower = AlertFollower(settings, self.index)
        self.http = http or httpx.AsyncClient(timeout=SLACK_UPDATE_TIMEOUT_S, follow_redirects=False)
        metrics = gateway.metrics
        metrics.alerts_known.set_function(lambda: len(self.index))
        timeout = settings.ingest.ack_timeout_seconds

        async def produce(records: list[Record]) -> int:
            started = time.perf_counter()
            sent = await gateway.outbox.write(records, timeout=timeout)
            metrics.produce_seconds.observe(time.perf_counter() - started)
            return sent

        # Every (label, reason) series exists from the start at 0: increase() cannot see a series' first
        # step, so a counter born at 1 would hide the first false alarm of each reason from the rules.
        for label in FeedbackLabel:
            for reason in REASON_KINDS:
                metrics.alerts_answered.labels(label=label.value, reason=reason)

        self.routes = FeedbackRoutes(
            index=self.index,
            produce=produce,
            http=self.http,
            clock=gateway.clock,
            topic_feedback=settings.topics.feedback,
            topic_alerts=settings.topics.alerts,
            slack_secret=_secret(settings.feedback.slack_signing_secret),
            bearer_token=_secret(settings.feedback.token),
            webhook_secret=_secret(settings.feedback.webhook_secret),
            on_answer=partial(count_answer, metrics),
        )

    async def start(self) -> int:
        return await self.follower.start()

    async def stop(self) -> None:
        await self.routes.stop()
        await self.follower.stop()
        await self.http.aclose()


def count_answer(metrics: GatewayMetrics, recorded: Recorded) -> None:
    """Move the answer metrics: every answer by source and label; what it adds to its alert's record.

    Each answer is counted by the one gateway that recorded it, so sums over gateways add up (the followers
    that read it back from the topic only learn that the alert was answered).
    """
    feedback, news = recorded.feedback, recorded.news
    duplicate = str(recorded.duplicate).lower()
    metrics.answers.labels(
        source=feedback.source.value, label=feedback.label.value, duplicate=duplicate
    ).inc()
    if news is None:
        return
    if news.first_of_label:
        metrics.alerts_answered.labels(label=feedback.label.value, reason=recorded.alert.reason).inc()
    if news.first_answer:
        waited_ms = feedback.answered_ts_ms - recorded.alert.detected_ts_ms
        metrics.first_answer_seconds.observe(max(waited_ms, 0) / 1000)
