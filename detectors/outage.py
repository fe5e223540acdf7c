"""Outage guard: tells an ingestion outage from a wave of churn, one pipeline incident instead of a flood.

It reads only :class:`~detectors.monitor.Assessment` fields and the outage settings of
:class:`~detectors.config.DetectorConfig` (:mod:`detectors.monitor` re-exports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from detectors.alerts import Alert, AlertKind, Severity, Transition
from detectors.windows import DAY_MS, day_of

if TYPE_CHECKING:
    from detectors.config import DetectorConfig
    from detectors.monitor import Assessment

# Flags that an ingestion outage produces (and the guard may explain away).
OUTAGE_FLAGS = frozenset({"quiet", "drop"})


def iso_day(day: int) -> str:
    """ISO date of a UTC day number.

    >>> iso_day(20_600)
    '2026-05-27'
    """
    return datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()


@dataclass(slots=True, kw_only=True)
class GuardDecision:
    """What to emit after one sweep: the pipeline incident transitions and the account alerts kept."""

    incident_alerts: list[Alert]
    alerts: list[Alert]
    suppressed: list[Alert]
    affected: int
    monitored: int


class OutageGuard:
    """Tells an ingestion outage from a wave of churn: one pipeline incident instead of a flood of alerts.

    Feed it every :class:`Assessment` of one sweep (all accounts, same ``now_ms``). When at least
    ``outage_min_accounts`` and ``outage_share`` of the monitored accounts went quiet (no events although
    their baseline expected plenty) or started a drop within the last ``outage_onset_days``, it opens a
    :data:`~detectors.alerts.AlertKind.PIPELINE_INCIDENT`. Account alerts of accounts whose quiet spell or
    drop began during an incident (open, or one of the last few) are held back; the caller should pass each to
    :meth:`AccountMonitor.suppress` so the episode they opened stays muted. The incident resolves when the
    affected share falls below half the trigger share.

    Examples
    --------
    >>> from detectors.monitor import Assessment, DetectorConfig
    >>> guard = OutageGuard(DetectorConfig(outage_min_accounts=2))
    >>> quiet = [Assessment(account_id=f"a{i}", now_ms=10 * DAY_MS, risk=0.01, severity=None,
    ...                     flags=frozenset({"quiet"}), monitored=True, onset_day=9) for i in range(3)]
    >>> fine = [Assessment(account_id=f"b{i}", now_ms=10 * DAY_MS, risk=0.01, severity=None, monitored=True)
    ...         for i in range(3)]
    >>> decision = guard.review(quiet + fine, 10 * DAY_MS)
    >>> [(a.kind.value, a.transition.value) for a in decision.incident_alerts], decision.affected
    ([('pipeline_incident', 'opened')], 3)
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 400
    __slots__ = ("config", "incident", "last_review_day", "spans")

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        # Open incident: [episode_id, onset_day, opened_ms, peak affected share] or None.
        self.incident: list[Any] | None = None
        # [onset_day, end_day] of recent incidents: alerts of drops that began inside them stay explained.
        self.spans: list[list[int]] = []
        self.last_review_day: int | None = None

    def clone(self) -> OutageGuard:
        return OutageGuard(self.config)

    def _explained(self, assessment: Assessment, *, silence: bool = True) -> bool:
        # A drop or quiet spell that began during an incident, or a silence that did (a weekly account whose
        # visit fell into the outage expected too few events to count as quiet, but its silence is no news).
        onsets = [assessment.onset_day] if assessment.flags & OUTAGE_FLAGS else []
        if silence:
            onsets.append(assessment.quiet_since)
        for onset in onsets:
            if onset is None:
                continue
            if self.incident is not None and onset >= self.incident[1] - 1:
                return True
            if any(start - 1 <= onset <= end for start, end in self.spans):
                return True
        return False

    def review(self, assessments: list[Assessment], now_ms: int) -> GuardDecision:
        cfg = self.config
        today = day_of(now_ms)
        # "Recent" reaches back to the previous review too, so a sweep delayed by days still sees the onset.
        since = today - cfg.outage_onset_days
        if self.last_review_day is not None:
            since = min(since, self.last_review_day - 1)
        self.last_review_day = max(today, self.last_review_day or today)
        monitored = [a for a in assessments if a.monitored]
        recent = [
            a
            for a in monitored
            if a.onset_day is not None and a.onset_day >= since and a.flags & OUTAGE_FLAGS
        ]
        incident_alerts: list[Alert] = []
        n = len(monitored)
        if (
            self.incident is None
            and len(recent) >= cfg.outage_min_accounts
            and len(recent) >= cfg.outage_share * n
        ):
            onset = min(a.onset_day for a in recent if a.onset_day is not None)
            share = len(recent) / n
            self.incident = [f"pipeline:{onset * DAY_MS}", onset, now_ms, share]
            incident_alerts.append(self._alert(Transition.OPENED, share, len(recent), n, now_ms))
        affected = (
            sum(1 for a in monitored if self._explained(a, silence=False))
            if self.incident is not None
            else len(recent)
        )
        if self.incident is not None:
            share = affected / n if n else 0.0
            if share > self.incident[3] and self._severity(share) != self._severity(self.incident[3]):
                self.incident[3] = share
                incident_alerts.append(self._alert(Transition.ESCALATED, share, affected, n, now_ms))
            elif share < cfg.outage_share / 2:
                incident_alerts.append(self._alert(Transition.RESOLVED, share, affected, n, now_ms))
                self.spans = [*self.spans[-4:], [self.incident[1], today]]
                self.incident = None
        return self._sorted(assessments, incident_alerts, affected, n)

    def review_changed(self, assessments: list[Assessment]) -> GuardDecision:
        """Review a sweep that evaluated only the accounts that changed since the day's first (whole) sweep:
        their alerts are kept or held back under the incidents as they stand, which none of them moves (a
        few accounts say nothing of the share of the base that went quiet, and quiet spells and drops are
        judged on completed days, which the day's whole sweep reviewed).

        Examples
        --------
        >>> from detectors.monitor import Assessment, DetectorConfig
        >>> guard = OutageGuard(DetectorConfig(outage_min_accounts=2))
        >>> quiet = [Assessment(account_id=f"a{i}", now_ms=10 * DAY_MS, risk=0.01, severity=None,
        ...                     flags=frozenset({"quiet"}), monitored=True, onset_day=9) for i in range(3)]
        >>> decision = guard.review_changed(quiet)
        >>> decision.incident_alerts, guard.incident, guard.last_review_day
        ([], None, None)
        """
        monitored = sum(1 for a in assessments if a.monitored)
        return self._sorted(assessments, [], 0, monitored)

    def _sorted(
        self, assessments: list[Assessment], incident_alerts: list[Alert], affected: int, monitored: int
    ) -> GuardDecision:
        """The decision: the assessments' alerts kept, or held back when an incident explains them."""
        kept: list[Alert] = []
        suppressed: list[Alert] = []
        for assessment in assessments:
            if not assessment.alerts:
                continue
            target = suppressed if self._explained(assessment) else kept
            target.extend(assessment.alerts)
        return GuardDecision(
            incident_alerts=incident_alerts,
            alerts=kept,
            suppressed=suppressed,
            affected=affected,
            monitored=monitored,
        )

    @staticmethod
    def _severity(share: float) -> Severity:
        return Severity.CRITICAL if share >= 0.6 else Severity.HIGH

    def _alert(
        self, transition: Transition, share: float, affected: int, monitored: int, now_ms: int
    ) -> Alert:
        assert self.incident is not None
        episode_id, onset = self.incident[0], self.incident[1]
        return Alert(
            kind=AlertKind.PIPELINE_INCIDENT,
            account_id="*",
            episode_id=episode_id,
            transition=transition,
            severity=Severity.LOW if transition is Transition.RESOLVED else self._severity(share),
            risk=round(share, 4),
            reasons=(
                f"{affected} of {monitored} monitored accounts ({share:.0%}) went quiet or dropped "
                f"since {iso_day(onset)}: likely an ingestion outage, account alerts held back",
            ),
            event_ts_ms=now_ms,
            detected_ts_ms=now_ms,
            extra={"affected": affected, "monitored": monitored, "onset_day": iso_day(onset)},
        )

    def to_state(self) -> dict[str, Any]:
        return {"incident": self.incident, "spans": self.spans, "last": self.last_review_day}

    @classmethod
    def from_state(cls, state: dict[str, Any], config: DetectorConfig) -> OutageGuard:
        guard = cls(config)
        guard.incident = list(state["incident"]) if state["incident"] is not None else None
        guard.spans = [list(span) for span in state["spans"]]
        guard.last_review_day = state.get("last")
        return guard
