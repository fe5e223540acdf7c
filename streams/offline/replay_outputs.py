"""What a replay writes: the scores CSV, the alerts file and the detection-quality report of a result."""

from __future__ import annotations

import csv
import statistics
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from detectors.alerts import Alert, AlertKind, Transition
from detectors.calibration import brier_score, reliability_table
from detectors.monitor import Assessment
from detectors.windows import DAY_MS
from streams.live.holdout import Holdout
from streams.offline.replay import ReplayResult, rfc3339
from streams.offline.uplift import Uplift, alerted_outcomes

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
    """The alerts-file form of an alert: the Alert fields plus ``ts`` (RFC 3339 event time it fired);
    ``extra`` when the alert has any (a holdout stamp, a handled episode's outcome)."""
    record: dict[str, Any] = {
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
    if alert.extra:
        record["extra"] = alert.extra
    return record


def write_alerts(result: ReplayResult, path: Path, holdout: Holdout | None = None) -> int:
    """One alert record per line; stamped with their holdout membership when a holdout is given."""
    stamp = holdout is not None and holdout.share > 0
    with Path(path).open("wb") as handle:
        for alert in result.alerts:
            record = alert_record(holdout.stamp(alert) if stamp and holdout is not None else alert)
            handle.write(orjson.dumps(record) + b"\n")
    return len(result.alerts)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 2)


def build_report(
    result: ReplayResult,
    *,
    warmup_days: int = 21,
    lookback_days: int = 60,
    holdout: Holdout | None = None,
) -> dict[str, Any]:
    """Detection-quality metrics of a replay.

    Parameters
    ----------
    warmup_days
        Days from the first event during which baselines form: alerts opened then and account-days then are
        left out of the false-positive accounting, and churners cancelling then are not counted.
    lookback_days
        A churner counts as flagged when an episode opened within this many days before its cancellation;
        lead time is measured from the first such opening.
    holdout
        The holdout the replayed history was recorded under (a replay stamps no alert): the report's
        ``uplift`` compares churn after delivered and held-out alerts (:mod:`streams.offline.uplift`).
    """
    report = _counts(result)
    if holdout is not None and holdout.share > 0:
        report["uplift"] = replay_uplift(result, holdout)
    # The horizon starts at the first usage day (billing preambles may date back years).
    usage_start = min(
        (s.first_active_day for s in result.states.values() if s.first_active_day is not None), default=None
    )
    if usage_start is None or result.clock_ms is None:
        return report
    warm_ms = (usage_start + warmup_days) * DAY_MS
    opened: dict[str, list[int]] = {}
    for alert in result.alerts:
        if alert.kind is AlertKind.ACCOUNT_RISK and alert.transition is Transition.OPENED:
            opened.setdefault(alert.account_id, []).append(alert.event_ts_ms)
    report["cancellations"] = len(result.cancellations)
    report["warmup_days"] = warmup_days
    report["lookback_days"] = lookback_days
    report.update(_churners(result, opened, warm_ms, lookback_days))
    report.update(_survivors(result, opened, warm_ms))
    report.update(_precision(result, opened, warm_ms, lookback_days))
    calibration = _calibration(result)
    if calibration is not None:
        report["calibration"] = calibration
    return report


def replay_uplift(result: ReplayResult, holdout: Holdout) -> dict[str, Any] | None:
    """Uplift of delivered alerts among the replay's alerted accounts, settled a horizon after their first
    alert by the replay's clock; None while either group has no settled account."""
    if result.clock_ms is None:
        return None
    cohort = alerted_outcomes(
        result.alerts,
        result.cancellations,
        horizon_days=result.config.horizon_days,
        as_of_ms=result.clock_ms,
        holdout=holdout,
    )
    uplift = Uplift.estimate(cohort)
    body = uplift.to_dict() if uplift is not None else None
    return {
        "experiment": holdout.experiment,
        "share": holdout.share,
        "pending": cohort.pending,
        "estimate": body,
    }


def _counts(result: ReplayResult) -> dict[str, Any]:
    """What the replay read, did and raised."""
    model = result.monitor.risk_model if result.monitor is not None else None
    return {
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
        "alerts": dict(Counter(f"{a.kind.value}:{a.transition.value}" for a in result.alerts)),
        "suppressed_alerts": len(result.suppressed),
        "answers": asdict(result.answers),
        "pipeline_incidents": sum(
            1
            for a in result.alerts
            if a.kind is AlertKind.PIPELINE_INCIDENT and a.transition is Transition.OPENED
        ),
        "risk_model": {
            "using_prior": model.using_prior if model is not None else None,
            "positives": model.n_positives if model is not None else 0,
            "negatives": model.n_negatives if model is not None else 0,
            # which expert the mixture follows on this data (detectors.experts)
            "expert_weights": (
                {name: round(w, 4) for name, w in model.expert_weights().items()} if model is not None else {}
            ),
        },
    }


