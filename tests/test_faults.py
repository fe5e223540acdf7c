"""Fault injection on the real broker (issue #6): nothing lost, nothing doubled.

* ``kill -9`` of one of two workers while events stream in, and while alerts are being delivered;
* a broker restart under load (on a private broker, so the session broker and other tests are unaffected);
* a notification sink answering 503 for a minute while alerts pile up in the outbox;
* configuration errors that must stop the worker at once, naming the setting.

The criterion for "nothing lost, nothing doubled" on the ingest side is the per-account window: after the
fault it must equal the offline fold of the very events that were acknowledged by Kafka (what an undisturbed
run produces). Event counters are not used for that: after a kill the survivor re-reads uncommitted records
and skips those already applied, and the victim's count died with it.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from standardwebhooks.webhooks import Webhook

from detectors.alerts import Alert
from detectors.windows import AccountWindow, WindowConfig
from streams.dev import kafka_local
from streams.dev.producer import RateLimiter, route
from streams.dev.simulator import Simulation, SimulationConfig
from streams.events import parse_ts
from streams.live.kafka_client import client_options
from streams.settings import Settings
from tests.http_recorder import HTTPRecorder, RecordedRequest, Reply
from tests.kafka_harness import (
    KafkaForTests,
    WorkerFactory,
    WorkerProcess,
    end_offsets,
    make_alert,
    metric_value,
    outbox_lag,
    read_all,
    run,
    start_private_broker,
    wait_outbox_committed,
    wait_until,
)

pytestmark = pytest.mark.kafka

SECRET = "whsec_" + base64.b64encode(b"churnwatch-fault-test-signing-key").decode()
ALL_PARTITIONS = [0, 1, 2, 3]
DUPLICATES_METRIC = "churnwatch_duplicate_events_skipped_total"


# -- events and the offline truth ---------------------------------------------------------------------------


def simulated_events(accounts: int, days: int, seed: int) -> list[dict[str, Any]]:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days + 2)
    simulation = Simulation(SimulationConfig(seed=seed, accounts=accounts, days=days, start=start))
    return list(simulation.events())


def fold_offline(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The windows an undisturbed run ends with: the events folded once each, in order, without Kafka."""
    windows: dict[str, AccountWindow] = {}
    for body in events:
        window = windows.setdefault(body["account_id"], AccountWindow(WindowConfig()))
        ts_ms = parse_ts(body["ts"])
        if body["type"] == "usage":
            accepted = window.add_usage(ts_ms, body["event"], body.get("user_id"), body.get("count", 1))
        elif body["type"] == "support":
            accepted = window.add_support(ts_ms, body["kind"], body.get("priority"), body.get("score"))
        else:
            accepted = window.add_billing(ts_ms, body["kind"], body.get("mrr"), body.get("plan"))
        assert accepted, body
    # Through JSON, as the worker serves it.
    return {account: orjson.loads(orjson.dumps(window.to_state())) for account, window in windows.items()}


def window_mismatches(worker: WorkerProcess, expected: dict[str, dict[str, Any]]) -> list[str]:
    """Accounts whose window on ``worker`` differs from ``expected`` (or that it cannot show yet)."""
    differing = []
    for account, state in expected.items():
        try:
            shown = worker.account(account)
        except Exception:  # the worker is busy rebalancing or recovering: not there yet
            shown = None
        if shown is None or shown["window"] != state:
            differing.append(account)
    return differing


def wait_for_windows(worker: WorkerProcess, expected: dict[str, dict[str, Any]], *, timeout: float) -> float:
    """Poll every account's window until all equal the offline fold; returns how long that took."""
    started = time.monotonic()
    differing: list[str] = []

    def settled() -> bool:
        nonlocal differing
        assert worker.process.poll() is None, f"worker died:\n{worker.log()[-3000:]}"
        differing = window_mismatches(worker, expected)
        return not differing

    try:
        wait_until(settled, timeout=timeout, what="every window equal to the offline fold", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe_differences(worker, expected, differing)}") from None
    return time.monotonic() - started


