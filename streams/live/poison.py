"""Batches the reader cannot decode at the Kafka level: find them, read around them, skip them, say so.

aiokafka unpacks a fetched partition lazily inside ``getmany``. A batch it cannot decode (a codec it has no
library for, an unknown codec, a CRC mismatch, a malformed batch) raises out of ``getmany`` for the whole
call: records it had already drained from other partitions in that call are dropped although their positions
moved on, and the failing partition is fetched again from the same offset, which fails again — for ever.

:func:`read_around` turns that into a skip: it finds the partition and offsets of the batch from the
exception (:func:`locate`), rewinds every partition to what the reader has processed (so nothing the failed
call dropped is lost), reads the failing partition's records up to the batch, and seeks past it. Other
partitions keep being read; the reader records the skip (log line, metric) and checkpoints past it, so a
restart does not meet it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException, RecordTooLargeError, UnsupportedCodecError

# What getmany raises for one undecodable batch (RecordTooLargeError only with fetch versions before KIP-74,
# whose brokers return no part of a batch larger than the fetch size; aiokafka then steps over one offset).
DECODE_ERRORS = (CorruptRecordException, UnsupportedCodecError, RecordTooLargeError)


class PoisonReason(StrEnum):
    UNSUPPORTED_CODEC = "unsupported_codec"
    CORRUPT_BATCH = "corrupt_batch"
    TOO_LARGE = "too_large"


class UnlocatedPoisonError(RuntimeError):
    """A batch failed to decode and its partition and offset could not be told: the reader cannot go on."""


@dataclass(frozen=True, slots=True)
class PoisonBatch:
    """Offsets ``first_offset`` to ``next_offset - 1`` of ``tp`` that no record could be decoded from."""

    tp: TopicPartition
    first_offset: int
    next_offset: int
    reason: PoisonReason
    detail: str

    def describe(self) -> str:
        """One log line: where, how many offsets, why."""
        return (
            f"skipped undecodable batch at {self.tp.topic}[{self.tp.partition}] offsets "
            f"{self.first_offset}..{self.next_offset - 1} ({self.reason.value}: {self.detail})"
        )


def _reason(exc: BaseException) -> PoisonReason:
    if isinstance(exc, UnsupportedCodecError):
        return PoisonReason.UNSUPPORTED_CODEC
    if isinstance(exc, RecordTooLargeError):
        return PoisonReason.TOO_LARGE
    return PoisonReason.CORRUPT_BATCH


def _unpacking_frame(exc: BaseException) -> Mapping[str, Any] | None:
    """Locals of aiokafka's ``PartitionRecords._unpack_records`` where ``exc`` was raised (aiokafka 0.14)."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "_unpack_records" and code.co_filename == fetcher.__file__:
            found = tb.tb_frame.f_locals
        tb = tb.tb_next
    return found


def locate(exc: BaseException) -> PoisonBatch | None:
    """The partition and offsets of the batch that raised ``exc`` inside ``getmany``, if they can be told.

    The batch starts at the offset after the last record aiokafka unpacked before it and ends before the
    next batch of the same fetch (or at the end its own header names, when it was the fetch's last batch). A
    fetch that breaks off inside malformed framing skips one offset at a time.
    """
    detail = str(exc) or type(exc).__name__
    if (
        isinstance(exc, RecordTooLargeError)
        and len(exc.args) >= 3
        and isinstance(exc.args[1], TopicPartition)
    ):
        offset = int(exc.args[2])
        return PoisonBatch(
            exc.args[1], offset, offset + 1, PoisonReason.TOO_LARGE, "larger than the fetch size"
        )
    frame = _unpacking_frame(exc)
    if frame is None or not isinstance(frame.get("tp"), TopicPartition) or "self" not in frame:
        return None
    first = int(frame["self"].next_fetch_offset)
    batch, records = frame.get("next_batch"), frame.get("records")
    end = first + 1
    if batch is not None and batch.next_offset > first:  # else the framing itself broke: step over one offset
        end = batch.next_offset
        following = _following_batch_offset(records)
        if following is not None and following > first:
            end = following  # more trustworthy than a header whose checksum failed
    return PoisonBatch(frame["tp"], first, end, _reason(exc), detail)


def _same_batch(found: PoisonBatch | None, poison: PoisonBatch) -> bool:
    return found is not None and (found.tp, found.first_offset) == (poison.tp, poison.first_offset)


def _following_batch_offset(records: Any) -> int | None:
    try:
        if records is None or not records.has_next():
            return None
        following = records.next_batch()
    except CorruptRecordException:
        return None
    return None if following is None else int(following.base_offset)


async def read_around(
    consumer: AIOKafkaConsumer,
    exc: BaseException,
    positions: Mapping[TopicPartition, int],
    *,
    timeout_ms: int,
) -> tuple[dict[TopicPartition, list[Any]], PoisonBatch | None]:
    """After ``getmany`` raised ``exc``: the records before the poison batch, and the batch once passed.

    Every partition is rewound to ``positions`` (the reader's processed offsets), so records the failed call
    drained and dropped are fetched again. The failing partition is read up to the batch, then positioned
    after it; the batch is returned only then. If the records before it do not all arrive within the
    timeout, those that did are returned and the batch stays ahead, to be met again on the next fetch.

    Raises :class:`UnlocatedPoisonError` when ``exc`` does not tell where the batch is.
    """
    poison = locate(exc)
    if poison is None:
        raise UnlocatedPoisonError(
            f"a fetched batch could not be decoded and its partition is unknown: {exc!r}"
        ) from exc
    for tp, offset in positions.items():
        consumer.seek(tp, offset)
    tp = poison.tp
    records: list[Any] = []
    step = max(1, poison.first_offset - positions.get(tp, poison.first_offset))
    while (position := await consumer.position(tp)) < poison.first_offset:
        try:
            # Exactly the records up to the batch when offsets are contiguous, else one at a time.
            fetched = await consumer.getmany(tp, timeout_ms=timeout_ms, max_records=step)
        except DECODE_ERRORS as again:
            if step > 1:
                consumer.seek(tp, position)
                step = 1
                continue
            if not _same_batch(locate(again), poison):
                return {tp: records} if records else {}, None
            break  # nothing decodable left before the batch
        if not fetched:
            return {tp: records} if records else {}, None
        records.extend(fetched[tp])
        if step > 1:  # in bulk until a gap in the offsets made it fail, then one at a time
            step = max(1, poison.first_offset - await consumer.position(tp))
    consumer.seek(tp, poison.next_offset)
    return {tp: records} if records else {}, poison
