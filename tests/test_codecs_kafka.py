"""Every codec real producers use, and no poison batch, on the real broker with a running worker.

Events come from kcat (librdkafka, Debian's ``kcat``): a non-Python producer, compressing as Java and Go
clients do. Batches the reader cannot decode are made for real: produced by kcat, then spoiled in the broker's
segment file (a flipped byte, or a codec id no client knows with a recomputed CRC), as disk corruption or a
producer from the future would leave them.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import confluent_kafka
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.live.kafka_client import client_options, ensure_topics
from streams.live.poison import DECODE_ERRORS, PoisonBatch, PoisonReason, read_around
from streams.live.table_store import POSITIONS_KEY
from streams.settings import Settings
from tests import record_batches
from tests.kafka_harness import (
    KafkaForTests,
    WorkerFactory,
    WorkerProcess,
    latest_by_key,
    metric_value,
    read_all,
    read_topic,
    run,
    wait_until,
)

pytestmark = pytest.mark.kafka

MALFORMED = [b"not json", b"[1, 2]", b'{"type": "usage"}', b'{"type": "usage", "account_id": "x"}', b"{"]


def usage_line(account: str, ts: datetime, **extra: object) -> bytes:
    body = {"type": "usage", "account_id": account, "ts": ts.isoformat(), "event": "report_exported", **extra}
    return account.encode() + b"|" + orjson.dumps(body)


def good_lines(prefix: str, count: int, accounts: int = 10) -> list[bytes]:
    start = datetime.now(UTC) - timedelta(hours=2)
    return [usage_line(f"{prefix}-{i % accounts}", start + timedelta(seconds=i)) for i in range(count)]


def kcat(
    bootstrap: str,
    topic: str,
    lines: list[bytes],
    *,
    codec: str,
    partition: int | None = None,
    extra: tuple[str, ...] = (),
) -> None:
    """Produce ``key|value`` lines with kcat; it returns once the broker acknowledged every record.

    A long linger keeps the lines in one batch even when kcat is slow to read them (a busy machine); tests
    that depend on the layout still read it from the segment file rather than assume it."""
    command = [
        "kcat",
        "-P",
        "-b",
        bootstrap,
        "-t",
        topic,
        "-K",
        "|",
        "-z",
        codec,
        "-X",
        "linger.ms=500",
        *extra,
    ]
    if partition is not None:
        command += ["-p", str(partition)]
    subprocess.run(command, input=b"\n".join(lines) + b"\n", check=True, timeout=60, capture_output=True)


def log_dir(kafka: KafkaForTests) -> Path:
    assert kafka.broker is not None, (
        "these tests read the embedded broker's files: unset CHURNWATCH_TEST_BOOTSTRAP"
    )
    return kafka.broker.directory / "data"


def batches_of(kafka: KafkaForTests, topic: str, partitions: int) -> list[record_batches.BatchAt]:
    found: list[record_batches.BatchAt] = []
    for partition in range(partitions):
        path = record_batches.segment_file(log_dir(kafka), topic, partition)
        found.extend(record_batches.batches(path.read_bytes()))
    return found


def metrics(worker: WorkerProcess) -> str:
    return worker.get("/metrics").text


def counted(worker: WorkerProcess, *, folded: int, deadletters: int) -> bool:
    stats = worker.stats()
    return stats is not None and (stats["events_folded"], stats["deadletters"]) == (folded, deadletters)


def settled_or_dead(worker: WorkerProcess, folded: int, deadletters: int, *, what: str) -> None:
    """Wait until the worker counted exactly these totals; fail at once with its log if it died."""
    wait_until(
        lambda: counted(worker, folded=folded, deadletters=deadletters) or worker.process.poll() is not None,
        timeout=60,
        what=f"{what}: {folded} events folded, {deadletters} dead-lettered",
    )
    assert worker.process.poll() is None, worker.log()[-3000:]


def test_every_codec_from_kcat_is_folded(kafka: KafkaForTests, workers: WorkerFactory) -> None:
    """100 valid events and 5 malformed records per codec: all folded, all malformed ones dead-lettered."""
    worker = workers.start()
    settings = workers.settings()
    folded = deadletters = 0
    for codec in record_batches.CODECS:
        before = {
            (b.position, b.base_offset) for b in batches_of(kafka, settings.topics.usage, workers.partitions)
        }
        kcat(
            kafka.bootstrap,
            settings.topics.usage,
            good_lines(codec, 100) + [f"{codec}-0|".encode() + bad for bad in MALFORMED],
            codec=codec,
        )
        written = [
            b
            for b in batches_of(kafka, settings.topics.usage, workers.partitions)
            if (b.position, b.base_offset) not in before
        ]
        # librdkafka sends a batch uncompressed when compressing does not make it smaller (a lone record).
        assert {b.codec for b in written} <= {0, record_batches.CODECS[codec]}, written
        compressed = sum(
            b.next_offset - b.base_offset for b in written if b.codec == record_batches.CODECS[codec]
        )
        assert compressed >= 80, f"{codec}: only {compressed} of 105 records in {codec} batches: {written}"
        folded, deadletters = folded + 100, deadletters + len(MALFORMED)
        settled_or_dead(worker, folded, deadletters, what=codec)
        account = worker.account(f"{codec}-3")
        assert account is not None, f"{codec}: account state missing"
    assert "Traceback" not in worker.log()


def spoil(
    kafka: KafkaForTests, topic: str, partition: int, first: int, end: int, how: str
) -> list[record_batches.BatchAt]:
    """Spoil each batch of ``topic[partition]`` with a base offset in ``[first, end)``; return them."""
    path = record_batches.segment_file(log_dir(kafka), topic, partition)
    raw = bytearray(path.read_bytes())
    spoiled = [b for b in record_batches.batches(raw) if first <= b.base_offset < end]
    assert spoiled, f"no batch at offsets {first}..{end - 1}"
    with path.open("r+b") as file:
        for batch in spoiled:
            if how == "crc":
                record_batches.spoil_crc(raw, batch)
            else:
                record_batches.set_codec(raw, batch, 5)
            file.seek(batch.position)
            file.write(raw[batch.position : batch.position + batch.size])
    return spoiled


def offsets_in(batches: list[record_batches.BatchAt]) -> int:
    return sum(b.next_offset - b.base_offset for b in batches)


def skip_lines(topic: str, partition: int, batches: list[record_batches.BatchAt], reason: str) -> list[str]:
    """The log line the reader writes for each skipped batch (one per batch, however kcat split the lines)."""
    return [
        f"skipped undecodable batch at {topic}[{partition}] offsets {first}..{last} ({reason}"
        for first, last in ((b.base_offset, b.next_offset - 1) for b in batches)
    ]


def skipped(worker: WorkerProcess, reason: str) -> float | None:
    return metric_value(
        metrics(worker), "churnwatch_undecodable_records_skipped_total", reason=reason, topic="usage"
    )


def checkpointed(kafka: KafkaForTests, workers: WorkerFactory, *, partition: int) -> int | None:
    """The usage offset the worker checkpointed for ``partition`` (the row a new owner resumes from)."""
    changelog = latest_by_key(run(read_all(kafka.bootstrap, f"{workers.prefix}-accounts-changelog")))
    row = changelog.get(POSITIONS_KEY % partition)
    return None if row is None else int(orjson.loads(row).get(workers.settings().topics.usage, -1))


def test_undecodable_batches_are_skipped_and_the_partition_read_on(
    kafka: KafkaForTests, workers: WorkerFactory
) -> None:
    """A corrupt batch and one with an unknown codec in partition 0, between good ones: skipped, counted,
    logged with their offsets, checkpointed past (a restart does not meet them again); every good record of
    every partition is folded and malformed records after them are still dead-lettered."""
    settings = workers.settings()
    run(ensure_topics(settings))
    topic = settings.topics.usage
    kcat(kafka.bootstrap, topic, good_lines("before", 10), codec="none", partition=0)  # offsets 0-9
    kcat(kafka.bootstrap, topic, good_lines("crc", 5), codec="none", partition=0)  # 10-14
    kcat(kafka.bootstrap, topic, good_lines("codec", 5), codec="lz4", partition=0)  # 15-19
    after = good_lines("after", 10) + [b"after-0|" + bad for bad in MALFORMED[:2]]
    kcat(kafka.bootstrap, topic, after, codec="zstd", partition=0)  # 20-31
    for partition in (1, 2, 3):
        kcat(kafka.bootstrap, topic, good_lines(f"p{partition}", 10), codec="snappy", partition=partition)
    corrupt, unknown_codec = spoil(kafka, topic, 0, 10, 15, "crc"), spoil(kafka, topic, 0, 15, 20, "codec")
    assert (offsets_in(corrupt), offsets_in(unknown_codec)) == (5, 5)

    worker = workers.start()
    settled_or_dead(worker, 50, 2, what="around the spoiled batches")
    assert skipped(worker, "corrupt_batch") == 5
    assert skipped(worker, "unsupported_codec") == 5
    log = worker.log()
    expected_lines = skip_lines(topic, 0, corrupt, "corrupt_batch") + skip_lines(
        topic, 0, unknown_codec, "unsupported_codec"
    )
    assert [line for line in expected_lines if line not in log] == []
    assert worker.account("before-9") is not None and worker.account("after-9") is not None
    assert worker.account("crc-0") is None and worker.account("codec-0") is None

    # Checkpointed past the skipped batches: a new worker neither meets them nor folds anything twice.
    wait_until(
        lambda: checkpointed(kafka, workers, partition=0) == 32, timeout=60, what="usage[0] checkpointed: 32"
    )
    worker.stop()
    restarted = workers.start()
    kcat(kafka.bootstrap, topic, good_lines("later", 5), codec="gzip", partition=0)
    wait_until(lambda: counted(restarted, folded=5, deadletters=0), timeout=60, what="5 later events folded")
    assert skipped(restarted, "corrupt_batch") == 0
    assert skipped(restarted, "unsupported_codec") == 0


async def create_usage_topic(settings: Settings, max_message_bytes: int) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        configs = {"max.message.bytes": str(max_message_bytes)}
        await admin.create_topics(
            [NewTopic(settings.topics.usage, settings.topics.partitions, 1, topic_configs=configs)]
        )
    finally:
        await admin.close()


def test_a_record_over_every_size_limit_is_dead_lettered_without_its_bytes(
    kafka: KafkaForTests, workers: WorkerFactory
) -> None:
    """5 MB in one record (the topic allows 8 MB): larger than the reader's fetch size per partition (4 MiB),
    the dead-letter topic's message size and the producer's request size. It is dead-lettered with its
    headers and size but no value; the records after it are folded."""
    settings = workers.settings()
    run(create_usage_topic(settings, 8 * 2**20))
    worker = workers.start()
    huge = usage_line("huge", datetime.now(UTC), user_id="u" * (5 * 10**6))
    big_enough = ("-X", "message.max.bytes=10000000")
    kcat(kafka.bootstrap, settings.topics.usage, [huge], codec="none", partition=0, extra=big_enough)
    kcat(kafka.bootstrap, settings.topics.usage, good_lines("next", 10), codec="none", partition=0)
    settled_or_dead(worker, 10, 1, what="after the huge record")
    (dead,) = run(read_topic(kafka.bootstrap, settings.topics.deadletter, expected=1))
    headers = dict(dead.headers)
    assert dead.key == b"huge" and dead.value is None
    assert headers["churnwatch.error.reason"] == b"too_large"
    assert headers["churnwatch.error.value_dropped_bytes"] == str(len(huge) - len(b"huge|")).encode()
    assert headers["churnwatch.source.offset"] == b"0"


async def read_everything(bootstrap: str, topic: str, ends: dict[int, int]) -> tuple[list[Any], list[Any]]:
    """Read ``topic`` to ``ends`` as the worker's reader does: getmany, read_around what fails to decode."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, partition) for partition in ends]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        positions = {tp: await consumer.position(tp) for tp in tps}
        records: list[Any] = []
        skipped: list[PoisonBatch] = []
        deadline = time.monotonic() + 60
        while any(positions[tp] < ends[tp.partition] for tp in tps) and time.monotonic() < deadline:
            try:
                fetched, poison = await consumer.getmany(timeout_ms=500, max_records=1000), None
            except DECODE_ERRORS as exc:
                fetched, poison = await read_around(consumer, exc, positions, timeout_ms=500)
            for tp, batch in fetched.items():
                records.extend(batch)
                positions[tp] = batch[-1].offset + 1
            if poison is not None:
                skipped.append(poison)
                positions[poison.tp] = poison.next_offset
        return records, skipped
    finally:
        await consumer.stop()


