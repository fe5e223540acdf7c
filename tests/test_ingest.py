"""Tests of micro-batch folding (``streams.live.ingest.BatchFolder``): no Kafka needed."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from detectors.windows import (
    ACTIVE_USERS,
    DAY_MS,
    PAYMENT_FAILED,
    TICKETS_URGENT,
    USAGE,
    AccountWindow,
    WindowConfig,
    day_of,
)
from streams.dedup import Deduplicator
from streams.engine.state import detector_json, encode_detector
from streams.events import DeadLetterReason
from streams.live.ingest import AccountState, BatchFolder, DeadLetter, RawRecord

NOW_MS = 1_795_687_200_000  # 2026-11-26T10:00:00Z, the injected wall clock
DAY0 = day_of(NOW_MS)
CFG = WindowConfig()
TOPICS = {"usage": "churnwatch.usage", "support": "churnwatch.support", "billing": "churnwatch.billing"}


def folder(max_event_bytes: int = 4096) -> BatchFolder:
    return BatchFolder(
        window_config=CFG, max_event_bytes=max_event_bytes, max_future_skew_ms=DAY_MS, clock=lambda: NOW_MS
    )


def body(event_type: str, account: str = "acme", ts: Any = NOW_MS, **fields: Any) -> dict[str, Any]:
    defaults: dict[str, dict[str, Any]] = {
        "usage": {"event": "report_exported"},
        "support": {"kind": "ticket_opened"},
        "billing": {"kind": "payment_failed"},
    }
    return {"type": event_type, "account_id": account, "ts": ts, **defaults.get(event_type, {}), **fields}


def rec(
    event_type: str,
    offset: int,
    value: dict[str, Any] | bytes | None = None,
    *,
    key: bytes | str | None = "account",
    partition: int = 3,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> RawRecord:
    if value is None:
        value = body(event_type)
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    if key == "account":
        key = value["account_id"].encode() if isinstance(value, dict) else b"acme"
    assert not isinstance(key, str)
    return RawRecord(event_type, key, raw, TOPICS[event_type], partition, offset, headers)


class Store:
    """A table stand-in that counts reads per key."""

    def __init__(self, rows: dict[bytes, bytes] | None = None) -> None:
        self.rows = dict(rows or {})
        self.reads: Counter[bytes] = Counter()

    def load(self, key: bytes) -> bytes | None:
        self.reads[key] += 1
        return self.rows.get(key)

    def save(self, changed: dict[bytes, AccountState]) -> None:
        for key, state in changed.items():
            self.rows[key] = state.to_bytes()


def test_folds_valid_records() -> None:
    store = Store()
    result = folder().fold(
        [
            rec("usage", 0, body("usage", user_id="u1", count=2)),
            rec("usage", 1, body("usage", user_id="u2")),
            rec("support", 0, body("support", priority="urgent")),
            rec("billing", 0, body("billing", ts=NOW_MS - 3_600_000)),
        ],
        store.load,
    )
    assert result.dead_letters == []
    assert result.folded == 4
    assert result.max_event_ts_ms == NOW_MS
    state = result.changed[b"acme"]
    partition = state.partition
    assert partition == 3
    bucket = state.window.bucket(DAY0)
    assert (bucket[USAGE], bucket[ACTIVE_USERS], bucket[TICKETS_URGENT], bucket[PAYMENT_FAILED]) == (
        3,
        2,
        1,
        1,
    )
    assert state.applied_offsets == [1, 0, 0]


def test_dead_letters_carry_reason_detail_source_and_original_headers() -> None:
    original = (("traceparent", b"00-abc-def-01"), ("producer", b"crm"))
    record = rec("usage", 41, b'{"type":', key=b"acme", partition=5, headers=original)
    result = folder().fold([record], Store().load)
    assert result.changed == {}
    assert result.folded == 0
    [dead] = result.dead_letters
    assert dead.record is record  # original key and bytes go to the dead-letter topic untouched
    assert dead.reason is DeadLetterReason.INVALID_JSON
    headers = dead.headers()
    assert headers[: len(original)] == list(original)
    as_dict = dict(headers)
    assert as_dict["churnwatch.error.reason"] == b"invalid_json"
    assert as_dict["churnwatch.error.detail"] == b"value is not valid JSON"
    assert as_dict["churnwatch.source.topic"] == b"churnwatch.usage"
    assert as_dict["churnwatch.source.partition"] == b"5"
    assert as_dict["churnwatch.source.offset"] == b"41"
    assert all(isinstance(value, bytes) for _, value in headers)


def test_dead_letters_drop_spoofed_churnwatch_headers() -> None:
    spoofed = (("churnwatch.error.reason", b"late"), ("churnwatch.source.offset", b"0"), ("trace", b"t"))
    record = rec("usage", 41, b"not json", key=b"acme", headers=spoofed)
    headers = DeadLetter(record, DeadLetterReason.INVALID_JSON, "value is not valid JSON").headers()
    assert [value for name, value in headers if name == "churnwatch.error.reason"] == [b"invalid_json"]
    assert [value for name, value in headers if name == "churnwatch.source.offset"] == [b"41"]
    assert ("trace", b"t") in headers


def test_dead_letter_detail_header_is_truncated() -> None:
    record = rec("usage", 0)
    headers = dict(DeadLetter(record, DeadLetterReason.INVALID_VALUE, "x" * 5000).headers())
    assert headers["churnwatch.error.detail"] == b"x" * 1000


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (rec("usage", 0, b"x" * 5000), DeadLetterReason.TOO_LARGE),
        (rec("usage", 0, b"[]"), DeadLetterReason.NOT_AN_OBJECT),
        (rec("usage", 0, body("usage", event=None)), DeadLetterReason.MISSING_FIELD),
        (rec("usage", 0, body("usage", count="2")), DeadLetterReason.WRONG_TYPE),
        (rec("support", 0, body("support", priority="p1")), DeadLetterReason.INVALID_VALUE),
        (rec("usage", 0, body("pageview")), DeadLetterReason.UNKNOWN_TYPE),
        (rec("billing", 0, body("usage")), DeadLetterReason.WRONG_TOPIC),
        (rec("usage", 0, body("usage"), key=b"globex"), DeadLetterReason.KEY_MISMATCH),
        (rec("usage", 0, body("usage"), key=None), DeadLetterReason.KEY_MISMATCH),
        (rec("usage", 0, body("usage", ts="2026-11-26T10:00:00")), DeadLetterReason.INVALID_TS),
        (rec("usage", 0, body("usage", ts=NOW_MS + DAY_MS + 1)), DeadLetterReason.FUTURE_TS),
        (rec("usage", 0, b"", key=b"acme"), DeadLetterReason.INVALID_JSON),
    ],
)
def test_invalid_records_dead_lettered(record: RawRecord, reason: DeadLetterReason) -> None:
    store = Store()
    result = folder().fold([record], store.load)
    assert [(dead.record, dead.reason) for dead in result.dead_letters] == [(record, reason)]
    assert dict(result.dead_letters[0].headers())["churnwatch.error.reason"] == reason.value.encode()
    assert result.changed == {}
    assert result.folded == 0
    assert store.reads == {}  # nothing to fold, nothing loaded


def test_record_without_value_dead_lettered() -> None:
    record = RawRecord("usage", b"acme", None, TOPICS["usage"], 0, 7)
    [dead] = folder().fold([record], Store().load).dead_letters
    assert dead.reason is DeadLetterReason.INVALID_JSON


def test_future_skew_boundary() -> None:
    ok = rec("usage", 0, body("usage", ts=NOW_MS + DAY_MS))
    result = folder().fold([ok], Store().load)
    assert result.dead_letters == []
    assert result.folded == 1


def test_late_event_dead_lettered_but_offset_applied() -> None:
    late_ts = NOW_MS - CFG.allowed_lateness_ms - 1
    late = rec("usage", 1, body("usage", ts=late_ts))
    result = folder().fold([rec("usage", 0), late], Store().load)
    assert [(dead.record, dead.reason) for dead in result.dead_letters] == [(late, DeadLetterReason.LATE)]
    assert dict(result.dead_letters[0].headers())["churnwatch.error.reason"] == b"late"
    assert result.folded == 1
    state = result.changed[b"acme"]
    assert state.applied_offsets[0] == 1  # a replay will not dead-letter it again
    assert state.window.total(USAGE, 0, 10**9) == 1


def test_state_read_once_per_account_per_batch() -> None:
    stored = AccountState(AccountWindow(CFG), 0)
    store = Store({b"acme": stored.to_bytes()})
    records = [
        rec("usage", offset, body("usage", account=account))
        for offset, account in enumerate(["acme", "globex", "acme", "initech", "acme", "globex"])
    ]
    records.append(rec("support", 0, body("support", account="acme")))
    records.append(rec("billing", 0, body("billing", account="globex")))
    records.append(rec("usage", 99, b"not json", key=b"umbrella"))
    result = folder().fold(records, store.load)
    assert store.reads == {b"acme": 1, b"globex": 1, b"initech": 1}
    assert set(result.changed) == {b"acme", b"globex", b"initech"}
    assert result.folded == 8
    assert result.changed[b"acme"].window.bucket(DAY0)[USAGE] == 3


def test_stored_state_is_continued() -> None:
    store = Store()
    fold = folder().fold
    store.save(fold([rec("usage", 0, body("usage", user_id="u1"))], store.load).changed)
    result = fold([rec("usage", 1, body("usage", user_id="u2", count=4))], store.load)
    state = result.changed[b"acme"]
    bucket = state.window.bucket(DAY0)
    assert (bucket[USAGE], bucket[ACTIVE_USERS]) == (5, 2)
    assert state.applied_offsets == [1, -1, -1]


def test_duplicate_offsets_skipped_after_restart() -> None:
    store = Store()
    fold = folder().fold
    first_batch = [rec("usage", 10), rec("usage", 11), rec("support", 5)]
    store.save(fold(first_batch, store.load).changed)
    # The batch was stored but its offsets not committed: Kafka delivers it again, plus one new record.
    redelivered = [*first_batch, rec("usage", 12), rec("billing", 5)]
    result = fold(redelivered, store.load)
    assert result.skipped_duplicates == 3
    assert result.folded == 2
    state = result.changed[b"acme"]
    assert state.window.bucket(DAY0)[USAGE] == 3
    assert state.applied_offsets == [12, 5, 5]


def test_duplicates_within_one_batch_and_offsets_per_topic() -> None:
    result = folder().fold(
        [rec("usage", 3), rec("usage", 3), rec("usage", 2), rec("support", 3)], Store().load
    )
    assert result.skipped_duplicates == 2
    assert result.folded == 2


def test_only_duplicates_change_nothing() -> None:
    store = Store()
    store.save(folder().fold([rec("usage", 10)], store.load).changed)
    result = folder().fold([rec("usage", 9), rec("usage", 10)], store.load)
    assert result.skipped_duplicates == 2
    assert result.changed == {}


def test_changed_accounts_map_to_source_partition() -> None:
    records = [
        rec("usage", 0, body("usage", account="acme"), partition=1),
        rec("usage", 0, body("usage", account="globex"), partition=6),
        rec("support", 0, body("support", account="acme"), partition=1),
    ]
    result = folder().fold(records, Store().load)
    assert {key: state.partition for key, state in result.changed.items()} == {
        b"acme": 1,
        b"globex": 6,
    }


def test_account_state_bytes_round_trip() -> None:
    store = Store()
    result = folder().fold([rec("usage", 4, body("usage", user_id="u1")), rec("billing", 2)], store.load)
    state = result.changed[b"acme"]
    state.detector = encode_detector({"score": 0.5})
    raw = state.to_bytes()
    again = AccountState.from_bytes(raw, CFG)
    assert again.to_bytes() == raw
    assert again.applied_offsets == [4, -1, 2]
    assert again.detector is not None and detector_json(again.detector) == b'{"score":0.5}'
    assert AccountState.partition_of(raw) == state.partition == 3  # readable without decoding


def test_stored_state_is_compressed() -> None:
    # Eight weeks of a daily-active account: the state a worker writes most often.
    day_ms = 86_400_000
    records = [
        rec(
            "usage",
            offset,
            body(
                "usage",
                ts=NOW_MS - (400 - offset) * day_ms // 7,
                user_id=f"u{offset % 7}",
                event=f"event_{offset % 6}",
                count=1 + offset % 5,
            ),
        )
        for offset in range(400)
    ]
    state = folder().fold(records, Store().load).changed[b"acme"]
    raw = state.to_bytes()
    as_json = orjson.dumps({"p": state.partition, "o": state.applied_offsets, "w": state.window.to_state()})
    assert len(raw) < len(as_json) / 2


def deduplicating_folder() -> BatchFolder:
    return BatchFolder(
        window_config=CFG,
        max_event_bytes=4096,
        max_future_skew_ms=DAY_MS,
        clock=lambda: NOW_MS,
        deduplicator=Deduplicator(horizon_ms=CFG.allowed_lateness_ms, max_keys=1_000),
    )


def test_a_retried_event_under_a_new_offset_is_dropped_and_counted() -> None:
    store = Store()
    fold = deduplicating_folder().fold
    retried = body("billing", ts=NOW_MS - 1000)  # "payment failed" sent twice by a retrying producer
    result = fold([rec("billing", 7, retried), rec("billing", 8, retried), rec("usage", 4)], store.load)
    assert (result.duplicate_events, result.folded, result.dead_letters) == (1, 2, [])
    state = result.changed[b"acme"]
    assert state.window.total(PAYMENT_FAILED, 0, 10**9) == 1
    assert state.applied_offsets[2] == 8  # consumed, so a restart does not read it again
    # The copy also arrives in a later batch: still dropped, across batches.
    later = fold([rec("billing", 9, retried)], store.load)
    assert later.duplicate_events == 1 and later.folded == 0


def test_event_id_names_duplicates_whose_content_differs() -> None:
    first = body("usage", ts=NOW_MS - 2000, event_id="evt-1")
    restamped = body("usage", ts=NOW_MS - 1000, event_id="evt-1", count=3)
    other = body("usage", ts=NOW_MS - 1000, event_id="evt-2")
    result = deduplicating_folder().fold(
        [rec("usage", 1, first), rec("usage", 2, restamped), rec("usage", 3, other)], Store().load
    )
    assert (result.duplicate_events, result.folded) == (1, 2)
    assert result.changed[b"acme"].window.total(USAGE, 0, 10**9) == 2


def test_records_read_again_after_reloading_an_older_state_are_not_duplicates() -> None:
    store = Store()
    folder_ = deduplicating_folder()
    retried = body("usage", ts=NOW_MS - 1000)
    records = [rec("usage", 10, retried), rec("usage", 11, retried)]
    first = folder_.fold(records, store.load)  # folded, but the state is never stored (a revoked partition)
    assert (first.folded, first.duplicate_events) == (1, 1)
    again = folder_.fold(records, store.load)  # the same worker reads the same offsets again
    assert (again.folded, again.duplicate_events) == (1, 1)
    assert again.changed[b"acme"].window.total(USAGE, 0, 10**9) == 1


def test_a_retry_of_an_event_a_stored_state_already_applied_is_still_a_duplicate() -> None:
    """A checkpoint may store states newer than its offsets: after a restart the records between are read
    again and skipped by offset, and a producer's retry of one of them under a later offset is dropped too."""
    store = Store()
    retried = body("billing", ts=NOW_MS - 1000)
    store.save(deduplicating_folder().fold([rec("billing", 7, retried)], store.load).changed)
    restarted = deduplicating_folder()  # remembers nothing: the offsets recorded stop before 7
    result = restarted.fold([rec("billing", 7, retried), rec("billing", 9, retried)], store.load)
    assert (result.skipped_duplicates, result.duplicate_events, result.folded) == (1, 1, 0)
    assert result.changed[b"acme"].window.total(PAYMENT_FAILED, 0, 10**9) == 1


