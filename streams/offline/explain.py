"""One account's story from a replay: activity against its usual range, risk over time, alerts, reasons.

:func:`account_story` reads a :class:`~streams.offline.replay.ReplayResult` replayed with
``record_activity=True`` (and, for risk over time, weekly ``snapshot_ms``); the HTML report draws the same
:class:`Timeline` for its top flagged accounts and missed churners, and ``churnwatch explain`` prints it
(:func:`print_story`) or writes it as JSON (:func:`story_dict`) or HTML.

The *usual range* is the account's own trailing 28 days of daily activity, mean ± 1 standard deviation
(shown from the 7th day of history): a picture of what the detectors compare against, not their exact
internal baseline (which is weekday-aware and robust to outliers; see docs/detection.md).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from detectors.alerts import Alert, AlertKind
from detectors.windows import DAY_MS, USAGE, AccountWindow
from streams.events import parse_ts
from streams.offline.replay import ReplayResult, rfc3339
from streams.offline.report_charts import Timeline

BAND_DAYS = 28
BAND_MIN_DAYS = 7
SPARK = "▁▂▃▄▅▆▇█"


@dataclass(slots=True)
class Episode:
    episode_id: str
    transitions: list[tuple[str, str, str]] = field(default_factory=list)  # (time, transition, severity)


@dataclass(slots=True)
class Story:
    account_id: str
    as_of: str | None
    risk: float | None  # None live when the account is in no open episode (the worker keeps no other risk)
    severity: str | None
    reasons: tuple[str, ...]
    flags: tuple[str, ...]
    plan: str | None
    mrr: float | None
    cancelled: str | None
    timeline: Timeline
    episodes: list[Episode]

    @property
    def revenue_at_risk(self) -> float:
        return (self.risk or 0.0) * (self.mrr or 0.0)


def alerts_by_account(alerts: list[Alert]) -> dict[str, list[Alert]]:
    index: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        if alert.kind is AlertKind.ACCOUNT_RISK:
            index[alert.account_id].append(alert)
    return index


def _band(counts: list[float]) -> tuple[list[float | None], list[float | None], list[float | None]]:
    low: list[float | None] = []
    mid: list[float | None] = []
    high: list[float | None] = []
    for i in range(len(counts)):
        past = counts[max(0, i - BAND_DAYS) : i]
        if len(past) < BAND_MIN_DAYS:
            low.append(None)
            mid.append(None)
            high.append(None)
            continue
        mean = statistics.fmean(past)
        sd = statistics.pstdev(past, mean)
        low.append(max(0.0, mean - sd))
        mid.append(mean)
        high.append(mean + sd)
    return low, mid, high


def build_timeline(result: ReplayResult, account: str, alerts: list[Alert] | None = None) -> Timeline:
    """The account's days from its first activity (or first event) to the replay's clock."""
    per_day = (result.activity or {}).get(account, {})
    end = (result.clock_ms or 0) // DAY_MS
    first = min(per_day) if per_day else end
    cancel_ms = result.cancellations.get(account)
    days = list(range(first, end + 1))
    counts = [float(per_day.get(day, 0)) for day in days]
    low, mid, high = _band(counts)
    risk = sorted(
        (ms / DAY_MS, snapshot[account]) for ms, snapshot in result.snapshots.items() if account in snapshot
    )
    final = result.assessments.get(account)
    if final is not None and result.clock_ms is not None:
        risk.append((result.clock_ms / DAY_MS, final.risk))
    chosen = alerts if alerts is not None else alerts_by_account(result.alerts).get(account, [])
    return Timeline(
        account_id=account,
        days=days,
        counts=counts,
        band_low=low,
        band_mid=mid,
        band_high=high,
        risk=risk,
        alerts=[(a.event_ts_ms / DAY_MS, a.transition.value, a.severity.value) for a in chosen],
        cancel_day=cancel_ms / DAY_MS if cancel_ms is not None else None,
    )


def account_story(result: ReplayResult, account: str) -> Story | None:
    """The account's story, or None when the replay never saw it."""
    window = result.windows.get(account)
    if window is None:
        return None
    assessment = result.assessments.get(account)
    alerts = alerts_by_account(result.alerts).get(account, [])
    episodes: dict[str, Episode] = {}
    for alert in alerts:
        episode = episodes.setdefault(alert.episode_id, Episode(alert.episode_id))
        episode.transitions.append((rfc3339(alert.event_ts_ms), alert.transition.value, alert.severity.value))
    cancel_ms = result.cancellations.get(account)
    return Story(
        account_id=account,
        as_of=rfc3339(result.clock_ms) if result.clock_ms is not None else None,
        risk=assessment.risk if assessment else 0.0,
        severity=assessment.severity.value if assessment and assessment.severity else None,
        reasons=assessment.reasons if assessment else (),
        flags=tuple(sorted(assessment.flags)) if assessment else (),
        plan=window.plan,
        mrr=window.mrr,
        cancelled=rfc3339(cancel_ms) if cancel_ms is not None else None,
        timeline=build_timeline(result, account, alerts),
        episodes=list(episodes.values()),
    )