def describe_differences(
    worker: WorkerProcess, expected: dict[str, dict[str, Any]], accounts: list[str]
) -> str:
    """Per differing account: its partition, applied offsets and which window fields differ."""
    lines = [f"{len(accounts)} accounts differ from the offline fold:"]
    for account in accounts[:20]:
        try:
            shown = worker.account(account)
        except Exception:
            shown = None
        if shown is None:
            lines.append(f"  {account} (partition {partition_of(account)}): unknown to the worker")
            continue
        fields = {
            k: (shown["window"].get(k), v)
            for k, v in expected[account].items()
            if shown["window"].get(k) != v
        }
        brief: dict[str, Any] = {k: v if k in "wfpmbc" else "..." for k, v in fields.items()}
        if "d" in fields:  # day buckets: usage totals and the days that differ
            shown_days, expected_days = ({row[0]: row[1:] for row in rows} for rows in fields["d"])
            brief["usage total"] = (
                sum(r[0] for r in shown_days.values() if r),  # rows drop trailing zeros
                sum(r[0] for r in expected_days.values() if r),
            )
            brief["days"] = {
                d: (shown_days.get(d), expected_days.get(d))
                for d in sorted(shown_days.keys() | expected_days.keys())
                if shown_days.get(d) != expected_days.get(d)
            }
        lines.append(
            f"  {account} (partition {partition_of(account)}), applied offsets {shown['applied_offsets']}: "
            f"(worker, expected) {brief}"
        )
    return "\n".join(lines)


class LiveProducer(threading.Thread):
    """Produce events at ``rate``/s from a background thread, tracking which sends Kafka acknowledged.

    The producer is idempotent and patient (``request_timeout_ms``), so a send in flight while the broker is
    away is retried by the client without writing the record twice; only a send whose future completed
    successfully counts as acknowledged.
    """

    def __init__(
        self, settings: Settings, events: Sequence[dict[str, Any]], *, rate: float, request_timeout_ms: int
    ) -> None:
        super().__init__(name="live-producer", daemon=True)
        self.settings = settings
        self.events = events
        self.rate = rate
        self.request_timeout_ms = request_timeout_ms
        self.attempted = 0  # sends begun (a send can block while the broker is away)
        self.enqueued = 0  # sends handed to the client
        self.acked: set[int] = set()
        self.failed: dict[int, str] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as exc:  # reported by the test, not swallowed
            self.error = exc

    def _done(self, index: int, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self.failed[index] = "cancelled"
        elif future.exception() is not None:
            self.failed[index] = repr(future.exception())
        else:
            self.acked.add(index)

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=self.request_timeout_ms,
            retry_backoff_ms=250,
            **client_options(self.settings),
        )
        await producer.start()
        limiter = RateLimiter(self.rate)
        pending: list[asyncio.Future[Any]] = []
        try:
            for index, event in enumerate(self.events):
                await limiter.wait()
                topic, key, value = route(self.settings, orjson.dumps(event))
                self.attempted += 1
                try:
                    future = await producer.send(topic, value=value, key=key)
                except Exception as exc:  # not even queued: certainly not written
                    self.failed[index] = repr(exc)
                    continue
                future.add_done_callback(lambda f, i=index: self._done(i, f))
                pending.append(future)
                self.enqueued += 1
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            await producer.stop()


def two_workers(workers: WorkerFactory) -> tuple[WorkerProcess, WorkerProcess]:
    """Two workers of one group, each owning two of the four partitions."""
    first = workers.start()
    second = workers.start(wait_ready=False)

    def split() -> bool:
        for worker in (first, second):
            assert worker.process.poll() is None, worker.log()[-3000:]
        a, b = first.stats(), second.stats()
        return bool(
            a
            and b
            and len(a["partitions"]) == 2
            and sorted(a["partitions"] + b["partitions"]) == ALL_PARTITIONS
        )

    wait_until(split, timeout=90, what="two workers with two partitions each")
    return first, second


def owns_everything(worker: WorkerProcess) -> bool:
    assert worker.process.poll() is None, f"survivor died:\n{worker.log()[-3000:]}"
    stats = worker.stats()
    return bool(stats and stats["partitions"] == ALL_PARTITIONS)


