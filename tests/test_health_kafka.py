"""Fatal means exit, bounded shutdown and honest health, on the real broker (issue #12).

* an error the worker cannot handle (a corrupt account state in its changelog) ends the process non-zero;
* SIGTERM stops a worker within the bound even while a sink is down, with the state checkpointed, and even
  with a broker that does not answer (then at the deadline, code 1);
* a second SIGINT ends a worker at once, even while its graceful stop hangs on a broker that does not answer;
* with the broker gone the worker says it is not ready (and why), stays alive, and catches up by itself;
* a reader whose consumer goes quiet with the broker up says so, replaces the consumer, and reads on from
  where it was, every event folded once.

Broker outages run on a private broker: stopping the session broker would disturb every other test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.dev import kafka_local
from tests.http_recorder import HTTPRecorder
from tests.kafka_harness import (
    KafkaForTests,
    WorkerFactory,
    WorkerProcess,
    make_alert,
    metric_value,
    run,
    start_private_broker,
    wait_until,
)
from tests.test_faults import (
    DUPLICATES_METRIC,
    configure_patient_webhook,
    fold_offline,
    partition_of,
    produce_events,
    simulated_events,
    wait_for_windows,
    write_outbox,
)

pytestmark = pytest.mark.kafka

# The bound the worker promises (CHURNWATCH_SHUTDOWN_TIMEOUT_SECONDS, default 20 s) is below this.
EXIT_WITHIN_S = 30.0


def wait_exit(worker: WorkerProcess, timeout: float) -> tuple[int, float]:
    """The worker's exit code and how long it took to exit (AssertionError with its log if it did not)."""
    started = time.monotonic()
    try:
        code = worker.process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"worker still running after {timeout:.0f} s:\n{worker.log()[-3000:]}") from None
    return code, time.monotonic() - started


def health(worker: WorkerProcess, path: str) -> int | None:
    try:
        return worker.get(path).status_code
    except Exception:  # not answering: neither ready nor live
        return None


# -- fatal means exit ---------------------------------------------------------------------------------------


def corrupt_account_state(workers: WorkerFactory, account: str) -> None:
    """Write a stored state for ``account`` that cannot be decoded into the accounts changelog."""
    partition = partition_of(account, workers.partitions)
    raw = partition.to_bytes(2, "big") + b"this is not a zstd frame"

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=workers.kafka.bootstrap, acks="all")
        await producer.start()
        try:
            topic = f"{workers.prefix}-accounts-changelog"
            await producer.send_and_wait(topic, raw, key=account.encode(), partition=partition)
        finally:
            await producer.stop()

    run(send())


def test_an_error_the_worker_cannot_handle_ends_it_non_zero_within_30_s(workers: WorkerFactory) -> None:
    """A stored state that does not decode: folding an event of that account raises out of the reader.

    Also while a sink is down, so that a delivery batch is retrying (for up to its 15-minute budget) when
    the error comes: the stop must not wait for it.
    """
    events = simulated_events(accounts=3, days=3, seed=5)
    account = events[0]["account_id"]
    with HTTPRecorder([503] * 1_000_000) as crm:
        configure_patient_webhook(workers, crm, max_delay_s="1")
        workers.start().stop()  # creates the topics and the changelog
        corrupt_account_state(workers, account)
        worker = workers.start()  # recovers the corrupt state into its table: nothing decodes it yet
        write_outbox(workers, [make_alert(f"fatal-{i:02d}") for i in range(5)])
        crm.wait_for_sync(3, timeout=60)
        produce_events(workers, [e for e in events if e["account_id"] == account][:5])
        # mode logs the crash ("Crashed reason=..."); from then on the worker has EXIT_WITHIN_S to be gone.
        wait_until(
            lambda: "Crashed reason" in worker.log() or worker.process.poll() is not None,
            timeout=90,
            what="the error",
        )
        code, took = wait_exit(worker, EXIT_WITHIN_S)
    assert code != 0
    fatal = [line for line in worker.log().splitlines() if "worker.fatal" in line]
    assert len(fatal) == 1 and "ZstdError" in fatal[0], worker.log()[-3000:]
    print(f"\n[fatal] exit code {code}, {took:.1f} s after the error")


