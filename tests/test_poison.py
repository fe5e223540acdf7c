"""Locating a batch aiokafka cannot decode, from the exception its real record iterator raises.

The reader skips such batches (streams.live.poison); it must name the right partition and offsets, or the
worker would skip good records or meet the same batch for ever. These run aiokafka's own ``PartitionRecords``
over batches built and spoiled byte by byte; tests/test_codecs_kafka.py does it through a broker and a worker.
"""

from __future__ import annotations

from unittest import mock

import aiokafka.codec
import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.errors import CorruptRecordException, RecordTooLargeError, UnsupportedCodecError
from aiokafka.record.memory_records import MemoryRecords

from streams.live.poison import PoisonBatch, PoisonReason, UnlocatedPoisonError, locate, read_around
from tests import record_batches

TP = TopicPartition("usage", 3)


def values(n: int) -> list[bytes]:
    return [b'{"n": %d, "pad": "%s"}' % (i, b"x" * 40) for i in range(n)]


def unpack(raw: bytes, fetch_offset: int = 0) -> tuple[list[int], BaseException]:
    """Offsets aiokafka yields from ``raw`` before it raises, and what it raises."""
    records = PartitionRecords(TP, MemoryRecords(raw), None, fetch_offset, None, None, True, READ_UNCOMMITTED)
    offsets: list[int] = []
    with pytest.raises((CorruptRecordException, UnsupportedCodecError)) as raised:
        offsets.extend(record.offset for record in records)
    return offsets, raised.value


def three_batches(middle_codec: str = "none") -> tuple[bytearray, record_batches.BatchAt]:
    raw = (
        record_batches.build(0, values(3))
        + record_batches.build(3, values(4), codec=middle_codec)
        + record_batches.build(7, values(2))
    )
    return raw, record_batches.batches(raw)[1]


def test_a_corrupt_batch_is_located_between_its_neighbours() -> None:
    raw, middle = three_batches()
    record_batches.spoil_crc(raw, middle)
    offsets, exc = unpack(bytes(raw))
    assert offsets == [0, 1, 2]
    assert locate(exc) == PoisonBatch(TP, 3, 7, PoisonReason.CORRUPT_BATCH, str(exc))


def test_a_codec_without_its_library_is_located() -> None:
    """The failure of the issue: a snappy batch where aiokafka has no snappy library."""
    raw, _ = three_batches("snappy")
    with mock.patch.object(aiokafka.codec, "has_snappy", return_value=False):
        offsets, exc = unpack(bytes(raw))
    assert "snappy" in str(exc)
    assert offsets == [0, 1, 2]
    assert locate(exc) == PoisonBatch(TP, 3, 7, PoisonReason.UNSUPPORTED_CODEC, str(exc))


def test_an_unknown_codec_in_the_last_batch_ends_where_its_header_says() -> None:
    raw = record_batches.build(10, values(2)) + record_batches.build(12, values(5))
    last = record_batches.batches(raw)[1]
    record_batches.set_codec(raw, last, 5)
    offsets, exc = unpack(bytes(raw), fetch_offset=10)
    assert offsets == [10, 11]
    assert locate(exc) == PoisonBatch(TP, 12, 17, PoisonReason.UNSUPPORTED_CODEC, str(exc))


def test_a_fetch_starting_inside_the_batch_skips_from_the_fetch_offset() -> None:
    raw, middle = three_batches()
    record_batches.spoil_crc(raw, middle)
    sliced = bytes(raw[middle.position :])
    offsets, exc = unpack(sliced, fetch_offset=5)
    assert offsets == []
    located = locate(exc)
    assert located is not None
    assert (located.first_offset, located.next_offset) == (5, 7)


def test_record_too_large_names_its_offset() -> None:
    exc = RecordTooLargeError("There are some messages at %s=%s larger than %s", TP, 41, 1024)
    assert locate(exc) == PoisonBatch(TP, 41, 42, PoisonReason.TOO_LARGE, "larger than the fetch size")


async def test_an_error_that_names_no_batch_is_not_guessed_at() -> None:
    """Skipping blindly could drop good records: the reader stops with a clear error instead."""
    exc = UnsupportedCodecError("Libraries for snappy compression codec not found")
    assert locate(exc) is None
    with pytest.raises(UnlocatedPoisonError, match="partition is unknown"):
        await read_around(mock.Mock(), exc, {TP: 0}, timeout_ms=100)