def deadletters(workers: WorkerFactory) -> int:
    return sum(run(end_offsets(workers.kafka.bootstrap, workers.settings().topics.deadletter)).values())


# -- 0. scale out and back in -------------------------------------------------------------------------------


def produce_events(workers: WorkerFactory, events: list[dict[str, Any]]) -> None:
    topics = workers.settings().topics.events
    sent = workers.produce(
        (topics[event["type"]], event["account_id"].encode(), orjson.dumps(event)) for event in events
    )
    assert sent == len(events)


def owner_mismatches(owners: list[WorkerProcess], expected: dict[str, dict[str, Any]]) -> list[str]:
    """Accounts whose window differs from ``expected`` on the worker that owns the account's partition."""
    by_partition = {p: w for w in owners for p in ((w.stats() or {}).get("partitions") or [])}
    differing = []
    for account, state in expected.items():
        owner = by_partition.get(partition_of(account))
        shown = owner.account(account) if owner is not None else None
        if shown is None or shown["window"] != state:
            differing.append(account)
    return differing


def test_adding_then_removing_a_worker_moves_partitions_with_their_state(workers: WorkerFactory) -> None:
    events = simulated_events(accounts=30, days=12, seed=67)
    half = len(events) // 2
    first = workers.start()
    produce_events(workers, events[:half])
    wait_for_windows(first, fold_offline(events[:half]), timeout=60)

    # Scale out: the new worker takes two partitions, their state restored from the changelog.
    second = workers.start(wait_ready=False)
    wait_until(
        lambda: (
            len((second.stats() or {}).get("partitions") or []) == 2
            and sorted((first.stats() or {})["partitions"] + (second.stats() or {})["partitions"])
            == ALL_PARTITIONS
        ),
        timeout=90,
        what="the partitions split between two workers",
    )
    produce_events(workers, events[half:])
    expected = fold_offline(events)
    wait_until(lambda: not owner_mismatches([first, second], expected), timeout=60, what="windows on owners")

    # Per-worker views and gauges cover only the worker's own partitions: their sum is every account once.
    for worker in (first, second):
        at_risk = worker.get("/churnwatch/at-risk/").json()
        assert at_risk["partitions"] == (worker.stats() or {})["partitions"]
        assert all(partition_of(row["account_id"]) in at_risk["partitions"] for row in at_risk["accounts"])

    def tracked(worker: WorkerProcess) -> float:
        return metric_value(worker.get("/metrics").text, "churnwatch_accounts_tracked") or 0.0

    # Gauges refresh on a timer: until the second worker's first refresh, the first worker's gauge may still
    # count every account from before the split, so wait for both to show their share.
    wait_until(
        lambda: (
            (counts := (tracked(first), tracked(second)))[0] > 0
            and counts[1] > 0
            and sum(counts) == len(expected)
        ),
        timeout=30,
        what="tracked accounts on both workers summing to every account once",
    )

    # Scale in: stopping the second worker hands its partitions (and state) back.
    second.stop()
    wait_until(lambda: owns_everything(first), timeout=60, what="the first worker owning everything again")
    wait_for_windows(first, expected, timeout=60)
    assert deadletters(workers) == 0


# -- 1a. kill -9 mid-stream ---------------------------------------------------------------------------------


