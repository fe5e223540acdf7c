"""The live input side: decode and validate consumed Kafka records into the engine's arrivals.

The event reader hands over records in batches; :class:`BatchFolder` decodes them with the live limits
(size, future skew against the wall clock, minimum time, key and topic checks), turns valid ones into
:class:`~streams.engine.fold.Arrival` for the engine (answers to alerts from the feedback topic into
:class:`~streams.engine.answers.AnswerArrival`) and reports what must be dead-lettered.
:meth:`BatchFolder.fold` also folds a batch into states directly (tests and benchmarks of the input side);
the fold itself is the engine's (:func:`streams.engine.fold.fold_arrivals`), whoever calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from detectors.windows import WindowConfig
from streams.dedup import Deduplicator
from streams.engine.answers import AnswerArrival
from streams.engine.fold import Arrival, fold_arrivals, remember_arrivals
from streams.engine.state import AccountState
from streams.events import MIN_TS_MS, DeadLetterReason, InvalidEventError, decode, plain_text
from streams.feedback import Feedback

# Larger values are dead-lettered without their bytes: a dead letter must fit the producer's request size and
# the broker's default message size (1 MiB) whatever an event topic's own max.message.bytes allows.
DEADLETTER_MAX_VALUE_BYTES = 512 * 1024
LATE_DETAIL = "older than the account's lateness allowance"
FEEDBACK_TYPE = "feedback"  # the event type of the feedback topic's records


class RawRecord(NamedTuple):
    """One consumed Kafka record, as much of it as ingestion needs.

    A named tuple rather than a frozen dataclass: one is built for every record fetched, and a frozen
    dataclass's ``__init__`` sets each field through ``object.__setattr__`` (0.89 against 0.25 µs for these
    seven fields; 2.9 % of a 100 k-account worker's profile, docs/performance.md).
    """

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

    def decode(self, records: Sequence[RawRecord]) -> tuple[list[Arrival | AnswerArrival], list[DeadLetter]]:
        """Valid records as arrivals (``source`` is the record), in order; the others as dead letters.

        The typed decoder's text checks (:func:`~streams.events.plain_text`) run once over the batch's
        values joined, as replay runs them over a batch of lines; a batch that fails them (non-ASCII text,
        a huge number, or digits that only run on across two values) is checked a record at a time.
        """
        arrivals: list[Arrival | AnswerArrival] = []
        dead: list[DeadLetter] = []
        max_ts_ms = self.clock() + self.max_future_skew_ms
        plain = plain_text(b"".join([record.value for record in records if record.value is not None]))
        for record in records:
            if record.event_type == FEEDBACK_TYPE:
                answer = decode_answer(record)
                if isinstance(answer, DeadLetter):
                    dead.append(answer)
                else:
                    arrivals.append(answer)
                continue
            try:
                event = decode(
                    record.value,
                    max_bytes=self.max_event_bytes,
                    max_ts_ms=max_ts_ms,
                    min_ts_ms=self.min_ts_ms,
                    key=record.key if record.key is not None else b"",
                    expected_type=record.event_type,
                    plain=plain,
                )
            except InvalidEventError as exc:
                dead.append(DeadLetter(record, exc.reason, exc.detail))
                continue
            arrivals.append(Arrival(event, record.partition, record.offset, record))
        return arrivals, dead

    def fold(
        self,
        records: Sequence[RawRecord],
        load: Callable[[bytes], bytes | None],
        states: dict[bytes, AccountState] | None = None,
    ) -> BatchResult:
        """Decode and fold ``records`` (in consumption order); ``load(key)`` returns a stored state's bytes.

        ``states`` holds decoded states the caller keeps between batches (folded into in place; states
        decoded from ``load`` are added to it). Late events are dead-lettered as ``late``.
        """
        arrivals, dead = self.decode(records)
        working = _LoadingStates(load, states if states is not None else {}, self.window_config)
        events = [arrival for arrival in arrivals if type(arrival) is Arrival]
        folded = fold_arrivals(events, working, self.window_config, deduplicator=self.deduplicator)
        dead.extend(DeadLetter(record, DeadLetterReason.LATE, LATE_DETAIL) for record in folded.late)
        return BatchResult(
            changed={key: working.states[key] for key in working.changed},
            dead_letters=dead,
            folded=folded.folded,
            skipped_duplicates=folded.skipped_duplicates,
            duplicate_events=folded.duplicate_events,
            max_event_ts_ms=folded.max_event_ts_ms,
        )

    def remember(self, deduplicator: Deduplicator, records: Sequence[RawRecord]) -> None:
        """Let ``deduplicator`` learn the valid events of ``records`` (folded before a restart); fold none."""
        arrivals, _ = self.decode(records)
        remember_arrivals((arrival for arrival in arrivals if type(arrival) is Arrival), deduplicator)


def decode_answer(record: RawRecord) -> AnswerArrival | DeadLetter:
    """A feedback topic record as an answer, or a dead letter naming what is wrong with it."""
    try:
        if record.value is None:
            raise ValueError("no value")
        feedback = Feedback.from_bytes(record.value)
    except (ValueError, KeyError, TypeError) as error:
        detail = f"not an answer to an alert: {type(error).__name__}: {error}"[:200]
        return DeadLetter(record, DeadLetterReason.INVALID_VALUE, detail)
    if record.key is not None and record.key != feedback.account_id.encode():
        return DeadLetter(record, DeadLetterReason.KEY_MISMATCH, "key is not the answer's account_id")
    return AnswerArrival(feedback, record.partition, record.offset, record)


class _LoadingStates:
    """Decoded states over a ``load`` function, for :meth:`BatchFolder.fold`."""

    def __init__(
        self, load: Callable[[bytes], bytes | None], states: dict[bytes, AccountState], config: WindowConfig
    ) -> None:
        self.load = load
        self.states = states
        self.config = config
        self.changed: dict[bytes, None] = {}

    def get(self, key: bytes) -> AccountState | None:
        state = self.states.get(key)
        if state is None:
            raw = self.load(key)
            if raw is not None:
                state = self.states[key] = AccountState.from_bytes(raw, self.config)
        return state

    def put(self, key: bytes, state: AccountState) -> None:
        self.states[key] = state
        self.changed[key] = None


__all__ = ["AccountState", "BatchFolder", "BatchResult", "DeadLetter", "RawRecord"]
