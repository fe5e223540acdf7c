"""The worker's alert delivery: reads the alerts topic (the outbox) and delivers to the sinks, once.

Alerts are written to the alerts topic before any state that records them (``streams/live/app.py``); this
reader follows the topic for the partitions the worker owns and hands each batch to the
:class:`~streams.sinks.notifier.Notifier`. The ledger (the ``deliveries`` table) records each delivered
request before the outbox offsets move on, so a new owner skips what was already delivered; failed deliveries
are dead-lettered with the reason in headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
import httpx
import orjson

from detectors.alerts import Alert
from streams.engine.clock import WallClock
from streams.engine.store import RESERVED_PREFIX
from streams.live.checkpoint_pace import CheckpointPace
from streams.live.event_reader import EventReader, Positions
from streams.live.ingest import RawRecord
from streams.live.kafka_client import client_options
from streams.live.poison import PoisonBatch
from streams.metrics import Metrics
from streams.settings import Settings
from streams.sinks import AlertOutcome, DeliveryOutcome, RetryAttempt, RetryPolicy, Sink, build_sinks, deliver
from streams.sinks.notifier import LedgerEntry, Notifier, OutboxRecord

# The outbox reader's checkpoint in the deliveries table: the partition's next offset of the alerts topic.
POSITIONS_KEY = RESERVED_PREFIX + b"positions/%d"
LEDGER_EXPIRY_SECONDS = 3600.0


class Outbox:
    """Delivery of the alerts topic to the sinks, with its ledger (``deliveries``) and its own reader."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        metrics: Metrics,
        *,
        deliveries: Any,
        deadletter_topic: faust.types.TopicT,
        http: httpx.AsyncClient,
        clock: WallClock,
        owned_partitions: Callable[[], list[int]],
        on_skipped: Callable[[str, PoisonBatch], None],
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.deliveries = deliveries
        self.deadletter_topic = deadletter_topic
        self.clock = clock
        self.notifier = Notifier(
            build_sinks(settings.delivery, http),
            settings.delivery.retry_policy(),
            load=deliveries.data.get,
            store=self._store_ledger,
            clock=clock,
            send=self._deliver,
        )
        self.reader = EventReader(
            app,
            client_options(settings),
            type_by_topic={settings.topics.alerts: "alerts"},
            batch_max_events=100,
            batch_within_seconds=0.5,
            # After every batch: the ledger is already durable per request.
            checkpoint_pace=CheckpointPace(0.0, 0.0),
            owned_partitions=owned_partitions,
            stored_positions=self.stored_positions,
            process=self.notify,
            checkpoint=self.checkpoint,
            on_released=lambda: None,
            on_skipped=on_skipped,
            # A sink that is down keeps a batch retrying for up to the delivery budget: do not hold up a
            # rebalance for it. The ledger records each delivered request, so the next owner skips them.
            interrupt_on_revoke=True,
            rebuild_after_seconds=settings.worker.reader_rebuild_after_seconds,
            on_rebuilt=metrics.reader_rebuilds.labels(reader="outbox").inc,
        )
        app.timer(LEDGER_EXPIRY_SECONDS, name="churnwatch.ledger_expiry")(self.expire_ledger)

    async def notify(self, records: list[RawRecord]) -> None:
        """Deliver one batch of outbox records (the reader checkpoints its offsets afterwards)."""
        result = await self.notifier.handle(
            [OutboxRecord(record.key, record.value, record.partition, record.offset) for record in records]
        )
        for failed in result.failed:
            headers = [
                ("churnwatch.error.reason", failed.reason.encode()[:1000]),
                ("churnwatch.error.sink", (failed.sink or "").encode()),
                ("churnwatch.source.topic", self.settings.topics.alerts.encode()),
                ("churnwatch.source.partition", str(failed.record.partition).encode()),
                ("churnwatch.source.offset", str(failed.record.offset).encode()),
            ]
            await self.deadletter_topic.send(
                key=failed.record.key, value=failed.record.value, headers=headers
            )
        for sink, count in result.delivered.items():
            self.metrics.alert_deliveries.labels(sink=sink, outcome=AlertOutcome.DELIVERED).inc(count)
        for failed in result.failed:
            self.metrics.alert_deliveries.labels(
                sink=failed.sink or "none", outcome=AlertOutcome.DEAD_LETTERED
            ).inc()
        if result.duplicates:
            self.metrics.alert_duplicates_suppressed.inc(result.duplicates)
        if result.held_out:
            self.metrics.alerts_held_out.inc(result.held_out)

    async def checkpoint(self, positions: Positions) -> Awaitable[None]:
        """Nothing to take: what :meth:`record` does is the checkpoint."""
        return self.record(positions)

    async def record(self, positions: Positions) -> None:
        """Dead letters durable, then the outbox offsets (in the ledger's table, recovered with it)."""
        await self.app.producer.flush()
        for partition, offsets in positions.items():
            key = POSITIONS_KEY % partition
            raw = orjson.dumps(offsets)
            self.deliveries.data[key] = raw
            self.deliveries.send_changelog(partition, key, raw)

    def stored_positions(self, partition: int) -> dict[str, int]:
        raw = self.deliveries.data.get(POSITIONS_KEY % partition)
        return orjson.loads(raw) if raw is not None else {}

    def checkpointed_offsets(self, partitions: Sequence[int]) -> dict[str, int]:
        """The outbox offset a new owner would resume from, per partition (what is checkpointed)."""
        topic = self.settings.topics.alerts
        return {str(partition): self.stored_positions(partition).get(topic, 0) for partition in partitions}

    async def _deliver(self, sink: Sink, alerts: Sequence[Alert], policy: RetryPolicy) -> DeliveryOutcome:
        def on_retry(attempt: RetryAttempt) -> None:
            self.metrics.alert_delivery_retries.labels(sink=attempt.sink).inc()

        return await deliver(sink, alerts, policy, on_retry=on_retry)

    async def _store_ledger(self, entries: dict[bytes, LedgerEntry]) -> None:
        """Make ledger entries durable before moving on: a restart must see what was already delivered."""
        for key, entry in entries.items():
            raw = entry.to_bytes()
            self.deliveries.data[key] = raw
            self.deliveries.send_changelog(entry.partition, key, raw)
        await self.app.producer.flush()

    async def expire_ledger(self) -> None:
        """Forget idempotency keys (and lapsed snoozes) older than the dedup retention: bounded state."""
        now_ms = self.clock()
        horizon = now_ms - self.settings.delivery.dedup_retention_days * 86_400_000
        for key, raw in list(self.deliveries.data.items()):
            if key.startswith(RESERVED_PREFIX):
                continue
            entry = LedgerEntry.from_bytes(raw)
            lapsed = entry.snoozed_until_ms is not None and entry.snoozed_until_ms < now_ms
            if entry.first_seen_ms < horizon and (entry.snoozed_until_ms is None or lapsed):
                del self.deliveries.data[key]
                self.deliveries.send_changelog(entry.partition, key, None)

    def zero_counters(self) -> None:
        """Export every sink's series at 0 from the start: rate() cannot see a series' first increment."""
        for sink in self.notifier.sinks:
            for outcome in (AlertOutcome.DELIVERED, AlertOutcome.DEAD_LETTERED):
                self.metrics.alert_deliveries.labels(sink=sink.name, outcome=outcome)
            self.metrics.alert_delivery_retries.labels(sink=sink.name)
