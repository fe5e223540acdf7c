"""Parse and validate canonical churnwatch events from raw Kafka bytes.

Every rejection carries a :class:`DeadLetterReason` so the record can go to the dead-letter topic with the
reason in a header. Validation is strict about what is required and lenient about extra fields.

Size: ~400 lines: the typed decoder, its batch text checks and the re-read of spilled runs share the event
schemas and their checks, so they stay next to them (the replay's per-event path, issue 15).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import msgspec
import orjson
from msgspec import Meta

from detectors.vocabulary import BillingKind, EventType, Priority, SupportKind
from streams.errors import ChurnwatchError

K = TypeVar("K", bound=StrEnum)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
MAX_ID_LENGTH = 256
MAX_NAME_LENGTH = 128
MAX_COUNT = 1_000_000
# The live path's default lower bound (``CHURNWATCH_MIN_EVENT_TS``): earlier events there are bad data (epoch
# seconds sent as ms, zeroed clocks). Replay has no lower bound: historical data is data.
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
# Any timestamp must lie in the years 0001-9999, whatever the bounds (so it can be written back as text).
EARLIEST_TS_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
LATEST_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_DAY_MS = 86_400_000
_TS_FORMS = "'ts' must be RFC 3339 with a UTC offset or epoch ms"

# A tuple, not a set: ``in`` compares by equality, so an unhashable JSON value is simply not a type.
EVENT_TYPES = tuple(EventType)


class DeadLetterReason(StrEnum):
    TOO_LARGE = "too_large"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_TYPE = "unknown_type"
    WRONG_TOPIC = "wrong_topic"
    KEY_MISMATCH = "key_mismatch"
    INVALID_TS = "invalid_ts"
    FUTURE_TS = "future_ts"
    LATE = "late"


class InvalidEventError(ChurnwatchError):
    """A record that is not a valid canonical event."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


# What a field may hold when decoded from JSON (the typed decoder checks these as it parses).
Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
if TYPE_CHECKING:
    EventTime = int
else:  # the typed decoder reads RFC 3339 text or epoch ms; decode() turns text into epoch ms before returning
    EventTime = int | str


class UsageEvent(msgspec.Struct, frozen=True, gc=False, tag="usage", tag_field="type"):
    """A validated usage event (a msgspec Struct: decoded straight from JSON by :func:`decode`)."""

    account_id: Id
    ts_ms: EventTime = msgspec.field(name="ts")
    event: Name
    user_id: Id | None = None
    count: Annotated[int, Meta(ge=1, le=MAX_COUNT)] = 1
    event_id: Id | None = None  # the producer's id, for deduplication


class SupportEvent(msgspec.Struct, frozen=True, gc=False, tag="support", tag_field="type"):
    account_id: Id
    ts_ms: EventTime = msgspec.field(name="ts")
    kind: SupportKind  # the typed decoder checks the choices as it parses
    priority: Priority | None = None
    score: Annotated[int, Meta(ge=1, le=5)] | None = None
    event_id: Id | None = None  # the producer's id, for deduplication


class BillingEvent(msgspec.Struct, frozen=True, gc=False, tag="billing", tag_field="type"):
    account_id: Id
    ts_ms: EventTime = msgspec.field(name="ts")
    kind: BillingKind
    mrr: Annotated[float, Meta(ge=0, lt=1e12)] | None = None
    plan: Name | None = None
    event_id: Id | None = None  # the producer's id, for deduplication


Event = UsageEvent | SupportEvent | BillingEvent


def ts_text(ts_ms: int) -> str:
    """RFC 3339 UTC text of an epoch-ms time within years 1-9999 (millisecond precision when needed).

    >>> ts_text(MIN_TS_MS), ts_text(852076800250)
    ('2000-01-01T00:00:00Z', '1997-01-01T00:00:00.250Z')
    """
    moment = EPOCH + ts_ms * ONE_MS
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{ts_ms % 1000:03d}Z" if ts_ms % 1000 else "Z")