# -- bounded shutdown ---------------------------------------------------------------------------------------


def test_sigterm_while_a_sink_is_down_exits_within_30_s_with_state_checkpointed(
    workers: WorkerFactory,
) -> None:
    events = simulated_events(accounts=20, days=5, seed=41)
    with HTTPRecorder([503] * 1_000_000) as crm:  # the sink is down for the whole test
        configure_patient_webhook(workers, crm, max_delay_s="1")
        worker = workers.start()
        produce_events(workers, events)
        wait_until(
            lambda: (worker.stats() or {}).get("events_folded") == len(events),
            timeout=90,
            what="every event folded",
        )
        write_outbox(workers, [make_alert(f"sigterm-{i:02d}") for i in range(5)])
        crm.wait_for_sync(3, timeout=60)  # a delivery batch is retrying the sink
        worker.process.send_signal(signal.SIGTERM)
        code, took = wait_exit(worker, EXIT_WITHIN_S)
        assert code == 0, worker.log()[-3000:]
    # A new worker has every window at once and reads no event again: the state was durable at exit.
    workers.extra_env.clear()
    restarted = workers.start()
    wait_for_windows(restarted, fold_offline(events), timeout=60)
    stats = restarted.stats()
    assert stats is not None and stats["events_folded"] == 0
    assert metric_value(restarted.get("/metrics").text, DUPLICATES_METRIC) == 0
    print(f"\n[sigterm, sink down] exited {code} after {took:.1f} s")


# -- broker gone (a private broker) -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaForTests]:
    broker = start_private_broker(tmp_path_factory.mktemp("health-kafka"))
    try:
        yield KafkaForTests(bootstrap=broker.bootstrap, broker=broker)
    finally:
        kafka_local.stop(broker)


@pytest.fixture
def broker_workers(private_kafka: KafkaForTests, tmp_path: Path) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(private_kafka, tmp_path, name="broker-gone")
    try:
        yield factory
    finally:
        factory.stop_all()
        assert private_kafka.broker is not None
        if kafka_local.status(private_kafka.broker) is None:
            kafka_local.start(private_kafka.broker)  # the next test needs it


def test_broker_gone_not_ready_with_a_reason_then_ready_again_with_every_event(
    broker_workers: WorkerFactory,
) -> None:
    broker = broker_workers.kafka.broker
    assert broker is not None
    events = simulated_events(accounts=20, days=6, seed=43)
    half = len(events) // 2
    # Replacing the reader's consumer is tried (and fails) while the broker is gone: harmless.
    worker = broker_workers.start(
        CHURNWATCH_READY_READ_WITHIN_SECONDS="5", CHURNWATCH_READER_REBUILD_AFTER_SECONDS="5"
    )
    produce_events(broker_workers, events[:half])
    wait_until(
        lambda: (worker.stats() or {}).get("events_folded") == half, timeout=90, what="first half folded"
    )
    assert health(worker, "/churnwatch/ready/") == 200
    assert kafka_local.stop(broker)
    try:
        wait_until(
            lambda: health(worker, "/churnwatch/ready/") == 503, timeout=60, what="not ready without a broker"
        )
        body = worker.get("/churnwatch/ready/").json()
        assert body["ready"] is False and body["reason"] == "not_reading", body
        metrics = worker.get("/metrics").text
        assert metric_value(metrics, "churnwatch_ready") == 0
        assert metric_value(metrics, "churnwatch_not_ready", reason="not_reading") == 1
        assert (metric_value(metrics, "churnwatch_reader_progress_age_seconds") or 0) >= 5
        # Waiting for a broker is not being stuck: alive, and no restart asked for.
        assert health(worker, "/churnwatch/live/") == 200
        assert worker.process.poll() is None
    finally:
        kafka_local.start(broker)
    wait_until(lambda: health(worker, "/churnwatch/ready/") == 200, timeout=120, what="ready again")
    produce_events(broker_workers, events[half:])
    wait_for_windows(worker, fold_offline(events), timeout=120)
    assert worker.process.poll() is None