def test_records_other_partitions_drained_before_a_poison_batch_are_not_lost(
    kafka: KafkaForTests, workers: WorkerFactory
) -> None:
    """aiokafka drops what one getmany call drained from other partitions when a later partition raises:
    read_around reads them again, and every good record of every partition arrives exactly once."""
    settings = workers.settings()
    run(ensure_topics(settings))
    topic = settings.topics.usage
    for partition in range(workers.partitions):
        for part in ("a", "b", "c"):
            kcat(
                kafka.bootstrap, topic, good_lines(f"{part}{partition}", 5), codec="lz4", partition=partition
            )
    corrupt, unknown_codec = spoil(kafka, topic, 1, 5, 10, "crc"), spoil(kafka, topic, 3, 10, 15, "codec")
    ends = {partition: 15 for partition in range(workers.partitions)}
    records, skipped = run(read_everything(kafka.bootstrap, topic, ends))
    expected = {
        (partition, offset)
        for partition in range(workers.partitions)
        for offset in range(15)
        if not (partition == 1 and 5 <= offset < 10) and not (partition == 3 and offset >= 10)
    }
    got = [(record.partition, record.offset) for record in records]
    assert sorted(got) == sorted(expected)  # each once: nothing lost, nothing twice
    assert (offsets_in(corrupt), offsets_in(unknown_codec)) == (5, 5)
    assert sorted((p.tp.partition, p.first_offset, p.next_offset, p.reason) for p in skipped) == [
        *((1, b.base_offset, b.next_offset, PoisonReason.CORRUPT_BATCH) for b in corrupt),
        *((3, b.base_offset, b.next_offset, PoisonReason.UNSUPPORTED_CODEC) for b in unknown_codec),
    ]


