"""Slack Block Kit rendering of alerts: one message per alert, a digest for many, and the answer buttons.

Slack limits honoured (https://api.slack.com/reference/block-kit): header ``plain_text`` <= 150 chars,
section/context ``text`` <= 3000, section field <= 2000 and <= 10 fields, <= 50 blocks per message; a button's
``text`` <= 75, its ``value`` <= 2000, an overflow menu 2-5 options with ``value`` <= 150, ``action_id`` and
``block_id`` <= 255.
Text that Slack parses as mrkdwn has ``&``, ``<`` and ``>`` escaped, so an account name or a reason such as
``<!channel>`` cannot ping anyone or forge a link. :class:`streams.sinks.slack.SlackSink` sends the messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from detectors.alerts import Alert, AlertKind, Severity, Transition
from streams.feedback import FeedbackLabel

__all__ = [
    "FEEDBACK_ACTION",
    "FEEDBACK_BLOCK",
    "FIELD_MAX",
    "HEADER_MAX",
    "MAX_BLOCKS",
    "TEXT_MAX",
    "escape_mrkdwn",
    "feedback_actions",
    "feedback_overflow",
    "render_alert",
    "render_digest",
    "truncate",
]

HEADER_MAX = 150
TEXT_MAX = 3000
FIELD_MAX = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
# In a digest each alert shows only its top reason, clipped, to keep the message readable.
DIGEST_REASON_MAX = 300
BUTTON_VALUE_MAX = 2000
OPTION_VALUE_MAX = 150

# Answer buttons (issue #18): action_id "churnwatch.feedback.<label>", value the alert id (idempotency key).
# In a digest, each alert's section gets an overflow menu instead: option value "<label>|<alert id>".
FEEDBACK_ACTION = "churnwatch.feedback"
FEEDBACK_BLOCK = "churnwatch.feedback"
BUTTONS = (
    (FeedbackLabel.REAL, "Real risk", "danger"),
    (FeedbackLabel.FALSE_ALARM, "False alarm", None),
    (FeedbackLabel.HANDLED, "Handled", "primary"),
    (FeedbackLabel.SNOOZE, "Snooze 14 d", None),
)

SEVERITY_EMOJI = {
    Severity.LOW: "🔵",
    Severity.MEDIUM: "🟡",
    Severity.HIGH: "🟠",
    Severity.CRITICAL: "🔴",
}
_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}
RESOLVED_EMOJI = "✅"
INCIDENT_EMOJI = "🚨"


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters.

    Examples
    --------
    >>> escape_mrkdwn("MRR <$500 & falling> <!channel>")
    'MRR &lt;$500 &amp; falling&gt; &lt;!channel&gt;'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Clip ``text`` to at most ``limit`` chars, ending in an ellipsis, never splitting an ``&..;`` escape.

    Examples
    --------
    >>> truncate("short", 10)
    'short'
    >>> truncate("abcdefghij", 5)
    'abcd…'
    >>> truncate("ab &amp; cd", 6)  # would cut "&am": drop the partial escape instead
    'ab …'
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp < len("&amp;"):
        cut = cut[:amp]
    return cut + "…"


def _mrkdwn(text: str, limit: int = TEXT_MAX) -> dict[str, str]:
    return {"type": "mrkdwn", "text": truncate(text, limit)}


def _header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(text, HEADER_MAX), "emoji": True},
    }


def _fit(prefix: str, name: str, suffix: str, limit: int = HEADER_MAX) -> str:
    """Header text with ``name`` clipped so the prefix and suffix (severity, kind) always survive."""
    room = max(1, limit - len(prefix) - len(suffix))
    return prefix + truncate(name, room) + suffix


def _slack_time(ts_ms: int) -> str:
    """A ``<!date>`` token Slack shows in the reader's timezone, with a UTC fallback."""
    secs = ts_ms // 1000
    utc = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{secs}^{{date_short_pretty}} {{time_secs}}|{utc}>"


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _headline(alert: Alert) -> str:
    """Plain header text for one alert (not mrkdwn; Slack renders plain_text literally)."""
    severity = alert.severity.value
    if alert.kind is AlertKind.PIPELINE_INCIDENT:
        if alert.transition is Transition.RESOLVED:
            return _fit(f"{RESOLVED_EMOJI} Pipeline incident resolved: ", alert.account_id, "")
        return _fit(f"{INCIDENT_EMOJI} Pipeline incident — {severity}: ", alert.account_id, "")
    if alert.transition is Transition.RESOLVED:
        return _fit(f"{RESOLVED_EMOJI} ", alert.account_id, " — churn risk resolved")
    return _fit(f"{SEVERITY_EMOJI[alert.severity]} ", alert.account_id, f" — {severity} churn risk")


