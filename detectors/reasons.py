"""Explanations: one sentence per risk feature, with the numbers behind it.

:func:`explain` ranks features by the log-odds they add under the active model and renders the top ones
with :func:`describe`, e.g. ``silent for 8 days (usually active every 1.1 days)`` or ``engagement in the
bottom 7% of pro accounts (2.1 events/day)``. :func:`reason_kind` reads a sentence back to its kind (the
feature it describes), a short name fit for a metric label or a per-reason setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from detectors.outage import iso_day

SIGNALS = ("usage", "active users", "key events")
_SIGNAL_OF = {"usage_drop": 0, "users_drop": 1, "key_drop": 2}


def explain(
    contributions: Mapping[str, float],
    features: Mapping[str, float],
    context: dict[str, Any],
    *,
    min_logodds: float,
    max_reasons: int,
    at_least_one: bool = False,
) -> tuple[str, ...]:
    """Sentences for the features adding at least ``min_logodds`` (at most ``max_reasons``, largest first).

    With ``at_least_one`` (an alerted or listed account), the largest contribution is described even when
    it is under ``min_logodds``, and an account without any feature still gets a sentence.

    >>> weak = ({"infrequent": 0.2}, {"infrequent": 0.6}, {})
    >>> explain(*weak, min_logodds=0.4, max_reasons=4)
    ()
    >>> explain(*weak, min_logodds=0.4, max_reasons=4, at_least_one=True)
    ('active on 40% of days',)
    """
    ranked = sorted(((k, v) for k, v in contributions.items() if v > 0), key=lambda item: -item[1])
    chosen = [(k, v) for k, v in ranked if v >= min_logodds][:max_reasons]
    if not chosen and at_least_one and ranked:
        chosen = ranked[:1]
    reasons = [describe(name, features[name], context) for name, _ in chosen]
    out = tuple(r for r in reasons if r)
    if not out and at_least_one:
        out = ("risk from the model's base rate for accounts like this (no single signal stands out)",)
    return out


def describe(name: str, value: float, context: dict[str, Any]) -> str:
    length = context.get("length", 7)
    if name in ("usage_drop", "users_drop", "key_drop"):
        actual, expected = context[name]
        label = SIGNALS[_SIGNAL_OF[name]]
        return (
            f"{label} -{value:.0%} vs its usual level ({actual:.1f}/day over the last {length} days, "
            f"{expected:.1f}/day expected for those weekdays/weekends)"
        )
    if name == "drop_weeks":
        return f"sustained decline flagged since {iso_day(context['drop_weeks'])} ({value * 7:.0f} days)"
    if name == "decline":
        recent, old, change = context["decline"]
        return (
            f"usage -{change:.0%} over the last 2 weeks vs 4-8 weeks ago ({recent:.1f}/day vs {old:.1f}/day)"
        )
    if name == "silence":
        return (
            f"silent for {_n(context['silent_days'], 'day')} "
            f"(usually active every {context['mean_gap']:.1f} days)"
        )
    if name in ("ticket_burst", "urgent"):
        tickets, expected, urgent, escalated = context["tickets"]
        return (
            f"{_n(tickets, 'ticket')} in 14 days (usually {expected:.1f}), "
            f"{urgent} urgent/high, {escalated} escalated"
        )
    if name == "low_csat":
        mean_csat, count = context["csat"]
        return f"CSAT {mean_csat:.1f}/5 over {count} rating{'s' if count != 1 else ''} in 30 days"
    if name == "payment_failed":
        failed, last_failure, last_success = context["payments"]
        times = {1: "once", 2: "twice"}.get(failed, f"{failed} times")
        recovered = (
            "recovered" if last_success is not None and last_success >= last_failure else "not recovered"
        )
        return f"payment failed {times} in 30 days ({recovered})"
    if name == "payment_unresolved":
        return f"failed payment unresolved since {iso_day(context['unresolved_since'])}"
    if name == "mrr_drop":
        ref, mrr = context["mrr"]
        return f"MRR {ref:,.0f} -> {mrr:,.0f} (-{value:.0%}, downgrade)"
    if name == "lapsed":
        x, t_x, T = context["btyd"]
        return (
            f"{value:.0%} chance it has lapsed for good "
            f"(BTYD model: {_n(x, 'repeat active day')} in {_n(T, 'day')}, "
            f"the last {_n(T - t_x, 'day')} ago)"
        )
    if name == "low_engagement":
        pct, level, segment = context["level"]
        return f"engagement in the bottom {pct:.0%} of {segment} accounts ({level:.1f} events/day)"
    if name == "low_activity":
        pct, level = context["activity_level"]
        return f"engagement in the bottom {pct:.0%} of all accounts ({level:.1f} events/day)"
    if name == "inactive_ahead":
        x, t_x, T = context["btyd"]
        return (
            f"{value:.0%} chance of no activity in the next {_n(context['horizon_days'], 'day')} "
            f"(BTYD model: {_n(x, 'repeat active day')} in {_n(T, 'day')}, the last {_n(T - t_x, 'day')} ago)"
        )
    if name == "low_depth":
        pct, per_user, segment = context["depth"]
        return f"use per active user in the bottom {pct:.0%} of {segment} accounts ({per_user:.1f}/user/day)"
    if name == "infrequent":
        return f"active on {1 - value:.0%} of days"
    if name == "recency":
        return f"last active {_n(context['recency_days'], 'day')} ago"
    if name == "new_account":
        return f"new account ({_n(round(context['tenure_days']), 'day')})"
    if name in ("trend_4w", "trend_8w"):
        weeks = 4 if name == "trend_4w" else 8
        return f"weekly usage trending down: -{value:.0%} over the last {weeks} weeks"
    return ""


def _n(count: float, word: str) -> str:
    """``1 day``, ``3 days``, ``1.5 days``.

    >>> _n(1, "ticket"), _n(0, "ticket"), _n(2.5, "day")
    ('1 ticket', '0 tickets', '2.5 days')
    """
    number = str(int(count)) if float(count).is_integer() else f"{count:g}"
    return f"{number} {word if count == 1 else word + 's'}"


# How each sentence :func:`describe` (and the monitor) writes begins, and the kind it is; first match wins.
_KINDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), kind)
    for pattern, kind in (
        (r"^usage -\d+% over the last 2 weeks", "decline"),
        (r"^usage -", "usage_drop"),
        (r"^active users -", "users_drop"),
        (r"^key events -", "key_drop"),
        (r"^sustained decline flagged", "drop_weeks"),
        (r"^silent for ", "silence"),
        (r"^\d+ tickets? in 14 days", "tickets"),  # ticket_burst and urgent share one sentence
        (r"^CSAT ", "low_csat"),
        (r"^payment failed ", "payment_failed"),
        (r"^failed payment unresolved", "payment_unresolved"),
        (r"^MRR ", "mrr_drop"),
        (r"chance it has lapsed", "lapsed"),
        (r"chance of no activity in the next", "inactive_ahead"),
        (r"^engagement in the bottom \d+% of all accounts", "low_activity"),
        (r"^engagement in the bottom", "low_engagement"),
        (r"^use per active user in the bottom", "low_depth"),
        (r"^active on \d+% of days", "infrequent"),
        (r"^last active ", "recency"),
        (r"^new account", "new_account"),
        (r"^weekly usage trending down: .* 4 weeks$", "trend_4w"),
        (r"^weekly usage trending down: .* 8 weeks$", "trend_8w"),
        (r"^risk from the model's base rate", "base_rate"),
        (r"^subscription canceled", "canceled"),
    )
)
OTHER_REASON = "other"
REASON_KINDS: tuple[str, ...] = (*dict.fromkeys(kind for _, kind in _KINDS), OTHER_REASON)


def reason_kind(sentence: str) -> str:
    """The kind of reason a sentence states (one of :data:`REASON_KINDS`; ``other`` when none matches).

    >>> reason_kind("silent for 8 days (usually active every 1.1 days)")
    'silence'
    >>> reason_kind("usage -40% over the last 2 weeks vs 4-8 weeks ago (3.0/day vs 5.0/day)")
    'decline'
    >>> reason_kind("something a custom detector said"), len(REASON_KINDS)
    ('other', 24)
    """
    return next((kind for pattern, kind in _KINDS if pattern.search(sentence)), OTHER_REASON)
