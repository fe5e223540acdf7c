"""``streams.events.parse_ts`` against its previous implementation (issue 15, per-event speed): the same value
or the same exception, with its message, for every input: well-formed times of every shape, near misses and
arbitrary text, epoch ms and other JSON values, with the live lower bound and without (replay)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events import (
    EARLIEST_TS_MS,
    EPOCH,
    LATEST_TS_MS,
    MIN_TS_MS,
    ONE_MS,
    DeadLetterReason,
    InvalidEventError,
    parse_ts,
    ts_text,
)


def reference_parse_ts(value: Any, *, min_ts_ms: int | None = MIN_TS_MS) -> int:
    """The body of ``parse_ts`` before the change (main at 4435e46), verbatim."""
    if isinstance(value, int) and not isinstance(value, bool):
        ts_ms = value
    elif isinstance(value, str) and len(value) <= 40 and "T" in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEventError(
                DeadLetterReason.INVALID_TS, "'ts' must be RFC 3339 with a UTC offset or epoch ms"
            ) from None
        if parsed.tzinfo is None:
            raise InvalidEventError(DeadLetterReason.INVALID_TS, "'ts' has no UTC offset")
        # Integer arithmetic: float seconds * 1000 truncates some milliseconds one too low.
        ts_ms = (parsed - EPOCH) // ONE_MS
    else:
        raise InvalidEventError(
            DeadLetterReason.INVALID_TS, "'ts' must be RFC 3339 with a UTC offset or epoch ms"
        )
    if min_ts_ms is not None and ts_ms < min_ts_ms:
        raise InvalidEventError(
            DeadLetterReason.INVALID_TS,
            f"'ts' {ts_ms} is before {ts_text(min_ts_ms)} (CHURNWATCH_MIN_EVENT_TS)",
        )
    if not EARLIEST_TS_MS <= ts_ms <= LATEST_TS_MS:
        raise InvalidEventError(DeadLetterReason.INVALID_TS, f"'ts' {ts_ms} is outside the years 1-9999")
    return ts_ms


def outcome(parse: Callable[..., int], value: Any, min_ts_ms: int | None) -> tuple[Any, ...]:
    """What a call of ``parse`` returns (value and type) or raises (type, message, reason)."""
    try:
        result = parse(value, min_ts_ms=min_ts_ms)
    except Exception as error:
        return ("raised", type(error), str(error), getattr(error, "reason", None))
    return ("returned", type(result), result)


def assert_same(value: Any) -> None:
    for bound in (MIN_TS_MS, None, EARLIEST_TS_MS, 1_795_687_200_000):
        assert outcome(parse_ts, value, bound) == outcome(reference_parse_ts, value, bound), (value, bound)


# -- generated inputs ---------------------------------------------------------------------------------------

SUFFIXES = ["Z", "+00:00", "z", "-00:00", "+05:30", "-04:30", "+14:00", "-23:59", "", "+0000", "+00", " Z"]
SUFFIXES += ["Z ", "ZZ", "+00:00Z", "+24:00", "+00:60", "+00:00:00", "+00:00:00.5", "UTC"]


@st.composite
def well_formed(draw: st.DrawFn) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of any moment in years 1-9999, up to 22 fraction digits (past the 40-character
    limit with some offsets) and an offset."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if not text.startswith(f"{moment.year:04d}"):  # strftime's %Y does not pad years before 1000 everywhere
        text = f"{moment.year:04d}{text[text.index('-') :]}"
    digits = draw(st.one_of(st.integers(0, 7), st.integers(8, 22)))
    if digits:
        text += draw(st.sampled_from(".,")) + draw(st.text("0123456789", min_size=digits, max_size=digits))
    return text + draw(st.sampled_from(SUFFIXES))


def two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda number: f"{number:02d}")


@st.composite
def near_miss(draw: st.DrawFn) -> str:
    """Fields out of range (month 13, day 31 of a 30-day month, 29 February, hour 24, second 60, year 0),
    other separators and a character changed, inserted or deleted."""
    year = draw(st.sampled_from([0, 1, 1900, 1999, 2000, 2023, 2024, 2026, 2100, 9999])) + draw(
        st.integers(0, 3)
    )
    text = (
        f"{min(year, 9999):04d}-{draw(two(0, 13))}-{draw(two(0, 32))}"
        f"{draw(st.sampled_from('TTTTt X'))}{draw(two(0, 25))}:{draw(two(0, 61))}:{draw(two(0, 61))}"
    )
    if draw(st.booleans()):
        text += "." + draw(st.text("0123456789", min_size=0, max_size=8))
    text += draw(st.sampled_from(SUFFIXES))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from("0123456789-:TtZz.+ ,\u0663\u00a0\x00é"))
        change = draw(st.sampled_from(["replace", "insert", "delete"]))
        if change == "replace":
            text = text[:at] + char + text[at + 1 :]
        elif change == "insert":
            text = text[:at] + char + text[at:]
        else:
            text = text[:at] + text[at + 1 :]
    return text


OTHER_VALUES = st.one_of(
    st.integers(),
    st.integers(EARLIEST_TS_MS - 2, EARLIEST_TS_MS + 2),
    st.integers(LATEST_TS_MS - 2, LATEST_TS_MS + 2),
    st.integers(MIN_TS_MS - 2, MIN_TS_MS + 2),
    st.booleans(),
    st.none(),
    st.floats(),
    st.text(max_size=45),
    st.text("0123456789-:TZ.+ ", max_size=45),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=3_000, deadline=None)
@given(well_formed())
def test_well_formed_times_as_before(text: str) -> None:
    assert_same(text)


@settings(max_examples=3_000, deadline=None)
@given(near_miss())
def test_near_misses_as_before(text: str) -> None:
    assert_same(text)


@settings(max_examples=1_000, deadline=None)
@given(OTHER_VALUES)
def test_other_values_as_before(value: Any) -> None:
    assert_same(value)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-26T10:00:00Z",
        "2026-11-26T10:00:00.1Z",
        "2026-11-26T10:00:00.12+00:00",
        "2026-11-26T10:00:00.123Z",
        "2026-11-26T10:00:00.1239Z",
        "2026-11-26T10:00:00.999999+00:00",
        "2026-11-26T10:00:00.9999999Z",  # a 7th digit: fromisoformat ignores it
        "2026-11-26T10:00:00,5Z",
        "2026-11-26T10:00:00.Z",
        "2026-11-26T24:00:00Z",
        "2026-11-26T23:60:00Z",
        "2026-12-31T23:59:60Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2024-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59.999999Z",
        "9999-12-31T23:59:59-00:01",
        "1999-12-31T23:59:59.999Z",
        "1969-12-31T23:59:59.9995Z",
        "2026-11-26T10:00:00",
        "2026-11-26T10:00:00z",
        "2026-11-26t10:00:00Z",
        "2026-11-26T10:00:00+05:30",
        "2026-11-26T10:00:00-00:00",
        "2026-11-26T10:00:00Z ",
        " 2026-11-26T10:00:00Z",
        "2026-11-26T10:00Z",
        "20261126T100000Z",
        "2026-11-26T1\u0663:00:00Z",
        "2026-11-26 10:00:00Z",
        "2026-11-26T10:00:00.123456789012345678Z",
        "2026-11-26T10:00:00.1234567890123456789Z",  # 40 characters
        "2026-11-26T10:00:00.12345678901234567890Z",  # 41
        1_795_687_200_000,
        True,
        None,
        1.5,
    ],
)
def test_listed_cases_as_before(value: Any) -> None:
    assert_same(value)


def test_the_reference_is_what_main_returned() -> None:
    """The reference's values on a few times, fixed (so a wrong copy above would show)."""
    assert reference_parse_ts("2026-11-26T10:00:00.123Z") == 1_795_687_200_123
    assert reference_parse_ts("1969-12-31T23:59:59.9995Z", min_ts_ms=None) == -1
    assert reference_parse_ts("0001-01-01T00:00:00Z", min_ts_ms=None) == EARLIEST_TS_MS
    assert parse_ts("9999-12-31T23:59:59.999999Z") == LATEST_TS_MS
    assert parse_ts(datetime(2026, 11, 26, 10, tzinfo=UTC).isoformat()) == 1_795_687_200_000