def _fields(alert: Alert) -> list[dict[str, str]]:
    pairs: list[tuple[str, str]]
    if alert.kind is AlertKind.PIPELINE_INCIDENT:
        pairs = [
            ("Severity", alert.severity.value),
            ("Transition", alert.transition.value),
            ("Episode", alert.episode_id),
        ]
        # Incidents carry their specifics (lag, topic, ...) in `extra`; show what fits.
        pairs += [(str(k), str(v)) for k, v in alert.extra.items()][: MAX_FIELDS - len(pairs)]
    else:
        pairs = [
            ("Risk", f"{alert.risk:.0%}"),
            ("MRR", _money(alert.mrr)),
            ("Revenue at risk", _money(alert.revenue_at_risk) if alert.mrr is not None else "—"),
            ("Plan", alert.plan or "—"),
            ("Transition", alert.transition.value),
            ("Episode", alert.episode_id),
        ]
    return [_mrkdwn(f"*{escape_mrkdwn(k)}*\n{escape_mrkdwn(v)}", FIELD_MAX) for k, v in pairs]


def _reasons_text(alert: Alert) -> str:
    title = "*What happened*" if alert.kind is AlertKind.PIPELINE_INCIDENT else "*Why*"
    if not alert.reasons:
        return f"{title}\n_no explanation recorded_"
    return title + "\n" + "\n".join(f"• {escape_mrkdwn(r)}" for r in alert.reasons)


def _fallback(alert: Alert) -> str:
    """Notification/preview text (``text``); Slack parses it as mrkdwn, hence escaped."""
    parts = [escape_mrkdwn(_headline(alert)), f"({alert.transition.value}"]
    if alert.kind is AlertKind.ACCOUNT_RISK:
        parts[-1] += f", risk {alert.risk:.0%}, revenue at risk {_money(alert.revenue_at_risk)}"
    parts[-1] += ")"
    if alert.reasons:
        parts.append("— " + escape_mrkdwn(alert.reasons[0]))
    return truncate(" ".join(parts), TEXT_MAX)


def render_alert(alert: Alert) -> dict[str, Any]:
    """The Block Kit message for one alert.

    Examples
    --------
    >>> a = Alert(kind=AlertKind.ACCOUNT_RISK, account_id="acme", episode_id="acme:1764151200000",
    ...           transition=Transition.OPENED, severity=Severity.HIGH, risk=0.42, plan="pro", mrr=500.0,
    ...           reasons=("logins -62% vs 8-week median",), event_ts_ms=1764151200000,
    ...           detected_ts_ms=1764151201000)
    >>> msg = render_alert(a)
    >>> msg["blocks"][0]["text"]["text"]
    '🟠 acme — high churn risk'
    >>> [b["type"] for b in msg["blocks"]]
    ['header', 'section', 'section', 'context', 'actions']
    >>> msg["text"]
    '🟠 acme — high churn risk (opened, risk 42%, revenue at risk 210.00) — logins -62% vs 8-week median'
    """
    lag_s = (alert.detected_ts_ms - alert.event_ts_ms) / 1000
    event, detected = _slack_time(alert.event_ts_ms), _slack_time(alert.detected_ts_ms)
    context = f"Event {event} · detected {detected} (+{lag_s:.1f}s)"
    blocks = [
        _header(_headline(alert)),
        {"type": "section", "fields": _fields(alert)},
        {"type": "section", "text": _mrkdwn(_reasons_text(alert))},
        {"type": "context", "elements": [_mrkdwn(context)]},
    ]
    actions = feedback_actions(alert)
    if actions is not None:
        blocks.append(actions)
    return {"text": _fallback(alert), "blocks": blocks}


def _answerable(alert: Alert) -> bool:
    return alert.kind is AlertKind.ACCOUNT_RISK


def feedback_actions(alert: Alert) -> dict[str, Any] | None:
    """The actions block with the four answer buttons, or ``None`` when the alert takes no answers.

    Examples
    --------
    >>> a = Alert(kind=AlertKind.ACCOUNT_RISK, account_id="acme", episode_id="acme:1",
    ...           transition=Transition.OPENED, severity=Severity.HIGH, risk=0.5,
    ...           event_ts_ms=1, detected_ts_ms=2)
    >>> block = feedback_actions(a)
    >>> [(b["action_id"], b["text"]["text"], b["value"]) for b in block["elements"]][1]
    ('churnwatch.feedback.false-alarm', 'False alarm', 'acme:1:opened')
    """
    if not _answerable(alert) or len(alert.idempotency_key) > BUTTON_VALUE_MAX:
        return None
    elements = []
    for label, text, style in BUTTONS:
        button: dict[str, Any] = {
            "type": "button",
            "action_id": f"{FEEDBACK_ACTION}.{label.value}",
            "text": {"type": "plain_text", "text": text, "emoji": True},
            "value": alert.idempotency_key,
        }
        if style is not None:
            button["style"] = style
        elements.append(button)
    return {"type": "actions", "block_id": FEEDBACK_BLOCK, "elements": elements}


