"""Tests of canonical event decoding and validation (``streams.events``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.vocabulary import BillingKind, Priority, SupportKind
from streams.events import (
    MAX_COUNT,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MIN_TS_MS,
    BillingEvent,
    DeadLetterReason,
    InvalidEventError,
    SupportEvent,
    UsageEvent,
    decode,
    parse_ts,
    validate,
)

T_MS = 1_795_687_200_000  # 2026-11-26T10:00:00Z
MAX_BYTES = 65_536

# The canonical examples, byte for byte.
USAGE = (
    b'{"type":"usage","account_id":"acme","ts":"2026-11-26T10:00:00Z","event":"report_exported",'
    b'"user_id":"u1","count":1}'
)
SUPPORT = (
    b'{"type":"support","account_id":"acme","ts":"2026-11-26T10:00:00Z","kind":"ticket_opened",'
    b'"priority":"high","score":4}'
)
BILLING = (
    b'{"type":"billing","account_id":"acme","ts":"2026-11-26T10:00:00Z","kind":"plan_changed",'
    b'"mrr":99.0,"plan":"pro"}'
)


def usage(**fields: Any) -> dict[str, Any]:
    return {"type": "usage", "account_id": "acme", "ts": T_MS, "event": "report_exported", **fields}


def support(**fields: Any) -> dict[str, Any]:
    return {"type": "support", "account_id": "acme", "ts": T_MS, "kind": "ticket_opened", **fields}


def billing(**fields: Any) -> dict[str, Any]:
    return {"type": "billing", "account_id": "acme", "ts": T_MS, "kind": "payment_failed", **fields}


def reject(body: Any) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as info:
        validate(body)
    return info.value


# -- canonical examples -----------------------------------------------------------------------------------


def test_canonical_usage_example() -> None:
    assert decode(USAGE, max_bytes=MAX_BYTES, key=b"acme", expected_type="usage") == UsageEvent(
        "acme", T_MS, "report_exported", "u1", 1
    )


def test_canonical_support_example() -> None:
    assert decode(SUPPORT, max_bytes=MAX_BYTES, key=b"acme", expected_type="support") == SupportEvent(
        "acme", T_MS, SupportKind.TICKET_OPENED, Priority.HIGH, 4
    )


def test_canonical_billing_example() -> None:
    assert decode(BILLING, max_bytes=MAX_BYTES, key=b"acme", expected_type="billing") == BillingEvent(
        "acme", T_MS, BillingKind.PLAN_CHANGED, 99.0, "pro"
    )


def test_usage_optional_fields_default() -> None:
    assert validate(usage()) == UsageEvent("acme", T_MS, "report_exported", None, 1)
    assert validate(usage(count=7)) == UsageEvent("acme", T_MS, "report_exported", None, 7)
    assert validate(usage(user_id=None, count=None)) == UsageEvent("acme", T_MS, "report_exported", None, 1)


@pytest.mark.parametrize("kind", sorted(set(SupportKind) - {SupportKind.CSAT}))
def test_every_support_kind_without_optional_fields(kind: SupportKind) -> None:
    assert validate(support(kind=kind)) == SupportEvent("acme", T_MS, kind, None, None)


@pytest.mark.parametrize("priority", list(Priority))
def test_every_priority(priority: Priority) -> None:
    assert validate(support(priority=priority)) == SupportEvent(
        "acme", T_MS, SupportKind.TICKET_OPENED, priority, None
    )


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5])
def test_csat_scores(score: int) -> None:
    assert validate(support(kind="csat", score=score)) == SupportEvent(
        "acme", T_MS, SupportKind.CSAT, None, score
    )


@pytest.mark.parametrize("kind", sorted(BillingKind))
def test_every_billing_kind_without_optional_fields(kind: BillingKind) -> None:
    assert validate(billing(kind=kind)) == BillingEvent("acme", T_MS, kind, None, None)


def test_integer_mrr_becomes_float() -> None:
    event = validate(billing(mrr=99))
    assert event == BillingEvent("acme", T_MS, BillingKind.PAYMENT_FAILED, 99.0, None)
    assert isinstance(event, BillingEvent)
    assert isinstance(event.mrr, float)


def test_extra_fields_accepted() -> None:
    body = usage(user_id="u1", source="web", nested={"a": [1, 2]}, ts_note=None)
    assert validate(body) == UsageEvent("acme", T_MS, "report_exported", "u1", 1)


def test_limits_inclusive() -> None:
    assert validate(usage(count=MAX_COUNT)) == UsageEvent("acme", T_MS, "report_exported", None, MAX_COUNT)
    assert validate(usage(account_id="a" * MAX_ID_LENGTH)).account_id == "a" * MAX_ID_LENGTH
    assert validate(usage(event="e" * MAX_NAME_LENGTH)) == UsageEvent(
        "acme", T_MS, "e" * MAX_NAME_LENGTH, None, 1
    )


# -- timestamps ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts",
    [
        "2026-11-26T10:00:00Z",
        "2026-11-26T12:00:00+02:00",
        "2026-11-26T05:30:00-04:30",
        "2026-11-26T10:00:00.000Z",
        "2026-11-26T10:00:00+00:00",
        T_MS,
    ],
)
def test_ts_forms(ts: str | int) -> None:
    assert parse_ts(ts) == T_MS
    assert validate(usage(ts=ts)).ts_ms == T_MS


def test_ts_fraction_of_a_second() -> None:
    assert parse_ts("2026-11-26T10:00:00.250Z") == T_MS + 250
    assert parse_ts("2026-11-26T12:00:00.999+02:00") == T_MS + 999


def test_ts_milliseconds_exact() -> None:
    assert parse_ts("2004-01-10T22:44:16.120Z") == 1_073_774_656_120
    assert parse_ts("2038-11-20T21:25:19.535Z") == 2_173_901_119_535


def test_ts_lower_bound_is_2000() -> None:
    assert parse_ts(MIN_TS_MS) == MIN_TS_MS
    assert parse_ts("2000-01-01T00:00:00Z") == MIN_TS_MS
    with pytest.raises(InvalidEventError) as info:
        parse_ts(MIN_TS_MS - 1)
    assert info.value.reason is DeadLetterReason.INVALID_TS


@pytest.mark.parametrize(
    "ts",
    [
        "2026-11-26T10:00:00",  # no offset
        "2026-11-26 10:00:00Z",  # no T
        "2026-11-26",
        "yesterday",
        "2026-13-26T10:00:00Z",
        "",
        1_795_687_200,  # epoch seconds: before 2000 when read as ms
        1_795_687_200_000.0,  # float
        True,
        None,
        ["2026-11-26T10:00:00Z"],
    ],
)
def test_invalid_ts(ts: Any) -> None:
    assert reject(usage(ts=ts)).reason is DeadLetterReason.INVALID_TS


def test_future_ts_only_beyond_max() -> None:
    assert validate(usage(), max_ts_ms=T_MS).ts_ms == T_MS
    with pytest.raises(InvalidEventError) as info:
        validate(usage(), max_ts_ms=T_MS - 1)
    assert info.value.reason is DeadLetterReason.FUTURE_TS


# -- rejections ---------------------------------------------------------------------------------------------


def _raw(body: Any) -> bytes:
    return orjson.dumps(body)


# reason -> (raw value, decode keyword arguments): one representative input per reason.
REJECTIONS: dict[DeadLetterReason, list[tuple[bytes | None, dict[str, Any]]]] = {
    DeadLetterReason.TOO_LARGE: [(_raw(usage(pad="x" * 200)), {"max_bytes": 100})],
    DeadLetterReason.INVALID_JSON: [(b'{"type":', {}), (b"\xff\xfe", {}), (None, {}), (b"", {})],
    DeadLetterReason.NOT_AN_OBJECT: [(b"[1,2]", {}), (b'"usage"', {}), (b"null", {}), (b"42", {})],
    DeadLetterReason.MISSING_FIELD: [
        (_raw({k: v for k, v in usage().items() if k != "type"}), {}),
        (_raw({k: v for k, v in usage().items() if k != "account_id"}), {}),
        (_raw({k: v for k, v in usage().items() if k != "ts"}), {}),
        (_raw({k: v for k, v in usage().items() if k != "event"}), {}),
        (_raw({k: v for k, v in support().items() if k != "kind"}), {}),
        (_raw({k: v for k, v in billing().items() if k != "kind"}), {}),
        (_raw(support(kind="csat")), {}),  # csat needs a score
        (_raw(usage(account_id=None)), {}),
    ],
    DeadLetterReason.WRONG_TYPE: [
        (_raw(usage(account_id=42)), {}),
        (_raw(usage(event=["x"])), {}),
        (_raw(usage(user_id=7)), {}),
        (_raw(usage(count="1")), {}),
        (_raw(usage(count=1.0)), {}),
        (_raw(usage(count=True)), {}),
        (_raw(support(priority=1)), {}),
        (_raw(support(kind="csat", score=True)), {}),
        (_raw(support(kind="csat", score=4.5)), {}),
        (_raw(billing(mrr="99")), {}),
        (_raw(billing(mrr=True)), {}),
        (_raw(billing(plan=1)), {}),
    ],
    DeadLetterReason.INVALID_VALUE: [
        (_raw(usage(account_id="")), {}),
        (_raw(usage(account_id="a" * (MAX_ID_LENGTH + 1))), {}),
        (_raw(usage(event="e" * (MAX_NAME_LENGTH + 1))), {}),
        (_raw(usage(count=0)), {}),
        (_raw(usage(count=MAX_COUNT + 1)), {}),
        (_raw(support(kind="ticket_reopened")), {}),
        (_raw(support(priority="critical")), {}),
        (_raw(support(kind="csat", score=0)), {}),
        (_raw(support(kind="csat", score=6)), {}),
        (_raw(billing(kind="refund")), {}),
        (_raw(billing(mrr=-1.0)), {}),
        (_raw(billing(plan="")), {}),
    ],
    DeadLetterReason.UNKNOWN_TYPE: [(_raw(usage(type="pageview")), {}), (_raw(usage(type=1)), {})],
    DeadLetterReason.WRONG_TOPIC: [(_raw(usage()), {"expected_type": "billing"})],
    DeadLetterReason.KEY_MISMATCH: [(_raw(usage()), {"key": b"other"}), (_raw(usage()), {"key": b""})],
    DeadLetterReason.INVALID_TS: [(_raw(usage(ts="2026-11-26T10:00:00")), {})],
    DeadLetterReason.FUTURE_TS: [(_raw(usage()), {"max_ts_ms": T_MS - 1})],
}


def test_every_reason_but_late_has_a_representative() -> None:
    assert set(REJECTIONS) == set(DeadLetterReason) - {DeadLetterReason.LATE}


@pytest.mark.parametrize(
    ("reason", "raw", "kwargs"),
    [(reason, raw, kwargs) for reason, cases in REJECTIONS.items() for raw, kwargs in cases],
)
def test_rejection_reason(reason: DeadLetterReason, raw: bytes | None, kwargs: dict[str, Any]) -> None:
    options: dict[str, Any] = {"max_bytes": MAX_BYTES, **kwargs}
    with pytest.raises(InvalidEventError) as info:
        decode(raw, **options)
    assert info.value.reason is reason
    assert info.value.detail
    assert str(info.value).startswith(f"{reason.value}: ")


def test_size_limit_is_inclusive() -> None:
    assert decode(USAGE, max_bytes=len(USAGE)).account_id == "acme"
    with pytest.raises(InvalidEventError) as info:
        decode(USAGE, max_bytes=len(USAGE) - 1)
    assert info.value.reason is DeadLetterReason.TOO_LARGE


def test_matching_key_and_topic_accepted() -> None:
    raw = _raw(support(account_id="café"))
    assert decode(raw, max_bytes=MAX_BYTES, key="café".encode(), expected_type="support").account_id == "café"


# -- properties ---------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)

ts_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{0,14}(Z|[+-][0-9]{2}:[0-9]{2})?\Z"),
    json_values,
)

# Objects that look like events, so the property also reaches the per-type checks.
event_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["usage", "support", "billing", "other"]) | json_values,
        "account_id": st.sampled_from(["acme", ""]) | json_values,
        "ts": ts_values,
    },
    optional={
        "event": st.text(max_size=5) | json_values,
        "user_id": st.text(max_size=5) | json_values,
        "count": st.integers(-5, 2 * MAX_COUNT) | json_values,
        "kind": st.sampled_from(sorted({*SupportKind, *BillingKind})) | json_values,
        "priority": st.sampled_from(Priority) | json_values,
        "score": st.integers(-2, 8) | json_values,
        "mrr": st.floats(allow_nan=False, allow_infinity=False) | json_values,
        "plan": st.text(max_size=5) | json_values,
    },
)

DECODE_OPTIONS = st.fixed_dictionaries(
    {
        "max_bytes": st.integers(1, 4096),
        "max_ts_ms": st.none() | st.integers(0, 2**45),
        "key": st.none() | st.sampled_from([b"acme", b"", b"x"]),
        "expected_type": st.none() | st.sampled_from(["usage", "support", "billing"]),
    }
)


def _decode_or_reject(raw: bytes | None, options: dict[str, Any]) -> None:
    try:
        event = decode(raw, **options)
    except InvalidEventError as exc:
        assert isinstance(exc.reason, DeadLetterReason)
        assert exc.reason is not DeadLetterReason.LATE
        return
    assert isinstance(event, UsageEvent | SupportEvent | BillingEvent)
    assert event.ts_ms >= MIN_TS_MS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300), options=DECODE_OPTIONS)
def test_decode_arbitrary_bytes(raw: bytes, options: dict[str, Any]) -> None:
    _decode_or_reject(raw, options)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values | event_like, options=DECODE_OPTIONS)
def test_decode_arbitrary_json(value: Any, options: dict[str, Any]) -> None:
    # The stdlib encoder takes integers of any size (orjson's refuses beyond 64 bits).
    _decode_or_reject(json.dumps(value, allow_nan=False).encode(), options)


@settings(max_examples=200, deadline=None)
@given(value=event_like)
def test_validate_arbitrary_event_like_objects(value: dict[str, Any]) -> None:
    try:
        event = validate(value)
    except InvalidEventError:
        return
    assert event.account_id == value["account_id"]
    assert (
        value["type"] == {UsageEvent: "usage", SupportEvent: "support", BillingEvent: "billing"}[type(event)]
    )


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_rfc3339_seconds_round_trip(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    text = moment.isoformat().replace("+00:00", "Z")
    assert parse_ts(text) == int(moment.timestamp()) * 1000
