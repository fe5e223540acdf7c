"""The Faust application: topics, tables and the thin adapters that connect Kafka to the engine.

An :class:`~streams.live.event_reader.EventReader` fetches the three event topics and the feedback topic
(answers to alerts, co-partitioned and keyed by account like the events) in batches for the partitions Faust
assigned to this worker; :class:`~streams.live.ingest.BatchFolder` validates them and the
:class:`~streams.engine.Engine` folds them into account states (a
:class:`~streams.live.table_store.TableStore` over the ``accounts`` table) and sweeps. Every
``checkpoint_interval_seconds`` (``checkpoint_backlog_interval_seconds`` while the worker folds a backlog:
:mod:`streams.live.checkpoint_pace`) the changed states and the engine's own state are written to the
changelog-backed table, the producer is flushed, and then each partition's next offsets are written into the
same table: a new owner resumes from offsets that are never ahead of the state it recovered, and each state
remembers the offsets it applied, so a crash neither loses nor double-counts events.

The rest lives apart: alert delivery (:mod:`streams.live.outbox`), HTTP views (:mod:`streams.live.views`),
gauges (:mod:`streams.live.gauges`), the table adapter (:mod:`streams.live.table_store`), the ``accounts``
table's batched restore (:mod:`streams.live.restore`).

Size: ~540 lines, over the ~400 aim since the sparse-topic backlog report (the clock holds of
:mod:`streams.engine.clock`), the engine's work in steps (:mod:`streams.engine.steps`, run with the progress
that health reads) and, since 2026-12-04, the sweeps' risk histogram in steps and the collector's freezing and
full-walk log (:mod:`streams.gc_freeze`) at each turn, since 2026-12-07 the checkpoint pace's measure of its
writes and the prompt sweeps' wiring (their rule is :mod:`streams.live.prompt_sweeps`), and the checkpoint's
two halves (what it writes taken at once, then written beside the reading): what is left here
is the wiring of those parts to one Faust app and its rebalance and checkpoint callbacks, which read more
easily together than split.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable
from importlib.metadata import version
from typing import Any, TypeVar, cast

import faust
import httpx
import orjson
import structlog
from prometheus_client import CollectorRegistry

from detectors.alerts import Alert
from detectors.monitor import AccountMonitor
from streams.dedup import Deduplicator
from streams.engine import AccountState, Engine, SweepOutcome
from streams.engine.answers import AnswerOutcome
from streams.engine.clock import SPARSE_TYPES, WallClock
from streams.engine.steps import Pacer, Steps, run_steps, run_steps_sharing
from streams.engine.store import LEGACY_RISK_MODEL_KEY
from streams.events import DeadLetterReason
from streams.feedback import FeedbackLabel
from streams.gc_freeze import CollectionTimes, FullCollection, GcFreezer
from streams.live.checkpoint_pace import CheckpointPace
from streams.live.event_reader import EventReader, Positions
from streams.live.gauges import RiskGauges, Spacing, holdout_gauges, zero_counters
from streams.live.health import Health, LoopHeartbeat
from streams.live.ingest import FEEDBACK_TYPE, LATE_DETAIL, BatchFolder, DeadLetter, RawRecord
from streams.live.kafka_client import client_options, faust_credentials
from streams.live.outbox import Outbox
from streams.live.poison import PoisonBatch
from streams.live.prompt_sweeps import PromptSweeps
from streams.live.restore import ChangelogReader, RestoredTable
from streams.live.table_store import (
    ACCOUNTS_TABLE,
    CHANGELOG_COMPACTION,
    POSITIONS_KEY,
    FaustBatches,
    TableStore,
)
from streams.live.views import register_views
from streams.metrics import Metrics
from streams.settings import Settings
from streams.sinks import HTTP_TIMEOUT

DELIVERIES_TABLE = "deliveries"
# What tools that write the worker's table (``churnwatch backfill``) need to know of it.
RISK_MODEL_KEY = LEGACY_RISK_MODEL_KEY
__all__ = ["ACCOUNTS_TABLE", "CHANGELOG_COMPACTION", "POSITIONS_KEY", "RISK_MODEL_KEY", "Churnwatch"]
GAUGE_INTERVAL_SECONDS = 5.0
# How often a held event clock is looked at without a batch (a hold that ran out, sparse topics caught up).
CLOCK_HOLD_CHECK_SECONDS = 1.0
T = TypeVar("T")
log = structlog.get_logger(__name__)


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def faust_app(settings: Settings) -> faust.App:
    """The worker's Faust app: raw keys and values, in-memory table store, the web server bound as set."""
    datadir = (settings.worker.data_dir / f"{settings.topics.app_id}-{settings.worker.web_port}").resolve()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.topics.app_id,
        broker=[f"kafka://{server.strip()}" for server in settings.kafka.bootstrap.split(",")],
        broker_credentials=faust_credentials(settings),
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        table_standby_replicas=settings.topics.standby_replicas,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.kafka.session_timeout_seconds,
        broker_heartbeat_interval=settings.kafka.heartbeat_interval_seconds,
        broker_rebalance_timeout=settings.kafka.rebalance_timeout_seconds,
        web_enabled=True,
        web_bind=settings.worker.web_host,
        web_host=settings.worker.web_host,
        web_port=settings.worker.web_port,
        datadir=str(datadir),
    )