# Two runs with different events: a takeover is a race, and each run is a chance to lose it.
@pytest.mark.parametrize("seed", [61, 62])
def test_kill_9_of_one_worker_mid_stream_loses_and_doubles_no_event(
    workers: WorkerFactory, seed: int
) -> None:
    events = simulated_events(accounts=30, days=12, seed=seed)
    expected = fold_offline(events)
    settings = workers.settings()
    victim, survivor = two_workers(workers)

    producer = LiveProducer(settings, events, rate=250, request_timeout_ms=30_000)
    producer.start()
    try:
        # Mid-stream: a third of the events are out and the victim has been folding its share of them.
        wait_until(
            lambda: (
                producer.enqueued >= len(events) // 3 and (victim.stats() or {}).get("events_folded", 0) > 0
            ),
            timeout=60,
            what="the victim folding mid-stream",
        )
        sent_at_kill = producer.enqueued
        victim_partitions = wait_until(
            lambda: (victim.stats() or {}).get("partitions"), timeout=30, what="the victim's partitions"
        )
        victim.kill()  # SIGKILL: no commit, no flush, no leave-group
        killed = time.monotonic()
        wait_until(
            lambda: owns_everything(survivor), timeout=60, what="the survivor taking over all partitions"
        )
        takeover_s = time.monotonic() - killed
    finally:
        producer.join(timeout=120)
    assert not producer.is_alive() and producer.error is None, producer.error
    assert not producer.failed, list(producer.failed.items())[:5]
    assert len(producer.acked) == len(events)
    assert sent_at_kill < len(events) // 2  # the kill landed mid-stream: most events were produced after it

    catch_up_s = wait_for_windows(survivor, expected, timeout=30)  # about 1 s when nothing is lost
    assert survivor.process.poll() is None
    assert deadletters(workers) == 0  # a re-read record is skipped as a duplicate, never dead-lettered (late)
    skipped = metric_value(survivor.get("/metrics").text, DUPLICATES_METRIC)
    print(
        f"\n[kill -9 mid-stream, seed {seed}] {len(events)} events, {len(expected)} accounts; "
        f"killed the owner of partitions {victim_partitions} after {sent_at_kill} sent; "
        f"takeover of all partitions {takeover_s:.1f} s after the kill; windows equal the offline fold "
        f"{catch_up_s:.1f} s after the last acknowledgement; re-read records skipped as duplicates by the "
        f"survivor: {skipped}"
    )


# -- 1b. kill -9 during alert delivery ----------------------------------------------------------------------


def write_outbox(workers: WorkerFactory, alerts: Sequence[Alert]) -> None:
    topic = workers.settings().topics.alerts
    sent = workers.produce((topic, a.account_id.encode(), orjson.dumps(a.to_dict())) for a in alerts)
    assert sent == len(alerts)


def configure_webhook(workers: WorkerFactory, receiver: HTTPRecorder, **extra: str) -> None:
    workers.extra_env.update(
        CHURNWATCH_WEBHOOK_URL=receiver.url_for("/hooks/crm"),
        CHURNWATCH_WEBHOOK_SECRET=SECRET,
        **extra,
    )


def configure_patient_webhook(workers: WorkerFactory, receiver: HTTPRecorder, *, max_delay_s: str) -> None:
    """A webhook sink retried quickly (0.2 s up to ``max_delay_s``) and never given up on within a test."""
    configure_webhook(
        workers,
        receiver,
        CHURNWATCH_DELIVERY_BASE_DELAY_SECONDS="0.2",
        CHURNWATCH_DELIVERY_MAX_DELAY_SECONDS=max_delay_s,
        CHURNWATCH_DELIVERY_MAX_ATTEMPTS="100000",
        CHURNWATCH_DELIVERY_BUDGET_SECONDS="900",
    )


