"""Holdout accounts (issue #18): alerts recorded but not delivered, so acting on alerts can be measured.

An account is in the holdout of experiment ``name`` when the first 8 bytes of
``sha256(name + ":" + account id)``, read as a fraction of 2**64, fall below ``CHURNWATCH_HOLDOUT_SHARE``:
stable across restarts, workers and replays, independent between experiments. The worker stamps every account
alert with its membership (``extra["holdout"]``) when it writes the alert to the alerts topic; the notifier
holds back the alerts stamped as held out and counts them. :mod:`streams.offline.uplift` estimates what
delivering the alerts changed (churn among delivered vs held-out alerted accounts).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from detectors.alerts import Alert, AlertKind

HOLDOUT_KEY = "holdout"
_SCALE = float(2**64)


@dataclass(frozen=True, slots=True)
class Holdout:
    """Membership of accounts in one experiment's holdout group.

    Examples
    --------
    >>> half = Holdout(share=0.5, experiment="q1-saves")
    >>> half.member("acme") == half.member("acme")
    True
    >>> Holdout(share=0.0, experiment="x").member("acme"), Holdout(share=1.0, experiment="x").member("acme")
    (False, True)
    >>> round(sum(half.member(f"account-{i}") for i in range(10_000)) / 10_000, 2)
    0.5
    """

    share: float = 0.0
    experiment: str = "default"

    def position(self, account_id: str) -> float:
        """Where the account falls in [0, 1) for this experiment."""
        digest = hashlib.sha256(f"{self.experiment}:{account_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / _SCALE

    def member(self, account_id: str) -> bool:
        return self.share > 0 and self.position(account_id) < self.share

    def stamp(self, alert: Alert) -> Alert:
        """The alert with its membership in ``extra["holdout"]`` (pipeline incidents are never held out)."""
        if alert.kind is not AlertKind.ACCOUNT_RISK:
            return alert
        membership = {
            "experiment": self.experiment,
            "share": self.share,
            "held_out": self.member(alert.account_id),
        }
        return replace(alert, extra={**alert.extra, HOLDOUT_KEY: membership})


def held_out(alert: Alert) -> bool:
    """Whether the alert was stamped as held out when raised (the record decides, not today's settings)."""
    membership: Any = alert.extra.get(HOLDOUT_KEY)
    return isinstance(membership, dict) and membership.get("held_out") is True
