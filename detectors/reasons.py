"""Explanations: one sentence per risk feature, with the numbers behind it.

:func:`explain` ranks features by the log-odds they add under the active model and renders the top ones
with the sentences of their :class:`Evidence` (written by :mod:`detectors.features`), e.g. ``silent for 8
days (usually active every 1.1 days)`` or ``engagement in the bottom 7% of pro accounts (2.1 events/day)``.
:func:`reason_kind` reads a sentence back to its kind (the feature it describes), a short name fit for a
metric label or a per-reason setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

SIGNALS = ("usage", "active users", "key events")


class Evidence(Protocol):
    """The numbers behind one risk feature and the sentence that explains it (:mod:`detectors.features`)."""

    @property
    def feature(self) -> str:
        """The feature (a name of :data:`~detectors.risk.FEATURES`)."""
        ...

    @property
    def value(self) -> float:
        """The feature's value as observed (before any answer weighs it)."""
        ...

    def describe(self, value: float) -> str:
        """The sentence for the feature at ``value`` (its weighed value); "" when it has none of its own."""
        ...


def explain(
    contributions: Mapping[str, float],
    features: Mapping[str, float],
    evidence: Mapping[str, Evidence],
    *,
    min_logodds: float,
    max_reasons: int,
    at_least_one: bool = False,
) -> tuple[str, ...]:
    """Sentences for the features adding at least ``min_logodds`` (at most ``max_reasons``, largest first).

    Each is the sentence of the feature's ``evidence`` at its value in ``features``. With ``at_least_one``
    (an alerted or listed account), the largest contribution is described even when it is under
    ``min_logodds``, and an account without any feature still gets a sentence.

    >>> from detectors.features.level import Infrequent
    >>> weak = ({"infrequent": 0.2}, {"infrequent": 0.6}, {"infrequent": Infrequent(0.6)})
    >>> explain(*weak, min_logodds=0.4, max_reasons=4)
    ()
    >>> explain(*weak, min_logodds=0.4, max_reasons=4, at_least_one=True)
    ('active on 40% of days',)
    """
    ranked = sorted(((k, v) for k, v in contributions.items() if v > 0), key=lambda item: -item[1])
    chosen = [(k, v) for k, v in ranked if v >= min_logodds][:max_reasons]
    if not chosen and at_least_one and ranked:
        chosen = ranked[:1]
    reasons = [describe(name, features[name], evidence) for name, _ in chosen]
    out = tuple(r for r in reasons if r)
    if not out and at_least_one:
        out = ("risk from the model's base rate for accounts like this (no single signal stands out)",)
    return out


def describe(name: str, value: float, evidence: Mapping[str, Evidence]) -> str:
    """The sentence of feature ``name`` at ``value`` ("" when it has no evidence or no sentence)."""
    found = evidence.get(name)
    return found.describe(value) if found is not None else ""


def plural(count: float, word: str) -> str:
    """``1 day``, ``3 days``, ``1.5 days``.

    >>> plural(1, "ticket"), plural(0, "ticket"), plural(2.5, "day")
    ('1 ticket', '0 tickets', '2.5 days')
    """
    number = str(int(count)) if float(count).is_integer() else f"{count:g}"
    return f"{number} {word if count == 1 else word + 's'}"


# How each sentence of :mod:`detectors.features` (and the monitor) begins, and its kind; first match wins.
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