def parse_ts(value: Any, *, min_ts_ms: int | None = MIN_TS_MS) -> int:
    """Event time in epoch milliseconds from RFC 3339 text or epoch milliseconds.

    ``min_ts_ms`` is the earliest time accepted (the live path's sanity bound, ``CHURNWATCH_MIN_EVENT_TS``);
    None accepts any time that parses (replay of historical data), within years 1-9999.

    >>> parse_ts("2026-11-26T10:00:00Z")
    1795687200000
    >>> parse_ts(1795687200000)
    1795687200000
    >>> parse_ts("2026-11-26 10:00")
    Traceback (most recent call last):
    ...
    streams.events.InvalidEventError: invalid_ts: 'ts' must be RFC 3339 with a UTC offset or epoch ms
    >>> parse_ts("1997-01-01T00:00:00Z", min_ts_ms=None)
    852076800000
    >>> parse_ts("1997-01-01T00:00:00Z")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streams.events.InvalidEventError: invalid_ts: 'ts' 852076800000 is before 2000-01-01T00:00:00Z (...)
    """
    # Text first (the common case). datetime.fromisoformat is C and a small part of the cost; a hand-written
    # parse of the common shapes was slower (docs/performance.md, "The per-event path, cut again").
    if isinstance(value, str):
        if len(value) > 40 or "T" not in value:
            raise InvalidEventError(DeadLetterReason.INVALID_TS, _TS_FORMS)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEventError(DeadLetterReason.INVALID_TS, _TS_FORMS) from None
        if parsed.tzinfo is None:
            raise InvalidEventError(DeadLetterReason.INVALID_TS, "'ts' has no UTC offset")
        # Integer arithmetic (float seconds * 1000 truncates some milliseconds one too low): the delta's
        # normalised fields give exactly ``delta // ONE_MS``, for less than that timedelta division.
        delta = parsed - EPOCH
        ts_ms = delta.days * _DAY_MS + delta.seconds * 1000 + delta.microseconds // 1000
    elif isinstance(value, int) and not isinstance(value, bool):
        ts_ms = value
    else:
        raise InvalidEventError(DeadLetterReason.INVALID_TS, _TS_FORMS)
    if min_ts_ms is not None and ts_ms < min_ts_ms:
        raise InvalidEventError(
            DeadLetterReason.INVALID_TS,
            f"'ts' {ts_ms} is before {ts_text(min_ts_ms)} (CHURNWATCH_MIN_EVENT_TS)",
        )
    if not EARLIEST_TS_MS <= ts_ms <= LATEST_TS_MS:
        raise InvalidEventError(DeadLetterReason.INVALID_TS, f"'ts' {ts_ms} is outside the years 1-9999")
    return ts_ms


def _text(body: dict[str, Any], name: str, *, required: bool, max_length: int) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidEventError(DeadLetterReason.MISSING_FIELD, f"missing {name!r}")
        return None
    if not isinstance(value, str):
        raise InvalidEventError(DeadLetterReason.WRONG_TYPE, f"{name!r} must be a string")
    if not value or len(value) > max_length:
        raise InvalidEventError(DeadLetterReason.INVALID_VALUE, f"{name!r} must be 1-{max_length} characters")
    return value


def _choice(body: dict[str, Any], name: str, choices: type[K], *, required: bool) -> K | None:
    value = _text(body, name, required=required, max_length=MAX_NAME_LENGTH)
    if value is None:
        return None
    try:
        return choices(value)
    except ValueError:
        allowed = sorted(member.value for member in choices)
        raise InvalidEventError(
            DeadLetterReason.INVALID_VALUE, f"{name!r} must be one of {allowed}"
        ) from None


