"""Fold a micro-batch of raw Kafka records into per-account state: the transport-free core of the worker.

The Faust agent hands over records in batches; this module decodes them, folds them into each account's
:class:`~detectors.windows.AccountWindow` and reports what must be dead-lettered. Each account's state is read
and written once per batch, not once per event.

Exactly-once effect on state: an account's stored state remembers the highest source offset it has applied
per event topic. After a crash the uncommitted records are consumed again; those at or below the remembered
offset are skipped, so nothing is counted twice even though Kafka delivers at least once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import zstandard

from detectors.windows import AccountWindow, WindowConfig
from streams.dedup import Deduplicator, event_key
from streams.events import (
    EVENT_TYPES,
    MIN_TS_MS,
    BillingEvent,
    DeadLetterReason,
    InvalidEventError,
    SupportEvent,
    UsageEvent,
    decode,
)

STATE_VERSION = 1
# Level 1: compressing a ~2 KB state costs ~10 µs; higher levels buy little on such small values.
_COMPRESSOR = zstandard.ZstdCompressor(level=1)
_DECOMPRESSOR = zstandard.ZstdDecompressor()

BeforeEvent = Callable[[str, int, int, dict[bytes, "AccountState"]], Iterable[bytes]]
# Larger values are dead-lettered without their bytes: a dead letter must fit the producer's request size and
# the broker's default message size (1 MiB) whatever an event topic's own max.message.bytes allows.
DEADLETTER_MAX_VALUE_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One consumed Kafka record, as much of it as ingestion needs."""

    event_type: str  # the type the record's topic carries
    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: RawRecord
    reason: DeadLetterReason
    detail: str

    @property
    def value_dropped(self) -> bool:
        return self.record.value is not None and len(self.record.value) > DEADLETTER_MAX_VALUE_BYTES

    def value(self) -> bytes | None:
        """The original value; ``None`` when too large to dead-letter (the source headers locate it)."""
        return None if self.value_dropped else self.record.value

    def headers(self) -> list[tuple[str, bytes]]:
        """Original headers plus the error, after Kafka Connect's ``errors.deadletterqueue`` convention.

        Incoming ``churnwatch.*`` headers are dropped: a producer must not be able to pose as the worker's
        verdict on its own record.

        >>> record = RawRecord("usage", b"a", b"x" * 600_000, "t", 0, 7)
        >>> big = DeadLetter(record, DeadLetterReason.TOO_LARGE, "600000 bytes exceeds 65536")
        >>> big.value() is None, big.headers()[-1]
        (True, ('churnwatch.error.value_dropped_bytes', b'600000'))
        """
        headers = [
            *((name, value) for name, value in self.record.headers if not name.startswith("churnwatch.")),
            ("churnwatch.error.reason", self.reason.value.encode()),
            ("churnwatch.error.detail", self.detail.encode()[:1000]),
            ("churnwatch.source.topic", self.record.topic.encode()),
            ("churnwatch.source.partition", str(self.record.partition).encode()),
            ("churnwatch.source.offset", str(self.record.offset).encode()),
        ]
        if self.value_dropped:
            assert self.record.value is not None
            headers.append(("churnwatch.error.value_dropped_bytes", str(len(self.record.value)).encode()))
        return headers


@dataclass(slots=True)
class AccountState:
    """What a table row holds for one account: its window, detector state and applied offsets."""

    window: AccountWindow
    partition: int
    applied_offsets: list[int] = field(default_factory=lambda: [-1] * len(EVENT_TYPES))
    detector: dict[str, Any] | None = None
    # The detectors' decoded state while this object stays cached (never stored: ``detector`` is).
    live_detector: Any = field(default=None, compare=False, repr=False)

    def to_bytes(self) -> bytes:
        """The partition (2 bytes, readable without decoding), then zstd-compressed orjson.

        Compression keeps about a third of the JSON, so changelogs and recovery shrink alike.
        """
        return self.partition.to_bytes(2, "big") + _COMPRESSOR.compress(
            orjson.dumps(
                {
                    "v": STATE_VERSION,
                    "p": self.partition,
                    "o": self.applied_offsets,
                    "w": self.window.to_state(),
                    "d": self.detector,
                }
            )
        )

    @staticmethod
    def partition_of(raw: bytes) -> int:
        """The partition of a stored state, without decoding it."""
        return int.from_bytes(raw[:2], "big")

    @classmethod
    def from_bytes(cls, raw: bytes, config: WindowConfig) -> AccountState:
        body = orjson.loads(_DECOMPRESSOR.decompress(raw[2:]))
        return cls(AccountWindow.from_state(body["w"], config), body["p"], list(body["o"]), body.get("d"))