def partition_of(account: str, partitions: int = 4) -> int:
    """The outbox partition of an account's alerts (the producer's default murmur2 partitioner)."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(account.encode(), every, every))


def delivered(receiver: HTTPRecorder) -> Counter[str]:
    """Successful (200) deliveries per webhook-id."""
    return Counter(str(r.header("webhook-id")) for r in receiver.requests if r.reply.status == 200)


@dataclass
class DeliveryKill:
    """What the receiver saw when one of two workers was killed in the middle of delivering alerts."""

    alerts: list[Alert]
    successes: list[RecordedRequest]  # requests answered 200 (a receiver would have processed them)
    victim_partitions: set[int]
    killed: float  # time.monotonic() of the kill, on the recorder's clock
    victim_before_kill: int  # requests of the victim's alerts received before the kill
    takeover_s: float
    settled_s: float | None  # kill to everything delivered and committed; None: not within the wait
    missing: set[str]  # idempotency keys never delivered within the wait
    deadletters: int

    def copies(self) -> dict[str, list[RecordedRequest]]:
        by_id: dict[str, list[RecordedRequest]] = {}
        for request in self.successes:
            by_id.setdefault(str(request.header("webhook-id")), []).append(request)
        return by_id

    def duplicated(self) -> dict[str, int]:
        return {key: len(copies) for key, copies in self.copies().items() if len(copies) > 1}


@pytest.fixture(scope="module")
def delivery_kill(kafka: KafkaForTests, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeliveryKill]:
    """kill -9 of a worker in the middle of a batch it is delivering; run once, judged by two tests."""
    workers = WorkerFactory(kafka, tmp_path_factory.mktemp("delivery-kill"), name="kill-during-delivery")
    alerts = [make_alert(f"kill-{i:02d}") for i in range(40)]
    expected_ids = {a.idempotency_key for a in alerts}
    # Every request takes 0.25 s to answer, so both workers are always in the middle of a batch.
    try:
        with HTTPRecorder(default=Reply(200, delay_s=0.25)) as crm:
            configure_webhook(
                workers,
                crm,
                CHURNWATCH_DELIVERY_BASE_DELAY_SECONDS="0.2",
                CHURNWATCH_DELIVERY_MAX_DELAY_SECONDS="1",
            )
            victim, survivor = two_workers(workers)
            victim_partitions = set(
                wait_until(lambda: (victim.stats() or {}).get("partitions"), timeout=30, what="partitions")
            )

            def victims(requests: list[RecordedRequest]) -> int:
                return sum(partition_of(r.json()["account_id"]) in victim_partitions for r in requests)

            write_outbox(workers, alerts)
            # The victim has had three of its alerts accepted and is sending more: mid-batch.
            wait_until(lambda: victims(crm.requests) >= 3, timeout=60, what="the victim delivering")
            victim.kill()
            killed = time.monotonic()
            victim_before_kill = victims(crm.requests)

            wait_until(lambda: owns_everything(survivor), timeout=60, what="the survivor taking over")
            takeover_s = time.monotonic() - killed
            settled_s: float | None = None
            try:
                # Unfaulted, the survivor delivers the victim's alerts within seconds of the takeover.
                wait_until(
                    lambda: set(delivered(crm)) >= expected_ids, timeout=45, what="every alert delivered"
                )
                wait_outbox_committed(workers, timeout=60)  # nothing more will be sent
                settled_s = time.monotonic() - killed
            except AssertionError:
                pass  # judged by test_kill_9_during_alert_delivery_delivers_every_alert
            yield DeliveryKill(
                alerts=alerts,
                successes=[r for r in crm.requests if r.reply.status == 200],
                victim_partitions=victim_partitions,
                killed=killed,
                victim_before_kill=victim_before_kill,
                takeover_s=takeover_s,
                settled_s=settled_s,
                missing=expected_ids - set(delivered(crm)),
                deadletters=deadletters(workers),
            )
    finally:
        workers.stop_all()


def test_kill_9_during_alert_delivery_delivers_every_alert(delivery_kill: DeliveryKill) -> None:
    result = delivery_kill
    assert not result.missing, f"{len(result.missing)} alerts never delivered after the takeover"
    assert result.settled_s is not None  # and the outbox is fully committed
    print(
        f"\n[kill -9 during delivery] {len(result.alerts)} alerts; victim owned partitions "
        f"{sorted(result.victim_partitions)}, killed after {result.victim_before_kill} of its requests "
        f"had arrived; takeover {result.takeover_s:.1f} s; all delivered and committed "
        f"{result.settled_s:.1f} s after the kill; {len(result.successes)} successful requests for "
        f"{len(result.alerts)} alerts; duplicated webhook-ids: {len(result.duplicated())} "
        f"{sorted(result.duplicated())}"
    )


def test_kill_9_during_alert_delivery_duplicates_only_unledgered_alerts_same_id(
    delivery_kill: DeliveryKill,
) -> None:
    result = delivery_kill
    copies = result.copies()
    assert set(copies) <= {a.idempotency_key for a in result.alerts}  # nothing but the alerts written
    assert result.deadletters == 0
    for key, n in result.duplicated().items():
        account = copies[key][0].json()["account_id"]
        # The duplicates the design allows: a request a worker had handed to the sink but not yet recorded in
        # its ledger when it lost the partition. The killed worker's request in flight at the kill; and the
        # survivor's request in flight when the takeover's rebalance interrupted its delivery (it re-reads
        # its own partitions from the checkpoint too). Each re-sent once, first copy before that moment.
        first = min(r.received_at for r in copies[key])
        if partition_of(account) in result.victim_partitions:
            assert first <= result.killed, (key, "first delivered after the kill")
        else:
            assert first <= result.killed + result.takeover_s, (key, "first delivered after the takeover")
        assert n == 2, (key, n)
        # Receiver-side dedupe is possible: same webhook-id, same body, each copy validly signed.
        assert len({r.body for r in copies[key]}) == 1
        for copy in copies[key]:
            Webhook(SECRET).verify(copy.body, dict(copy.headers))
    print(
        f"\n[kill -9 during delivery] duplicated webhook-ids: {len(result.duplicated())} "
        f"{sorted(result.duplicated())}; never delivered: {len(result.missing)}"
    )


def test_kill_9_during_alert_delivery_resends_at_most_the_alert_in_flight(
    delivery_kill: DeliveryKill,
) -> None:
    assert not delivery_kill.missing  # else a duplicate count says nothing
    duplicated = delivery_kill.duplicated()
    copies = delivery_kill.copies()
    victims = [
        key
        for key in duplicated
        if partition_of(copies[key][0].json()["account_id"]) in delivery_kill.victim_partitions
    ]
    # At most the victim's request in flight at the kill and the survivor's at the takeover's rebalance.
    assert len(victims) <= 1 and len(duplicated) - len(victims) <= 1, sorted(duplicated)


# -- 2. broker restart under load ---------------------------------------------------------------------------


def test_broker_restart_under_load_folds_every_acknowledged_event_once(tmp_path: Path) -> None:
    # A private broker: stopping the session broker would disturb every other test.
    broker = start_private_broker(tmp_path / "kafka-home")
    factory = WorkerFactory(
        KafkaForTests(bootstrap=broker.bootstrap, broker=broker), tmp_path, name="broker-restart"
    )
    try:
        events = simulated_events(accounts=30, days=12, seed=73)
        settings = factory.settings()
        worker = factory.start()
        # Patient producer: sends issued while the broker is away are retried by the client (idempotently).
        producer = LiveProducer(settings, events, rate=200, request_timeout_ms=120_000)
        producer.start()
        outage_s = 0.0
        try:
            wait_until(
                lambda: (
                    len(producer.acked) >= len(events) // 4
                    and (worker.stats() or {}).get("events_folded", 0) > 0
                ),
                timeout=60,
                what="a quarter of the events acknowledged and folding under way",
            )
            stopped_at = time.monotonic()
            assert kafka_local.stop(broker)
            acked_at_stop = len(producer.acked)
            # The outage is real for both sides: the producer is trying to send and cannot get it acknowledged
            # (the client queues the records or blocks for metadata), and the worker (still serving HTTP) has
            # nobody to fetch from.
            wait_until(
                lambda: producer.attempted > len(producer.acked) + len(producer.failed),
                timeout=30,
                what="a send pending during the outage",
            )
            assert worker.process.poll() is None and worker.stats() is not None
            kafka_local.start(broker)
            outage_s = time.monotonic() - stopped_at
        finally:
            if kafka_local.status(broker) is None:
                kafka_local.start(broker)  # whatever failed above, later steps and teardown need the broker
            producer.join(timeout=180)
        assert not producer.is_alive() and producer.error is None, producer.error
        acknowledged = [events[i] for i in sorted(producer.acked)]
        produced = time.monotonic()

        # What reached the log, by content: every acknowledged event exactly once (no producer duplicates),
        # and nothing unacknowledged (else the fold of the acknowledged events would be the wrong truth).
        written: Counter[bytes] = Counter()
        for topic in settings.topics.events.values():
            written.update(bytes(r.value) for r in run(read_all(broker.bootstrap, topic)))
        assert written == Counter(orjson.dumps(e) for e in acknowledged), (
            f"log and acknowledgements disagree: {len(producer.failed)} sends failed, e.g. "
            f"{list(producer.failed.items())[:3]}"
        )
        # Production went on after the restart: the last event, sent well after it, was acknowledged.
        assert len(events) - 1 in producer.acked, list(producer.failed.values())[:3]

        wait_for_windows(worker, fold_offline(acknowledged), timeout=90)
        catch_up_s = time.monotonic() - produced
        assert worker.process.poll() is None, "the worker must ride out the broker restart"
        assert sum(run(end_offsets(broker.bootstrap, settings.topics.deadletter)).values()) == 0
        print(
            f"\n[broker restart] {len(events)} events, {len(acknowledged)} acknowledged, "
            f"{len(producer.failed)} failed; broker stopped after {acked_at_stop} acks and down "
            f"{outage_s:.1f} s (stop + JVM start); windows equal the offline fold of the acknowledged events "
            f"{catch_up_s:.1f} s after the last acknowledgement (including reading the log back); "
            f"duplicates skipped: {metric_value(worker.get('/metrics').text, DUPLICATES_METRIC)}"
        )
    finally:
        factory.stop_all()
        kafka_local.stop(broker)


# -- 3. a sink down for a minute ----------------------------------------------------------------------------

# "Down for minutes", bounded: the receiver answers 503 to everything for OUTAGE_S seconds (one minute: long
# enough for ~30 retries of the first batch at the 2 s backoff cap and for alerts to pile up behind it in the
# outbox; short enough for the suite). The retry budget (15 min) and attempt cap are far beyond that.
OUTAGE_S = 60.0


def test_sink_down_for_a_minute_then_every_alert_delivered_once(workers: WorkerFactory) -> None:
    waves = [[make_alert(f"outage-{wave}-{i:02d}") for i in range(10)] for wave in range(3)]
    expected_ids = {a.idempotency_key for wave in waves for a in wave}
    with HTTPRecorder([503] * 1_000_000) as crm:  # a script longer than the outage; reset() ends it
        configure_patient_webhook(workers, crm, max_delay_s="2")
        worker = workers.start()
        write_outbox(workers, waves[0])
        crm.wait_for_sync(1, timeout=60)
        outage_started = time.monotonic()
        for index, wave in enumerate(waves[1:], start=1):
            # Later waves arrive while the sink is down (after 5, then 10 failed attempts): they pile up in
            # the outbox behind the batch being retried.
            crm.wait_for_sync(1 + 5 * index, timeout=OUTAGE_S)
            write_outbox(workers, wave)

        def outage_over() -> bool:
            assert worker.process.poll() is None, worker.log()[-3000:]
            assert all(r.reply.status == 503 for r in crm.requests)
            return time.monotonic() - outage_started >= OUTAGE_S

        wait_until(outage_over, timeout=OUTAGE_S + 5, what="the end of the outage", interval=1.0)
        lag = outbox_lag(workers)
        assert lag == sum(len(w) for w in waves)  # all of them waiting in the outbox, none checkpointed
        assert deadletters(workers) == 0  # nothing given up on
        attempts = crm.requests
        assert not delivered(crm)
        crm.reset()  # the receiver recovers: the remaining 503 script is dropped, the default 200 answers
        recovered = time.monotonic()

        wait_until(lambda: set(delivered(crm)) >= expected_ids, timeout=60, what="every alert delivered")
        delivered_s = time.monotonic() - recovered
        wait_outbox_committed(workers, timeout=60)
        counts = delivered(crm)
        assert set(counts) == expected_ids
        assert all(n == 1 for n in counts.values()), {k: n for k, n in counts.items() if n > 1}
        assert deadletters(workers) == 0
        assert worker.process.poll() is None
        retried_ids = Counter(r.header("webhook-id") for r in attempts)
        print(
            f"\n[sink outage {OUTAGE_S:.0f} s] {len(attempts)} attempts answered 503 during the outage, for "
            f"{len(retried_ids)} distinct alert(s) {dict(retried_ids)}; outbox lag at the end of the outage "
            f"{lag}; all {len(expected_ids)} alerts delivered once {delivered_s:.1f} s after recovery"
        )


def test_a_worker_joins_while_a_sink_is_down_without_waiting_for_it(workers: WorkerFactory) -> None:
    alerts = [make_alert(f"join-{i:02d}") for i in range(20)]
    with HTTPRecorder([503] * 1_000_000) as crm:
        configure_patient_webhook(workers, crm, max_delay_s="1")
        first = workers.start()
        write_outbox(workers, alerts)
        crm.wait_for_sync(3, timeout=60)  # the first worker is retrying a batch against the dead sink
        # A batch retrying for up to the delivery budget must not hold up the rebalance: the newcomer gets its
        # share within the group's rebalance timeout (10 s here), the first worker stays in the group.
        second = workers.start(wait_ready=False)
        wait_until(
            lambda: (
                len((first.stats() or {}).get("partitions") or []) == 2
                and len((second.stats() or {}).get("partitions") or []) == 2
            ),
            timeout=30,
            what="the partitions split while the sink is down",
        )
        assert all(r.reply.status == 503 for r in crm.requests)
        crm.reset()  # the sink recovers
        expected = {a.idempotency_key for a in alerts}
        wait_until(lambda: set(delivered(crm)) >= expected, timeout=60, what="every alert delivered")
        wait_outbox_committed(workers, timeout=60)
        counts = delivered(crm)
        assert all(n == 1 for n in counts.values()), {k: n for k, n in counts.items() if n > 1}


# -- 5. configuration errors fail fast ----------------------------------------------------------------------


def run_worker(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", "worker"], env=env, capture_output=True, text=True, timeout=timeout
    )


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            await admin.close()

    run(create())


def fails_fast(env: dict[str, str], setting: str) -> str:
    started = time.monotonic()
    result = run_worker(env)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert setting in result.stderr, result.stderr[-2000:]
    assert time.monotonic() - started < 30
    return result.stderr


def test_event_topic_with_other_partition_count_fails_fast(workers: WorkerFactory) -> None:
    create_topic(workers.kafka.bootstrap, workers.settings().topics.usage, 2)
    stderr = fails_fast(workers.env(), "CHURNWATCH_PARTITIONS")
    assert "2 partitions" in stderr


def test_alerts_topic_with_other_partition_count_fails_fast(workers: WorkerFactory) -> None:
    create_topic(workers.kafka.bootstrap, workers.settings().topics.alerts, 8)
    worker = workers.start(wait_ready=False)
    # Either it exits (the fail-fast we want) or it comes up as if all were well.
    wait_until(
        lambda: worker.process.poll() is not None or worker.stats() is not None,
        timeout=60,
        what="exit or ready",
    )
    assert worker.process.poll() == 2, "the worker started with a mis-partitioned alerts topic"
    assert "CHURNWATCH_PARTITIONS" in worker.log()


def test_webhook_url_without_secret_fails_fast(workers: WorkerFactory) -> None:
    env = workers.env(CHURNWATCH_WEBHOOK_URL="http://127.0.0.1:9/hooks/secret-path")
    stderr = fails_fast(env, "CHURNWATCH_WEBHOOK_SECRET")
    assert "secret-path" not in stderr


def test_sasl_without_mechanism_fails_fast(workers: WorkerFactory) -> None:
    env = workers.env(CHURNWATCH_SECURITY_PROTOCOL="SASL_PLAINTEXT")
    fails_fast(env, "CHURNWATCH_SASL_MECHANISM")


def test_sasl_without_password_fails_fast_naming_the_password(workers: WorkerFactory) -> None:
    env = workers.env(
        CHURNWATCH_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        CHURNWATCH_SASL_MECHANISM="PLAIN",
        CHURNWATCH_SASL_USERNAME="churnwatch",
    )
    fails_fast(env, "CHURNWATCH_SASL_PASSWORD")


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_sasl_password_file_fails_fast(workers: WorkerFactory, tmp_path: Path, kind: str) -> None:
    # Tests may run as root, where a chmod 000 file is still readable: a directory or a missing path is not.
    path = tmp_path / "no-such-secret" if kind == "missing" else tmp_path
    env = workers.env(
        CHURNWATCH_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        CHURNWATCH_SASL_MECHANISM="PLAIN",
        CHURNWATCH_SASL_USERNAME="churnwatch",
        CHURNWATCH_SASL_PASSWORD_FILE=str(path),
    )
    fails_fast(env, "CHURNWATCH_SASL_PASSWORD_FILE")