def build_engine(settings: Settings, store: TableStore, clock: WallClock) -> Engine:
    """The engine as the settings configure it: detectors, evaluation clock, deduplication."""
    window_config = store.window_config
    holdout = settings.holdout.holdout()
    event_clock = settings.detection.evaluation_clock == "event"
    detection = settings.detection
    holds = event_clock and (detection.clock_hold_seconds > 0 or detection.clock_idle_seconds > 0)
    return Engine(
        AccountMonitor(settings.detection.detector_config(), window_config),
        store,
        answer_policy=settings.feedback.answer_policy(),
        event_clock=event_clock,
        clock_hold_ms=int(detection.clock_hold_seconds * 1000) if holds else None,
        clock_idle_ms=int(detection.clock_idle_seconds * 1000),
        wall_clock=clock,
        deduplicator=Deduplicator(
            horizon_ms=window_config.allowed_lateness_ms, max_keys=settings.windows.event_dedup_max_keys
        )
        if settings.windows.event_dedup_max_keys
        else None,  # off: no event key computed per event either
        holdout_member=holdout.member if holdout.share > 0 else None,  # settles the uplift in sweeps
        incremental=not event_clock and detection.sweep_changed_only,
        keep_decoded_detectors=settings.worker.keeps_decoded_detectors(event_clock),
    )


