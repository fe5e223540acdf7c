"""Every Prometheus metric churnwatch exports, built in one place against a given registry.

Tests build a fresh :class:`prometheus_client.CollectorRegistry` and read values with ``get_sample_value``.
Labels stay low-cardinality: topics, outcomes and reasons, never account ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)
RISK_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
SWEEP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


@dataclass(frozen=True, slots=True)
class Metrics:
    events_consumed: Counter
    deadletters: Counter
    duplicates_skipped: Counter
    events_deduplicated: Counter
    undecodable_skipped: Counter
    reader_rebuilds: Counter
    accounts_tracked: Gauge
    batch_seconds: Histogram
    processing_latency: Histogram
    worker_up: Gauge
    alert_deliveries: Counter
    alert_delivery_retries: Counter
    alert_duplicates_suppressed: Counter
    alerts_held_out: Counter
    holdout_settled_accounts: Gauge
    holdout_churned_accounts: Gauge
    holdout_pending_accounts: Gauge
    answers_folded: Counter
    consumer_lag: Gauge
    last_event_timestamp: Gauge
    event_clock_lag: Gauge
    accounts_at_risk: Gauge
    revenue_at_risk: Gauge
    alerts_raised: Counter
    risk_score: Histogram
    state_bytes: Gauge
    sweep_seconds: Histogram
    accounts_swept: Counter
    prompt_sweeps: Counter
    checkpoint_seconds: Histogram
    state_rows_written: Counter
    recovery_in_progress: Gauge
    worker_info: Info
    top_account_risk: Gauge
    top_accounts_truncated: Gauge
    ready: Gauge
    not_ready: Gauge
    reader_progress_age: Gauge
    event_loop_lag: Gauge
    gc_seconds: Counter

    @classmethod
    def build(cls, registry: CollectorRegistry) -> Metrics:
        """Create and register all metrics in ``registry``.

        Long on purpose: one declaration per metric, in one place (the client_python pattern), read as a list.

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
            events_deduplicated=Counter(
                "churnwatch_events_deduplicated_total",
                "Events dropped as copies of one seen under another offset (same event_id or content).",
                registry=registry,
            ),
            undecodable_skipped=Counter(
                "churnwatch_undecodable_records_skipped_total",
                "Offsets skipped because their batch could not be decoded at the Kafka level (unknown codec, "
                "corrupt batch): no bytes to dead-letter. By reason and topic role.",
                ["reason", "topic"],
                registry=registry,
            ),
            reader_rebuilds=Counter(
                "churnwatch_reader_consumer_rebuilds_total",
                "Kafka consumers replaced because the broker answered none of a reader's fetches for "
                "CHURNWATCH_READER_REBUILD_AFTER_SECONDS while it had partitions to read. By reader.",
                ["reader"],
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
            alerts_held_out=Counter(
                "churnwatch_alerts_held_out_total",
                "Account alerts recorded but not delivered because the account is in the holdout group.",
                registry=registry,
            ),
            holdout_settled_accounts=Gauge(
                "churnwatch_holdout_settled_accounts",
                "Alerted accounts settled a horizon after their first alert, by holdout group (delivered, "
                "held_out), in this worker's partitions as of its last sweep.",
                ["group"],
                registry=registry,
            ),
            holdout_churned_accounts=Gauge(
                "churnwatch_holdout_churned_accounts",
                "Of the settled alerted accounts, those that cancelled within the horizon after their first "
                "alert, by holdout group (delivered, held_out).",
                ["group"],
                registry=registry,
            ),
            holdout_pending_accounts=Gauge(
                "churnwatch_holdout_pending_accounts",
                "Alerted accounts still inside the horizon after their first alert (not settled yet).",
                registry=registry,
            ),
            answers_folded=Counter(
                "churnwatch_answers_folded_total",
                "Answers to alerts the worker read from the feedback topic, by label (real, false-alarm, "
                "handled, snooze) and outcome (applied; duplicate: the same answer again; unknown: no such "
                "alert or account state).",
                ["label", "outcome"],
                registry=registry,
            ),
            consumer_lag=Gauge(
                "churnwatch_consumer_lag_messages",
                "Records not yet consumed (high watermark minus committed offset), summed over this worker's "
                "partitions, by topic role (usage, support, billing, alerts).",
                ["topic"],
                registry=registry,
            ),
            last_event_timestamp=Gauge(
                "churnwatch_last_event_timestamp_seconds",
                "Wall-clock time at which this worker last folded a valid event.",
                registry=registry,
            ),
            event_clock_lag=Gauge(
                "churnwatch_event_clock_lag_days",
                "'event' clock: days the usage of every partition has reached beyond the last midnight swept "
                "(a sparse topic holding the clock, or a partition behind another).",
                registry=registry,
            ),
            accounts_at_risk=Gauge(
                "churnwatch_accounts_at_risk",
                "Accounts currently in an open risk episode, by severity and plan.",
                ["severity", "plan"],
                registry=registry,
            ),
            revenue_at_risk=Gauge(
                "churnwatch_revenue_at_risk",
                "Sum over at-risk accounts of risk x MRR (in the MRR's currency), by plan.",
                ["plan"],
                registry=registry,
            ),
            alerts_raised=Counter(
                "churnwatch_alerts_raised_total",
                "Alerts written to the outbox, by kind, severity and transition.",
                ["kind", "severity", "transition"],
                registry=registry,
            ),
            risk_score=Histogram(
                "churnwatch_risk_score",
                "Distribution of account risk (probability of cancelling within the horizon) of the accounts "
                "each sweep evaluated.",
                buckets=RISK_BUCKETS,
                registry=registry,
            ),
            state_bytes=Gauge(
                "churnwatch_state_bytes",
                "Serialized size of the account state this worker holds, by table.",
                ["table"],
                registry=registry,
            ),
            sweep_seconds=Histogram(
                "churnwatch_sweep_duration_seconds",
                "Duration of one sweep that evaluates the accounts on the clock.",
                buckets=SWEEP_BUCKETS,
                registry=registry,
            ),
            accounts_swept=Counter(
                "churnwatch_accounts_swept",
                "Accounts evaluated by sweeps: scope 'all' by a sweep of every account (a day's first), "
                "'changed' by a later one of the day (only the accounts support or billing events, late "
                "usage or answers reached since).",
                ["scope"],
                registry=registry,
            ),
            prompt_sweeps=Counter(
                "churnwatch_prompt_sweeps",
                "Wall-clock sweeps run right after a batch that brought a support or billing event or an "
                "answer (CHURNWATCH_SWEEP_PROMPT_SECONDS), not on the timer.",
                registry=registry,
            ),
            checkpoint_seconds=Histogram(
                "churnwatch_checkpoint_duration_seconds",
                "Time one checkpoint holds the state (changed states written to the changelog and flushed, "
                "then the offsets); no event is folded meanwhile.",
                buckets=SWEEP_BUCKETS,
                registry=registry,
            ),
            state_rows_written=Counter(
                "churnwatch_state_rows_written_total",
                "Account rows checkpoints wrote, by form: one_frame (a young account, or rows in parts off), "
                "two_frames, closed_copied (closed days and detector state copied from the row replaced).",
                ["form"],
                registry=registry,
            ),
            recovery_in_progress=Gauge(
                "churnwatch_table_recovery_in_progress",
                "1 while this worker restores table state from changelog topics.",
                registry=registry,
            ),
            worker_info=Info("churnwatch_worker", "churnwatch version and identity.", registry=registry),
            top_account_risk=Gauge(
                "churnwatch_top_account_risk",
                "Opt-in, capped export of the riskiest accounts (CHURNWATCH_TOP_ACCOUNTS_EXPORT).",
                ["account_id", "plan", "severity"],
                registry=registry,
            ),
            top_accounts_truncated=Gauge(
                "churnwatch_top_accounts_truncated",
                "1 when more accounts are at risk than the capped per-account export shows.",
                registry=registry,
            ),
            ready=Gauge(
                "churnwatch_ready",
                "1 while /churnwatch/ready/ answers 200: tables recovered and the event reader reading.",
                registry=registry,
            ),
            not_ready=Gauge(
                "churnwatch_not_ready",
                "1 for the reason the worker is not ready (rebalancing, starting, not_reading), else 0.",
                ["reason"],
                registry=registry,
            ),
            reader_progress_age=Gauge(
                "churnwatch_reader_progress_age_seconds",
                "Seconds since the broker last answered a fetch of the event reader (or it had nothing "
                "assigned): grows while the broker is unreachable or the reader is stalled.",
                registry=registry,
            ),
            event_loop_lag=Gauge(
                "churnwatch_event_loop_lag_seconds",
                "How late the worker's event loop ran a task due every second (blocking work delays it).",
                registry=registry,
            ),
            gc_seconds=Counter(
                "churnwatch_gc_seconds_total",
                "Seconds Python's cyclic garbage collector ran, by generation (each run stops the event "
                "loop; 2 is a walk over every object not frozen). Refreshed with the gauges.",
                ["generation"],
                registry=registry,
            ),
        )
