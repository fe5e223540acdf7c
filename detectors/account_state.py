"""One account's detector state (:class:`AccountDetectorState`) and its compact JSON form.

It holds what the detectors learned about the account itself: its seasonal baselines, drift and gap
detectors, engagement tracker, the flagged drop, support and MRR references, its open
:class:`~detectors.episode.Episode` and the scored :class:`Snapshot` s awaiting their outcome. The
stored form (short keys, a few hundred bytes) is unchanged since before the episode and snapshot types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from detectors.baseline import GapTracker, SeasonalBaseline
from detectors.config import DetectorConfig
from detectors.cycle import MonthlyCycle
from detectors.drop import DropDetector
from detectors.engagement import EngagementTracker
from detectors.episode import Episode
from detectors.reasons import SIGNALS
from detectors.risk import FEATURE_INDEX, FEATURES
from detectors.shared import shared_day, shared_float, shared_zero

__all__ = ["AccountDetectorState", "Snapshot"]


@dataclass(slots=True)
class Snapshot:
    """An account's scored features on ``day``, kept until its outcome is known (the horizon passed or the
    account cancelled).

    ``flat`` is ``(feature index, value, index, value, ...)`` at 2 decimals (values under 0.005 left out):
    up to five snapshots are stored per account, and learning needs no finer grain. A tuple: its exact size,
    where a list grown pair by pair keeps spare room (issue 15's resident state). Snapshots stored before
    they were flat hold ``[[index, value], ...]``; both read back the same. The values, days and risks are
    shared objects (:mod:`detectors.shared`): at 2 decimals they repeat across accounts.

    >>> s = Snapshot.taken(20_000, 0.123456, {"silence": 1.234, "urgent": 0.001})
    >>> s.to_state(), s.features() == {"silence": 1.23}
    ([20000, 0.1235, [6, 1.23]], True)
    >>> Snapshot.from_state([20000, 0.1, [[6, 1.23]]]).features()
    {'silence': 1.23}
    """

    day: int
    risk: float
    flat: tuple[Any, ...] | list[Any]

    @classmethod
    def taken(cls, day: int, risk: float, features: dict[str, float]) -> Snapshot:
        flat: list[float] = []
        for k, v in features.items():
            if v >= 0.005:
                flat += (FEATURE_INDEX[k], shared_float(round(v, 2)))
        return cls(shared_day(day), shared_float(round(risk, 4)), tuple(flat))

    def features(self) -> dict[str, float]:
        flat = self.flat
        if flat and isinstance(flat[0], list):  # stored before snapshots were flat: [[index, value], ...]
            return {FEATURES[i]: v for i, v in flat}
        return {FEATURES[int(flat[i])]: flat[i + 1] for i in range(0, len(flat), 2)}

    def to_state(self) -> list[Any]:
        return [self.day, self.risk, list(self.flat)]

    @classmethod
    def from_state(cls, state: list[Any], *, share: bool = True) -> Snapshot:
        """``share``: the numbers as shared objects (a state kept in memory); not for one decoded briefly."""
        day, risk, flat = state
        if not share:
            return cls(day, risk, flat if flat and isinstance(flat[0], list) else tuple(flat))
        if not flat or not isinstance(flat[0], list):
            flat = tuple([shared_float(value) for value in flat])
        return cls(shared_day(day), shared_float(risk), flat)


class AccountDetectorState:
    """One account's detector state: baselines, drift and gap detectors, episode, pending snapshots.

    Plain data with JSON-compatible :meth:`to_state` / :meth:`from_state` (about 300-700 bytes), kept next
    to the account's window. Create it with :meth:`~detectors.monitor.AccountMonitor.new_state`.
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 1_024
    __slots__ = (
        "baselines",
        "canceled_ts_ms",
        "cooldown_until_ms",
        "cycle",
        "drifts",
        "drop_depth",
        "drop_signals",
        "drop_since",
        "drop_spell",
        "engagement",
        "episode",
        "first_active_day",
        "gaps",
        "last_snapshot_day",
        "learned_through",
        "pending",
        "recovered_days",
        "ref_mrr",
        "risk_days",
        "snoozed_until_ms",
        "spell",
        "ticket_days",
        "ticket_rate",
    )

    def __init__(self, config: DetectorConfig) -> None:
        # One per signal, in tuples: their exact size, where a list built item by item keeps spare room.
        self.baselines = tuple(
            [SeasonalBaseline(config.baseline_half_life_days, z_clip=config.z_clip) for _ in SIGNALS]
        )
        self.drifts = tuple(
            [
                DropDetector(
                    config.drift_threshold, config.drift_delta, config.drift_alpha, config.drift_min_days
                )
                for _ in SIGNALS
            ]
        )
        self.gaps = GapTracker(config.gap_half_life)
        self.engagement = EngagementTracker()
        self.learned_through: int | None = None
        self.first_active_day: int | None = None
        self.drop_since: int | None = None
        self.drop_signals = 0  # bit i set: SIGNALS[i] drifted down
        self.drop_depth = 0.0  # 1 - usage ratio of the 3 days up to the flag: how abrupt the drop was
        self.recovered_days = 0
        self.ticket_rate = 0.0  # EW tickets per day
        self.ticket_days = 0
        self.ref_mrr: float | None = None  # recent peak MRR, decaying towards the current MRR
        self.canceled_ts_ms: int | None = None
        self.episode: Episode | None = None
        self.cooldown_until_ms = 0
        self.snoozed_until_ms = 0
        self.pending: list[Snapshot] = []  # scored snapshots awaiting their outcome, oldest first
        self.last_snapshot_day: int | None = None
        # The silent spell followed for the population's spell outcomes: [last active day, bins counted,
        # usual gap in 1/100 day] (detectors.spells.track_spell).
        self.spell: list[int] | None = None
        self.drop_spell: list[int] | None = None  # the same for the flagged drop: [flag day, bins counted]
        # With an alert budget: [last day assessed, risk the assessed day before, risk that day, free 0/1]
        # (detectors.budget: what the account adds to the next census).
        self.risk_days: list[Any] | None = None
        # With monthly_cycles: where in the month the account is active (detectors.cycle).
        self.cycle = MonthlyCycle() if config.monthly_cycles else None

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state (short keys: this is stored once per account; the spells only when
        followed, the risk days only with an alert budget, the monthly cycle only with ``monthly_cycles``)."""
        state = {
            "b": [b.to_state() for b in self.baselines],
            "r": [d.to_state() for d in self.drifts],
            "g": self.gaps.to_state(),
            "eg": self.engagement.to_state(),
            "l": self.learned_through,
            "f": self.first_active_day,
            "ds": self.drop_since,
            "dm": self.drop_signals,
            "dd": self.drop_depth,
            "rd": self.recovered_days,
            "t": [self.ticket_rate, self.ticket_days],
            "m": self.ref_mrr,
            "c": self.canceled_ts_ms,
            "e": self.episode.to_state() if self.episode is not None else None,
            "cd": self.cooldown_until_ms,
            "sz": self.snoozed_until_ms,
            "p": [snapshot.to_state() for snapshot in self.pending],
            "ps": self.last_snapshot_day,
        }
        if self.spell is not None:
            state["sp"] = self.spell
        if self.drop_spell is not None:
            state["dp"] = self.drop_spell
        if self.risk_days is not None:
            state["rb"] = self.risk_days
        if self.cycle is not None:
            state["mc"] = self.cycle.to_state()
        return state

    @classmethod
    def from_state(
        cls, state: dict[str, Any], config: DetectorConfig | None = None, *, share: bool = True
    ) -> AccountDetectorState:
        """Rebuild from :meth:`to_state` output; ``config`` must be the one the state was made with.

        ``share=False`` for a state decoded briefly (a sweep that keeps only stored forms): its pending
        snapshots' numbers are not looked up as shared objects, which saves memory only while a state is held
        and takes ~40 % of the decode."""
        cfg = config if config is not None else DetectorConfig()
        self = cls(cfg)
        self.baselines = tuple(
            [
                SeasonalBaseline.from_state(s, half_life_days=cfg.baseline_half_life_days, z_clip=cfg.z_clip)
                for s in state["b"]
            ]
        )
        self.drifts = tuple(
            [
                DropDetector.from_state(
                    s,
                    threshold=cfg.drift_threshold,
                    delta=cfg.drift_delta,
                    alpha=cfg.drift_alpha,
                    min_instances=cfg.drift_min_days,
                )
                for s in state["r"]
            ]
        )
        self.gaps = GapTracker.from_state(state["g"], half_life_gaps=cfg.gap_half_life)
        if "eg" in state:  # states stored before the engagement tracker start with a fresh one
            self.engagement = EngagementTracker.from_state(state["eg"])
        learned, first = state["l"], state["f"]  # days: shared int objects (detectors.shared)
        self.learned_through = shared_day(learned) if learned is not None else None
        self.first_active_day = shared_day(first) if first is not None else None
        since = state["ds"]
        self.drop_since = shared_day(since) if since is not None else None
        self.drop_signals = state["dm"]
        self.drop_depth = shared_float(state["dd"])  # mostly 0, 4 decimals
        self.recovered_days = state["rd"]
        rate, self.ticket_days = state["t"]
        self.ticket_rate = shared_zero(rate)  # 5 decimals: only the zeros repeat
        self.ref_mrr = shared_float(state["m"])  # mostly a plan's price
        self.canceled_ts_ms = state["c"]
        self.episode = Episode.from_state(state["e"]) if state["e"] is not None else None
        self.cooldown_until_ms = state["cd"]
        self.snoozed_until_ms = state["sz"]
        self.pending = [Snapshot.from_state(p, share=share) for p in state["p"]]
        snapshot_day = state["ps"]
        self.last_snapshot_day = shared_day(snapshot_day) if snapshot_day is not None else None
        self.spell = state.get("sp")  # states stored before spell outcomes follow the next spell
        self.drop_spell = state.get("dp")
        self.risk_days = state.get("rb")  # only with an alert budget
        if cfg.monthly_cycles and "mc" in state:
            self.cycle = MonthlyCycle.from_state(state["mc"])
        return self
