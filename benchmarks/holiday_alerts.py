"""Alerts a shared holiday causes: openings in its window against the same base without it.

Issue 14 asks for no alert from a holiday week. Counting every alert that opens in or just after the week
counts the base's ordinary alerts too, and a per-day rate from the file's other days is no fair expectation
either: alerts are not spread evenly over a file (more open in its first weeks, when the models are young).
The fair comparison is the same customer base without its holiday: ``streams.dev.shapes`` makes it
(``ShapesConfig(holiday=False)``: the same accounts, shapes and plans, usage drawn again), and the benchmark
replays both. Per scorer, over non-churners after warm-up:

* ``observed``: openings in ``[start, end + 7)`` of each holiday; ``control``: the same in the control file;
* ``later`` and ``control_later``: the same for the 14 days after that window, where alerts a holiday only
  postponed would land;
* ``expected`` and ``later_expected``: the file's other days' openings per day times the windows' days (the
  rough expectation kept for files without a control, such as the simulator's one-day holidays).

Used by ``benchmarks/detection_generalization.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.offline.backtest import Backtest


@dataclass(frozen=True, slots=True)
class HolidayAlerts:
    """One scorer's non-churner openings around the holidays of a file (or a source's files, summed)."""

    observed: int
    later: int
    expected: float
    later_expected: float
    control: int | None = None
    control_later: int | None = None

    def __add__(self, other: HolidayAlerts) -> HolidayAlerts:
        return HolidayAlerts(
            self.observed + other.observed,
            self.later + other.later,
            self.expected + other.expected,
            self.later_expected + other.later_expected,
            _add(self.control, other.control),
            _add(self.control_later, other.control_later),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "observed": self.observed,
            "later": self.later,
            "expected": self.expected,
            "later_expected": self.later_expected,
            "control": self.control,
            "control_later": self.control_later,
        }


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def fmt(value: dict[str, Any] | None) -> str:
    """The table cell: ``observed (control)``, or ``observed (~expected)`` without a control."""
    if value is None:
        return "-"
    if value["control"] is not None:
        return f"{value['observed']} ({value['control']})"
    return f"{value['observed']} (~{value['expected']:.0f})"


def describe(value: dict[str, Any]) -> str:
    """The sentence under a source's table."""
    if value["control"] is not None:
        return (
            f"{value['observed']} in the holiday windows against {value['control']} in the same windows of "
            f"the same bases without the holiday; in the 14 days after them {value['later']} against "
            f"{value['control_later']}"
        )
    return (
        f"{value['observed']} in the holiday windows (~{value['expected']:.1f} at the file's other days' "
        f"rate); in the 14 days after them {value['later']} (~{value['later_expected']:.1f})"
    )


def holiday_alerts(
    bt: Backtest,
    openings: dict[str, list[float]],
    holidays: list[tuple[float, float]],
    control: dict[str, list[float]] | None = None,
) -> HolidayAlerts:
    """Count ``openings`` (and ``control``'s, the same scorer's on the control file) around ``holidays``."""
    inside, later, outside, spans, other_days = _count(bt, openings, holidays)
    rate = outside / other_days if other_days > 0 else 0.0
    if control is None:
        return HolidayAlerts(inside, later, rate * spans[0], rate * spans[1])
    c_inside, c_later, *_ = _count(bt, control, holidays)
    return HolidayAlerts(inside, later, rate * spans[0], rate * spans[1], c_inside, c_later)


def _count(
    bt: Backtest, openings: dict[str, list[float]], holidays: list[tuple[float, float]]
) -> tuple[int, int, int, list[float], float]:
    """Non-churner openings after warm-up in the windows, the 14 days after, elsewhere; the spans' days."""

    def clip(a: float, b: float) -> tuple[float, float]:
        return max(a, bt.warm_day), min(b, bt.end_day)

    windows = [clip(start, end + 7) for start, end in holidays]
    after = [clip(end + 7, end + 21) for _, end in holidays]
    spans = [sum(max(0.0, b - a) for a, b in ws) for ws in (windows, after)]
    inside = later = outside = 0
    for account, times in openings.items():
        if account in bt.churn_day:
            continue
        for t in times:
            if t < bt.warm_day:
                continue
            if any(a <= t < b for a, b in windows):
                inside += 1
            elif any(a <= t < b for a, b in after):
                later += 1
            else:
                outside += 1
    return inside, later, outside, spans, bt.end_day - bt.warm_day - sum(spans)
