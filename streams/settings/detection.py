"""Settings of event validation and the per-account windows, and of detection (sweeps, the alert threshold,
the horizon).

Defaults that the detectors also have are taken from them (``WindowConfig``, ``DetectorConfig``, the events'
``MIN_TS_MS``), so each default is written once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from detectors.config import DetectorConfig
from detectors.open_users import MAX_LATENESS_DAYS
from detectors.windows import WindowConfig
from streams.events import MIN_TS_MS, InvalidEventError, parse_ts, ts_text
from streams.settings.kafka import GROUP_CONFIG

_WINDOW = WindowConfig()
_DETECTOR = DetectorConfig()


class WindowsSettings(BaseModel):
    """What the live path accepts as an event, how late it may be, and how much history an account keeps."""

    model_config = GROUP_CONFIG

    max_event_bytes: int = Field(
        default=65_536, ge=64, description="Larger records are dead-lettered (too_large)."
    )
    max_future_skew_seconds: float = Field(
        default=86_400,
        gt=0,
        description="Events further than this ahead of the wall clock are dead-lettered.",
    )
    min_event_ts: str = Field(
        default=ts_text(MIN_TS_MS),
        description="Live events before this time (RFC 3339) are dead-lettered as invalid_ts (zeroed clocks, "
        "epoch seconds sent as milliseconds); `churnwatch replay` accepts any time that parses.",
    )
    allowed_lateness_seconds: float = Field(
        default=_WINDOW.allowed_lateness_ms / 1000,
        ge=0,
        le=MAX_LATENESS_DAYS * 86_400,
        description="Out-of-order allowance behind an account's newest event.",
    )
    retention_days: int = Field(
        default=_WINDOW.retention_days, ge=7, le=3_650, description="Days of daily buckets kept per account."
    )
    top_events: int = Field(
        default=_WINDOW.top_events, ge=1, le=50, description="Event names counted per day for each account."
    )
    event_dedup_max_keys: int = Field(
        default=250_000,
        ge=0,
        description="Event ids (or content hashes) remembered to drop duplicate events, for the lateness "
        "allowance at most, about 200 bytes each (0: no deduplication); after a restart the worker reads "
        "as many records before its checkpoint again to relearn them.",
    )

    @field_validator("min_event_ts")
    @classmethod
    def _check_min_event_ts(cls, value: str) -> str:
        try:
            parse_ts(value, min_ts_ms=None)
        except InvalidEventError:
            raise ValueError("must be RFC 3339 with a UTC offset, e.g. 2000-01-01T00:00:00Z") from None
        return value

    @property
    def min_event_ts_ms(self) -> int:
        """``min_event_ts`` in epoch milliseconds (the live path's lower bound on event times)."""
        return parse_ts(self.min_event_ts, min_ts_ms=None)

    def window_config(self) -> WindowConfig:
        """The windows' retention, lateness and top-events settings (live worker and replay alike)."""
        return WindowConfig(
            retention_days=self.retention_days,
            allowed_lateness_ms=int(self.allowed_lateness_seconds * 1000),
            top_events=self.top_events,
        )


class DetectionSettings(BaseModel):
    """When accounts are swept, and at what risk an alert opens."""

    model_config = GROUP_CONFIG

    evaluation_clock: Literal["wall", "event"] = Field(
        default="wall",
        description="Clock of detector sweeps: 'wall' (live: a timer sweeps on wall-clock time) or 'event' "
        "(the event-time watermark: each UTC midnight it crosses sweeps, as replay does; for backfills).",
    )
    sweep_interval_seconds: float = Field(
        default=60.0, gt=0, description="Wall-clock sweep period ('wall' clock)."
    )
    sweep_changed_only: bool = Field(
        default=True,
        description="'wall' clock: a sweep after the day's first evaluates only the accounts that support or "
        "billing events, usage of earlier days or answers reached since the last sweep (today's usage counts "
        "once the day is complete); the day's first sweep evaluates every account (false: every account at "
        "every sweep). Off while a holdout runs.",
    )
    sweep_prompt_seconds: float = Field(
        default=1.0,
        ge=0,
        le=3_600,
        description="'wall' clock with sweep_changed_only: a batch that brought a support or billing event "
        "or an answer is followed by a sweep of the accounts that changed, at most once per this many "
        "seconds, instead of waiting for the timer (an urgent ticket's alert within seconds); not while more "
        "than 1,000 accounts wait to be evaluated (a backlog: the timer sweeps them). 0: the timer only.",
    )
    clock_hold_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3_600,
        description="'event' clock: a support or billing topic partition with records still to read, behind "
        "the midnight the usage has reached, holds that midnight's sweep until it catches up, for this long "
        "at most without progress (a stuck one delays a sweep by this much once; 0: never).",
    )
    clock_idle_seconds: float = Field(
        default=0.0,
        ge=0,
        le=3_600,
        description="'event' clock: how long a caught-up support or billing topic partition behind that "
        "midnight holds it, for events still to be produced (0: not at all).",
    )
    alert_threshold: float = Field(
        default=_DETECTOR.alert_threshold, gt=0, lt=1, description="Risk at which an account's episode opens."
    )
    alert_budget: float | None = Field(
        default=_DETECTOR.alert_budget,
        gt=0,
        le=1,
        description="At most this share of accounts opening an episode per 30 days: the opening threshold "
        "rises above the alert threshold, each day, as far as the base's recent risk needs (unset: off).",
    )
    monthly_cycles: bool = Field(
        default=_DETECTOR.monthly_cycles,
        description="Accounts busy at one time of each month are not judged by their quiet weeks while they "
        "keep their schedule (drops, silence, recency, trends and BTYD left out); once a busy window passes "
        "without them they are judged as before.",
    )
    refit_every: int = Field(
        default=_DETECTOR.refit_every,
        ge=0,
        le=1_000_000,
        description="Refit the risk model's learned regression in batch every this many outcomes, on a "
        "sample of them (0: one SGD step per outcome only).",
    )
    top_accounts_export: int = Field(
        default=0, ge=0, le=1_000, description="Export the N riskiest accounts as a labelled metric (0: off)."
    )
    horizon_days: int = Field(
        default=_DETECTOR.horizon_days,
        ge=1,
        le=365,
        description="Days ahead the risk is about (cancelling within them), and after which an alerted "
        "account is settled for the holdout uplift.",
    )

    def detector_config(self) -> DetectorConfig:
        """The detectors' thresholds with this alert threshold, alert budget, horizon, monthly cycles and
        refits (the rest are DetectorConfig's own)."""
        return DetectorConfig(
            alert_threshold=self.alert_threshold,
            horizon_days=self.horizon_days,
            alert_budget=self.alert_budget,
            monthly_cycles=self.monthly_cycles,
            refit_every=self.refit_every,
        )
