"""Kafka record batches (magic v2) at the byte level: build them, find them in a segment file, spoil them.

A v2 batch is ``baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8, crc uint32,
attributes int16, lastOffsetDelta int32, ...``; the CRC-32C covers everything from ``attributes`` to the end,
and the low three bits of ``attributes`` name the compression codec.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c

CRC_AT = 17
ATTRIBUTES_AT = 21
LAST_OFFSET_DELTA_AT = 23
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@dataclass(frozen=True, slots=True)
class BatchAt:
    """One batch of a segment file: its byte position and size, offsets and codec."""

    position: int
    size: int
    base_offset: int
    next_offset: int
    codec: int


def build(base_offset: int, values: list[bytes], *, codec: str = "none", key: bytes = b"k") -> bytearray:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=CODECS[codec],
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta, value in enumerate(values):
        builder.append(delta, timestamp=None, key=key, value=value, headers=[])
    raw = builder.build()
    struct.pack_into(">q", raw, 0, base_offset)  # not covered by the CRC
    return raw


def batches(raw: bytes | bytearray) -> list[BatchAt]:
    """Every complete batch in ``raw`` (a segment file's or a fetch response's bytes)."""
    found: list[BatchAt] = []
    position = 0
    while position + LAST_OFFSET_DELTA_AT + 4 <= len(raw):
        base_offset, length = struct.unpack_from(">qi", raw, position)
        size = 12 + length
        if length <= 0 or position + size > len(raw):
            break
        (attributes,) = struct.unpack_from(">h", raw, position + ATTRIBUTES_AT)
        (last_delta,) = struct.unpack_from(">i", raw, position + LAST_OFFSET_DELTA_AT)
        found.append(BatchAt(position, size, base_offset, base_offset + last_delta + 1, attributes & 0x07))
        position += size
    return found


def spoil_crc(raw: bytearray, batch: BatchAt) -> None:
    """Flip a byte of the batch's last record (its value); the header and the stored CRC stay as they were."""
    raw[batch.position + batch.size - 2] ^= 0xFF


def set_codec(raw: bytearray, batch: BatchAt, codec: int) -> None:
    """Claim another compression codec in the attributes and fix the CRC, so only the codec is wrong."""
    at = batch.position + ATTRIBUTES_AT
    (attributes,) = struct.unpack_from(">h", raw, at)
    struct.pack_into(">h", raw, at, (attributes & ~0x07) | codec)
    crc = calc_crc32c(bytes(raw[at : batch.position + batch.size]))
    struct.pack_into(">I", raw, batch.position + CRC_AT, crc)


def segment_file(log_dir: Path, topic: str, partition: int) -> Path:
    """The first (and in a short test the only) segment of a partition in a broker's ``log.dirs``."""
    return log_dir / f"{topic}-{partition}" / f"{0:020d}.log"
