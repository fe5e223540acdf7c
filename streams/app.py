"""The Faust application: topics, the account state table, the ingest agent and the worker's HTTP views.

Raw records are taken from the three event topics in micro-batches and folded by :class:`BatchFolder`; each
changed account is written to the changelog-backed ``accounts`` table once per batch. Faust flushes the
producer (changelog and dead-letter writes) before it commits the consumed offsets, and the state remembers
the offsets it applied, so a crash neither loses nor double-counts events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from importlib.metadata import version
from typing import Any, cast

import faust
import httpx
import orjson
from faust.types import TP, Message
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from detectors.alerts import Alert
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.windows import DAY_MS, WindowConfig
from streams.detection import LiveDetection, PlanLabels, SweepOutcome
from streams.events import DeadLetterReason
from streams.fastpath import BatchIngest
from streams.ingest import AccountState, BatchFolder, RawRecord
from streams.kafka_client import faust_credentials
from streams.metrics import Metrics
from streams.notifier import LedgerEntry, Notifier, OutboxRecord
from streams.replay import rfc3339
from streams.settings import Settings
from streams.sinks import DeliveryOutcome, RetryAttempt, RetryPolicy, Sink, build_sinks, deliver

ACCOUNTS_TABLE = "accounts"
# Keys of the accounts table that are no account: the worker's risk model, one copy per partition it owns.
RESERVED_PREFIX = b"\x00"
RISK_MODEL_KEY = RESERVED_PREFIX + b"risk-model/%d"
DELIVERIES_TABLE = "deliveries"


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, Mapping) else raw
    return tuple((str(name), bytes(value or b"")) for name, value in items)


def window_config(settings: Settings) -> WindowConfig:
    return WindowConfig(
        retention_days=settings.retention_days,
        allowed_lateness_ms=int(settings.allowed_lateness_seconds * 1000),
        top_events=settings.top_events,
    )


class Churnwatch:
    """One churnwatch worker's Faust app and everything it owns."""

    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics.build(self.registry)
        self.window_config = window_config(settings)
        self.folder = BatchFolder(
            window_config=self.window_config,
            max_event_bytes=settings.max_event_bytes,
            max_future_skew_ms=int(settings.max_future_skew_seconds * 1000),
            clock=lambda: int(time.time() * 1000),
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
        self.events_channel = self.app.topic(
            *settings.event_topics.values(), key_serializer="raw", value_serializer="raw"
        )
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
        )
        self.deliveries = self.app.Table(
            DELIVERIES_TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes
        )
        self.sinks_config = settings.sinks_config()
        self.http = httpx.AsyncClient(timeout=self.sinks_config.http_timeout())
        self.notifier = Notifier(
            build_sinks(self.sinks_config, self.http),
            self.sinks_config.retry_policy(),
            load=self.deliveries.data.get,
            store=self._store_ledger,
            clock=lambda: int(time.time() * 1000),
            send=self._deliver,
        )
        self.app.agent(self.alerts_topic, name="churnwatch.notify")(self._notify)
        self.app.timer(3600.0, name="churnwatch.ledger_expiry")(self._expire_ledger)
        self.detection = LiveDetection(
            AccountMonitor(DetectorConfig(alert_threshold=settings.alert_threshold), self.window_config)
        )
        self.plan_label = PlanLabels()
        self.metrics.worker_info.info(
            {"version": version("churnwatch"), "app_id": settings.app_id, "clock": settings.evaluation_clock}
        )
        self._zero_counters()
        # Batches and sweeps both rewrite account states: one at a time, or a sweep could overwrite a batch.
        self.state_lock = asyncio.Lock()
        self.event_clock_day: int | None = None
        self.pending_alerts: list[Alert] = []
        self.pending_writes: dict[bytes, AccountState] = {}
        self.saved_model_outcomes = 0
        self.loaded_models = False
        if settings.evaluation_clock == "wall":
            self.app.timer(settings.sweep_interval_seconds, name="churnwatch.sweep")(self._wall_clock_sweep)
        self.events_folded = 0
        self.deadletters_sent = 0
        self.batch_ingest: BatchIngest | None = None
        if settings.ingest_mode == "batch":
            self.batch_ingest = BatchIngest(
                self.app,
                settings.event_topics.values(),
                batch_max_events=settings.batch_max_events,
                batch_within_seconds=settings.batch_within_seconds,
                process=self._ingest_messages,
            )
        else:
            self.app.agent(self.events_channel, name="churnwatch.ingest")(self._ingest)
        self._register_views()
        self.app.timer(5.0, name="churnwatch.gauges")(self._update_gauges)

    # -- ingest ---------------------------------------------------------------------------------------------

    async def _ingest(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        """``ingest_mode="stream"``: a Faust agent takes micro-batches of events off a Stream."""
        settings = self.settings
        async for events in cast(faust.Stream[bytes], stream).take_events(
            settings.batch_max_events, within=settings.batch_within_seconds
        ):
            await self.process_batch([self._record(event.message) for event in events])
            yield None

    async def _ingest_messages(self, messages: list[Message]) -> None:
        """``ingest_mode="batch"``: :class:`BatchIngest` hands over raw messages (it acks them afterwards)."""
        await self.process_batch([self._record(message) for message in messages])

    def _record(self, message: Message) -> RawRecord:
        return RawRecord(
            self.type_by_topic[message.topic],
            message.key,
            message.value,
            message.topic,
            message.partition,
            message.offset,
            _headers(message.headers),
        )

    async def process_batch(self, records: list[RawRecord]) -> None:
        """Fold one micro-batch: state writes, alerts and dead letters are in the producer buffer on return.

        Both ingest paths call this and ack the batch's offsets only afterwards; Faust flushes the producer
        before it commits them.
        """
        settings = self.settings
        started = time.perf_counter()
        async with self.state_lock:
            hook = self._event_clock if settings.evaluation_clock == "event" else None
            result = self.folder.fold(records, self.accounts.data.get, hook)
            # Alerts first, durably: no state may say "episode opened" without its alert.
            await self._send_alerts(self.pending_alerts)
            self.pending_alerts = []
            for key, state in {**self.pending_writes, **result.changed}.items():
                self._store(key, state)
            self.pending_writes = {}
        for dead in result.dead_letters:
            await self.deadletter_topic.send(
                key=dead.record.key, value=dead.record.value, headers=dead.headers()
            )
            self.metrics.events_consumed.labels(topic=dead.record.event_type, outcome=dead.reason.value).inc()
            self.metrics.deadletters.labels(reason=dead.reason.value).inc()
        self._count_ok(records, result.dead_letters, result.skipped_duplicates)
        self.events_folded += result.folded
        self.deadletters_sent += len(result.dead_letters)
        now = time.time()
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        if result.max_event_ts_ms is not None:
            self.metrics.processing_latency.observe(max(0.0, now - result.max_event_ts_ms / 1000))
        if result.folded:
            self.metrics.last_event_timestamp.set(now)

    def _zero_counters(self) -> None:
        """Export known label sets at 0 from the start: rate() cannot see a series' first increment."""
        for event_type in self.type_by_topic.values():
            self.metrics.events_consumed.labels(topic=event_type, outcome="ok")
        for reason in DeadLetterReason:
            self.metrics.deadletters.labels(reason=reason.value)
        for sink in self.notifier.sinks:
            for outcome in ("delivered", "dead_lettered"):
                self.metrics.alert_deliveries.labels(sink=sink.name, outcome=outcome)
            self.metrics.alert_delivery_retries.labels(sink=sink.name)

    def _store(self, key: bytes, state: AccountState) -> None:
        """Write one account's state: local store plus changelog record to the partition it came from."""
        raw = state.to_bytes()
        self.accounts.data[key] = raw
        self.accounts.send_changelog(state.partition, key, raw)

    # -- detection ------------------------------------------------------------------------------------------

    def active_accounts(
        self, working: dict[bytes, AccountState] | None = None
    ) -> list[tuple[bytes, AccountState, int]]:
        """States of the accounts in partitions this worker is active for (standby copies excluded)."""
        active = set(self.assigned_partitions())
        working = working or {}
        accounts = []
        for key, raw in self.accounts.data.items():
            if key.startswith(RESERVED_PREFIX):
                continue
            state = working.get(key) or AccountState.from_bytes(raw, self.window_config)
            if state.partition in active:
                accounts.append((key, state, state.partition))
        for key, state in working.items():
            if key not in self.accounts.data and state.partition in active:
                accounts.append((key, state, state.partition))
        return accounts

    def _event_clock(self, event_type: str, ts_ms: int, working: dict[bytes, AccountState]) -> list[bytes]:
        """Event-time clock: when the watermark crosses UTC midnights, sweep once per midnight (as replay).

        Only usage events move this clock. The sparse support and billing topics are consumed in large
        chunks that can run days ahead of usage; letting them move the clock would sweep days whose usage
        has not been read yet and make every account look silent.
        """
        if event_type != "usage":
            return []
        day = ts_ms // DAY_MS
        if self.event_clock_day is None:
            self.event_clock_day = day
            return []
        if day <= self.event_clock_day:
            return []
        changed_working: list[bytes] = []
        for midnight in range(max(self.event_clock_day + 1, day - 62), day + 1):
            # States swept earlier in this batch are not in the table yet: overlay them.
            accounts = self.active_accounts({**self.pending_writes, **working})
            states = {key: state for key, state, _ in accounts}
            outcome = self._sweep(accounts, midnight * DAY_MS)
            for key in outcome.changed:
                if key in working:
                    changed_working.append(key)
                else:
                    self.pending_writes[key] = states[key]
        self.event_clock_day = day
        return changed_working

    def _sweep(self, accounts: list[tuple[bytes, AccountState, int]], now_ms: int) -> SweepOutcome:
        if not self.loaded_models:
            self._adopt_stored_risk_model()
        started = time.perf_counter()
        outcome = self.detection.sweep(accounts, now_ms, int(time.time() * 1000))
        self.pending_alerts.extend(outcome.alerts)
        for assessment in outcome.assessments:
            self.metrics.risk_score.observe(assessment.risk)
        self.metrics.sweep_seconds.observe(time.perf_counter() - started)
        self._save_risk_model()
        self._update_risk_gauges()
        return outcome

    async def _wall_clock_sweep(self) -> None:
        async with self.state_lock:
            accounts = self.active_accounts()
            outcome = self._sweep(accounts, int(time.time() * 1000))
            await self._send_alerts(self.pending_alerts)
            self.pending_alerts = []
            states = {key: state for key, state, _ in accounts}
            for key in outcome.changed:
                self._store(key, states[key])

    async def _send_alerts(self, alerts: list[Alert]) -> None:
        if not alerts:
            return
        for alert in alerts:
            await self.alerts_topic.send(key=alert.account_id.encode(), value=orjson.dumps(alert.to_dict()))
            self.metrics.alerts_raised.labels(
                kind=alert.kind.value, severity=alert.severity.value, transition=alert.transition.value
            ).inc()
        await self.app.producer.flush()

    def _adopt_stored_risk_model(self) -> None:
        for key, raw in list(self.accounts.data.items()):
            if key.startswith(RISK_MODEL_KEY[:-2]):
                self.detection.adopt_risk_model(orjson.loads(raw))
        self.loaded_models = True
        model = self.detection.risk_model
        self.saved_model_outcomes = model.n_positives + model.n_negatives

    def _save_risk_model(self) -> None:
        """Persist the worker's global risk model into each partition it owns, when it learned something."""
        model = self.detection.risk_model
        outcomes = model.n_positives + model.n_negatives
        if outcomes == self.saved_model_outcomes:
            return
        raw = orjson.dumps(model.to_state())
        for partition in self.assigned_partitions():
            key = RISK_MODEL_KEY % partition
            self.accounts.data[key] = raw
            self.accounts.send_changelog(partition, key, raw)
        self.saved_model_outcomes = outcomes

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

    async def _update_gauges(self) -> None:
        active = set(self.assigned_partitions())
        accounts = state_bytes = 0
        for key, raw in self.accounts.data.items():
            if not key.startswith(RESERVED_PREFIX):
                accounts += 1
                state_bytes += len(raw)
        self.metrics.accounts_tracked.set(accounts)
        self.metrics.state_bytes.labels(table=ACCOUNTS_TABLE).set(state_bytes)
        self.metrics.state_bytes.labels(table=DELIVERIES_TABLE).set(
            sum(len(v) for v in self.deliveries.data.values())
        )
        self.metrics.recovery_in_progress.set(1 if getattr(self.app, "in_recovery", False) else 0)
        await self._update_lag(active)

    async def _update_lag(self, active: set[int]) -> None:
        """Lag = high watermark - committed offset, summed per topic role over this worker's partitions."""
        consumer = self.app.consumer
        roles = {**self.type_by_topic, self.settings.topic_alerts: "alerts"}
        tps = [TP(topic, partition) for topic in roles for partition in active]
        if not tps:
            return
        try:
            highwaters = await consumer.highwaters(*tps)
        except Exception:  # metadata not ready (rebalance): keep the last values
            return
        lag: dict[str, int] = dict.fromkeys(roles.values(), 0)
        for tp, highwater in highwaters.items():
            committed = consumer._committed_offset.get(tp) or 0  # type: ignore[attr-defined]
            lag[roles[tp.topic]] += max(0, (highwater or 0) - committed)
        for role, value in lag.items():
            self.metrics.consumer_lag.labels(topic=role).set(value)

    # -- alert delivery -------------------------------------------------------------------------------------

    async def _notify(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for events in cast(faust.Stream[bytes], stream).take_events(100, within=0.5):
            records = [
                OutboxRecord(
                    event.message.key, event.message.value, event.message.partition, event.message.offset
                )
                for event in events
            ]
            result = await self.notifier.handle(records)
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
                self.metrics.alert_deliveries.labels(
                    sink=failed.sink or "none", outcome="dead_lettered"
                ).inc()
            if result.duplicates:
                self.metrics.alert_duplicates_suppressed.inc(result.duplicates)
            await self.app.producer.flush()
            yield None

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
            entry = LedgerEntry.from_bytes(raw)
            lapsed = entry.snoozed_until_ms is not None and entry.snoozed_until_ms < now_ms
            if entry.first_seen_ms < horizon and (entry.snoozed_until_ms is None or lapsed):
                del self.deliveries.data[key]
                self.deliveries.send_changelog(entry.partition, key, None)

    # -- HTTP views -----------------------------------------------------------------------------------------

    def assigned_partitions(self) -> list[int]:
        try:
            assignment = self.app.assignor.assigned_actives()
        except Exception:  # before the first assignment faust has nothing to tell
            return []
        return sorted({tp.partition for tp in assignment if tp.topic in self.type_by_topic})

    def _register_views(self) -> None:
        # faust binds page handlers as View methods, so they are plain closures taking (view, request).
        @self.app.page("/churnwatch/stats/")
        async def stats(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            body = {
                "accounts": sum(not key.startswith(RESERVED_PREFIX) for key in self.accounts.data),
                "events_folded": self.events_folded,
                "deadletters": self.deadletters_sent,
                "partitions": self.assigned_partitions(),
            }
            return web.bytes(orjson.dumps(body), content_type="application/json")

        @self.app.page("/churnwatch/accounts/{account_id}/")
        async def account(
            web: faust.web.View, request: faust.web.Request, account_id: str
        ) -> faust.web.Response:
            raw = self.accounts.data.get(account_id.encode())
            if raw is None:
                return web.bytes(b'{"error":"unknown account"}', content_type="application/json", status=404)
            state = AccountState.from_bytes(raw, self.window_config)
            body = {
                "account_id": account_id,
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
            return web.bytes(generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])
