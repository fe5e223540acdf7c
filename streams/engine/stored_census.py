"""The census's few numbers of a detector state, read from its stored form without decoding the state.

A worker that keeps detector states only in their stored form between sweeps
(``Detection(keep_decoded=False)``, the wall clock's default) would otherwise decode every account's whole
state for the day's census, and again to observe it. The census reads a dozen numbers
(:class:`~detectors.census.CensusInputs`); msgspec decodes just those from the stored JSON (the bytes of
``to_state()``, :func:`~streams.engine.state.encode_detector`) and skips the rest: ~3 µs against ~40 µs to
decode a whole state (docs/performance.md).

Not compiled by the optional mypyc build: it defines a ``msgspec.Struct``.
"""

from __future__ import annotations

import msgspec

from detectors.census import CensusInputs

_NO_ENGAGEMENT = (0.0, 0.0, 0.0, 0.0, 0.0)


class _Stored(msgspec.Struct):
    """The keys of ``AccountDetectorState.to_state()`` the census reads (other keys are skipped)."""

    b: list[list[list[float]]]  # the baselines, usage first: two slots of (days, level, ...)
    g: tuple[int | None, int, float, float]  # the gap tracker: last active day, gaps, mean gap, variance
    learned_through: int | None = msgspec.field(name="l")
    first_active_day: int | None = msgspec.field(name="f")
    drop_since: int | None = msgspec.field(name="ds")
    eg: tuple[float, float, float, float, float] = _NO_ENGAGEMENT  # absent from states older than it
    rb: tuple[int, float, float, int] | None = None  # only with an alert budget


_DECODER = msgspec.json.Decoder(_Stored)


def stored_census_inputs(stored: bytes, min_gaps: int) -> CensusInputs:
    """:class:`CensusInputs` of a stored detector state whose gap tracker counts a rhythm from ``min_gaps``
    gaps; equal to ``CensusInputs.of`` the decoded state (``tests/test_stored_census.py``)."""
    state = _DECODER.decode(stored)
    weekday, weekend = state.b[0]
    last_active, n_gaps, mean_gap, _ = state.g
    n_days, n_active, usage, users, _ = state.eg
    return CensusInputs(
        state.first_active_day,
        state.learned_through,
        state.drop_since,
        state.rb,
        (weekday[1] if weekday[0] else weekend[1], weekend[1] if weekend[0] else weekday[1]),
        int(n_days),
        int(n_active),
        usage,
        users,
        last_active,
        mean_gap if n_gaps >= min_gaps else None,
    )