def story_dict(story: Story) -> dict[str, Any]:
    t = story.timeline
    return {
        "account_id": story.account_id,
        "as_of": story.as_of,
        "risk": round(story.risk, 4) if story.risk is not None else None,
        "severity": story.severity,
        "revenue_at_risk": round(story.revenue_at_risk, 2),
        "plan": story.plan,
        "mrr": story.mrr,
        "reasons": list(story.reasons),
        "flags": list(story.flags),
        "cancelled": story.cancelled,
        "episodes": [
            {
                "episode_id": e.episode_id,
                "transitions": [
                    dict(zip(("ts", "transition", "severity"), x, strict=True)) for x in e.transitions
                ],
            }
            for e in story.episodes
        ],
        "daily": [
            {
                "day": rfc3339(d * DAY_MS)[:10],
                "activity": c,
                "usual_low": lo,
                "usual_mean": m,
                "usual_high": hi,
            }
            for d, c, lo, m, hi in zip(t.days, t.counts, t.band_low, t.band_mid, t.band_high, strict=True)
        ],
        "risk_over_time": [{"ts": rfc3339(int(day * DAY_MS)), "risk": round(r, 4)} for day, r in t.risk],
    }


def sparkline(values: list[float | None], top: float) -> str:
    """One character per value on a 0..top scale; a blank where there is no value.

    >>> sparkline([0, 5, 10, None], 10)
    '▁▅█ '
    """
    steps = len(SPARK) - 1
    return "".join(
        " " if v is None else SPARK[min(steps, int(v / top * steps + 0.5)) if top > 0 else 0] for v in values
    )


def print_story(console: Console, story: Story, days: int = 56) -> None:
    """A compact terminal view: sparkline of activity vs the usual level, risk, reasons, episodes."""
    t = story.timeline
    counts, mids = t.counts[-days:], t.band_mid[-days:]
    top = max([*counts, *(m for m in mids if m is not None), 0.0])
    lows = t.band_low[-days:]
    below = "".join("▼" if lo is not None and c < lo else " " for c, lo in zip(counts, lows, strict=True))
    marks = [" "] * len(counts)
    first_day = t.days[-len(counts)] if counts else 0
    for day, transition, _ in t.alerts:
        if 0 <= int(day) - first_day < len(marks):
            marks[int(day) - first_day] = transition[0].upper()
    if t.cancel_day is not None and 0 <= int(t.cancel_day) - first_day < len(marks):
        marks[int(t.cancel_day) - first_day] = "X"
    start = rfc3339(first_day * DAY_MS)[:10] if counts else "-"
    console.print(
        f"[bold]{story.account_id}[/bold]  plan {story.plan or '-'}, MRR {story.mrr or '-'}, "
        f"as of {story.as_of}"
    )
    console.print(
        f"last {len(counts)} days from {start} (one character per day, scale 0-{top:.0f} events/day)"
    )
    console.print(f"activity   [blue]{sparkline(list(counts), top)}[/blue]")
    console.print(f"usual mean [cyan]{sparkline(mids, top)}[/cyan]")
    console.print(f"below      [red]{below}[/red]  (▼ under the usual range)")
    console.print(
        f"alerts     [yellow]{''.join(marks)}[/yellow]  (O opened, E escalated, R resolved, X cancelled)"
    )
    severity = story.severity or "none (no open episode)"
    risk = "not listed" if story.risk is None else f"{story.risk:.0%}"
    console.print(
        f"risk [bold]{risk}[/bold] (probability of churning within the horizon), "
        f"severity {severity}, "
        f"revenue at risk {story.revenue_at_risk:,.2f}"
    )
    if story.cancelled:
        console.print(f"[bold]cancelled at {story.cancelled}[/bold]")
    table = Table("active reasons (with the numbers behind them)", show_edge=False)
    for reason in story.reasons or ("none",):
        table.add_row(reason)
    console.print(table)
    if story.flags:
        console.print("detector flags: " + ", ".join(story.flags))
    episodes = Table("episode", "time", "transition", "severity", title="episode history", show_edge=False)
    for episode in story.episodes:
        for ts, transition, sev in episode.transitions:
            episodes.add_row(episode.episode_id, ts, transition, sev)
    console.print(episodes if story.episodes else "episode history: no alert for this account")