def feedback_overflow(alert: Alert, line: int) -> dict[str, Any] | None:
    """A digest line's overflow menu with the four answers (``None`` when the alert id does not fit).

    Action ids must be unique within a message: ``churnwatch.feedback.line.<n>``.
    """
    longest = max(len(label.value) for label, _, _ in BUTTONS) + 1
    if not _answerable(alert) or len(alert.idempotency_key) + longest > OPTION_VALUE_MAX:
        return None
    options = [
        {"text": {"type": "plain_text", "text": text}, "value": f"{label.value}|{alert.idempotency_key}"}
        for label, text, _ in BUTTONS
    ]
    return {"type": "overflow", "action_id": f"{FEEDBACK_ACTION}.line.{line}", "options": options}


def _digest_line(alert: Alert) -> str:
    resolved = alert.transition is Transition.RESOLVED
    name = escape_mrkdwn(truncate(alert.account_id, HEADER_MAX))
    if alert.kind is AlertKind.PIPELINE_INCIDENT:
        emoji = RESOLVED_EMOJI if resolved else INCIDENT_EMOJI
        line = f"{emoji} *pipeline: {name}* — {alert.severity.value}, {alert.transition.value}"
    else:
        emoji = RESOLVED_EMOJI if resolved else SEVERITY_EMOJI[alert.severity]
        line = (
            f"{emoji} *{name}* — {alert.severity.value}, {alert.transition.value}"
            f" · risk {alert.risk:.0%} · MRR {_money(alert.mrr)} · plan {escape_mrkdwn(alert.plan or '—')}"
        )
    if alert.reasons:
        line += "\n> " + truncate(escape_mrkdwn(alert.reasons[0]), DIGEST_REASON_MAX)
    return truncate(line, TEXT_MAX)


def _digest_section(alert: Alert, line: int) -> dict[str, Any]:
    section: dict[str, Any] = {"type": "section", "text": _mrkdwn(_digest_line(alert))}
    overflow = feedback_overflow(alert, line)
    if overflow is not None:
        section["accessory"] = overflow
    return section


def render_digest(alerts: Sequence[Alert]) -> dict[str, Any]:
    """One message summarising many alerts, most severe (then most revenue at risk) first.

    Layout: header, summary section, one section per alert while blocks remain, an "and N more" context line
    when some did not fit, and a context line with the detection time range; never more than 50 blocks.

    Examples
    --------
    >>> mk = lambda i: Alert(kind=AlertKind.ACCOUNT_RISK, account_id=f"acct-{i}", episode_id=f"e{i}",
    ...                      transition=Transition.OPENED, severity=Severity.MEDIUM, risk=0.3, mrr=100.0,
    ...                      event_ts_ms=1764151200000, detected_ts_ms=1764151201000)
    >>> msg = render_digest([mk(i) for i in range(60)])
    >>> len(msg["blocks"]), msg["blocks"][0]["text"]["text"]
    (50, '📣 60 churn alerts')
    >>> msg["blocks"][-2]["elements"][0]["text"]
    '…and 14 more (see the alerts topic or the JSONL log)'
    """
    ordered = sorted(alerts, key=lambda a: (-_SEVERITY_RANK[a.severity], -a.revenue_at_risk, a.account_id))
    incidents = sum(a.kind is AlertKind.PIPELINE_INCIDENT for a in ordered)
    title = f"📣 {len(ordered)} churn alerts"
    if incidents:
        title += f" ({incidents} pipeline incident{'s' if incidents != 1 else ''})"
    by_severity = Counter(a.severity for a in ordered if a.transition is not Transition.RESOLVED)
    resolved = sum(a.transition is Transition.RESOLVED for a in ordered)
    counts = [f"{SEVERITY_EMOJI[s]} {by_severity[s]} {s.value}" for s in reversed(Severity) if by_severity[s]]
    if resolved:
        counts.append(f"{RESOLVED_EMOJI} {resolved} resolved")
    total_at_risk = sum(a.revenue_at_risk for a in ordered if a.transition is not Transition.RESOLVED)
    summary = f"*Revenue at risk:* {_money(total_at_risk)}\n" + " · ".join(counts)

    first = min(a.detected_ts_ms for a in ordered)
    last = max(a.detected_ts_ms for a in ordered)
    span = f"Detected {_slack_time(first)}" + (f" to {_slack_time(last)}" if last != first else "")

    fixed = 3  # header, summary, time context
    shown = ordered if fixed + len(ordered) <= MAX_BLOCKS else ordered[: MAX_BLOCKS - fixed - 1]
    blocks: list[dict[str, Any]] = [_header(title), {"type": "section", "text": _mrkdwn(summary)}]
    blocks += [_digest_section(a, i) for i, a in enumerate(shown)]
    hidden = len(ordered) - len(shown)
    if hidden:
        blocks.append(
            {
                "type": "context",
                "elements": [_mrkdwn(f"…and {hidden} more (see the alerts topic or the JSONL log)")],
            }
        )
    blocks.append({"type": "context", "elements": [_mrkdwn(span)]})

    names = ", ".join(f"{a.account_id} ({a.severity.value})" for a in ordered)
    return {"text": truncate(escape_mrkdwn(f"{title}: {names}"), TEXT_MAX), "blocks": blocks}
