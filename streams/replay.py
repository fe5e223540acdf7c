"""Offline replay: the live pipeline's engine over a JSON-lines event file.

No Kafka: events are validated as the ingest path validates records (by :mod:`streams.replay_input`, or
here for plain lines) and handed to the same :class:`~streams.engine.Engine` the live worker drives, with an
in-memory store and the event-time clock: each UTC midnight the usage events' clock crosses sweeps every
account, so accounts that went silent are evaluated too. Detector work is therefore per account-day, and the
per-event cost is the window fold.

:func:`run_replay` is the core (the CLI, backfills, tests and benchmarks call it); :func:`build_report` turns
a result into detection-quality metrics when the file contains ``subscription_canceled`` events.

Size: ~450 lines, over the ~400 aim: the replay driver, its result type and the scores/alerts/report
writers (the writers are the next thing to move out, with the offline folder of issue 13's layout).
"""

from __future__ import annotations

import csv
import statistics
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from detectors.alerts import Alert, AlertKind, Transition
from detectors.monitor import AccountDetectorState, AccountMonitor, Assessment, DetectorConfig, Outcome
from detectors.risk import brier_score, reliability_table
from detectors.windows import DAY_MS, AccountWindow, WindowConfig
from streams.engine import AccountState, Arrival, Engine, MemoryStore, SweepOutcome
from streams.events import BillingEvent, Event, InvalidEventError, UsageEvent, validate

if TYPE_CHECKING:
    from streams.replay_input import InputRules, RejectSink, SortedInput

ProgressCallback = Callable[[int, int], None]  # (lines read, event-time watermark in ms)
CHUNK = 4_096  # events handed to the engine at a time


def rfc3339(ts_ms: int) -> str:
    """RFC 3339 UTC text of an epoch-ms time (second precision).

    >>> rfc3339(1795687200000)
    '2026-11-26T10:00:00Z'
    """
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True, kw_only=True)
class ReplayResult:
    """Everything a replay produced; see :func:`run_replay`."""

    config: DetectorConfig
    window_config: WindowConfig
    lines: int = 0
    events: int = 0
    bad_lines: int = 0
    bad_reasons: Counter[str] = field(default_factory=Counter)
    late_events: int = 0
    after_as_of: int = 0
    first_ts_ms: int | None = None
    clock_ms: int | None = None
    sweeps: int = 0
    observations: int = 0
    elapsed_s: float = 0.0
    sweep_s: float = 0.0  # of elapsed_s, the time spent in detector sweeps (the rest is decoding and folding)
    windows: dict[str, AccountWindow] = field(default_factory=dict)
    states: dict[str, AccountDetectorState] = field(default_factory=dict)
    # The final state of every account as the live worker stores it (window and detector state), by key.
    account_states: dict[bytes, AccountState] = field(default_factory=dict)
    assessments: dict[str, Assessment] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    suppressed: list[Alert] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    cancellations: dict[str, int] = field(default_factory=dict)
    monitor: AccountMonitor | None = None
    # Risk of every swept account at each requested snapshot midnight (ms -> account -> risk).
    snapshots: dict[int, dict[str, float]] = field(default_factory=dict)
    # Usage counts per account and UTC day (epoch day), when recorded (``record_activity=True``).
    activity: dict[str, dict[int, int]] | None = None

    @property
    def events_per_s(self) -> float:
        return self.lines / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_replay(
    lines: Iterable[bytes] | SortedInput,
    *,
    config: DetectorConfig | None = None,
    window_config: WindowConfig | None = None,
    monitor: AccountMonitor | None = None,
    as_of_ms: int | None = None,
    on_progress: ProgressCallback | None = None,
    progress_every: int = 1 << 16,
    snapshot_ms: Container[int] = (),
    record_activity: bool = False,
) -> ReplayResult:
    """Replay events in order through the engine (fold, daily sweeps, alert policy); the final states.

    The contract backfills rely on: ``result.account_states`` holds every account's final state (window and
    detector state, as the live worker stores it in its table, with ``applied_offsets`` reset: file
    positions are no Kafka offsets), ``result.monitor.risk_model`` the model learned, and the states are
    evaluated a last time at ``result.clock_ms``.

    Parameters
    ----------
    lines
        A :class:`~streams.replay_input.SortedInput` (validated, time-sorted, deduplicated events, decoded
        once), or raw JSON lines (bytes) already in event-time order as far as the window's lateness
        allowance requires; blank lines are ignored, invalid ones counted.
    config, window_config
        Detection and window configuration (defaults when omitted).
    monitor
        A ready monitor (e.g. with a pre-trained risk model); built from ``config`` when omitted.
    as_of_ms
        Stop the clock here: later events are skipped (counted) and the final evaluation runs at this time.
    on_progress
        Called about every ``progress_every`` lines (and at the end) with (lines read, watermark ms).
    snapshot_ms
        UTC midnights (epoch ms) at which to keep every swept account's risk in ``result.snapshots`` (what a
        backtest ranks; a midnight inside a gap of more than 62 days without usage is not swept).
    record_activity
        Keep usage counts per account and day in ``result.activity`` (what the backtest's baselines use).
    """
    started = time.perf_counter()
    cfg = config if config is not None else (monitor.config if monitor is not None else DetectorConfig())
    wcfg = window_config if window_config is not None else WindowConfig()
    mon = monitor if monitor is not None else AccountMonitor(cfg, wcfg)
    result = ReplayResult(config=cfg, window_config=wcfg, monitor=mon)
    run = _Run(
        result, mon, frozenset(snapshot_ms) if isinstance(snapshot_ms, list | tuple | set) else snapshot_ms
    )
    if record_activity:
        result.activity = {}
    from streams.replay_input import SortedInput  # it imports this module

    events = lines.events() if isinstance(lines, SortedInput) else _decode(lines, result)
    run.feed(events, as_of_ms, on_progress, progress_every)
    run.finish(as_of_ms)
    result.elapsed_s = time.perf_counter() - started
    if on_progress is not None:
        on_progress(result.lines, run.watermark)
    return result


