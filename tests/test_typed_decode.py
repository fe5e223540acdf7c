"""The typed decoder (msgspec) never disagrees with ``orjson`` + ``validate``: whatever it accepts, they
accept as the same event; whatever it declines, ``decode`` judges as before (same reason and detail)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from detectors.vocabulary import BillingKind, Priority, SupportKind
from streams.events import (
    MIN_TS_MS,
    Event,
    InvalidEventError,
    decode,
    decode_again,
    typed_decode,
    validate,
)

MAX_BYTES = 65_536
T_MS = 1_795_687_200_000

texts = st.one_of(
    st.sampled_from(
        ["acme", "u1", "report_exported", "", "a\x00b", "tab\there", "é", "😀", "x" * 128, "x" * 129]
    ),
    st.sampled_from(["x" * 256, "x" * 257, "😀" * 128, "😀" * 129, "\u2028", "\x7f"]),
    st.text(max_size=8),
)
times = st.one_of(
    st.sampled_from(
        [
            "2026-11-26T10:00:00Z",
            "2026-11-26T10:00:00.250Z",
            "2026-11-26T10:00:00+05:30",
            "2026-11-26T10:00:00",
            "2026-11-26 10:00:00Z",
            "2026-11-26t10:00:00z",
            "2026-02-30T10:00:00Z",
            "2026-11-26T24:00:00Z",
            "2026-11-26T10:00:60Z",
            "1997-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2026-11-26T10:00:00.1234567Z",
            "2026-11-26T10Z",
            "\uff12\uff10\uff12\uff16-11-26T10:00:00Z"  # full-width digits,
            "2026-11-26T10:00:00Z" + " " * 30,
        ]
    ),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([T_MS, MIN_TS_MS, MIN_TS_MS - 1, 0, -1, 253_402_300_799_999, 253_402_300_800_000]),
)
numbers = st.one_of(
    st.integers(min_value=-3, max_value=7),
    st.sampled_from([1_000_000, 1_000_001, 2**63, 2**64 + 1, 0.0, -0.0, 1.0, 99.5, 1e12, 1e300]),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
values = st.one_of(texts, numbers, st.none(), times, st.lists(st.integers(), max_size=2))
kinds = st.sampled_from([*sorted(kind.value for kind in {*SupportKind, *BillingKind}), "refund", "", "CSAT"])
FIELDS = (
    "account_id",
    "ts",
    "event",
    "user_id",
    "count",
    "kind",
    "priority",
    "score",
    "mrr",
    "plan",
    "event_id",
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"type": draw(st.sampled_from(["usage", "support", "billing", "other", 3]))}
    body["account_id"] = draw(st.one_of(st.just("acme"), texts, numbers))
    body["ts"] = draw(times)
    body["event"] = draw(st.one_of(st.just("login"), values))
    body["kind"] = draw(st.one_of(kinds, values))
    body["priority"] = draw(st.one_of(st.sampled_from([priority.value for priority in Priority]), values))
    for name in ("user_id", "count", "score", "mrr", "plan", "event_id", "extra"):
        if draw(st.booleans()):
            body[name] = draw(values)
    for name in draw(st.lists(st.sampled_from([*FIELDS, "type"]), max_size=2)):
        body.pop(name, None)
    return body


def as_lines(body: dict[str, Any], mutation: str) -> bytes:
    raw = json.dumps(body, ensure_ascii=mutation == "ascii").encode()
    extra = {
        "huge_exponent": b',"x":1e999}',
        "huge_integer": b',"x":' + b"9" * 400 + b"}",
        "huge_exponent_plus": b',"x":-1.5E+0400}',
        "huge_mantissa": b',"x":' + b"1" * 250 + b"e99}",
        "bad_utf8": b',"x":"\xff"}',
        "surrogate": b',"x":"\\ud800"}',
        "deep": b',"x":' + b"[" * 1100 + b"]" * 1100 + b"}",
        "deep_objects": b',"x":' + b'{"a":' * 1030 + b"1" + b"}" * 1030 + b"}",
        "duplicate_type": b',"type":"support"}',
        "duplicate_ts": b',"ts":"2026-11-26T10:00:00Z"}',
    }.get(mutation)
    return raw[:-1] + extra if extra is not None and raw.endswith(b"}") and len(raw) > 2 else raw


def slow_decode(raw: bytes, **bounds: Any) -> Event | tuple[str, str]:
    """What decode returned before the typed decoder: orjson + validate (the event, or reason and detail)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ("invalid_json", "value is not valid JSON")
    try:
        return validate(body, **bounds)
    except InvalidEventError as error:
        return (error.reason.value, error.detail)


def fast_decode(raw: bytes, **bounds: Any) -> Event | tuple[str, str]:
    try:
        return decode(raw, max_bytes=MAX_BYTES, **bounds)
    except InvalidEventError as error:
        return (error.reason.value, error.detail)


MUTATIONS = [
    "none",
    "ascii",
    "huge_exponent",
    "huge_integer",
    "huge_exponent_plus",
    "huge_mantissa",
    "bad_utf8",
    "surrogate",
    "deep",
    "deep_objects",
    "duplicate_type",
]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies(),
    mutation=st.sampled_from([*MUTATIONS, "duplicate_ts"]),
    bounds=st.sampled_from([{"min_ts_ms": None}, {}, {"max_ts_ms": T_MS, "min_ts_ms": None}]),
)
@example(
    body={"type": "billing", "account_id": "a", "ts": T_MS, "kind": "plan_changed", "mrr": -0.0},
    mutation="none",
    bounds={},
)
@example(
    body={"type": "billing", "account_id": "a", "ts": T_MS, "kind": "plan_changed", "mrr": 0},
    mutation="none",
    bounds={},
)
def test_typed_decoder_agrees_with_validate(
    body: dict[str, Any], mutation: str, bounds: dict[str, Any]
) -> None:
    raw = as_lines(body, mutation)
    slow = slow_decode(raw, **bounds)
    assert fast_decode(raw, **bounds) == slow
    typed = typed_decode(raw, **bounds)
    if typed is not None:
        assert repr(typed) == repr(slow)  # same field types too (float MRR, int times, the sign of a zero)
    if not isinstance(slow, tuple):  # a spilled line read back (replay) is the event it was
        assert repr(decode_again(raw, slow.ts_ms, max_bytes=MAX_BYTES)) == repr(slow)


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_hostile_text_in_ignored_fields_takes_the_exact_path(mutation: str) -> None:
    body = {"type": "usage", "account_id": "acme", "ts": T_MS, "event": "login"}
    raw = as_lines(body, mutation)
    assert fast_decode(raw) == slow_decode(raw)
    if mutation != "none" and mutation != "ascii":
        assert typed_decode(raw) is None


def test_typical_lines_take_the_typed_path() -> None:
    """The fast path is the common path: canonical events of every type are decoded by msgspec."""
    lines = [
        b'{"type":"usage","account_id":"acct-1","ts":"2026-07-15T10:16:12Z","event":"x","user_id":"u","count":3}',
        b'{"type":"support","account_id":"acct-1","ts":1795687200000,"kind":"csat","score":4}',
        b'{"type":"billing","account_id":"acct-1","ts":"2026-07-15T10:16:12Z","kind":"plan_changed","mrr":99.0}',
    ]
    for line in lines:
        typed = typed_decode(line, min_ts_ms=None)
        assert typed is not None
        assert typed == validate(orjson.loads(line), min_ts_ms=None)
