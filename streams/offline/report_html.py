"""``churnwatch replay --html``: one self-contained HTML file (inline CSS and SVG, nothing fetched later).

Sections: headline numbers, the comparison with simple baselines (the report's ``backtest`` section, when
the replay ran it), a lead-time histogram, the calibration curve, alerts and cancellations per week, the
at-risk list ranked by revenue at risk (risk x MRR) with reasons, and timelines
(:func:`streams.offline.explain.build_timeline`) for the top flagged accounts and a sample of missed churners.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

from detectors.alerts import AlertKind, Transition
from detectors.windows import DAY_MS
from streams.offline import report_charts as charts
from streams.offline.baselines import BASELINE_LABELS
from streams.offline.explain import alerts_by_account, build_timeline
from streams.offline.replay import ReplayResult
from streams.offline.replay_outputs import score_rows

AT_RISK_ROWS = 200
TOP_TIMELINES = 8
MISSED_TIMELINES = 4
LOOKBACK_DAYS = 60
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1150px;
color:#222}
h1{margin-bottom:0}.sub{color:#666;margin-top:4px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:22px}.card span{color:#555;font-size:12px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.row{display:flex;flex-wrap:wrap;gap:16px}.chart{max-width:100%;height:auto}
.sev-critical{color:#b00020;font-weight:bold}.sev-high{color:#c44e52}.sev-medium{color:#dd8452}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _pct(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def churner_leads(result: ReplayResult, body: dict[str, Any]) -> tuple[list[float], list[str], list[str]]:
    """Lead days of flagged churners (first opening within the lookback), those churners, and those missed."""
    warm_ms = _usage_start_ms(result) + body.get("warmup_days", 21) * DAY_MS
    opened: dict[str, list[int]] = {}
    for alert in result.alerts:
        if alert.kind is AlertKind.ACCOUNT_RISK and alert.transition is Transition.OPENED:
            opened.setdefault(alert.account_id, []).append(alert.event_ts_ms)
    leads: list[float] = []
    caught: list[str] = []
    missed: list[str] = []
    for account, cancel_ms in result.cancellations.items():
        if cancel_ms < warm_ms:
            continue
        before = [t for t in opened.get(account, []) if cancel_ms - LOOKBACK_DAYS * DAY_MS <= t < cancel_ms]
        if before:
            leads.append((cancel_ms - min(before)) / DAY_MS)
            caught.append(account)
        else:
            missed.append(account)
    return leads, caught, missed


def _usage_start_ms(result: ReplayResult) -> int:
    days = [s.first_active_day for s in result.states.values() if s.first_active_day is not None]
    return min(days) * DAY_MS if days else 0


def _cards(body: dict[str, Any]) -> str:
    lead = body.get("lead_days") or {}
    opened = sum(v for k, v in body.get("alerts", {}).items() if k == "account_risk:opened")
    cards = [
        (f"{body.get('accounts', 0):,}", "accounts"),
        (f"{body.get('events', 0):,}", f"events (clock at end {body.get('clock') or '-'})"),
        (f"{opened:,}", "risk episodes opened"),
    ]
    if "churners" in body:
        cards.append(
            (f"{body['churners_flagged']} / {body['churners']}", "churners flagged before cancelling")
        )
        cards.append((f"{lead.get('median') or '-'} d", "median lead time (days before the cancel)"))
    if body.get("survivor_alerts_per_30_days") is not None:
        cards.append(
            (_pct(body["survivor_alerts_per_30_days"], 2), "alerts per non-churner account per 30 days")
        )
    if body.get("precision") is not None:
        cards.append(
            (
                _pct(body["precision"]),
                f"precision: alerts followed by a cancel ({body.get('precision_alerts_judged', 0)} judged)",
            )
        )
    calibration = body.get("calibration")
    if calibration:
        cards.append(
            (f"{calibration['brier']:.4f}", f"Brier score (base rate {calibration['brier_base_rate']:.4f})")
        )
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in cards)
        + "</div>"
    )


def _baselines(section: dict[str, Any] | None) -> str:
    if not section:
        return (
            "<p>No baseline comparison in this run (it needs usage data; it is off with --no-baselines).</p>"
        )
    if not section.get("as_of"):
        days = section["horizon_days"]
        return f"<p>No as-of point with a full {days}-day horizon after warm-up: no comparison.</p>"
    head = [
        "score",
        "AUC ± SE",
        "cases (churners)",
        "churners flagged",
        "median lead (days)",
        "alerts per non-churner per 30 days",
        "precision (alerts judged)",
    ]
    rows = []
    for name, row in section["scorers"].items():
        label = "churnwatch risk" if name == "churnwatch" else BASELINE_LABELS.get(name, name)
        auc = "-" if row.get("auc") is None else f"{row['auc']:.3f} ± {row['auc_se']:.3f}"
        cells = [
            label,
            auc,
            f"{row['cases']:,} ({row['positives']:,})",
            _pct(row.get("churners_flagged_share")),
            "-" if row.get("lead_days_median") is None else f"{row['lead_days_median']:.1f}",
            _pct(row.get("nonchurner_alerts_per_30_days"), 2),
            f"{_pct(row.get('precision_judged'))} ({row.get('alerts_judged', 0)})",
        ]
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    when = ", ".join(t[:10] for t in section["as_of"])
    return (
        f"<p>Outcome: {_e(section['outcome'])} within {section['horizon_days']} days, as of {_e(when)}. "
        "Baselines alert at the threshold that gives churnwatch's alert rate on non-churners.</p>"
        f'<table id="baselines"><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>{"".join(rows)}</table>'
        f"<p><b>{_e(section.get('verdict', ''))}</b></p>"
    )


def _weekly(result: ReplayResult) -> str:
    monday = 4  # epoch day 0 was a Thursday: (day - 4) // 7 counts Monday-based weeks
    alerts = Counter(
        (a.event_ts_ms // DAY_MS - monday) // 7
        for a in result.alerts
        if a.kind is AlertKind.ACCOUNT_RISK and a.transition is Transition.OPENED
    )
    churn = Counter((ms // DAY_MS - monday) // 7 for ms in result.cancellations.values())
    start_day = _usage_start_ms(result) // DAY_MS
    weeks = sorted(w for w in set(alerts) | set(churn) if w * 7 + monday >= start_day - 7)
    return charts.weekly(
        [w * 7 + monday + 3.5 for w in weeks],
        [alerts[w] for w in weeks],
        [churn[w] for w in weeks],
        title="risk alerts opened and cancellations per week",
    )


def _at_risk(result: ReplayResult) -> str:
    listed = [r for r in score_rows(result) if r["severity"]]
    rows = listed[:AT_RISK_ROWS]
    body = "".join(
        f'<tr><td>{i}</td><td>{_e(r["account_id"])}</td><td class="n">{r["revenue_at_risk"]:,.2f}</td>'
        f'<td class="n">{r["risk"]:.0%}</td><td class="sev-{_e(r["severity"])}">{_e(r["severity"])}</td>'
        f'<td>{_e(r["plan"])}</td><td class="n">{_e(r["mrr"])}</td><td>{_e(r["reasons"])}</td></tr>'
        for i, r in enumerate(rows, 1)
    )
    return (
        f"<p>{len(listed):,} accounts with an open risk episode at the end of the file"
        f"{f' (the first {AT_RISK_ROWS} shown)' if len(listed) > AT_RISK_ROWS else ''}, "
        "highest revenue at risk (risk &times; MRR) first.</p>"
        '<table id="at-risk"><tr><th>#</th><th>account</th><th>revenue at risk</th><th>risk</th>'
        f"<th>severity</th><th>plan</th><th>MRR</th><th>reasons</th></tr>{body}</table>"
    )


def _by_mrr(result: ReplayResult, accounts: list[str]) -> list[str]:
    return sorted(accounts, key=lambda a: (-(result.windows[a].mrr or 0.0), a))


def _timelines(result: ReplayResult, caught: list[str], missed: list[str]) -> str:
    index = alerts_by_account(result.alerts)
    flagged = [r["account_id"] for r in score_rows(result) if r["severity"]][:TOP_TIMELINES]
    flagged += _by_mrr(result, caught)[: TOP_TIMELINES - len(flagged)]
    missed_ranked = _by_mrr(result, missed)[:MISSED_TIMELINES]
    parts = [
        '<h2 id="top-flagged">Top flagged accounts</h2><p>Open episodes by revenue at risk, then the '
        "churners caught before cancelling with the highest MRR.</p>"
    ]
    if result.activity is None:
        parts.append("<p>Daily activity was not recorded in this run: no timelines.</p>")
        return "".join(parts)
    for account in flagged:
        story = build_timeline(result, account, index.get(account, []))
        parts.append(charts.timeline(story, title=f"{account}: activity vs its usual range, risk, alerts"))
    parts.append('<h2 id="missed">Missed churners (sample: highest MRR)</h2>')
    if not missed_ranked:
        parts.append("<p>No churner was missed.</p>")
    for account in missed_ranked:
        story = build_timeline(result, account, index.get(account, []))
        parts.append(
            charts.timeline(story, title=f"{account} (missed): activity vs its usual range, risk, cancel")
        )
    return "".join(parts)


def render(result: ReplayResult, body: dict[str, Any]) -> str:
    """The whole page as text."""
    leads, caught, missed = churner_leads(result, body)
    calibration = body.get("calibration") or {}
    charts_row = charts.histogram(
        leads, title="lead time: days from the first alert to the cancel", xlabel="days before cancelling"
    ) + charts.calibration(
        calibration.get("reliability", []),
        title=f"calibration ({calibration.get('horizon_days', '-')}-day horizon)",
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>churnwatch backtest report</title>'
        f"<style>{CSS}</style></head><body><h1>churnwatch backtest report</h1>"
        f'<p class="sub">{body.get("events", 0):,} events, {body.get("accounts", 0):,} accounts, '
        f"clock at end {_e(body.get('clock'))}, warm-up {body.get('warmup_days', '-')} days left out.</p>"
        f'{_cards(body)}<h2 id="comparison">Against simple baselines</h2>{_baselines(body.get("backtest"))}'
        f'<h2 id="charts">Lead time and calibration</h2><div class="row">{charts_row}</div>'
        f'<h2 id="weekly">Alerts and churn per week</h2>{_weekly(result)}'
        f'<h2 id="at-risk-list">At-risk accounts</h2>{_at_risk(result)}'
        f"{_timelines(result, caught, missed)}"
        '<p class="sub">Usual range: the account\'s trailing 28 days, mean ± 1 sd (from day 7). '
        "Risk: churn probability within the horizon, weekly points and the final one.</p></body></html>"
    )


def write_html_report(result: ReplayResult, body: dict[str, Any], path: Path) -> int:
    """Write the page; returns its size in bytes."""
    data = render(result, body).encode()
    Path(path).write_bytes(data)
    return len(data)