def _decode(lines: Iterable[bytes], result: ReplayResult) -> Iterator[Event]:
    """Valid events of raw lines; invalid ones counted per reason in ``result`` (blank ones ignored)."""
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    bad = result.bad_reasons
    for raw in lines:
        try:
            yield validate(loads(raw), min_ts_ms=None)  # historical data is data
        except decode_error:
            if raw.strip():
                bad["invalid_json"] += 1
        except InvalidEventError as error:
            bad[error.reason.value] += 1


class _Run:
    """One replay: feeds the engine, records what its sweeps and folds produce into the result."""

    def __init__(self, result: ReplayResult, monitor: AccountMonitor, snapshot_at: Container[int]) -> None:
        self.result = result
        self.snapshot_at = snapshot_at
        self.store = MemoryStore()
        self.engine = Engine(monitor, self.store, on_sweep=self._swept, on_folded=self._folded)
        self.watermark = -1

    def feed(
        self,
        events: Iterable[Event],
        as_of_ms: int | None,
        on_progress: ProgressCallback | None,
        progress_every: int,
    ) -> None:
        result = self.result
        fold = self.engine.fold
        chunk: list[Arrival] = []
        accepted = after = 0
        next_progress = progress_every
        for event in events:
            accepted += 1
            ts = event.ts_ms
            if as_of_ms is not None and ts > as_of_ms:
                after += 1
                continue
            if result.first_ts_ms is None:
                result.first_ts_ms = ts
            if ts > self.watermark:
                self.watermark = ts
            chunk.append(Arrival(event, 0, accepted))
            if len(chunk) >= CHUNK:
                self._fold(fold, chunk)
                chunk = []
                if on_progress is not None and accepted >= next_progress:
                    on_progress(accepted + sum(result.bad_reasons.values()), self.watermark)
                    next_progress += progress_every
        self._fold(fold, chunk)
        result.after_as_of = after
        result.lines = accepted + sum(result.bad_reasons.values())
        result.bad_lines = sum(result.bad_reasons.values())

    def _fold(self, fold: Callable[[list[Arrival]], Any], chunk: list[Arrival]) -> None:
        done = fold(chunk)
        self.result.events += done.folded
        self.result.late_events += len(done.late)

    def finish(self, as_of_ms: int | None) -> None:
        """Evaluate every account at the stopped clock (idempotent for days already learned); the states."""
        result = self.result
        clock = as_of_ms if as_of_ms is not None else max(self.watermark, 0)
        result.clock_ms = clock
        states = self.store.states
        if states:
            self.engine.sweep(clock, everyone=True)
        for key, state in states.items():
            account = key.decode()
            state.applied_offsets = [-1] * len(state.applied_offsets)
            result.windows[account] = state.window
            result.states[account] = self.engine.detection.detector_of(state)
        result.account_states = states

    def _swept(self, outcome: SweepOutcome) -> None:
        result = self.result
        for assessment in outcome.assessments:
            result.assessments[assessment.account_id] = assessment
            if assessment.outcomes:
                result.outcomes.extend(assessment.outcomes)
        if outcome.now_ms in self.snapshot_at:
            result.snapshots[outcome.now_ms] = {a.account_id: a.risk for a in outcome.assessments}
        result.alerts.extend(outcome.alerts)
        result.suppressed.extend(outcome.suppressed)
        result.sweeps += 1
        result.observations += len(outcome.assessments)
        timing = self.engine.last_sweep
        result.sweep_s += timing.seconds if timing is not None else 0.0

    def _folded(self, event: Event) -> None:
        if type(event) is UsageEvent:
            activity = self.result.activity
            if activity is not None:
                per_day = activity.setdefault(event.account_id, {})
                day = event.ts_ms // DAY_MS
                per_day[day] = per_day.get(day, 0) + event.count
        elif type(event) is BillingEvent and event.kind == "subscription_canceled":
            self.result.cancellations.setdefault(event.account_id, event.ts_ms)


