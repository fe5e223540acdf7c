"""Hostile records on the real broker: every bad record dead-lettered with its reason, every good one folded.

Hypothesis generates batches of records — malformed JSON, wrong types, values beyond
``CHURNWATCH_MAX_EVENT_BYTES``, deep nesting, unicode oddities (RTL overrides, zero-width characters, NUL,
combining marks, lone-surrogate escapes, invalid UTF-8), ancient and far-future timestamps, empty or missing
keys, keys that differ from the body's account id, tombstones, spoofed error headers — mixed with valid
events, and sends them to one worker through Kafka. Validity is decided by the worker's own parser
(:func:`streams.events.decode`, with the record key and the topic's event type, as the ingest path calls it),
so the oracle is exact: the dead-letter topic must hold exactly the invalid records, each with the reason
``decode`` gives, and the changelog must hold, for every account, the offline fold of its valid records only.

Each record carries a ``hostile.id`` header so its dead letter (which keeps the original headers) can be
matched to it. Two findings (a deeply nested `type`, a NUL-prefixed account id) are pinned by directed tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from detectors.vocabulary import BillingKind, EventType, Priority, SupportKind
from detectors.windows import AccountWindow, WindowConfig
from streams.dedup import event_key
from streams.events import (
    EVENT_TYPES,
    MAX_COUNT,
    MIN_TS_MS,
    BillingEvent,
    InvalidEventError,
    SupportEvent,
    UsageEvent,
    decode,
)
from streams.live.ingest import AccountState
from streams.live.kafka_client import client_options
from streams.settings import Settings
from tests.kafka_harness import (
    KafkaForTests,
    WorkerFactory,
    WorkerProcess,
    latest_by_key,
    metric_value,
    read_all,
    run,
    wait_until,
)

pytestmark = pytest.mark.kafka

MAX_EVENT_BYTES = 4096
SKEW_MS = 86_400_000  # CHURNWATCH_MAX_FUTURE_SKEW_SECONDS default
HOUR_MS = 3_600_000
ID_HEADER = "hostile.id"
REASON_HEADER = "churnwatch.error.reason"

# -- generating hostile records -----------------------------------------------------------------------------

ODD = [
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\ufeff",  # BOM / zero-width no-break space
    "\x00",  # NUL
    "\u0301",  # combining acute accent
    "\u2028",  # line separator
    "\U0001f980",  # astral plane
    "\ufdfa",  # one code point, long rendering
    "עברית",
    "é",
    "e\u0301",
    "\\",
    '"',
    "/",
    "%2F",
    "\n",
    " ",
]
odd_text = st.lists(
    st.one_of(st.sampled_from(ODD), st.characters(codec="utf-8")), min_size=1, max_size=8
).map("".join)
short_text = st.one_of(st.text(min_size=1, max_size=10), odd_text)
# Account ids: odd but mostly free of C0 control characters (which make an id invalid), so that most
# accounts receive valid events; odd_text, controls included, still comes up for some.
id_text = st.one_of(
    st.lists(
        st.one_of(
            st.sampled_from([c for c in ODD if not any(ch < " " for ch in c)]),
            st.characters(codec="utf-8", exclude_categories=["Cc"]),
        ),
        min_size=1,
        max_size=8,
    ).map("".join),
    odd_text,
)


def ts_value(ts_ms: int, form: str, offset_minutes: int) -> Any:
    """One event time in one of the accepted spellings: epoch ms, RFC 3339 in UTC or with an offset."""
    if form == "ms":
        return ts_ms
    tz = UTC if form == "z" else timezone(timedelta(minutes=offset_minutes))
    text = datetime.fromtimestamp(ts_ms / 1000, tz=tz).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if form == "z" else text


@dataclass(frozen=True)
class Context:
    """What an example fixes only when it runs: its accounts (namespaced) and the wall clock."""

    accounts: list[str]
    now_ms: int


BodyBuilder = Callable[[str, int], dict[str, Any]]


@st.composite
def valid_bodies(draw: st.DrawFn) -> BodyBuilder:
    """A valid event body, built for an account and a clock later (strategies must not see external state)."""
    event_type = draw(st.sampled_from(EVENT_TYPES))
    age_ms = draw(st.integers(0, 40 * HOUR_MS))
    form = draw(st.sampled_from(["ms", "z", "offset"]))
    offset_minutes = draw(st.integers(-14 * 60, 14 * 60))
    fields: dict[str, Any] = {}
    if event_type == "usage":
        fields["event"] = draw(st.one_of(st.sampled_from(["page_viewed", "report_exported"]), short_text))
        if draw(st.booleans()):
            fields["user_id"] = draw(short_text)
        if draw(st.booleans()):
            fields["count"] = draw(st.one_of(st.integers(1, 5), st.just(MAX_COUNT)))
    elif event_type == "support":
        fields["kind"] = draw(st.sampled_from(sorted(SupportKind)))
        if draw(st.booleans()):
            fields["priority"] = draw(st.sampled_from(Priority))
        if fields["kind"] == "csat" or draw(st.booleans()):
            fields["score"] = draw(st.integers(1, 5))
    else:
        fields["kind"] = draw(st.sampled_from(sorted(BillingKind)))
        if draw(st.booleans()):
            fields["mrr"] = draw(st.one_of(st.integers(0, 10**6), st.floats(0, 1e11)))
        if draw(st.booleans()):
            fields["plan"] = draw(short_text)
    if draw(st.integers(0, 4)) == 0:  # extra fields are allowed, whatever they hold
        depth = draw(st.integers(1, 200))  # orjson.dumps refuses deeper than 254
        fields[draw(odd_text)] = orjson.loads(nested(depth))

    def build(account: str, now_ms: int) -> dict[str, Any]:
        body = {
            "type": event_type,
            "account_id": account,
            "ts": ts_value(now_ms - age_ms, form, offset_minutes),
        }
        return {**body, **fields}

    return build


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


junk_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    short_text,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(short_text, st.integers(), max_size=2),
    st.integers(1, 60).map(lambda d: orjson.loads(nested(d))),
)


@dataclass(frozen=True)
class Record:
    event_type: str  # the topic it is sent to
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    how: str  # what was done to it (for failure messages)


def dumps(body: Any) -> bytes:
    """JSON bytes; integers beyond 64 bits (which orjson refuses to write) through the standard library."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def pad_to(body: dict[str, Any], size: int, char: str) -> bytes:
    """``body`` with a padding field making its JSON at least ``size`` bytes (exactly, for 1-byte chars)."""
    base = len(dumps({**body, "pad": ""}))
    unit = len(char.encode())
    return dumps({**body, "pad": char * max(0, -(-(size - base) // unit))})


def key_variants(account: str, other: str) -> list[bytes | None]:
    """Keys that are not ``account.encode()`` although they look or read alike."""
    nfd = unicodedata.normalize("NFD", account)
    return [
        None,
        b"",
        account.encode() + "\u200b".encode(),
        account.encode() + b"\x00",
        account.upper().encode() if account.upper() != account else b"\xff\xfe",
        nfd.encode() if nfd != account else account.encode("utf-16"),
        account.encode("utf-16-le"),
        b"\xff" + account.encode(),
        other.encode(),
    ]


def raw_variants(good: bytes) -> list[bytes | None]:
    """Values that are not valid JSON objects, or only barely."""
    return [
        None,  # a tombstone: no value at all
        b"",
        b"\xef\xbb\xbf" + good,  # BOM
        good.replace(b'"type"', b"'type'"),
        good[:-1] + b",}",  # trailing comma
        good[:-1] + b',"x":NaN}',
        good[:-1] + b',"x":Infinity}',
        good[:-1] + b',"x":"\\ud800"}',  # lone surrogate escape
        good[:-1] + b',"x":"\xed\xa0\x80"}',  # a surrogate encoded as UTF-8
        good[:-1] + b',"x":"\xff"}',  # invalid UTF-8
        good[:-1] + b',"x":' + nested(1100) + b"}",  # deeper than the parser allows
        good[:-1] + b',"x":' + nested(900) + b"}",  # deep but parseable, in an extra field
        good[:-1] + b',"account_id":"someone-else"}',  # duplicate key: the last one wins
        b"[" + good + b"]",
        b'"' + good.replace(b'"', b'\\"') + b'"',
        b"null",
        b"true",
        b"12345",
        good + b"\n" + good,
        good + b"\x00",
    ]


HOWS = [
    "valid",
    "valid",
    "valid",
    "valid",
    "drop_field",
    "wrong_type",
    "bad_value",
    "unknown_type",
    "ancient_ts",
    "future_ts",
    "bad_ts",
    "wrong_topic",
    "key",
    "too_large",
    "size_boundary",
    "raw",
    "raw",
]
BAD_VALUES: list[tuple[str, Any]] = [
    ("account_id", ""),
    ("account_id", "a" * 257),
    ("event", ""),
    ("event", "e" * 129),
    ("user_id", "u" * 257),
    ("count", 0),
    ("count", -1),
    ("count", MAX_COUNT + 1),
    ("score", 0),
    ("score", 6),
    ("priority", "p0"),
    ("kind", "ticket_closed"),
    ("kind", "Payment_Failed"),
    ("mrr", -0.01),
    ("mrr", 1e12),
    ("plan", ""),
]
HOSTILE_HEADERS = [
    (REASON_HEADER, b"spoofed"),
    ("churnwatch.source.offset", b"-1"),
    ("\u202eevil", b"\xff\x00"),
]

RecordBuilder = Callable[[Context], Record]


@st.composite
def hostile_records(draw: st.DrawFn, how: str) -> RecordBuilder:
    """One record of kind ``how``, as a builder for the example's context."""
    account_index = draw(st.integers(0, 7))
    make_body = draw(valid_bodies())
    # Only what this kind needs is drawn: hypothesis' budget per example is finite.
    field_index = other_index = key_variant = boundary = raw_index = 0
    ts: Any = None
    ts_future_ms = size = 0
    junk: Any = None
    unknown_type: Any = None
    pad_char = "x"
    raw_kind, cut, binary = "variant", 0.0, b""
    if how in ("drop_field", "wrong_type"):
        field_index = draw(st.integers(0, 20))
        if how == "wrong_type":
            junk = draw(junk_values)
    elif how == "bad_value":
        junk = draw(st.sampled_from(BAD_VALUES))
    elif how == "unknown_type":
        unknown_type = draw(
            st.one_of(short_text, st.sampled_from(["Usage", "usage ", "pageview"]), junk_values)
        )
    elif how == "ancient_ts":
        ts = draw(
            st.one_of(
                st.integers(-(2**63), MIN_TS_MS - 1),
                st.sampled_from(
                    ["1999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z", "1970-01-01T00:00:00+00:00"]
                ),
            )
        )
    elif how == "future_ts":
        ts_future_ms = draw(st.integers(2 * SKEW_MS, 10**12))
        ts = draw(
            st.one_of(
                st.none(),  # relative: now + ts_future_ms
                st.integers(10**15, 2**63 - 1),
                st.integers(2**64, 10**30),  # beyond 64 bits: orjson gives a float
                st.sampled_from(["9999-12-31T23:59:59Z", "3000-01-01T00:00:00+14:00"]),
            )
        )
    elif how == "bad_ts":
        ts = draw(
            st.one_of(
                st.sampled_from(
                    [
                        "2026-11-26T10:00:00",
                        "2026-11-26 10:00Z",
                        "NaN",
                        "",
                        "T",
                        "2026-11-26T10:00:00Z" + " " * 30,
                    ]
                ),
                st.floats(allow_nan=False),
                st.booleans(),
                short_text,
            )
        )
    elif how == "wrong_topic":
        other_index = draw(st.integers(0, 1))
    elif how == "key":
        key_variant = draw(st.integers(0, 8))
    elif how == "too_large":
        size = draw(st.integers(MAX_EVENT_BYTES + 1, 300_000))
        pad_char = draw(st.sampled_from(["x", "é", "🦀"]))
    elif how == "size_boundary":
        boundary = draw(st.integers(-1, 1))
    elif how == "raw":
        raw_kind = draw(st.sampled_from(["truncate", "binary", "variant", "variant"]))
        if raw_kind == "truncate":
            cut = draw(st.floats(0, 1, exclude_max=True))
        elif raw_kind == "binary":
            binary = draw(st.binary(max_size=64))
        else:
            raw_index = draw(st.integers(0, 19))
    headers = (draw(st.sampled_from(HOSTILE_HEADERS)),) if draw(st.integers(0, 5)) == 0 else ()

    def build(ctx: Context) -> Record:
        account = ctx.accounts[account_index % len(ctx.accounts)]
        body = make_body(account, ctx.now_ms)
        event_type = body["type"]
        key: bytes | None = account.encode()
        if how == "drop_field":
            body.pop(sorted(body)[field_index % len(body)])
        elif how == "wrong_type":
            body[sorted(body)[field_index % len(body)]] = junk
        elif how == "bad_value":
            body[junk[0]] = junk[1]  # a field another type does not know is merely an extra: decode judges
        elif how == "unknown_type":
            body["type"] = unknown_type
        elif how in ("ancient_ts", "bad_ts"):
            body["ts"] = ts
        elif how == "future_ts":
            body["ts"] = ctx.now_ms + ts_future_ms if ts is None else ts
        elif how == "wrong_topic":
            event_type = [t for t in EVENT_TYPES if t != event_type][other_index]
        elif how == "key":
            other = next((a for a in ctx.accounts if a != account), account + "x")
            key = key_variants(account, other)[key_variant]
        value: bytes | None = dumps(body)
        if how == "too_large":
            value = pad_to(body, size, pad_char)
        elif how == "size_boundary":
            value = pad_to(body, MAX_EVENT_BYTES + boundary, "x")
        elif how == "raw":
            good = dumps(body)
            if raw_kind == "truncate":
                value = good[: int(cut * len(good))]
            elif raw_kind == "binary":
                value = binary
            else:
                value = raw_variants(good)[raw_index]
        return Record(event_type, key, value, headers, how)

    return build


@st.composite
def hostile_batches(draw: st.DrawFn) -> list[RecordBuilder]:
    """A shuffled batch holding every kind of record several times."""
    rounds = draw(st.integers(6, 8))
    builders = [draw(hostile_records(how)) for _ in range(rounds) for how in HOWS]
    return [builders[i] for i in draw(st.permutations(range(len(builders))))]


# -- the oracle ---------------------------------------------------------------------------------------------

Event = UsageEvent | SupportEvent | BillingEvent


def classify(record: Record, max_ts_ms: int) -> tuple[str | None, Event | None]:
    """(dead-letter reason, None) or (None, event), exactly as the ingest path decides."""
    try:
        event = decode(
            record.value,
            max_bytes=MAX_EVENT_BYTES,
            max_ts_ms=max_ts_ms,
            key=record.key if record.key is not None else b"",
            expected_type=record.event_type,
        )
    except InvalidEventError as exc:
        return exc.reason.value, None
    return None, event


def fold(events: list[Event]) -> dict[str, Any]:
    window = AccountWindow(WindowConfig())
    for event in events:
        if isinstance(event, UsageEvent):
            accepted = window.add_usage(event.ts_ms, event.event, event.user_id, event.count)
        elif isinstance(event, SupportEvent):
            accepted = window.add_support(event.ts_ms, event.kind, event.priority, event.score)
        else:
            accepted = window.add_billing(event.ts_ms, event.kind, event.mrr, event.plan)
        assert accepted, event
    return orjson.loads(orjson.dumps(window.to_state()))


async def send_records(settings: Settings, records: list[tuple[Record, str]]) -> None:
    producer = AIOKafkaProducer(acks="all", linger_ms=5, **client_options(settings))
    await producer.start()
    try:
        futures = []
        for record, record_id in records:
            headers = [*record.headers, (ID_HEADER, record_id.encode())]
            futures.append(
                await producer.send(
                    settings.topics.events[EventType(record.event_type)],
                    value=record.value,
                    key=record.key,
                    headers=headers,
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# -- the module's worker ------------------------------------------------------------------------------------


@dataclass
class HostileRun:
    factory: WorkerFactory
    worker: WorkerProcess
    examples: Iterator[int]
    valid: int = 0
    invalid: int = 0


@pytest.fixture(scope="module")
def hostile(kafka: KafkaForTests, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileRun]:
    factory = WorkerFactory(kafka, tmp_path_factory.mktemp("hostile"), name="hostile-input")
    factory.extra_env.update(
        CHURNWATCH_MAX_EVENT_BYTES=str(MAX_EVENT_BYTES),
        # Sweep every second, so the detectors also see the accounts with odd names and values.
        CHURNWATCH_SWEEP_INTERVAL_SECONDS="1",
    )
    try:
        yield HostileRun(factory, factory.start(), itertools.count())
    finally:
        factory.stop_all()


def changelog_windows(run_: HostileRun) -> dict[bytes, dict[str, Any]]:
    topic = f"{run_.factory.settings().topics.app_id}-accounts-changelog"
    latest = latest_by_key(run(read_all(run_.factory.kafka.bootstrap, topic)))
    return {
        key: orjson.loads(orjson.dumps(AccountState.from_bytes(value, WindowConfig()).window.to_state()))
        for key, value in latest.items()
        if value is not None and not key.startswith(b"\x00")  # reserved rows: offsets, the risk model
    }


@settings(
    max_examples=5,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate],  # no shrinking: each example costs broker round trips
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(data=st.data())
def test_hostile_records_are_dead_lettered_and_valid_ones_folded(
    hostile: HostileRun, data: st.DataObject
) -> None:
    example = next(hostile.examples)
    started = time.monotonic()
    namespace = f"h{example}-"  # this example's accounts
    now_ms = int(time.time() * 1000)
    suffixes = data.draw(st.lists(id_text, min_size=3, max_size=8, unique=True), label="account suffixes")
    context = Context([namespace + suffix for suffix in suffixes], now_ms)
    drawn = [build(context) for build in data.draw(hostile_batches(), label="records")]

    max_ts_ms = now_ms + SKEW_MS
    batch: list[tuple[Record, str]] = []
    invalid: dict[str, str] = {}
    valid: dict[str, list[Event]] = {}
    seen: set[int] = set()  # event keys: a copy of a valid event is neither folded nor dead-lettered
    for index, record in enumerate(drawn):
        reason, event = classify(record, max_ts_ms)
        # The worker's clock is later than ours: leave out what a few minutes could turn from future_ts to
        # valid, and valid events so old that arrival order across topics could make them "late".
        if classify(record, max_ts_ms + 600_000)[0] != reason:
            continue
        if event is not None and event.ts_ms < now_ms - 44 * HOUR_MS:
            continue
        record_id = f"{namespace}{index}"
        batch.append((record, record_id))
        if reason is None:
            assert event is not None
            if event_key(event) not in seen:
                seen.add(event_key(event))
                valid.setdefault(event.account_id, []).append(event)
        else:
            invalid[record_id] = reason
    run(send_records(hostile.factory.settings(), batch))
    hostile.valid += sum(len(events) for events in valid.values())
    hostile.invalid += len(invalid)

    worker = hostile.worker
    sent = {record_id: record for record, record_id in batch}

    def dead_letters() -> dict[str, str]:
        """This example's dead letters: record id -> the worker's reason (checking each on the way)."""
        dead: dict[str, str] = {}
        topic = hostile.factory.settings().topics.deadletter
        for letter in run(read_all(hostile.factory.kafka.bootstrap, topic)):
            headers = [(name, bytes(value or b"")) for name, value in letter.headers]
            ids = [value.decode() for name, value in headers if name == ID_HEADER]
            if not ids or not ids[0].startswith(namespace):
                continue
            assert ids[0] not in dead, f"{ids[0]} dead-lettered twice"
            record = sent[ids[0]]
            assert letter.value == record.value and letter.key == record.key, record.how
            # The worker appends its headers after the original ones: the last reason header is the worker's.
            dead[ids[0]] = [value.decode() for name, value in headers if name == REASON_HEADER][-1]
            assert any(name == "churnwatch.error.detail" for name, _ in headers)
        return dead

    def dead_letter_report() -> str:
        dead = dead_letters()
        wrong = sorted(k for k in dead.keys() | invalid.keys() if dead.get(k) != invalid.get(k))
        return "\n".join(
            f"  {k} {sent[k].how}: worker {dead.get(k)!r}, decode {invalid.get(k)!r}; "
            f"key {sent[k].key!r} value {sent[k].value!r:.300}"
            for k in wrong[:15]
        )

    def processed() -> bool:
        assert worker.process.poll() is None, f"worker died:\n{worker.log()[-4000:]}"
        stats = worker.stats()
        if not stats:
            return False
        if stats["events_folded"] > hostile.valid or stats["deadletters"] > hostile.invalid:
            raise AssertionError(f"more processed than expected: {stats}\n{dead_letter_report()}")
        return bool(stats["events_folded"] == hostile.valid and stats["deadletters"] == hostile.invalid)

    wait_until(processed, timeout=60, what=f"{hostile.valid} folded and {hostile.invalid} dead-lettered")

    # Every invalid record, and nothing else, in the dead-letter topic, byte for byte, with decode's reason.
    assert dead_letters() == invalid, dead_letter_report()

    # Every valid record folded once: each account's window is the offline fold of its valid records only.
    expected = {account.encode(): fold(events) for account, events in valid.items()}
    mine = {}

    def windows_match() -> bool:
        nonlocal mine
        windows = changelog_windows(hostile)
        mine = {key: window for key, window in windows.items() if key.startswith(namespace.encode())}
        return mine == expected

    try:
        wait_until(windows_match, timeout=30, what="the changelog windows of this example's accounts")
    except AssertionError:
        differing = sorted(k for k in mine.keys() | expected.keys() if mine.get(k) != expected.get(k))
        raise AssertionError(
            f"accounts differing from the offline fold of their valid records: {differing}"
        ) from None

    assert worker.process.poll() is None
    assert worker.stats() is not None
    hows = sorted({record.how for record, _ in batch})
    reasons = sorted(set(invalid.values()))
    print(
        f"\n[hostile example {example}, {time.monotonic() - started:.1f} s] {len(batch)} records "
        f"({len(drawn) - len(batch)} left out as clock-ambiguous): {len(invalid)} dead-lettered with "
        f"reasons {reasons}, {len(batch) - len(invalid)} folded into {len(valid)} accounts; kinds {hows}"
    )


# -- directed findings --------------------------------------------------------------------------------------


def usage(account: str, ts_ms: int) -> bytes:
    return orjson.dumps({"type": "usage", "account_id": account, "ts": ts_ms, "event": "page_viewed"})


def test_deeply_nested_type_is_dead_lettered_not_fatal(workers: WorkerFactory) -> None:
    workers.extra_env["CHURNWATCH_MAX_EVENT_BYTES"] = str(MAX_EVENT_BYTES)
    settings_ = workers.settings()
    worker = workers.start()
    now_ms = int(time.time() * 1000)
    poison = b'{"type":' + nested(1020) + b',"account_id":"deep","ts":' + str(now_ms).encode() + b"}"
    assert len(poison) < MAX_EVENT_BYTES
    workers.produce(
        [(settings_.topics.usage, b"deep", poison), (settings_.topics.usage, b"deep", usage("deep", now_ms))]
    )

    def handled() -> bool:
        if worker.process.poll() is not None:
            return True  # crashed: the assertions below say so
        stats = worker.stats()
        return bool(stats and stats["deadletters"] == 1 and stats["events_folded"] == 1)

    try:
        wait_until(handled, timeout=30, what="the nested record dead-lettered and its neighbour folded")
    finally:
        alive = worker.process.poll() is None
    assert alive, f"worker died:\n{worker.log()[-3000:]}"
    dead = run(read_all(workers.kafka.bootstrap, settings_.topics.deadletter))
    assert [dict(d.headers)[REASON_HEADER] for d in dead] == [b"unknown_type"]


def test_account_id_in_the_reserved_key_space_is_harmless(workers: WorkerFactory) -> None:
    workers.extra_env["CHURNWATCH_SWEEP_INTERVAL_SECONDS"] = "1"
    settings_ = workers.settings()
    hostile_id = "\x00risk-model/0"  # control characters are rejected: NUL-prefixed keys are the worker's
    now_ms = int(time.time() * 1000) - HOUR_MS
    first = workers.start()
    records = [
        (settings_.topics.usage, hostile_id.encode(), usage(hostile_id, now_ms)),
        (settings_.topics.usage, b"plain", usage("plain", now_ms)),
    ]
    workers.produce(records)
    wait_until(
        lambda: (stats := first.stats() or {}).get("events_folded") == 1 and stats.get("deadletters") == 1,
        timeout=30,
        what="the plain event folded and the hostile one dead-lettered",
    )
    first.stop()

    second = workers.start()  # recovers the table from the changelog, then sweeps every second

    def swept_or_died() -> bool:
        if second.process.poll() is not None:
            return True
        try:
            count = metric_value(second.get("/metrics").text, "churnwatch_sweep_duration_seconds_count")
        except httpx.HTTPError:  # not serving yet, or just died: look again
            return False
        return bool(count and count >= 2)

    wait_until(swept_or_died, timeout=30, what="two sweeps (or a crash)")
    assert second.process.poll() is None, f"worker crashed:\n{second.log()[-3000:]}"