class Churnwatch:
    """One churnwatch worker: the Faust app, the engine it drives, and the adapters around it.

    ``clock`` (epoch ms) and ``http`` (the sinks' client) are injectable; by default the system clock and a
    client with the sinks' timeout.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        clock: WallClock = wall_clock_ms,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """Build the parts: Faust app, topics, tables, store, engine, folder (~70 lines of plain wiring)."""
        self.settings = settings
        self.clock = clock
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics.build(self.registry)
        self.window_config = settings.windows.window_config()
        self.app = app = faust_app(settings)
        self.type_by_topic: dict[str, str] = {
            topic: event_type for event_type, topic in settings.topics.events.items()
        }
        self.type_by_topic[settings.topics.feedback] = (
            FEEDBACK_TYPE  # answers are read and checkpointed alike
        )
        self.deadletter_topic = app.topic(
            settings.topics.deadletter, key_serializer="raw", value_serializer="raw"
        )
        self.alerts_topic = app.topic(settings.topics.alerts, key_serializer="raw", value_serializer="raw")
        # Faust assigns partitions from the topics its agents consume; this agent only anchors the assignment
        # on the alerts topic (co-partitioned with the event topics and the tables). Readers do the reading.
        app.agent(self.alerts_topic, name="churnwatch.assignment")(self._anchor)
        # bytes types make faust use the "raw" codec: keys are account ids, values compact orjson.
        # Restored from its changelog in batches, not record by record by Faust (streams/live/restore.py).
        accounts = app.tables.add(
            RestoredTable(
                app,
                ACCOUNTS_TABLE,
                reader=ChangelogReader(client_options(settings)),
                partitions=settings.topics.partitions,
                key_type=bytes,
                value_type=bytes,
                extra_topic_configs=CHANGELOG_COMPACTION,
            )
        )
        self.deliveries = app.Table(
            DELIVERIES_TABLE, partitions=settings.topics.partitions, key_type=bytes, value_type=bytes
        )
        self.store = TableStore(
            accounts,
            self.window_config,
            self.assigned_partitions,
            cache_limit=settings.worker.state_cache_accounts,
            rows_in_parts=settings.worker.state_rows_in_parts,
        )
        self.changelog = FaustBatches(app.producer)  # the rows' changelog records, in batches
        self.engine = build_engine(settings, self.store, clock)
        self.engine.on_sweep = self._swept
        self.engine.on_answered = self._answered
        self.engine.answering.listener = self._answer_folded
        self.folder = BatchFolder(
            window_config=self.window_config,
            max_event_bytes=settings.windows.max_event_bytes,
            max_future_skew_ms=int(settings.windows.max_future_skew_seconds * 1000),
            min_ts_ms=settings.windows.min_event_ts_ms,
            clock=clock,
        )
        self.holdout = settings.holdout.holdout()
        self.http = http if http is not None else httpx.AsyncClient(timeout=HTTP_TIMEOUT)
        # Batches and sweeps both rewrite account states: one at a time, or a sweep could overwrite a batch.
        self.state_lock = asyncio.Lock()
        self.gc_freezer = GcFreezer(
            full_every_s=settings.worker.gc_full_collection_seconds, on_full=self._collected
        )
        self.gc_times = CollectionTimes()  # one worker per process: installed for the process's life
        self.gc_times.install()
        self.pending_alerts: list[Alert] = []
        self.unobserved: list[SweepOutcome] = []  # sweeps whose risks are not yet in the histogram
        self.events_folded = 0
        self.accounts_count = 0  # as of the last census of the rows
        self.census_spacing = Spacing()
        # Only an incremental engine (the wall clock's) marks what is urgent.
        self.prompt_sweeps = PromptSweeps(settings.detection.sweep_prompt_seconds)
        self.deadletters_sent = 0
        self.worked_at = float("-inf")  # when long engine work last let the event loop turn (health)
        self._start_services()

    def _start_services(self) -> None:
        """Readers, delivery, health, gauges, views and timers on the Faust app (~60 lines of wiring)."""
        settings, app = self.settings, self.app
        self.outbox = Outbox(
            app,
            settings,
            self.metrics,
            deliveries=self.deliveries,
            deadletter_topic=self.deadletter_topic,
            http=self.http,
            clock=self.clock,
            owned_partitions=self.assigned_partitions,
            on_skipped=self._count_skipped,
        )
        dedup = self.engine.deduplicator
        self.checkpoint_pace = CheckpointPace(
            settings.worker.checkpoint_interval_seconds,
            settings.worker.checkpoint_backlog_interval_seconds,
            has_room=self.store.has_room,
            changed=lambda: len(self.store.changed()),
            max_write_s=settings.worker.shutdown_timeout_seconds / 2,  # a stop writes them before it exits
        )
        self.reader = EventReader(
            app,
            client_options(settings),
            type_by_topic=self.type_by_topic,
            batch_max_events=settings.worker.batch_max_events,
            batch_within_seconds=settings.worker.batch_within_seconds,
            checkpoint_pace=self.checkpoint_pace,
            owned_partitions=self.assigned_partitions,
            stored_positions=self.store.stored_positions,
            process=self.process_batch,
            checkpoint=self._checkpoint,
            on_released=self.store.forget,  # the table (just checkpointed) is the truth from here on
            on_assigned=self._assigned,
            on_skipped=self._count_skipped,
            # After a restart, a retry of an event folded before the checkpoint is still a duplicate.
            remember=None if dedup is None else functools.partial(self.folder.remember, dedup),
            remember_records=settings.windows.event_dedup_max_keys,
            rebuild_after_seconds=settings.worker.reader_rebuild_after_seconds,
            on_rebuilt=self.metrics.reader_rebuilds.labels(reader="events").inc,
        )
        self.heartbeat = LoopHeartbeat()
        app.task(self.heartbeat.run)
        self.health = Health(
            self.reader,
            rebalancing=lambda: bool(self.app.rebalancing),
            heartbeat=self.heartbeat,
            ready_read_within_s=settings.worker.ready_read_within_seconds,
            liveness_timeout_s=settings.worker.liveness_timeout_seconds,
            working=lambda: self.worked_at,
        )
        self.gauges = RiskGauges(
            self.metrics, lambda: self.engine.detection, settings.detection.top_accounts_export
        )
        self.metrics.worker_info.info(
            {
                "version": version("churnwatch"),
                "app_id": settings.topics.app_id,
                "clock": settings.detection.evaluation_clock,
            }
        )
        zero_counters(self.metrics, self.type_by_topic.values())
        self.outbox.zero_counters()
        register_views(self)
        app.timer(GAUGE_INTERVAL_SECONDS, name="churnwatch.gauges")(self._update_gauges)
        if settings.detection.evaluation_clock == "wall":
            app.timer(settings.detection.sweep_interval_seconds, name="churnwatch.sweep")(
                self._wall_clock_sweep
            )
            if self.prompt_sweeps.spacing_s > 0:  # one a batch asked for too soon after the last sweep
                app.timer(self.prompt_sweeps.spacing_s, name="churnwatch.prompt_sweep")(self._prompt_sweep)
        elif self.engine.clock.holds is not None:
            app.timer(CLOCK_HOLD_CHECK_SECONDS, name="churnwatch.clock_hold")(self._clock_hold_check)

    # -- ingest: Kafka batches into the engine ---------------------------------------------------------------

    async def process_batch(self, records: list[RawRecord]) -> None:
        """Fold one batch through the engine; alerts its sweeps raised are flushed, dead letters are sent.

        Changed states are written at the next :meth:`_checkpoint`, which the reader runs before it records
        offsets past these records.
        """
        started = time.perf_counter()
        async with self.state_lock:
            arrivals, dead_letters = self.folder.decode(records)
            engine = self.engine
            if engine.clock.holds is not None:  # before the batch: a backlog it starts on holds too
                await self._run(engine.report_sparse_steps(self.reader.backlogs(SPARSE_TYPES)))
            # In steps: a sweep of every account must not stop the endpoints and the deliveries.
            result = await self._run(engine.fold_steps(arrivals))
            if self.prompt_sweeps.due(engine) and self.health.settled():
                self.metrics.prompt_sweeps.inc()
                await self._run(engine.sweep_steps(self.clock()))
            dead_letters.extend(
                DeadLetter(record, DeadLetterReason.LATE, LATE_DETAIL) for record in result.late
            )
            # Alerts durable before any state that records them is written (at the checkpoint).
            await self._send_alerts()
        for dead in dead_letters:
            await self.deadletter_topic.send(key=dead.record.key, value=dead.value(), headers=dead.headers())
            self.metrics.events_consumed.labels(topic=dead.record.event_type, outcome=dead.reason.value).inc()
            self.metrics.deadletters.labels(reason=dead.reason.value).inc()
        self._count_ok(records, dead_letters, result.skipped_duplicates)
        self.metrics.events_deduplicated.inc(result.duplicate_events)
        self.events_folded += result.folded
        self.deadletters_sent += len(dead_letters)
        now = self.clock() / 1000
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        if result.max_event_ts_ms is not None:
            self.metrics.processing_latency.observe(max(0.0, now - result.max_event_ts_ms / 1000))
        if result.folded:
            self.metrics.last_event_timestamp.set(now)

    async def _checkpoint(self, positions: Positions) -> Awaitable[None]:
        """Take what the checkpoint of ``positions`` writes: the changed states and the engine's state, now;
        returns :meth:`_write_checkpoint`, which writes them and then records ``positions``."""
        async with self.state_lock:
            self.engine.checkpoint()
            changed = len(self.store.changed())
            commit = self.store.commit_steps()  # after a day's first sweep it writes every account
        return self._write_checkpoint(commit, changed, positions)

    async def _write_checkpoint(self, commit: Steps[None], changed: int, positions: Positions) -> None:
        """Encode the states ``commit`` took, flush (states and dead letters durable), then record
        ``positions``.

        It holds the state lock a slice at a time, so batches fold and prompt sweeps run between the slices
        (the reader runs this beside its reading). A state one of them asks for is written first, as it was
        (``CachedStore.get``), so the rows are still those of ``positions``.
        """
        started = time.perf_counter()
        encoding = [0.0]
        await run_steps_sharing(commit, self.state_lock, on_turn=self._worked, on_slice=encoding.append)
        for form, rows in self.store.take_rows_written().items():
            self.metrics.state_rows_written.labels(form=form.value).inc(rows)
        sending = time.perf_counter()
        # A failed delivery: no offsets past it recorded.
        await self.store.deliver_written(self.changelog, Pacer(on_turn=self._worked))
        self.checkpoint_pace.wrote(changed, sum(encoding) + time.perf_counter() - sending)
        self.store.write_positions(positions)
        await self.store.deliver_written(self.changelog)
        self.gc_freezer.freeze_survivors()  # what survived is the cache: out of the collector's walks
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)

    def _assigned(self, active: list[int]) -> None:
        """After a rebalance: take back the engine's saved state, forget rows this worker no longer keeps.

        Faust's in-memory store keeps revoked partitions' rows; if a partition comes back, recovery restores
        it from the changelog, so keeping rows of partitions neither owned nor stood by for only costs memory.
        """
        try:
            standbys = {tp.partition for tp in self.app.assignor.assigned_standbys()}
        except Exception:  # no assignment yet
            standbys = set()
        self.engine.restore(active)
        self.store.drop_rows_except(set(active) | standbys)

    def _count_skipped(self, event_type: str, poison: PoisonBatch) -> None:
        skipped = poison.next_offset - poison.first_offset
        self.metrics.undecodable_skipped.labels(reason=poison.reason.value, topic=event_type).inc(skipped)

    def _count_ok(self, records: list[RawRecord], dead: list[DeadLetter], duplicates: int) -> None:
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

    # -- sweeps ---------------------------------------------------------------------------------------------

    def _swept(self, outcome: SweepOutcome) -> None:
        """A sweep ran (in a batch on the event clock, or on the wall-clock timer): alerts and gauges."""
        self.prompt_sweeps.swept()
        self.pending_alerts.extend(outcome.alerts)
        self.unobserved.append(outcome)  # its risks go to the histogram in steps, after the sweep (_run)
        timing = self.engine.last_sweep
        if timing is not None:
            self.metrics.sweep_seconds.observe(timing.seconds)
            scope = "changed" if timing.changed_only else "all"
            self.metrics.accounts_swept.labels(scope=scope).inc(timing.accounts)
        self.gauges.update()

    def _answer_folded(self, label: FeedbackLabel, outcome: AnswerOutcome) -> None:
        self.metrics.answers_folded.labels(label=label.value, outcome=outcome.value).inc()

    def _answered(self, alerts: list[Alert]) -> None:
        """Alerts an answer raised (a handled episode's resolution), written with the batch's alerts."""
        self.pending_alerts.extend(alerts)

    async def _wall_clock_sweep(self) -> None:
        if not self.health.settled():
            return  # starting or rebalancing: the partitions (and their states) are changing hands
        # The reader's lock too: between the sweep's steps a rebalance must not hand its states over.
        async with self.reader.lock, self.state_lock:
            # Changed states are written at the reader's next checkpoint.
            await self._run(self.engine.sweep_steps(self.clock()))
            await self._send_alerts()

    async def _prompt_sweep(self) -> None:
        if self.prompt_sweeps.due(self.engine) and self.health.settled():
            async with self.reader.lock, self.state_lock:
                if self.prompt_sweeps.due(self.engine):  # a batch may have swept meanwhile
                    self.metrics.prompt_sweeps.inc()
                    await self._run(self.engine.sweep_steps(self.clock()))
                    await self._send_alerts()

    async def _clock_hold_check(self) -> None:
        """Between batches: sweep what a hold no longer stops (it ran out, or the sparse topics caught up)."""
        if not self.health.settled():
            return
        async with self.reader.lock, self.state_lock:
            await self._run(self.engine.report_sparse_steps(self.reader.backlogs(SPARSE_TYPES)))
            await self._send_alerts()

    async def _run(self, steps: Steps[T]) -> T:
        """Long engine work in steps, the event loop turning between them (streams/engine/steps.py); then the
        risks of the sweeps it ran into their histogram, the loop turning too (1.3 µs each: 1.3 s for
        1 M accounts)."""
        result = await run_steps(steps, on_turn=self._worked)
        pacer = Pacer(on_turn=self._worked)
        swept, self.unobserved = self.unobserved, []
        for outcome in swept:
            for assessment in outcome.assessments:
                self.metrics.risk_score.observe(assessment.risk)
                await pacer.step()
        return result

    def _collected(self, walk: FullCollection) -> None:
        log.info(
            "gc.full_collection",
            seconds=round(walk.seconds, 3),
            unreachable=walk.unreachable,
            frozen_before=walk.frozen,
            accounts_cached=len(self.store.cache),
        )

    def _worked(self) -> None:
        """A turn of the event loop during long work: progress, and what it made so far is long-lived."""
        self.worked_at = time.monotonic()
        self.gc_freezer.freeze_new()

    async def _send_alerts(self) -> None:
        """Write the pending alerts to the outbox (the alerts topic) and flush."""
        alerts, self.pending_alerts = self.pending_alerts, []
        if not alerts:
            return
        for raised in alerts:
            alert = self.holdout.stamp(raised)
            await self.alerts_topic.send(key=alert.account_id.encode(), value=orjson.dumps(alert.to_dict()))
            self.metrics.alerts_raised.labels(
                kind=alert.kind.value, severity=alert.severity.value, transition=alert.transition.value
            ).inc()
        await self.app.producer.flush()

    async def _anchor(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for _ in cast(faust.Stream[bytes], stream):
            yield None

    # -- what the views and gauges read ---------------------------------------------------------------------

    def is_ready(self) -> bool:
        return self.health.readiness().ok

    def assigned_partitions(self) -> list[int]:
        try:
            assignment = self.app.assignor.assigned_actives()
        except Exception:  # before the first assignment faust has nothing to tell
            return []
        # The event topics are co-partitioned with the alerts topic, which Faust subscribes to.
        return sorted({tp.partition for tp in assignment if tp.topic == self.settings.topics.alerts})

    def explained(self, account_id: str, state: AccountState) -> dict[str, Any]:
        """The account's story as ``churnwatch explain`` shows it (streams/offline/explain.py)."""
        from streams.offline.explain import live_story, story_dict

        row = self.engine.detection.at_risk.get(account_id)
        listed = (row.risk, row.severity, row.reasons, row.episode_id, row.since_ms) if row else None
        return story_dict(live_story(account_id, state.window, listed))

    async def _update_gauges(self) -> None:
        active = set(self.assigned_partitions())
        if self.census_spacing.due():
            # In steps: a pass over every row (a quarter second at 1 M accounts) must not stop the endpoints;
            # spaced by its duration, so at 1 M accounts it runs every ~10-25 s rather than every 5 s.
            census = self.census_spacing.measured(self.store.census_steps(active))
            self.accounts_count, stored_bytes = await run_steps(census)
            self.metrics.accounts_tracked.set(self.accounts_count)
            self.metrics.state_bytes.labels(table=ACCOUNTS_TABLE).set(stored_bytes)
        self.metrics.state_bytes.labels(table=DELIVERIES_TABLE).set(
            sum(len(v) for v in self.deliveries.data.values())
        )
        self.metrics.event_clock_lag.set(self.engine.clock.held_days())
        self.gc_times.publish(self.metrics.gc_seconds)
        restoring = getattr(self.app, "in_recovery", False) or self.store.table.data.restoring
        self.metrics.recovery_in_progress.set(1 if restoring else 0)
        holdout_gauges(self.metrics, self.engine.uplift.total(active))
        # Per topic role over this worker's partitions: high watermark - checkpointed offset.
        for role, value in {**self.reader.lag(), **self.outbox.reader.lag()}.items():
            self.metrics.consumer_lag.labels(topic=role).set(value)
