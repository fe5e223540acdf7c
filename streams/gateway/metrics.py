"""The ingest gateway's Prometheus metrics, built against a given registry (as :mod:`streams.metrics`)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PRODUCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
HOUR, DAY = 3_600, 86_400
# People answer within minutes (on Slack) to days (after a call): 1 min .. 14 days.
ANSWER_BUCKETS = (
    60,
    300,
    900,
    1_800,
    HOUR,
    2 * HOUR,
    4 * HOUR,
    8 * HOUR,
    DAY,
    2 * DAY,
    3 * DAY,
    7 * DAY,
    14 * DAY,
)


@dataclass(frozen=True, slots=True)
class GatewayMetrics:
    requests: Counter
    events_produced: Counter
    rejections: Counter
    produce_seconds: Histogram
    answers: Counter
    alerts_known: Gauge
    alerts_answered: Counter
    first_answer_seconds: Histogram

    @classmethod
    def build(cls, registry: CollectorRegistry) -> GatewayMetrics:
        """Create and register the gateway's metrics in ``registry``.

        >>> registry = CollectorRegistry()
        >>> metrics = GatewayMetrics.build(registry)
        >>> metrics.rejections.labels(source="stripe", reason="unauthorized").inc()
        >>> registry.get_sample_value(
        ...     "churnwatch_ingest_rejections_total", {"source": "stripe", "reason": "unauthorized"})
        1.0
        """
        return cls(
            requests=Counter(
                "churnwatch_ingest_requests_total",
                "HTTP requests to the ingest gateway, by source (segment, stripe, zendesk, intercom) "
                "and status.",
                ["source", "status"],
                registry=registry,
            ),
            events_produced=Counter(
                "churnwatch_ingest_events_produced_total",
                "Canonical events acknowledged by Kafka, by source and event type (usage, support, billing).",
                ["source", "type"],
                registry=registry,
            ),
            rejections=Counter(
                "churnwatch_ingest_rejections_total",
                "Requests refused or items set aside (dead-lettered, ignored), by source and reason.",
                ["source", "reason"],
                registry=registry,
            ),
            produce_seconds=Histogram(
                "churnwatch_ingest_produce_seconds",
                "Time from handing a request's records to the producer to Kafka's acknowledgement of all.",
                buckets=PRODUCE_BUCKETS,
                registry=registry,
            ),
            answers=Counter(
                "churnwatch_feedback_answers_total",
                "Answers to alerts, by source (slack, api), label and whether it repeated a recorded one.",
                ["source", "label", "duplicate"],
                registry=registry,
            ),
            alerts_known=Gauge(
                "churnwatch_feedback_alerts_known",
                "Alerts the gateway accepts answers to (detected in CHURNWATCH_FEEDBACK_ALERT_MEMORY_DAYS).",
                registry=registry,
            ),
            alerts_answered=Counter(
                "churnwatch_feedback_alerts_answered_total",
                "Alerts answered, once per alert and label (two people marking one alert real count once), "
                "by label and the kind of the alert's first reason (detectors.reasons.REASON_KINDS).",
                ["label", "reason"],
                registry=registry,
            ),
            first_answer_seconds=Histogram(
                "churnwatch_feedback_first_answer_seconds",
                "Time from an alert's detection to its first answer (any label).",
                buckets=ANSWER_BUCKETS,
                registry=registry,
            ),
        )