def replay_file(
    path: Path, *, rules: InputRules | None = None, on_reject: RejectSink | None = None, **kwargs: Any
) -> ReplayResult:
    """:func:`run_replay` over an event file (gzip or not), read, validated and sorted as the CLI reads it.

    ``rules`` default to the worker's settings (``CHURNWATCH_*``); the input's own figures (lines, bad
    lines) replace the result's.
    """
    from streams.replay_input import InputRules, SortedInput, read_source
    from streams.settings import load_settings

    rules = rules if rules is not None else InputRules.from_settings(load_settings())
    with SortedInput(rules, on_reject) as sorted_input:
        read_source(path, sorted_input)
        result = run_replay(sorted_input, **kwargs)
    stats = sorted_input.stats
    result.lines = stats.lines
    result.bad_reasons = stats.bad_reasons()
    result.bad_lines = sum(result.bad_reasons.values())
    return result


# -- outputs ------------------------------------------------------------------------------------------------


SCORE_COLUMNS = [
    "account_id",
    "revenue_at_risk",
    "risk",
    "severity",
    "reasons",
    "plan",
    "mrr",
    "flags",
    "episode_id",
]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet will not run as a formula (OWASP CSV injection: a leading ``'``).

    >>> spreadsheet_safe("=cmd|calc!A1"), spreadsheet_safe("acme")
    ("'=cmd|calc!A1", 'acme')
    """
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def score_rows(result: ReplayResult) -> list[dict[str, Any]]:
    """One row per account seen, highest revenue at risk first, then highest risk, then id.

    Revenue at risk is risk x MRR, and 0 once the account has cancelled (that revenue is lost, not at risk).
    """
    rows: list[dict[str, Any]] = []
    for account in sorted(result.windows):
        a = result.assessments.get(account)
        window = result.windows[account]
        risk = a.risk if a is not None else 0.0
        lost = a is not None and "canceled" in a.flags  # revenue already lost is no longer at risk
        rows.append(
            {
                "account_id": account,
                "revenue_at_risk": 0.0 if lost else round(risk * (window.mrr or 0.0), 2),
                "risk": round(risk, 4),
                "severity": _severity(result, a),
                "reasons": "; ".join(a.reasons) if a is not None else "",
                "plan": window.plan or "",
                "mrr": window.mrr if window.mrr is not None else "",
                "flags": " ".join(sorted(a.flags)) if a is not None else "",
                "episode_id": (a.episode_id or "") if a is not None else "",
            }
        )
    rows.sort(key=lambda row: (-row["revenue_at_risk"], -row["risk"]))  # stable: ties keep the id order
    return rows


def _severity(result: ReplayResult, a: Assessment | None) -> str:
    """The severity of the account's current risk while an episode is open (as the live at-risk page shows
    it, also when the risk has fallen under the alert threshold and the episode waits to resolve), else ''."""
    if a is None or (a.severity is None and a.episode_id is None):
        return ""
    if a.severity is not None:
        return a.severity.value
    return result.monitor.severity_of(a.risk).value if result.monitor is not None else ""


def write_scores(result: ReplayResult, path: Path) -> int:
    """The scores CSV (:func:`score_rows`); text cells are escaped against spreadsheet formula injection."""
    rows = score_rows(result)
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SCORE_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: spreadsheet_safe(v) if isinstance(v, str) else v for k, v in row.items()})
    return len(rows)


def alert_record(alert: Alert) -> dict[str, Any]:
    """The alerts-file form of an alert: the Alert fields plus ``ts`` (RFC 3339 event time it fired)."""
    return {
        "account_id": alert.account_id,
        "ts": rfc3339(alert.event_ts_ms),
        "kind": alert.kind.value,
        "transition": alert.transition.value,
        "severity": alert.severity.value,
        "risk": alert.risk,
        "reasons": list(alert.reasons),
        "episode_id": alert.episode_id,
        "idempotency_key": alert.idempotency_key,
        "plan": alert.plan,
        "mrr": alert.mrr,
        "revenue_at_risk": round(alert.revenue_at_risk, 2),
        "event_ts_ms": alert.event_ts_ms,
        "detected_ts_ms": alert.detected_ts_ms,
    }


def write_alerts(result: ReplayResult, path: Path) -> int:
    with Path(path).open("wb") as handle:
        for alert in result.alerts:
            handle.write(orjson.dumps(alert_record(alert)) + b"\n")
    return len(result.alerts)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 2)


def build_report(result: ReplayResult, *, warmup_days: int = 21, lookback_days: int = 60) -> dict[str, Any]:
    """Detection-quality metrics of a replay.

    Parameters
    ----------
    warmup_days
        Days from the first event during which baselines form: alerts opened then and account-days then are
        left out of the false-positive accounting, and churners cancelling then are not counted.
    lookback_days
        A churner counts as flagged when an episode opened within this many days before its cancellation;
        lead time is measured from the first such opening.
    """
    cfg = result.config
    report: dict[str, Any] = {
        "lines": result.lines,
        "events": result.events,
        "bad_lines": result.bad_lines,
        "bad_reasons": dict(result.bad_reasons),
        "late_events": result.late_events,
        "after_as_of": result.after_as_of,
        "accounts": len(result.windows),
        "clock": rfc3339(result.clock_ms) if result.clock_ms is not None else None,
        "elapsed_s": round(result.elapsed_s, 3),
        "events_per_s": round(result.events_per_s),
        "sweeps": result.sweeps,
        "observations": result.observations,
        "sweep_s": round(result.sweep_s, 3),
        "alerts": Counter(f"{a.kind.value}:{a.transition.value}" for a in result.alerts),
        "suppressed_alerts": len(result.suppressed),
        "pipeline_incidents": sum(
            1
            for a in result.alerts
            if a.kind is AlertKind.PIPELINE_INCIDENT and a.transition is Transition.OPENED
        ),
        "risk_model": {
            "using_prior": result.monitor.risk_model.using_prior if result.monitor else None,
            "positives": result.monitor.risk_model.n_positives if result.monitor else 0,
            "negatives": result.monitor.risk_model.n_negatives if result.monitor else 0,
        },
    }
    report["alerts"] = dict(report["alerts"])
    # The horizon starts at the first usage day (billing preambles may date back years).
    usage_start = min(
        (s.first_active_day for s in result.states.values() if s.first_active_day is not None), default=None
    )
    if usage_start is None or result.clock_ms is None:
        return report
    start_ms = usage_start * DAY_MS
    warm_ms = start_ms + warmup_days * DAY_MS
    end_ms = result.clock_ms
    opened: dict[str, list[int]] = {}
    for alert in result.alerts:
        if alert.kind is AlertKind.ACCOUNT_RISK and alert.transition is Transition.OPENED:
            opened.setdefault(alert.account_id, []).append(alert.event_ts_ms)
    churned = {a: ts for a, ts in result.cancellations.items() if ts >= warm_ms}
    report["cancellations"] = len(result.cancellations)
    report["warmup_days"] = warmup_days
    report["lookback_days"] = lookback_days
    if churned:
        leads: list[float] = []
        for account, cancel_ms in churned.items():
            before = [
                t for t in opened.get(account, []) if cancel_ms - lookback_days * DAY_MS <= t < cancel_ms
            ]
            if before:
                leads.append((cancel_ms - min(before)) / DAY_MS)
        report["churners"] = len(churned)
        report["churners_flagged"] = len(leads)
        report["flagged_share"] = round(len(leads) / len(churned), 4)
        report["lead_days"] = {
            "median": _quantile(leads, 0.5),
            "p25": _quantile(leads, 0.25),
            "p75": _quantile(leads, 0.75),
            "min": round(min(leads), 2) if leads else None,
        }
    # False positives: episodes opened after warm-up on accounts that did not cancel (in the file).
    survivors = [a for a in result.windows if a not in result.cancellations]
    account_days = 0.0
    false_alerts = 0
    alerted_survivors = 0
    for account in survivors:
        state = result.states[account]
        if state.first_active_day is None:
            continue
        begin = max(warm_ms, state.first_active_day * DAY_MS)
        if end_ms > begin:
            account_days += (end_ms - begin) / DAY_MS
        late = [t for t in opened.get(account, []) if t >= warm_ms]
        false_alerts += len(late)
        alerted_survivors += bool(late)
    report["survivors"] = len(survivors)
    report["survivor_alerts"] = false_alerts
    report["survivors_alerted"] = alerted_survivors
    report["survivor_alerts_per_30_days"] = (
        round(false_alerts / (account_days / 30.0), 5) if account_days else None
    )
    # Precision over alerts whose outcome is known: opened after warm-up and at least a lookback before the
    # end, or followed by a cancellation.
    judged = hits = 0
    for account, times in opened.items():
        canceled_at = result.cancellations.get(account)
        for t in times:
            if t < warm_ms:
                continue
            hit = canceled_at is not None and t < canceled_at <= t + lookback_days * DAY_MS
            if hit or t + lookback_days * DAY_MS <= end_ms:
                judged += 1
                hits += hit
    report["precision"] = round(hits / judged, 4) if judged else None
    report["precision_alerts_judged"] = judged
    pairs = [(o.risk, o.label) for o in result.outcomes]
    if pairs:
        base_rate = sum(1 for _, y in pairs if y) / len(pairs)
        report["calibration"] = {
            "horizon_days": cfg.horizon_days,
            "snapshots": len(pairs),
            "positives": sum(1 for _, y in pairs if y),
            "brier": brier_score(pairs),
            "brier_base_rate": brier_score([(base_rate, y) for _, y in pairs]),
            "reliability": [
                {
                    "low": round(r.low, 4),
                    "high": round(r.high, 4),
                    "n": r.n,
                    "mean_predicted": round(r.mean_predicted, 4),
                    "observed_rate": round(r.observed_rate, 4),
                }
                for r in reliability_table(pairs)
            ],
        }
    return report


def state_sizes(result: ReplayResult) -> dict[str, float]:
    """Mean and max JSON bytes per account of window state and detector state."""
    window_sizes = [len(orjson.dumps(w.to_state())) for w in result.windows.values()]
    detector_sizes = [len(orjson.dumps(s.to_state())) for s in result.states.values()]
    if not window_sizes:
        return {}
    return {
        "window_mean": round(statistics.fmean(window_sizes), 1),
        "window_max": max(window_sizes),
        "detector_mean": round(statistics.fmean(detector_sizes), 1),
        "detector_p99": sorted(detector_sizes)[int(0.99 * (len(detector_sizes) - 1))],
        "detector_max": max(detector_sizes),
    }
