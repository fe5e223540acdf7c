"""What ``churnwatch demo`` shows: a live view on a terminal, plain progress lines and a summary otherwise."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table

from streams.settings import Settings


@dataclass
class DemoState:
    """The demo's latest knowledge: what it produced and what the worker answered (and when)."""

    produced: int = 0
    producer_done: bool = False
    simulated_ts: str = "-"
    stats: dict[str, Any] = field(default_factory=dict)
    rates: list[tuple[float, int]] = field(default_factory=list)
    at_risk: dict[str, Any] = field(default_factory=dict)
    slack_messages: list[dict[str, Any]] = field(default_factory=list)
    jsonl_alerts: int = 0
    answered_at: float | None = None  # monotonic time of the worker's last answer

    @property
    def folded(self) -> int:
        return int(self.stats.get("events_folded", 0))

    def events_per_second(self) -> float:
        if len(self.rates) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.rates[0], self.rates[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def record_answer(self, now: float) -> None:
        self.answered_at = now
        self.rates.append((now, self.folded))
        self.rates = [(t, n) for t, n in self.rates if now - t <= 5.0]

    def worker_status(self, now: float) -> str:
        """How fresh the worker's numbers are: the view never passes old numbers off as current."""
        if self.answered_at is None:
            return "starting (no answer yet)"
        silent = now - self.answered_at
        return "answering" if silent < 3 else f"NOT ANSWERING for {silent:,.0f} s (numbers below are older)"


def progress_line(state: DemoState, elapsed: float, now: float) -> str:
    """One plain line for logs and CI (stdout not a terminal)."""
    stats = state.stats
    return (
        f"demo {elapsed:5.0f} s | clock {state.simulated_ts[:10]} | produced {state.produced:,}"
        f"{' (done)' if state.producer_done else ''} | folded {state.folded:,} "
        f"({state.events_per_second():,.0f}/s) | accounts {stats.get('accounts', 0):,} | "
        f"at risk {state.at_risk.get('total', 0):,} | alerts delivered {state.jsonl_alerts:,} | "
        f"dead letters {stats.get('deadletters', 0):,} | worker {state.worker_status(now)}"
    )


def summary_lines(state: DemoState) -> list[str]:
    """The final summary: what was produced, folded, flagged and delivered, then the top accounts at risk
    with their two main reasons (a silence is often the first, and says less than the decline behind it).

    >>> state = DemoState(produced=10, at_risk={"total": 1, "accounts": [{"account_id": "acme",
    ...     "severity": "high", "risk": 0.8, "reasons": ["silent for 3 days", "usage down 70%", "x"]}]})
    >>> summary_lines(state)[1]
    '  at risk: acme high 80% - silent for 3 days; usage down 70%'
    """
    stats = state.stats
    lines = [
        f"demo finished: {state.produced:,} events produced, {state.folded:,} folded, "
        f"{stats.get('accounts', 0):,} accounts, {stats.get('deadletters', 0):,} dead letters, "
        f"{state.at_risk.get('total', 0):,} accounts at risk, {state.jsonl_alerts:,} alerts delivered "
        f"(JSONL sink), {len(state.slack_messages):,} Slack messages"
    ]
    for row in state.at_risk.get("accounts", [])[:5]:
        reasons = "; ".join((row["reasons"] or [])[:2]) or "-"
        lines.append(f"  at risk: {row['account_id']} {row['severity']} {row['risk']:.0%} - {reasons}")
    return lines


def render_at_risk(state: DemoState) -> Table:
    table = Table(
        title=f"accounts at risk ({state.at_risk.get('total', 0)}), by revenue at risk", min_width=60
    )
    for column in ("account", "severity", "risk", "plan", "MRR", "top reason"):
        table.add_column(column)
    for row in state.at_risk.get("accounts", []):
        table.add_row(
            row["account_id"],
            row["severity"],
            f"{row['risk']:.0%}",
            row["plan"] or "-",
            f"{row['mrr'] or 0:,.0f}",
            (row["reasons"] or ["-"])[0][:60],
        )
    return table


def render(state: DemoState, settings: Settings, started: float) -> Group:
    """The terminal view."""
    now = time.monotonic()
    table = Table(title="churnwatch demo", show_header=False, min_width=60)
    stats = state.stats
    table.add_row("Kafka", settings.kafka.bootstrap)
    table.add_row("running for", f"{now - started:,.0f} s")
    table.add_row("worker", state.worker_status(now))
    table.add_row("simulated clock", state.simulated_ts)
    table.add_row("events produced", f"{state.produced:,}" + (" (all sent)" if state.producer_done else ""))
    table.add_row("events folded by the worker", f"{state.folded:,}")
    table.add_row("events/s (worker, last 5 s)", f"{state.events_per_second():,.0f}")
    table.add_row("accounts tracked", f"{stats.get('accounts', 0):,}")
    table.add_row("dead letters", f"{stats.get('deadletters', 0):,}")
    table.add_row("Slack messages received (local receiver)", f"{len(state.slack_messages):,}")
    table.add_row("alerts delivered (JSONL sink)", f"{state.jsonl_alerts:,}")
    if state.slack_messages:
        table.add_row("last Slack message", str(state.slack_messages[-1].get("text", ""))[:70])
    table.add_row(
        "worker API",
        f"http://{settings.worker.web_host}:{settings.worker.web_port}  (/metrics, /churnwatch/stats/)",
    )
    return Group(
        table, render_at_risk(state), "[dim]Ctrl-C stops the demo, the worker and the local broker.[/dim]"
    )
