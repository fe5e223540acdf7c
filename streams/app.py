"""The Faust application: topics, the account state table, the ingest agent and the worker's HTTP views.

An :class:`~streams.event_reader.EventReader` fetches the three event topics in batches for the partitions
Faust assigned to this worker; :class:`BatchFolder` validates them and the :class:`~streams.engine.Engine`
folds them into account states (a :class:`~streams.engine.CachedStore` over the ``accounts`` table) and
sweeps. Every ``checkpoint_interval_seconds`` the changed states and the engine's own state are written to
the changelog-backed table, the producer is flushed, and then each partition's next offsets are written into
the same table: a new owner resumes from offsets that are never ahead of the state it recovered, and each
state remembers the offsets it applied, so a crash neither loses nor double-counts events.

Size: ~650 lines, over the ~400 the project aims for: Faust wiring, the state cache and checkpoints,
sweeps, model persistence, the outbox ledger, gauges and HTTP views still live together here. Issue 13
turns it into thin adapters around a transport-free engine (state store, outbox, views, gauges apart).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from importlib.metadata import version
from typing import Any, cast

import faust
import httpx
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from detectors.alerts import Alert
from detectors.monitor import AccountMonitor, DetectorConfig
from streams.dedup import Deduplicator
from streams.engine import AccountState, CachedStore, Engine, SweepOutcome
from streams.engine.store import RESERVED_PREFIX
from streams.event_reader import EventReader, Positions
from streams.events import DeadLetterReason
from streams.health import Health, LoopHeartbeat
from streams.holdout import Holdout
from streams.ingest import LATE_DETAIL, BatchFolder, DeadLetter, RawRecord
from streams.kafka_client import client_options, faust_credentials
from streams.metrics import Metrics
from streams.notifier import LedgerEntry, Notifier, OutboxRecord
from streams.poison import PoisonBatch, PoisonReason
from streams.replay import rfc3339
from streams.settings import Settings
from streams.sinks import DeliveryOutcome, RetryAttempt, RetryPolicy, Sink, build_sinks, deliver

ACCOUNTS_TABLE = "accounts"
OTHER_PLAN = "other"
# The event reader's checkpoint: the partition's next offset per event topic.
POSITIONS_KEY = RESERVED_PREFIX + b"positions/%d"
DELIVERIES_TABLE = "deliveries"
CHANGELOG_COMPACTION = {
    "segment.bytes": 16 * 2**20,
    "segment.ms": 10 * 60 * 1000,
    "min.cleanable.dirty.ratio": 0.1,
}


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class PlanLabels:
    """Plan names as metric label values, capped so a stray plan id cannot explode cardinality."""

    def __init__(self, cap: int = 20) -> None:
        self.cap = cap
        self.known: set[str] = set()

    def __call__(self, plan: str | None) -> str:
        if plan is None:
            return "unknown"
        if plan in self.known:
            return plan
        if len(self.known) < self.cap:
            self.known.add(plan)
            return plan
        return OTHER_PLAN


class Churnwatch:
    """One churnwatch worker's Faust app and everything it owns."""

    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics.build(self.registry)
        self.window_config = settings.window_config()
        self.folder = BatchFolder(
            window_config=self.window_config,
            max_event_bytes=settings.max_event_bytes,
            max_future_skew_ms=int(settings.max_future_skew_seconds * 1000),
            min_ts_ms=settings.min_event_ts_ms,
            clock=wall_clock_ms,
        )
        datadir = (settings.data_dir / f"{settings.app_id}-{settings.web_port}").resolve()
        datadir.parent.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            settings.app_id,
            broker=[f"kafka://{server.strip()}" for server in settings.bootstrap.split(",")],
            broker_credentials=faust_credentials(settings),
            store="memory://",
            autodiscover=False,
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            table_standby_replicas=settings.standby_replicas,
            key_serializer="raw",
            value_serializer="raw",
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            broker_session_timeout=settings.session_timeout_seconds,
            broker_heartbeat_interval=settings.heartbeat_interval_seconds,
            broker_rebalance_timeout=settings.rebalance_timeout_seconds,
            web_enabled=True,
            web_bind=settings.web_host,
            web_host=settings.web_host,
            web_port=settings.web_port,
            datadir=str(datadir),
        )
        self.type_by_topic = {topic: event_type for event_type, topic in settings.event_topics.items()}
        self.deadletter_topic = self.app.topic(
            settings.topic_deadletter, key_serializer="raw", value_serializer="raw"
        )
        self.alerts_topic = self.app.topic(
            settings.topic_alerts, key_serializer="raw", value_serializer="raw"
        )
        self.accounts = self.app.Table(
            ACCOUNTS_TABLE,
            partitions=settings.partitions,
            # bytes types make faust use the "raw" codec: keys are account ids, values compact orjson.
            key_type=bytes,
            value_type=bytes,
            # Every checkpoint rewrites each changed account: roll segments often and compact eagerly, so a
            # recovery reads about one record per account rather than the whole history of checkpoints.
            extra_topic_configs=CHANGELOG_COMPACTION,
        )
        self.deliveries = self.app.Table(
            DELIVERIES_TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes
        )
        self.sinks_config = settings.sinks_config()
        self.holdout = Holdout(settings.holdout_share, settings.holdout_experiment)
        self.http = httpx.AsyncClient(timeout=self.sinks_config.http_timeout())
        self.notifier = Notifier(
            build_sinks(self.sinks_config, self.http),
            self.sinks_config.retry_policy(),
            load=self.deliveries.data.get,
            store=self._store_ledger,
            clock=lambda: int(time.time() * 1000),
            send=self._deliver,
        )
        # Faust assigns partitions from the topics its agents consume; this agent only anchors the assignment
        # on the alerts topic (co-partitioned with the event topics and the tables). Readers do the reading.
        self.app.agent(self.alerts_topic, name="churnwatch.assignment")(self._anchor)
        self.outbox_reader = EventReader(
            self.app,
            client_options(settings),
            type_by_topic={settings.topic_alerts: "alerts"},
            batch_max_events=100,
            batch_within_seconds=0.5,
            checkpoint_interval_seconds=0.0,  # after every batch: the ledger is already durable per request
            owned_partitions=self.assigned_partitions,
            stored_positions=self._stored_outbox_positions,
            process=self._notify,
            checkpoint=self._checkpoint_outbox,
            on_released=lambda: None,
            on_skipped=self._count_skipped,
            # A sink that is down keeps a batch retrying for up to the delivery budget: do not hold up a
            # rebalance for it. The ledger records each delivered request, so the next owner skips them.
            interrupt_on_revoke=True,
        )
        self.app.timer(3600.0, name="churnwatch.ledger_expiry")(self._expire_ledger)
        self.store = CachedStore(
            self.accounts.data,
            self.window_config,
            self.assigned_partitions,
            on_write=self._changelog,
            cache_limit=settings.state_cache_accounts,
        )
        self.engine = Engine(
            AccountMonitor(DetectorConfig(alert_threshold=settings.alert_threshold), self.window_config),
            self.store,
            event_clock=settings.evaluation_clock == "event",
            wall_clock=wall_clock_ms,
            deduplicator=Deduplicator(
                horizon_ms=self.window_config.allowed_lateness_ms, max_keys=settings.event_dedup_max_keys
            )
            if settings.event_dedup_max_keys
            else None,  # off: no event key computed per event either
            on_sweep=self._swept,
        )
        self.detection = self.engine.detection
        self.plan_label = PlanLabels()
        self.metrics.worker_info.info(
            {"version": version("churnwatch"), "app_id": settings.app_id, "clock": settings.evaluation_clock}
        )
        self._zero_counters()
        # Batches and sweeps both rewrite account states: one at a time, or a sweep could overwrite a batch.
        self.state_lock = asyncio.Lock()
        self.pending_alerts: list[Alert] = []
        if settings.evaluation_clock == "wall":
            self.app.timer(settings.sweep_interval_seconds, name="churnwatch.sweep")(self._wall_clock_sweep)
        self.events_folded = 0
        self.accounts_count = 0  # as of the last gauge update
        self.deadletters_sent = 0
        self.reader = EventReader(
            self.app,
            client_options(settings),
            type_by_topic=self.type_by_topic,
            batch_max_events=settings.batch_max_events,
            batch_within_seconds=settings.batch_within_seconds,
            checkpoint_interval_seconds=settings.checkpoint_interval_seconds,
            owned_partitions=self.assigned_partitions,
            stored_positions=self._stored_positions,
            process=self.process_batch,
            checkpoint=self._checkpoint,
            on_released=self._forget_cached_states,
            on_assigned=self._drop_foreign_rows,
            on_skipped=self._count_skipped,
        )
        self.heartbeat = LoopHeartbeat()
        self.app.task(self.heartbeat.run)
        self.health = Health(
            self.reader,
            rebalancing=lambda: bool(self.app.rebalancing),
            heartbeat=self.heartbeat,
            ready_read_within_s=settings.ready_read_within_seconds,
            liveness_timeout_s=settings.liveness_timeout_seconds,
        )
        self._register_views()
        self.app.timer(5.0, name="churnwatch.gauges")(self._update_gauges)

    # -- ingest ---------------------------------------------------------------------------------------------

    async def process_batch(self, records: list[RawRecord]) -> None:
        """Fold one batch into the cached states; alerts it raised are flushed, dead letters are sent.

        Changed states are written at the next :meth:`_checkpoint`, which the reader runs before it records
        offsets past these records.
        """
        started = time.perf_counter()
        async with self.state_lock:
            arrivals, dead_letters = self.folder.decode(records)
            result = self.engine.fold(arrivals)
            dead_letters.extend(
                DeadLetter(record, DeadLetterReason.LATE, LATE_DETAIL) for record in result.late
            )
            # Alerts durable before any state that records them is written (at the checkpoint).
            await self._send_alerts(self.pending_alerts)
            self.pending_alerts = []
        for dead in dead_letters:
            await self.deadletter_topic.send(key=dead.record.key, value=dead.value(), headers=dead.headers())
            self.metrics.events_consumed.labels(topic=dead.record.event_type, outcome=dead.reason.value).inc()
            self.metrics.deadletters.labels(reason=dead.reason.value).inc()
        self._count_ok(records, dead_letters, result.skipped_duplicates)
        self.metrics.events_deduplicated.inc(result.duplicate_events)
        self.events_folded += result.folded
        self.deadletters_sent += len(dead_letters)
        now = time.time()
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        if result.max_event_ts_ms is not None:
            self.metrics.processing_latency.observe(max(0.0, now - result.max_event_ts_ms / 1000))
        if result.folded:
            self.metrics.last_event_timestamp.set(now)

    def _count_skipped(self, event_type: str, poison: PoisonBatch) -> None:
        skipped = poison.next_offset - poison.first_offset
        self.metrics.undecodable_skipped.labels(reason=poison.reason.value, topic=event_type).inc(skipped)

    def _zero_counters(self) -> None:
        """Export known label sets at 0 from the start: rate() cannot see a series' first increment."""
        for event_type in self.type_by_topic.values():
            self.metrics.events_consumed.labels(topic=event_type, outcome="ok")
        for reason in DeadLetterReason:
            self.metrics.deadletters.labels(reason=reason.value)
        for poison_reason, role in itertools.product(PoisonReason, [*self.type_by_topic.values(), "alerts"]):
            self.metrics.undecodable_skipped.labels(reason=poison_reason.value, topic=role)
        for sink in self.notifier.sinks:
            for outcome in ("delivered", "dead_lettered"):
                self.metrics.alert_deliveries.labels(sink=sink.name, outcome=outcome)
            self.metrics.alert_delivery_retries.labels(sink=sink.name)

    def _changelog(self, partition: int, key: bytes, raw: bytes) -> None:
        self.accounts.send_changelog(partition, key, raw)

    async def _checkpoint(self, positions: Positions) -> None:
        """Write changed states and the engine's state, flush (states and dead letters durable), then record
        the reader's offsets."""
        async with self.state_lock:
            self.engine.checkpoint()
            self.store.commit()
            await self.app.producer.flush()
            for partition, offsets in positions.items():
                key = POSITIONS_KEY % partition
                raw = orjson.dumps({**self._stored_positions(partition), **offsets})
                self.accounts.data[key] = raw
                self.accounts.send_changelog(partition, key, raw)

    def _stored_positions(self, partition: int) -> dict[str, int]:
        raw = self.accounts.data.get(POSITIONS_KEY % partition)
        return orjson.loads(raw) if raw is not None else {}

    def _forget_cached_states(self) -> None:
        """Partitions are being handed over: the table (just checkpointed) is the truth from here on."""
        self.store.forget()

    def explained(self, account_id: str, state: AccountState) -> dict[str, Any]:
        """The account's story as ``churnwatch explain`` shows it (streams/explain.py), from this worker."""
        from streams.explain import live_story, story_dict

        row = self.detection.at_risk.get(account_id)
        listed = (row.risk, row.severity, row.reasons, row.episode_id, row.since_ms) if row else None
        return story_dict(live_story(account_id, state.window, listed))

    def account_state(self, key: bytes) -> AccountState | None:
        state = self.store.cache.get(key)
        if state is not None:
            return state
        raw = self.accounts.data.get(key)
        return AccountState.from_bytes(raw, self.window_config) if raw is not None else None

    # -- detection ------------------------------------------------------------------------------------------

    def _drop_foreign_rows(self, active: list[int]) -> None:
        """After a rebalance: forget account rows of partitions this worker neither owns nor stands by for.

        Faust's in-memory store keeps revoked partitions' rows; if a partition comes back, recovery restores
        it from the changelog, so keeping them only costs memory.
        """
        try:
            standbys = {tp.partition for tp in self.app.assignor.assigned_standbys()}
        except Exception:  # no assignment yet
            standbys = set()
        self.engine.restore(active)
        self.store.drop_rows_except(set(active) | standbys)

    def _swept(self, outcome: SweepOutcome) -> None:
        """A sweep ran (in a batch, on the event clock, or on the wall-clock timer): alerts and gauges."""
        self.pending_alerts.extend(outcome.alerts)
        for assessment in outcome.assessments:
            self.metrics.risk_score.observe(assessment.risk)
        if self.engine.last_sweep is not None:
            self.metrics.sweep_seconds.observe(self.engine.last_sweep.seconds)
        self._update_risk_gauges()

    async def _wall_clock_sweep(self) -> None:
        if not self.health.settled():
            return  # starting or rebalancing: the partitions (and their states) are changing hands
        async with self.state_lock:
            self.engine.sweep(wall_clock_ms())  # changed states are written at the reader's next checkpoint
            await self._send_alerts(self.pending_alerts)
            self.pending_alerts = []

    async def _send_alerts(self, alerts: list[Alert]) -> None:
        if not alerts:
            return
        for raised in alerts:
            alert = self.holdout.stamp(raised)
            await self.alerts_topic.send(key=alert.account_id.encode(), value=orjson.dumps(alert.to_dict()))
            self.metrics.alerts_raised.labels(
                kind=alert.kind.value, severity=alert.severity.value, transition=alert.transition.value
            ).inc()
        await self.app.producer.flush()

    def _update_risk_gauges(self) -> None:
        at_risk = self.detection.at_risk
        self.metrics.accounts_at_risk.clear()
        self.metrics.revenue_at_risk.clear()
        for row in at_risk.values():
            plan = self.plan_label(row.plan)
            self.metrics.accounts_at_risk.labels(severity=row.severity, plan=plan).inc()
            self.metrics.revenue_at_risk.labels(plan=plan).inc(row.revenue_at_risk)
        cap = self.settings.top_accounts_export
        if cap:
            self.metrics.top_account_risk.clear()
            total, top = self.detection.page(limit=cap, offset=0, severity=None)
            for row in top:
                self.metrics.top_account_risk.labels(
                    account_id=row.account_id, plan=self.plan_label(row.plan), severity=row.severity
                ).set(row.risk)
            self.metrics.top_accounts_truncated.set(1 if total > cap else 0)

    def _count_ok(self, records: list[RawRecord], dead: list[Any], duplicates: int) -> None:
        per_type: dict[str, int] = {}
        for record in records:
            per_type[record.event_type] = per_type.get(record.event_type, 0) + 1
        for letter in dead:
            per_type[letter.record.event_type] -= 1
        for event_type, count in per_type.items():
            if count:
                self.metrics.events_consumed.labels(topic=event_type, outcome="ok").inc(count)
        if duplicates:
            self.metrics.duplicates_skipped.inc(duplicates)

    def accounts_known(self) -> int:
        """Accounts of the partitions this worker is active for, including those not yet checkpointed."""
        stored = sum(1 for _ in self.store.rows_of(set(self.assigned_partitions())))
        return stored + sum(key not in self.accounts.data for key in self.store.dirty)

    async def _update_gauges(self) -> None:
        active = set(self.assigned_partitions())
        state_bytes = sum(len(raw) for _, raw in self.store.rows_of(active))
        self.accounts_count = self.accounts_known()
        self.metrics.accounts_tracked.set(self.accounts_count)
        self.metrics.state_bytes.labels(table=ACCOUNTS_TABLE).set(state_bytes)
        self.metrics.state_bytes.labels(table=DELIVERIES_TABLE).set(
            sum(len(v) for v in self.deliveries.data.values())
        )
        self.metrics.recovery_in_progress.set(1 if getattr(self.app, "in_recovery", False) else 0)
        # Per topic role over this worker's partitions: high watermark - checkpointed offset.
        for role, value in {**self.reader.lag(), **self.outbox_reader.lag()}.items():
            self.metrics.consumer_lag.labels(topic=role).set(value)

    # -- alert delivery -------------------------------------------------------------------------------------

    async def _anchor(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for _ in cast(faust.Stream[bytes], stream):
            yield None

    async def _notify(self, records: list[RawRecord]) -> None:
        """Deliver one batch of outbox records (the outbox reader checkpoints its offsets afterwards)."""
        result = await self.notifier.handle(
            [OutboxRecord(record.key, record.value, record.partition, record.offset) for record in records]
        )
        for failed in result.failed:
            headers = [
                ("churnwatch.error.reason", failed.reason.encode()[:1000]),
                ("churnwatch.error.sink", (failed.sink or "").encode()),
                ("churnwatch.source.topic", self.settings.topic_alerts.encode()),
                ("churnwatch.source.partition", str(failed.record.partition).encode()),
                ("churnwatch.source.offset", str(failed.record.offset).encode()),
            ]
            await self.deadletter_topic.send(
                key=failed.record.key, value=failed.record.value, headers=headers
            )
        for sink, count in result.delivered.items():
            self.metrics.alert_deliveries.labels(sink=sink, outcome="delivered").inc(count)
        for failed in result.failed:
            self.metrics.alert_deliveries.labels(sink=failed.sink or "none", outcome="dead_lettered").inc()
        if result.duplicates:
            self.metrics.alert_duplicates_suppressed.inc(result.duplicates)
        if result.held_out:
            self.metrics.alerts_held_out.inc(result.held_out)

    async def _checkpoint_outbox(self, positions: Positions) -> None:
        """Dead letters durable, then the outbox offsets (in the ledger's table, recovered with it)."""
        await self.app.producer.flush()
        for partition, offsets in positions.items():
            key = POSITIONS_KEY % partition
            raw = orjson.dumps(offsets)
            self.deliveries.data[key] = raw
            self.deliveries.send_changelog(partition, key, raw)

    def _stored_outbox_positions(self, partition: int) -> dict[str, int]:
        raw = self.deliveries.data.get(POSITIONS_KEY % partition)
        return orjson.loads(raw) if raw is not None else {}

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

    async def _expire_ledger(self) -> None:
        """Forget idempotency keys (and lapsed snoozes) older than the dedup retention: bounded state."""
        horizon = int((time.time() - self.settings.dedup_retention_days * 86_400) * 1000)
        now_ms = int(time.time() * 1000)
        for key, raw in list(self.deliveries.data.items()):
            if key.startswith(RESERVED_PREFIX):
                continue
            entry = LedgerEntry.from_bytes(raw)
            lapsed = entry.snoozed_until_ms is not None and entry.snoozed_until_ms < now_ms
            if entry.first_seen_ms < horizon and (entry.snoozed_until_ms is None or lapsed):
                del self.deliveries.data[key]
                self.deliveries.send_changelog(entry.partition, key, None)

    # -- HTTP views -----------------------------------------------------------------------------------------

    def is_ready(self) -> bool:
        return self.health.readiness().ok

    def assigned_partitions(self) -> list[int]:
        try:
            assignment = self.app.assignor.assigned_actives()
        except Exception:  # before the first assignment faust has nothing to tell
            return []
        # The event topics are co-partitioned with the alerts topic, which Faust subscribes to.
        return sorted({tp.partition for tp in assignment if tp.topic == self.settings.topic_alerts})

    def _register_views(self) -> None:
        # faust binds page handlers as View methods, so they are plain closures taking (view, request).
        settings = self.settings

        @self.app.page("/churnwatch/stats/")
        async def stats(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            body = {
                # Refreshed with the gauges (every 5 s): counting a million rows per request would be a load.
                "accounts": self.accounts_count,
                "ready": self.is_ready(),
                "events_folded": self.events_folded,
                "deadletters": self.deadletters_sent,
                "partitions": self.assigned_partitions(),
                # The outbox offsets a new owner would resume from (what is checkpointed, not what is read).
                "outbox_positions": {
                    str(partition): self._stored_outbox_positions(partition).get(settings.topic_alerts, 0)
                    for partition in self.assigned_partitions()
                },
            }
            return web.bytes(orjson.dumps(body), content_type="application/json")

        @self.app.page("/churnwatch/ready/")
        async def ready(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            """Tables recovered and the event reader reading: 200, else 503 and why (streams/health.py)."""
            verdict = self.health.export(self.metrics)
            return web.bytes(
                orjson.dumps(verdict.body("ready")),
                content_type="application/json",
                status=200 if verdict.ok else 503,
            )

        @self.app.page("/churnwatch/live/")
        async def live(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            """Event loop and event reader turning: 200, else 503 (stuck: restart the worker)."""
            verdict = self.health.liveness()
            return web.bytes(
                orjson.dumps(verdict.body("live")),
                content_type="application/json",
                status=200 if verdict.ok else 503,
            )

        @self.app.page("/churnwatch/accounts/{account_id}/")
        async def account(
            web: faust.web.View, request: faust.web.Request, account_id: str
        ) -> faust.web.Response:
            state = self.account_state(account_id.encode())
            if state is None:
                return web.bytes(b'{"error":"unknown account"}', content_type="application/json", status=404)
            body = {
                "account_id": account_id,
                "explained": self.explained(account_id, state),
                "window": state.window.to_state(),
                "applied_offsets": state.applied_offsets,
            }
            return web.bytes(orjson.dumps(body), content_type="application/json")

        @self.app.page("/churnwatch/at-risk/")
        async def at_risk(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            query = request.query
            try:
                limit = min(max(int(query.get("limit", 50)), 1), 1_000)
                offset = max(int(query.get("offset", 0)), 0)
            except ValueError:
                return web.bytes(
                    b'{"error":"limit and offset must be integers"}',
                    content_type="application/json",
                    status=400,
                )
            severity = query.get("severity") or None
            partitions = self.assigned_partitions()
            total, rows = self.detection.page(
                limit=limit, offset=offset, severity=severity, partitions=set(partitions)
            )
            body = {
                "partitions": partitions,
                "total": total,
                "limit": limit,
                "offset": offset,
                "accounts": [
                    {
                        "account_id": row.account_id,
                        "risk": round(row.risk, 4),
                        "severity": row.severity,
                        "plan": row.plan,
                        "mrr": row.mrr,
                        "revenue_at_risk": round(row.revenue_at_risk, 2),
                        "reasons": list(row.reasons),
                        "episode_id": row.episode_id,
                        "since": rfc3339(row.since_ms) if row.since_ms is not None else None,
                    }
                    for row in rows
                ],
            }
            return web.bytes(orjson.dumps(body), content_type="application/json")

        @self.app.page("/metrics")
        async def metrics(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            self.health.export(self.metrics)
            return web.bytes(generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])