def _churners(
    result: ReplayResult, opened: dict[str, list[int]], warm_ms: int, lookback_days: int
) -> dict[str, Any]:
    """Churners (cancelled after warm-up) flagged by an episode opened within the lookback, and how early."""
    churned = {a: ts for a, ts in result.cancellations.items() if ts >= warm_ms}
    if not churned:
        return {}
    leads: list[float] = []
    for account, cancel_ms in churned.items():
        before = [t for t in opened.get(account, []) if cancel_ms - lookback_days * DAY_MS <= t < cancel_ms]
        if before:
            leads.append((cancel_ms - min(before)) / DAY_MS)
    return {
        "churners": len(churned),
        "churners_flagged": len(leads),
        "flagged_share": round(len(leads) / len(churned), 4),
        "lead_days": {
            "median": _quantile(leads, 0.5),
            "p25": _quantile(leads, 0.25),
            "p75": _quantile(leads, 0.75),
            "min": round(min(leads), 2) if leads else None,
        },
    }


def _survivors(result: ReplayResult, opened: dict[str, list[int]], warm_ms: int) -> dict[str, Any]:
    """False positives: episodes opened after warm-up on accounts that did not cancel (in the file)."""
    assert result.clock_ms is not None
    survivors = [a for a in result.windows if a not in result.cancellations]
    account_days = 0.0
    false_alerts = alerted_survivors = 0
    for account in survivors:
        state = result.states[account]
        if state.first_active_day is None:
            continue
        begin = max(warm_ms, state.first_active_day * DAY_MS)
        if result.clock_ms > begin:
            account_days += (result.clock_ms - begin) / DAY_MS
        late = [t for t in opened.get(account, []) if t >= warm_ms]
        false_alerts += len(late)
        alerted_survivors += bool(late)
    return {
        "survivors": len(survivors),
        "survivor_alerts": false_alerts,
        "survivors_alerted": alerted_survivors,
        "survivor_alerts_per_30_days": round(false_alerts / (account_days / 30.0), 5)
        if account_days
        else None,
    }


def _precision(
    result: ReplayResult, opened: dict[str, list[int]], warm_ms: int, lookback_days: int
) -> dict[str, Any]:
    """Precision over alerts whose outcome is known: opened after warm-up and at least a lookback before the
    end, or followed by a cancellation."""
    assert result.clock_ms is not None
    judged = hits = 0
    for account, times in opened.items():
        canceled_at = result.cancellations.get(account)
        for t in times:
            if t < warm_ms:
                continue
            hit = canceled_at is not None and t < canceled_at <= t + lookback_days * DAY_MS
            if hit or t + lookback_days * DAY_MS <= result.clock_ms:
                judged += 1
                hits += hit
    return {"precision": round(hits / judged, 4) if judged else None, "precision_alerts_judged": judged}


def _calibration(result: ReplayResult) -> dict[str, Any] | None:
    """Brier score and reliability of the risk at labelled snapshots (None without outcomes)."""
    pairs = [(o.risk, o.label) for o in result.outcomes]
    if not pairs:
        return None
    base_rate = sum(1 for _, y in pairs if y) / len(pairs)
    return {
        "horizon_days": result.config.horizon_days,
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


def state_sizes(result: ReplayResult) -> dict[str, float]:
    """Bytes per account: JSON of window state and of detector state (mean, max), and the stored row as the
    worker's table holds it (``AccountState.to_bytes``: mean, median, p90, max)."""
    window_sizes = [len(orjson.dumps(w.to_state())) for w in result.windows.values()]
    detector_sizes = [len(orjson.dumps(s.to_state())) for s in result.states.values()]
    if not window_sizes:
        return {}
    stored = sorted(len(state.to_bytes()) for state in result.account_states.values())
    if stored:
        median, p90 = stored[len(stored) // 2], stored[int(0.9 * (len(stored) - 1))]
        stored_sizes = {"stored_mean": round(statistics.fmean(stored), 1), "stored_median": median}
        stored_sizes |= {"stored_p90": p90, "stored_max": stored[-1]}
    else:
        stored_sizes = {}
    return stored_sizes | {
        "window_mean": round(statistics.fmean(window_sizes), 1),
        "window_max": max(window_sizes),
        "detector_mean": round(statistics.fmean(detector_sizes), 1),
        "detector_p99": sorted(detector_sizes)[int(0.99 * (len(detector_sizes) - 1))],
        "detector_max": max(detector_sizes),
    }
