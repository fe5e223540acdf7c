"""The alert record that detection emits and the notifier delivers.

An alert is one transition of an *episode*: an account's (or the pipeline's) continuous period at risk.
Its idempotency key is ``"{episode_id}:{transition}"`` (an escalation adds the severity it reached, since an
episode can escalate more than once: ``"{episode_id}:escalated:critical"``), stable across restarts and
replays, so receivers and the notifier can drop duplicates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class AlertKind(StrEnum):
    ACCOUNT_RISK = "account_risk"
    PIPELINE_INCIDENT = "pipeline_incident"


class Transition(StrEnum):
    OPENED = "opened"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One alert transition, as written to the alerts topic and sent to sinks.

    Examples
    --------
    >>> a = Alert(kind=AlertKind.ACCOUNT_RISK, account_id="acme", episode_id="acme:1764151200000",
    ...           transition=Transition.OPENED, severity=Severity.HIGH, risk=0.42, plan="pro", mrr=500.0,
    ...           reasons=("active users -62% vs its 8-week weekday median",),
    ...           event_ts_ms=1764151200000, detected_ts_ms=1764151201000)
    >>> a.idempotency_key
    'acme:1764151200000:opened'
    >>> from dataclasses import replace
    >>> replace(a, transition=Transition.ESCALATED, severity=Severity.CRITICAL).idempotency_key
    'acme:1764151200000:escalated:critical'
    >>> round(a.revenue_at_risk, 2)
    210.0
    >>> Alert.from_dict(a.to_dict()) == a
    True
    """

    kind: AlertKind
    account_id: str
    episode_id: str
    transition: Transition
    severity: Severity
    risk: float
    reasons: tuple[str, ...] = ()
    plan: str | None = None
    mrr: float | None = None
    event_ts_ms: int
    detected_ts_ms: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """One key per transition of an episode (severity rises with each escalation: it tells them apart)."""
        if self.transition is Transition.ESCALATED:
            return f"{self.episode_id}:{self.transition.value}:{self.severity.value}"
        return f"{self.episode_id}:{self.transition.value}"

    @staticmethod
    def episode_of(idempotency_key: str) -> str:
        """The episode an idempotency key belongs to (the inverse of :attr:`idempotency_key`'s suffix).

        >>> Alert.episode_of("acme:1764151200000:opened"), Alert.episode_of("a:b:1:escalated:critical")
        ('acme:1764151200000', 'a:b:1')
        """
        head, _, last = idempotency_key.rpartition(":")
        escalated = f":{Transition.ESCALATED.value}"
        if last in {severity.value for severity in Severity} and head.endswith(escalated):
            return head.removesuffix(escalated)
        return head

    @property
    def revenue_at_risk(self) -> float:
        return self.risk * (self.mrr or 0.0)

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["reasons"] = list(self.reasons)
        body["idempotency_key"] = self.idempotency_key
        body["revenue_at_risk"] = self.revenue_at_risk
        return body

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Alert:
        return cls(
            kind=AlertKind(body["kind"]),
            account_id=body["account_id"],
            episode_id=body["episode_id"],
            transition=Transition(body["transition"]),
            severity=Severity(body["severity"]),
            risk=float(body["risk"]),
            reasons=tuple(body.get("reasons", ())),
            plan=body.get("plan"),
            mrr=body.get("mrr"),
            event_ts_ms=int(body["event_ts_ms"]),
            detected_ts_ms=int(body["detected_ts_ms"]),
            extra=dict(body.get("extra", {})),
        )
