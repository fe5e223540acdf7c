"""Static SVG charts for the HTML report and ``churnwatch explain`` (matplotlib's SVG backend, no pyplot).

Each function returns the ``<svg>`` element as text, ready to inline in a page (text stays text: the SVG
font type is ``none``, so labels are searchable and small). Times on x axes are epoch days, which is
matplotlib's own date unit (days since 1970-01-01). matplotlib is imported when a chart is drawn, not with
the module (it costs about a second of every CLI start otherwise).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.ticker import Formatter

ACTIVITY = "#4c72b0"
BAND = "#a6c8ff"
RISK = "#c44e52"
CANCEL = "#222222"
ALERT_COLORS = {"opened": "#dd8452", "escalated": "#c44e52", "resolved": "#55a868"}
NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}  # smaller, and no URLs
RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "churnwatch",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass(slots=True)
class Timeline:
    """One account's story on a day axis (epoch days): activity, its baseline band, risk, alerts, cancel."""

    account_id: str
    days: list[int]
    counts: list[float]
    band_low: list[float | None]
    band_mid: list[float | None]
    band_high: list[float | None]
    risk: list[tuple[float, float]] = field(default_factory=list)  # (epoch day, risk)
    alerts: list[tuple[float, str, str]] = field(default_factory=list)  # (epoch day, transition, severity)
    cancel_day: float | None = None


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    import matplotlib as mpl
    from matplotlib.figure import Figure

    with mpl.rc_context(RC):  # type: ignore[arg-type]
        yield Figure(figsize=(width, height), dpi=72, layout="constrained")


def _dates(fmt: str) -> Formatter:
    import matplotlib.dates as mdates

    return mdates.DateFormatter(fmt)


def svg(fig: Figure, title: str) -> str:
    """The figure as an inline ``<svg>`` element with an accessible title."""
    import matplotlib as mpl

    buffer = io.StringIO()
    with mpl.rc_context(RC):  # type: ignore[arg-type]
        fig.savefig(buffer, format="svg", metadata=NO_METADATA)
    text = buffer.getvalue()
    start = text.index("<svg")
    body = text[start:]
    return body.replace("<svg ", f'<svg role="img" aria-label="{_attr(title)}" class="chart" ', 1)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def histogram(values: Sequence[float], *, title: str, xlabel: str, bins: int = 15) -> str:
    with _figure(5.2, 2.6) as fig:
        ax = fig.add_subplot()
        if values:
            ax.hist(values, bins=bins, color=ACTIVITY, edgecolor="white")
        else:
            ax.text(0.5, 0.5, "no churner was flagged ahead", ha="center", transform=ax.transAxes)
        ax.set(title=title, xlabel=xlabel, ylabel="churners")
        return svg(fig, title)


def calibration(rows: Sequence[dict[str, Any]], *, title: str) -> str:
    with _figure(5.2, 2.6) as fig:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", label="perfect calibration")
        if rows:
            xs = [row["mean_predicted"] for row in rows]
            ys = [row["observed_rate"] for row in rows]
            ax.plot(xs, ys, marker="o", color=RISK, label="churnwatch risk")
            top = max(max(xs), max(ys)) * 1.1 or 1.0
            ax.set(xlim=(0, min(1.0, top)), ylim=(0, min(1.0, top)))
        ax.set(title=title, xlabel="mean predicted risk (decile)", ylabel="observed churn rate")
        ax.legend(loc="upper left", frameon=False)
        return svg(fig, title)


def weekly(weeks: Sequence[float], alerts: Sequence[int], churn: Sequence[int], *, title: str) -> str:
    with _figure(10.5, 2.6) as fig:
        ax = fig.add_subplot()
        ax.bar([w - 1.6 for w in weeks], alerts, width=3.2, color="#dd8452", label="alerts opened")
        ax.bar([w + 1.6 for w in weeks], churn, width=3.2, color=CANCEL, label="cancellations")
        ax.xaxis.set_major_formatter(_dates("%Y-%m-%d"))
        ax.set(title=title, ylabel="per week (Mon-Sun)")
        ax.legend(loc="upper left", frameon=False)
        return svg(fig, title)


def timeline(story: Timeline, *, title: str, width: float = 10.5, height: float = 2.2) -> str:
    """Daily activity against its trailing baseline band, risk (right axis), alerts and the cancel."""
    with _figure(width, height) as fig:
        ax = fig.add_subplot()
        ax.bar(story.days, story.counts, width=1.0, color=ACTIVITY, alpha=0.75, label="daily activity")
        band = [
            (d, lo, hi)
            for d, lo, hi in zip(story.days, story.band_low, story.band_high, strict=True)
            if lo is not None
        ]
        if band:
            ax.fill_between(
                [b[0] for b in band],
                [b[1] for b in band],
                [b[2] for b in band],  # type: ignore[arg-type]
                color=BAND,
                alpha=0.45,
                step="mid",
                label="usual range (trailing 28 d, ±1 sd)",
            )
        for day, transition, severity in story.alerts:
            ax.axvline(day, color=ALERT_COLORS.get(transition, RISK), linewidth=1.4)
            ax.annotate(
                f"{transition} {severity}".strip(),
                (day, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color=ALERT_COLORS.get(transition, RISK),
            )
        if story.cancel_day is not None:
            ax.axvline(story.cancel_day, color=CANCEL, linestyle="--", linewidth=1.4, label="cancelled")
        ax.set_ylabel("events/day")
        ax.xaxis.set_major_formatter(_dates("%b %d"))
        ax.set_title(title, loc="left")
        right = ax.twinx()
        right.spines["right"].set_visible(True)
        if story.risk:
            right.plot(
                [r[0] for r in story.risk], [r[1] for r in story.risk], color=RISK, marker=".", label="risk"
            )
        right.set_ylim(0, 1)
        right.set_ylabel("risk", color=RISK)
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left", frameon=False, fontsize=7, ncols=4)
        return svg(fig, title)
