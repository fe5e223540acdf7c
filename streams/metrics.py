"""Every Prometheus metric churnwatch exports, built in one place against a given registry.

Tests build a fresh :class:`prometheus_client.CollectorRegistry` and read values with ``get_sample_value``.
Labels stay low-cardinality: topics, outcomes and reasons, never account ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)
BATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


@dataclass(frozen=True, slots=True)
class Metrics:
    events_consumed: Counter
    deadletters: Counter
    duplicates_skipped: Counter
    accounts_tracked: Gauge
    batch_seconds: Histogram
    processing_latency: Histogram
    worker_up: Gauge
    alert_deliveries: Counter
    alert_delivery_retries: Counter
    alert_duplicates_suppressed: Counter

    @classmethod
    def build(cls, registry: CollectorRegistry) -> Metrics:
        """Create and register all metrics in ``registry``.

        >>> from prometheus_client import CollectorRegistry
        >>> registry = CollectorRegistry()
        >>> metrics = Metrics.build(registry)
        >>> metrics.events_consumed.labels(topic="usage", outcome="ok").inc(3)
        >>> registry.get_sample_value("churnwatch_events_consumed_total", {"topic": "usage", "outcome": "ok"})
        3.0
        """
        return cls(
            events_consumed=Counter(
                "churnwatch_events_consumed_total",
                "Event records consumed, by event type and outcome (ok or the dead-letter reason).",
                ["topic", "outcome"],
                registry=registry,
            ),
            deadletters=Counter(
                "churnwatch_deadletters_total",
                "Records sent to the dead-letter topic, by reason.",
                ["reason"],
                registry=registry,
            ),
            duplicates_skipped=Counter(
                "churnwatch_duplicate_events_skipped_total",
                "Redelivered records skipped because their account state already includes them.",
                registry=registry,
            ),
            accounts_tracked=Gauge(
                "churnwatch_accounts_tracked",
                "Accounts with state in this worker's partitions.",
                registry=registry,
            ),
            batch_seconds=Histogram(
                "churnwatch_ingest_batch_duration_seconds",
                "Time to fold one micro-batch into account state.",
                buckets=BATCH_BUCKETS,
                registry=registry,
            ),
            processing_latency=Histogram(
                "churnwatch_processing_latency_seconds",
                "Wall-clock time from an event's timestamp to the end of the batch that folded it.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            worker_up=Gauge("churnwatch_worker_up", "1 while the worker runs.", registry=registry),
            alert_deliveries=Counter(
                "churnwatch_alert_deliveries_total",
                "Alerts handled per sink, by outcome (delivered, dead_lettered).",
                ["sink", "outcome"],
                registry=registry,
            ),
            alert_delivery_retries=Counter(
                "churnwatch_alert_delivery_retries_total",
                "Delivery retries per sink (5xx, 429, timeouts).",
                ["sink"],
                registry=registry,
            ),
            alert_duplicates_suppressed=Counter(
                "churnwatch_alert_duplicates_suppressed_total",
                "Alerts not sent again because their idempotency key was already handled.",
                registry=registry,
            ),
        )