def test_without_a_deduplicator_equal_events_all_count() -> None:
    same = body("usage", ts=NOW_MS - 1000)
    result = folder().fold([rec("usage", 1, same), rec("usage", 2, same)], Store().load)
    assert (result.folded, result.duplicate_events) == (2, 0)


def test_a_batch_text_is_checked_once_and_hostile_records_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The typed decoder's text checks run once over a plain batch; a record with a number beyond a double or
    invalid UTF-8 in a field no decoder reads, among plain ones, is still judged alone (invalid JSON)."""
    import streams.events
    import streams.live.ingest

    good = [rec("usage", offset, body("usage", ts=NOW_MS - offset)) for offset in range(12)]
    extras = (b',"n":1e999}', b',"n":"\xff"}', b',"n":1}')
    hostile = [
        rec("usage", 100 + i, record.value[:-1] + extra, key=b"acme")
        for i, (record, extra) in enumerate(zip(good[:3], extras, strict=True))
        if record.value is not None
    ]
    calls: list[int] = []
    original = streams.events.plain_text

    def counting(raw: bytes, **kwargs: bool) -> bool:
        calls.append(len(raw))
        return original(raw, **kwargs)

    monkeypatch.setattr(streams.live.ingest, "plain_text", counting, raising=False)
    monkeypatch.setattr(streams.events, "plain_text", counting)
    arrivals, dead = folder().decode(good)
    assert len(arrivals) == 12 and dead == []
    assert len(calls) == 1  # the batch's values joined, not one check per record
    calls.clear()
    mixed = [*good[:5], *hostile, *good[5:]]
    arrivals, dead = folder().decode(mixed)
    assert [(d.record.offset, d.reason) for d in dead] == [
        (100, DeadLetterReason.INVALID_JSON),
        (101, DeadLetterReason.INVALID_JSON),
    ]
    assert [a.offset for a in arrivals] == [*range(5), 102, *range(5, 12)]
    assert len(calls) == 1 + len(mixed)  # the batch failed the checks: each record is checked alone