def record_origin(record: RawRecord, topic_index: int) -> int:
    """One integer per (topic, partition, offset): where the deduplicator first saw an event."""
    return (record.offset << 16 | record.partition) << 2 | topic_index


@dataclass(slots=True)
class BatchResult:
    """Accounts whose state changed (to be written once each) and records to dead-letter."""

    changed: dict[bytes, AccountState] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    folded: int = 0
    skipped_duplicates: int = 0
    duplicate_events: int = 0  # the same event again under another offset (a producer's retry)
    max_event_ts_ms: int | None = None


class BatchFolder:
    """Decode, validate and fold raw records into account states.

    Parameters
    ----------
    window_config
        Retention, lateness and top-event settings of the windows.
    max_event_bytes
        Larger record values are dead-lettered as ``too_large``.
    max_future_skew_ms
        Events further ahead of ``clock()`` than this are dead-lettered as ``future_ts``.
    clock
        Wall clock in epoch milliseconds (injectable for tests).
    min_ts_ms
        Events before this are dead-lettered as ``invalid_ts`` (``CHURNWATCH_MIN_EVENT_TS``).
    deduplicator
        Drops an event whose id (or content) it has seen under another offset: counted in
        ``duplicate_events``, not folded, not dead-lettered.
    """

    def __init__(
        self,
        *,
        window_config: WindowConfig,
        max_event_bytes: int,
        max_future_skew_ms: int,
        clock: Callable[[], int],
        deduplicator: Deduplicator | None = None,
        min_ts_ms: int = MIN_TS_MS,
    ) -> None:
        self.window_config = window_config
        self.min_ts_ms = min_ts_ms
        self.max_event_bytes = max_event_bytes
        self.max_future_skew_ms = max_future_skew_ms
        self.clock = clock
        self.deduplicator = deduplicator

    def fold(
        self,
        records: Iterable[RawRecord],
        load: Callable[[bytes], bytes | None],
        before_event: BeforeEvent | None = None,
        states: dict[bytes, AccountState] | None = None,
    ) -> BatchResult:
        """Fold ``records`` (in consumption order); ``load(key)`` returns an account's stored state bytes.

        ``states`` holds decoded states the caller keeps between batches (they are folded into in place, and
        states decoded from ``load`` are added to it); without it each batch decodes what it needs.
        ``before_event(event_type, partition, ts_ms, states)``, when given, runs before each valid event is
        folded, with the working states; it returns the keys among them it changed (the event clock sweeps
        there).
        """
        result = BatchResult()
        if states is None:
            states = {}
        max_ts_ms = self.clock() + self.max_future_skew_ms
        for record in records:
            try:
                event = decode(
                    record.value,
                    max_bytes=self.max_event_bytes,
                    max_ts_ms=max_ts_ms,
                    min_ts_ms=self.min_ts_ms,
                    key=record.key if record.key is not None else b"",
                    expected_type=record.event_type,
                )
            except InvalidEventError as exc:
                result.dead_letters.append(DeadLetter(record, exc.reason, exc.detail))
                continue
            key = record.key
            assert key is not None  # decode() checked it equals the account id
            if before_event is not None:
                for changed in before_event(record.event_type, record.partition, event.ts_ms, states):
                    result.changed[changed] = states[changed]
            state = states.get(key)
            if state is None:
                stored = load(key)
                state = (
                    AccountState.from_bytes(stored, self.window_config)
                    if stored is not None
                    else AccountState(AccountWindow(self.window_config), record.partition)
                )
                states[key] = state
            topic_index = EVENT_TYPES.index(record.event_type)
            if record.offset <= state.applied_offsets[topic_index]:
                result.skipped_duplicates += 1
                continue
            state.applied_offsets[topic_index] = record.offset
            result.changed[key] = state
            if self.deduplicator is not None and self.deduplicator.is_duplicate(
                event_key(event), event.ts_ms, origin=record_origin(record, topic_index)
            ):
                result.duplicate_events += 1
                continue
            if not self._fold_event(state.window, event):
                result.dead_letters.append(
                    DeadLetter(record, DeadLetterReason.LATE, "older than the account's lateness allowance")
                )
                continue
            result.folded += 1
            if result.max_event_ts_ms is None or event.ts_ms > result.max_event_ts_ms:
                result.max_event_ts_ms = event.ts_ms
        return result

    @staticmethod
    def _fold_event(window: AccountWindow, event: UsageEvent | SupportEvent | BillingEvent) -> bool:
        if isinstance(event, UsageEvent):
            return window.add_usage(event.ts_ms, event.event, event.user_id, event.count)
        if isinstance(event, SupportEvent):
            return window.add_support(event.ts_ms, event.kind, event.priority, event.score)
        return window.add_billing(event.ts_ms, event.kind, event.mrr, event.plan)