def _int(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEventError(DeadLetterReason.WRONG_TYPE, f"{name!r} must be an integer")
    if not low <= value <= high:
        raise InvalidEventError(DeadLetterReason.INVALID_VALUE, f"{name!r} must be in [{low}, {high}]")
    return value


def validate(body: Any, *, max_ts_ms: int | None = None, min_ts_ms: int | None = MIN_TS_MS) -> Event:
    """Turn a decoded JSON value into a typed event or raise :class:`InvalidEventError`.

    ``max_ts_ms`` rejects events from the future (clock skew beyond the allowance); ``min_ts_ms`` events
    before the sanity bound (None: none, as in replay).

    >>> validate({"type": "usage", "account_id": "acme", "ts": "2026-11-26T10:00:00Z",  # doctest: +ELLIPSIS
    ...           "event": "report_exported", "user_id": "u1", "count": 1})
    UsageEvent(account_id='acme', ts_ms=1795687200000, event='report_exported', user_id='u1', count=1, ...)
    >>> bill = validate({"type": "billing", "account_id": "a", "ts": 1795687200000, "kind": "payment_failed"})
    >>> bill.kind, bill.kind == "payment_failed", bill.mrr
    (<BillingKind.PAYMENT_FAILED: 'payment_failed'>, True, None)
    """
    if not isinstance(body, dict):
        raise InvalidEventError(DeadLetterReason.NOT_AN_OBJECT, "event must be a JSON object")
    event_type = body.get("type")
    if event_type is None:
        raise InvalidEventError(DeadLetterReason.MISSING_FIELD, "missing 'type'")
    if event_type not in EVENT_TYPES:
        # Never str() an arbitrary value: a deeply nested one would recurse.
        shown = (
            repr(event_type[:40])
            if isinstance(event_type, str)
            else f"of JSON type {type(event_type).__name__}"
        )
        raise InvalidEventError(DeadLetterReason.UNKNOWN_TYPE, f"unknown type {shown}")
    account_id = _text(body, "account_id", required=True, max_length=MAX_ID_LENGTH)
    assert account_id is not None
    if any(char < " " for char in account_id):
        # Control characters (NUL above all) are no account id; NUL-prefixed keys are reserved for the worker.
        raise InvalidEventError(DeadLetterReason.INVALID_VALUE, "'account_id' contains control characters")
    if "ts" not in body:
        raise InvalidEventError(DeadLetterReason.MISSING_FIELD, "missing 'ts'")
    ts_ms = parse_ts(body["ts"], min_ts_ms=min_ts_ms)
    if max_ts_ms is not None and ts_ms > max_ts_ms:
        raise InvalidEventError(DeadLetterReason.FUTURE_TS, f"'ts' {ts_ms} is beyond the allowed clock skew")
    event_id = _text(body, "event_id", required=False, max_length=MAX_ID_LENGTH)
    if event_type == EventType.USAGE:
        event = _text(body, "event", required=True, max_length=MAX_NAME_LENGTH)
        assert event is not None
        user_id = _text(body, "user_id", required=False, max_length=MAX_ID_LENGTH)
        count = _int(body, "count", 1, MAX_COUNT)
        return UsageEvent(account_id, ts_ms, event, user_id, 1 if count is None else count, event_id)
    if event_type == EventType.SUPPORT:
        support_kind = _choice(body, "kind", SupportKind, required=True)
        assert support_kind is not None
        priority = _choice(body, "priority", Priority, required=False)
        score = _int(body, "score", 1, 5)
        if support_kind is SupportKind.CSAT and score is None:
            raise InvalidEventError(DeadLetterReason.MISSING_FIELD, "a csat event needs 'score'")
        return SupportEvent(account_id, ts_ms, support_kind, priority, score, event_id)
    kind = _choice(body, "kind", BillingKind, required=True)
    assert kind is not None
    mrr = body.get("mrr")
    if mrr is not None:
        if not isinstance(mrr, int | float) or isinstance(mrr, bool):
            raise InvalidEventError(DeadLetterReason.WRONG_TYPE, "'mrr' must be a number")
        if not 0 <= mrr < 1e12:
            raise InvalidEventError(DeadLetterReason.INVALID_VALUE, "'mrr' must be >= 0")
        mrr = float(mrr)
    plan = _text(body, "plan", required=False, max_length=MAX_NAME_LENGTH)
    return BillingEvent(account_id, ts_ms, kind, mrr, plan, event_id)


def decode(
    raw: bytes | None,
    *,
    max_bytes: int,
    max_ts_ms: int | None = None,
    min_ts_ms: int | None = MIN_TS_MS,
    key: bytes | None = None,
    expected_type: str | None = None,
    plain: bool = False,
) -> Event:
    """Decode and validate one Kafka record value (or replay line).

    ``key``, when given, must equal the account id (the partitioning contract); ``expected_type``, when given,
    is the only event type the record's topic may carry; ``plain``: :func:`plain_text` holds for ``raw``. The
    typed decoder (:func:`typed_decode`) takes the common well-formed value in one pass; anything it is not
    sure of goes through ``orjson`` and :func:`validate`, so the result and every rejection's reason and
    detail are :func:`validate`'s.

    >>> decode(b'{"type":"usage","account_id":"a","ts":1795687200000,"event":"x"}', max_bytes=100, key=b"a")
    UsageEvent(account_id='a', ts_ms=1795687200000, event='x', user_id=None, count=1, event_id=None)
    >>> decode(b'{"type":', max_bytes=100)
    Traceback (most recent call last):
    ...
    streams.events.InvalidEventError: invalid_json: value is not valid JSON
    """
    if raw is None:
        raise InvalidEventError(DeadLetterReason.INVALID_JSON, "record has no value")
    if len(raw) > max_bytes:
        raise InvalidEventError(DeadLetterReason.TOO_LARGE, f"{len(raw)} bytes exceeds {max_bytes}")
    event = typed_decode(raw, max_ts_ms=max_ts_ms, min_ts_ms=min_ts_ms, plain=plain)
    if event is None:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidEventError(DeadLetterReason.INVALID_JSON, "value is not valid JSON") from None
        event = validate(body, max_ts_ms=max_ts_ms, min_ts_ms=min_ts_ms)
    if expected_type is not None and TYPE_NAMES[type(event)] != expected_type:
        raise InvalidEventError(
            DeadLetterReason.WRONG_TOPIC, f"a {TYPE_NAMES[type(event)]} event on the {expected_type} topic"
        )
    if key is not None and key != event.account_id.encode():
        raise InvalidEventError(DeadLetterReason.KEY_MISMATCH, "record key differs from 'account_id'")
    return event


def decode_again(raw: bytes, ts_ms: int, *, max_bytes: int) -> Event:
    """A line :func:`decode` accepted before (``min_ts_ms=None``, event time ``ts_ms``) decoded again, equal
    to what it returned, for less: a usage event takes the typed decoder's parse alone (the line passed its
    checks the first time; the parse and ``validate`` agree on every usage value both accept,
    ``tests/test_typed_decode.py``), with the event time already found; other events go through
    :func:`decode`. Replay reads its spilled runs back with it (``streams/offline/sorted_input.py``).

    >>> decode_again(b'{"type":"usage","account_id":"a","ts":"1970-01-01T00:00:00.005Z","event":"x"}', 5,
    ...              max_bytes=99)
    UsageEvent(account_id='a', ts_ms=5, event='x', user_id=None, count=1, event_id=None)
    """
    try:
        event = _DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        event = None
    if type(event) is UsageEvent:
        msgspec.structs.force_setattr(event, "ts_ms", ts_ms)
        return event
    return decode(raw, max_bytes=max_bytes, min_ts_ms=None)


# -- the typed decoder --------------------------------------------------------------------------------------

TYPE_NAMES: dict[type, EventType] = {
    UsageEvent: EventType.USAGE,
    SupportEvent: EventType.SUPPORT,
    BillingEvent: EventType.BILLING,
}
_DECODER = msgspec.json.Decoder(UsageEvent | SupportEvent | BillingEvent)
# What the typed decoder skips without looking but orjson rejects, in fields neither reads: numbers beyond a
# double's range. One needs a 3-digit exponent or 200 digits in a row: with digits mapped to 9, E to e and
# plus signs deleted, "e999" or 200 nines appear (a few harmless lines match too: they take the exact path).
_DIGITS_AS_NINES = bytes.maketrans(b"0123456789E", b"9999999999e")
_HUGE_EXPONENT = b"e999"
_LONG_DIGITS = b"9" * 200
MAX_NESTING = 1_000  # brackets in a value above which the exact path judges it (orjson's depth limit)
_CONTROL = re.compile("[\x00-\x1f]")


def plain_text(raw: bytes, *, ascii_only: bool = True) -> bool:
    """Whether ``raw`` holds no number beyond a double's range (what the typed decoder skips without looking
    but orjson rejects) and, with ``ascii_only``, only ASCII: :func:`typed_decode`'s first checks, which a
    reader may run once over many lines joined (true for the whole is true for each line).

    >>> plain_text(b'{"a":1e999}'), plain_text(b'{"a":1e99}'), plain_text('{"a":"é"}'.encode())
    (False, True, False)
    """
    if ascii_only and not raw.isascii():
        return False
    shape = raw.translate(_DIGITS_AS_NINES, b"+")
    return _HUGE_EXPONENT not in shape and _LONG_DIGITS not in shape


def typed_decode(
    raw: bytes, *, max_ts_ms: int | None = None, min_ts_ms: int | None = MIN_TS_MS, plain: bool = False
) -> Event | None:
    """The event of a well-formed value in one pass (msgspec), or None when :func:`validate` must judge it.

    Whenever this returns an event, ``validate(orjson.loads(raw), ...)`` returns an equal one
    (``tests/test_typed_decode.py`` checks it on generated and hostile values): the decoder checks types,
    lengths, ranges and the kinds' and priorities' choices (enums) as it parses, and what it cannot check
    (text times, control characters, a csat's score, the sign of a zero MRR, invalid UTF-8, huge numbers or
    deep nesting in fields it skips) is checked here or declined. ``plain``: :func:`plain_text` already
    holds for ``raw`` (checked over a batch of lines).

    >>> typed_decode(b'{"type":"usage","account_id":"a","ts":"2026-11-26T10:00:00Z","event":"x","count":2}')
    UsageEvent(account_id='a', ts_ms=1795687200000, event='x', user_id=None, count=2, event_id=None)
    >>> typed_decode(b'{"type":"usage","account_id":"a","ts":"2026-11-26T10:00:00Z","event":"x","count":0}')
    """
    if not plain and not plain_text(raw, ascii_only=False):
        return None
    if len(raw) > MAX_NESTING and raw.count(b"[") + raw.count(b"{") > MAX_NESTING:
        return None  # orjson rejects nesting deeper than 1,024; msgspec skips deeper fields it ignores
    if not plain and not raw.isascii():
        try:
            raw.decode()  # orjson rejects invalid UTF-8 anywhere; the typed decoder only where it reads
        except UnicodeDecodeError:
            return None
    try:
        event: Event = _DECODER.decode(raw)
        ts_ms = parse_ts(event.ts_ms, min_ts_ms=min_ts_ms)
    except (msgspec.DecodeError, ValueError, RecursionError, InvalidEventError):
        return None
    if (max_ts_ms is not None and ts_ms > max_ts_ms) or (
        not event.account_id.isprintable() and _CONTROL.search(event.account_id) is not None
    ):
        return None
    if type(event) is SupportEvent:
        if event.kind is SupportKind.CSAT and event.score is None:
            return None
    elif type(event) is BillingEvent and event.mrr == 0:
        return None  # a zero MRR: orjson keeps the sign of 0 and -0.0 as written, msgspec's float may not
    if type(event.ts_ms) is not int:
        msgspec.structs.force_setattr(event, "ts_ms", ts_ms)
    return event