def test_a_consumer_that_goes_quiet_is_replaced_and_every_event_folded_once(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    trigger = tmp_path / "stall"
    worker = workers.start(
        module="tests.stalling_worker",
        STALL_TRIGGER=str(trigger),
        CHURNWATCH_READY_READ_WITHIN_SECONDS="3",
        CHURNWATCH_READER_REBUILD_AFTER_SECONDS="30",
    )
    events = simulated_events(accounts=20, days=6, seed=47)
    half = len(events) // 2
    produce_events(workers, events[:half])
    wait_until(lambda: (worker.stats() or {}).get("events_folded") == half, timeout=90, what="first half")
    trigger.touch()
    wait_until(lambda: "consumer paused" in worker.log(), timeout=30, what="the reader's consumer paused")
    # Quiet: no fetch answered, so not ready and saying why (for the 30 s before the replacement).
    wait_until(lambda: health(worker, "/churnwatch/ready/") == 503, timeout=30, what="not ready")
    assert worker.get("/churnwatch/ready/").json()["reason"] == "not_reading"
    produce_events(workers, events[half:])
    wait_for_windows(worker, fold_offline(events), timeout=120)
    metrics = worker.get("/metrics").text
    assert metric_value(metrics, "churnwatch_reader_consumer_rebuilds_total", reader="events") == 1
    assert metric_value(metrics, "churnwatch_reader_consumer_rebuilds_total", reader="outbox") == 0
    assert metric_value(metrics, DUPLICATES_METRIC) == 0
    assert (worker.stats() or {}).get("events_folded") == len(events)
    assert worker.log().count("replacing its consumer") == 1, worker.log()[-3000:]
    wait_until(lambda: health(worker, "/churnwatch/ready/") == 200, timeout=30, what="ready again")


@contextlib.contextmanager
def not_answering(broker: kafka_local.LocalBroker) -> Iterator[None]:
    """The broker's process frozen (SIGSTOP): its connections stay open and nothing answers, as in a netsplit.

    Unlike a stopped broker (refused connections, which end a stop with nothing left to write at once), a
    broker that does not answer holds up every step of a stop that talks to it, whatever is still unwritten.
    """
    pid = kafka_local.status(broker)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def fold_and_checkpoint(workers: WorkerFactory, worker: WorkerProcess, seed: int) -> None:
    """The worker folds some events and writes them in a checkpoint: its stop has nothing left to write."""
    produce_events(workers, simulated_events(accounts=5, days=3, seed=seed))
    wait_until(
        lambda: metric_value(worker.get("/metrics").text, "churnwatch_checkpoint_duration_seconds_count"),
        timeout=90,
        what="a checkpoint of the folded events",
    )


def test_second_sigint_ends_a_worker_at_once_while_its_stop_hangs(broker_workers: WorkerFactory) -> None:
    broker = broker_workers.kafka.broker
    assert broker is not None
    # A bound far beyond the test's patience: only the second signal can end the worker in time.
    worker = broker_workers.start(CHURNWATCH_SHUTDOWN_TIMEOUT_SECONDS="600")
    fold_and_checkpoint(broker_workers, worker, 47)
    with not_answering(broker):
        worker.process.send_signal(signal.SIGINT)
        wait_until(lambda: "Signal received" in worker.log(), timeout=30, what="the graceful stop begun")
        assert worker.process.poll() is None  # still stopping: it waits for the broker
        worker.process.send_signal(signal.SIGINT)
        code, took = wait_exit(worker, 10)
    assert code == 128 + signal.SIGINT, worker.log()[-3000:]
    print(f"\n[second SIGINT] exited {code} {took:.1f} s after it")


def test_sigterm_with_the_broker_not_answering_exits_within_the_bound(broker_workers: WorkerFactory) -> None:
    """Leaving the group cannot reach Kafka: the stop gives up at the deadline (20 s) and says so."""
    broker = broker_workers.kafka.broker
    assert broker is not None
    worker = broker_workers.start()
    fold_and_checkpoint(broker_workers, worker, 53)
    with not_answering(broker):
        worker.process.send_signal(signal.SIGTERM)
        code, took = wait_exit(worker, EXIT_WITHIN_S)
    log = worker.log()
    assert code == 1, log[-3000:]
    assert "did not finish within 20 s (CHURNWATCH_SHUTDOWN_TIMEOUT_SECONDS)" in log, log[-3000:]
    print(f"\n[sigterm, broker not answering] exited {code} after {took:.1f} s")
