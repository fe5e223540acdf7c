"""Alert episodes: an account's continuous period at risk, and the policy that opens, escalates, resolves it.

An :class:`Episode` is *opened* when risk reaches ``alert_threshold`` (unless the account is in its cooldown),
*escalated* each time its severity rises above the highest so far, and *resolved* after
``resolve_after_days`` consecutive healthy days (risk under ``resolve_threshold``, usage back to
``recover_ratio`` of the baseline, no unusual silence); a cooldown follows. A snoozed account's episode is
tracked but emits nothing; so is one whose opening the outage guard held back (*muted*).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detectors.alerts import Alert, AlertKind, Severity, Transition
from detectors.config import SEVERITY_ORDER, SEVERITY_RANK, DetectorConfig, severity_of
from detectors.windows import DAY_MS

if TYPE_CHECKING:
    from detectors.account_state import AccountDetectorState

__all__ = ["Episode", "EpisodePolicy", "RiskSnapshot"]


@dataclass(slots=True)
class Episode:
    """One account's open episode.

    Stored as the list ``[episode_id, opened_ms, highest severity rank, healthy days, muted 0/1]`` (the
    form states have always had).

    >>> e = Episode.from_state(["acme:0", 0, 2, 1, 0])
    >>> e.highest.value, e.muted, e.to_state()
    ('high', False, ['acme:0', 0, 2, 1, 0])
    """

    episode_id: str  # f"{account_id}:{event time it opened}"
    opened_ms: int
    highest: Severity  # the highest severity reached so far
    healthy_days: int = 0  # consecutive healthy days (it resolves after resolve_after_days)
    muted: bool = False  # snoozed when it opened, or its opening held back by the outage guard

    def to_state(self) -> list[Any]:
        return [
            self.episode_id,
            self.opened_ms,
            SEVERITY_RANK[self.highest],
            self.healthy_days,
            int(self.muted),
        ]

    @classmethod
    def from_state(cls, state: list[Any]) -> Episode:
        episode_id, opened_ms, rank, healthy_days, muted = state
        return cls(episode_id, opened_ms, SEVERITY_ORDER[rank], healthy_days, bool(muted))


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """What the episode policy reads of one assessment: the account's risk, reasons and health."""

    account_id: str
    plan: str | None
    mrr: float | None
    risk: float
    reasons: tuple[str, ...]
    usage_drop: float  # the usage_drop feature (0 when absent)
    silent: bool  # the silence feature is present

    @classmethod
    def of(
        cls,
        account_id: str,
        plan: str | None,
        mrr: float | None,
        risk: float,
        reasons: tuple[str, ...],
        features: dict[str, float],
    ) -> RiskSnapshot:
        return cls(
            account_id, plan, mrr, risk, reasons, features.get("usage_drop", 0.0), "silence" in features
        )


class EpisodePolicy:
    """Opens, escalates and resolves episodes under a :class:`~detectors.config.DetectorConfig`."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config

    def step(
        self,
        state: AccountDetectorState,
        seen: RiskSnapshot,
        now_ms: int,
        clock_ms: int,
        new_days: int,
        *,
        hold: bool = False,
        threshold: float | None = None,
    ) -> list[Alert]:
        """Advance the account's episode to ``now_ms``: the alerts to emit (none while muted or snoozed).

        ``new_days`` is how many completed days this evaluation learned: healthy days are counted per day,
        however often a day is evaluated. ``clock_ms`` stamps alerts as detected. ``hold``: open no new
        episode now (the account's spell is one that in this base usually ends in a return).
        ``threshold``: the risk at which an episode opens today (an alert budget's; ``alert_threshold`` when
        None).
        """
        cfg = self.config
        opens_at = cfg.alert_threshold if threshold is None else threshold
        snoozed = now_ms < state.snoozed_until_ms
        episode = state.episode
        if episode is None:
            if hold or seen.risk < opens_at or now_ms < state.cooldown_until_ms:
                return []
            severity = severity_of(seen.risk, cfg.severity_bands)
            # Muted from the start when snoozed: a snooze covers the whole episode it hides.
            state.episode = Episode(f"{seen.account_id}:{now_ms}", now_ms, severity, 0, snoozed)
            return (
                []
                if snoozed
                else [_alert(state.episode, seen, Transition.OPENED, severity, now_ms, clock_ms)]
            )
        alerts: list[Alert] = []
        muted = snoozed or episode.muted
        severity = severity_of(seen.risk, cfg.severity_bands)
        if seen.risk >= cfg.alert_threshold and SEVERITY_RANK[severity] > SEVERITY_RANK[episode.highest]:
            episode.highest = severity
            if not muted:
                alerts.append(_alert(episode, seen, Transition.ESCALATED, severity, now_ms, clock_ms))
        if new_days:
            healthy = (
                seen.risk < cfg.resolve_threshold
                and seen.usage_drop <= 1.0 - cfg.recover_ratio
                and not seen.silent
            )
            episode.healthy_days = episode.healthy_days + new_days if healthy else 0
            if episode.healthy_days >= cfg.resolve_after_days:
                if not muted:
                    alerts.append(_alert(episode, seen, Transition.RESOLVED, Severity.LOW, now_ms, clock_ms))
                state.episode = None
                state.cooldown_until_ms = now_ms + cfg.cooldown_days * DAY_MS
        return alerts

    @staticmethod
    def suppress(state: AccountDetectorState, alert: Alert) -> None:
        """Record that ``alert`` was held back by the outage guard: an episode it opened stays muted."""
        episode = state.episode
        if (
            alert.transition is Transition.OPENED
            and episode is not None
            and episode.episode_id == alert.episode_id
        ):
            episode.muted = True

    @staticmethod
    def snooze(state: AccountDetectorState, until_ms: int) -> None:
        """Emit no alerts for this account until ``until_ms`` (its episode is still tracked)."""
        state.snoozed_until_ms = max(state.snoozed_until_ms, until_ms)


def _alert(
    episode: Episode,
    seen: RiskSnapshot,
    transition: Transition,
    severity: Severity,
    now_ms: int,
    clock_ms: int,
) -> Alert:
    return Alert(
        kind=AlertKind.ACCOUNT_RISK,
        account_id=seen.account_id,
        episode_id=episode.episode_id,
        transition=transition,
        severity=severity,
        risk=round(seen.risk, 4),
        reasons=seen.reasons,
        plan=seen.plan,
        mrr=seen.mrr,
        event_ts_ms=now_ms,
        detected_ts_ms=clock_ms,
    )