def produce_transaction(bootstrap: str, topic: str, lines: list[bytes], *, partition: int) -> None:
    """``key|value`` lines in one committed transaction (librdkafka); its commit marker takes an offset."""
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"codecs-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for line in lines:
        key, value = line.split(b"|", 1)
        producer.produce(topic, value, key, partition=partition)
    producer.commit_transaction(30)


def test_a_poison_batch_after_a_transaction_marker_costs_no_record_before_it(
    kafka: KafkaForTests, workers: WorkerFactory
) -> None:
    """Offsets are not contiguous around a transaction's commit marker (as upstream exactly-once producers
    leave them), so reading exactly up to the batch overshoots into it: the records before it are then read
    one at a time, and none is lost."""
    settings = workers.settings()
    run(ensure_topics(settings))
    topic = settings.topics.usage
    produce_transaction(kafka.bootstrap, topic, good_lines("txn", 5), partition=0)  # 0-4, marker 5
    # The commit returns before the coordinator has written the marker into the partition: wait for it, or
    # the next records can take offset 5 and the marker land after them.
    wait_until(
        lambda: max((b.next_offset for b in batches_of(kafka, topic, 1)), default=0) >= 6,
        timeout=60,
        what="the transaction's commit marker in the partition",
    )
    for part in ("a", "b", "c"):  # 6-10, 11-15, 16-20
        kcat(kafka.bootstrap, topic, good_lines(part, 5), codec="zstd", partition=0)
    corrupt = spoil(kafka, topic, 0, 11, 16, "crc")
    assert offsets_in(corrupt) == 5
    records, skipped = run(read_everything(kafka.bootstrap, topic, {0: 21}))
    assert [record.offset for record in records] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 16, 17, 18, 19, 20]
    assert [(p.first_offset, p.next_offset, p.reason) for p in skipped] == [
        (b.base_offset, b.next_offset, PoisonReason.CORRUPT_BATCH) for b in corrupt
    ]