def live_story(
    account: str,
    window: AccountWindow,
    listed: tuple[float, str, tuple[str, ...], str | None, int | None] | None,
) -> Story:
    """A worker's view of one account: its window's days (retention-bounded) and, when it is listed at risk,
    ``listed`` = (risk, severity, reasons, episode id, episode start ms)."""
    watermark = window.watermark_ms or 0
    end = watermark // DAY_MS
    first = min(window.days, default=end)
    days = list(range(first, end + 1))
    counts = [float(window.bucket(day)[USAGE]) for day in days]
    low, mid, high = _band(counts)
    risk, severity, reasons, episode_id, since_ms = listed or (None, None, (), None, None)
    timeline = Timeline(account, days, counts, low, mid, high)
    episodes = []
    if risk is not None:
        timeline.risk = [(watermark / DAY_MS, risk)]
    if episode_id is not None and since_ms is not None:
        timeline.alerts = [(since_ms / DAY_MS, "opened", severity or "")]
        episodes = [Episode(episode_id, [(rfc3339(since_ms), "opened", severity or "")])]
    canceled = window.canceled_ts_ms
    return Story(
        account_id=account,
        as_of=rfc3339(watermark) if watermark else None,
        risk=risk,
        severity=severity,
        reasons=reasons,
        flags=(),
        plan=window.plan,
        mrr=window.mrr,
        cancelled=rfc3339(canceled) if canceled is not None else None,
        timeline=timeline,
        episodes=episodes,
    )


def story_from_dict(body: dict[str, Any]) -> Story:
    """The :class:`Story` of a :func:`story_dict` (what a worker's account endpoint returns)."""
    daily = body.get("daily", [])
    days = [int(parse_day(d["day"]) // DAY_MS) for d in daily]
    timeline = Timeline(
        body["account_id"],
        days,
        [float(d["activity"]) for d in daily],
        [d["usual_low"] for d in daily],
        [d["usual_mean"] for d in daily],
        [d["usual_high"] for d in daily],
        risk=[(parse_day(r["ts"]) / DAY_MS, r["risk"]) for r in body.get("risk_over_time", [])],
    )
    episodes = [
        Episode(e["episode_id"], [(t["ts"], t["transition"], t["severity"]) for t in e["transitions"]])
        for e in body.get("episodes", [])
    ]
    for episode in episodes:
        for ts, transition, severity in episode.transitions:
            timeline.alerts.append((parse_day(ts) / DAY_MS, transition, severity))
    return Story(
        account_id=body["account_id"],
        as_of=body.get("as_of"),
        risk=body.get("risk"),
        severity=body.get("severity"),
        reasons=tuple(body.get("reasons", ())),
        flags=tuple(body.get("flags", ())),
        plan=body.get("plan"),
        mrr=body.get("mrr"),
        cancelled=body.get("cancelled"),
        timeline=timeline,
        episodes=episodes,
    )


def parse_day(text: str) -> int:
    """Epoch ms of an RFC 3339 time or a ``YYYY-MM-DD`` day (UTC)."""
    return parse_ts(text if "T" in text else f"{text}T00:00:00Z", min_ts_ms=None)
