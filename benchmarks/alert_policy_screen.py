"""Screen alert policies on the tuning data from one replay per file (issue 14, ninth pass).

Risk does not depend on the alert policy, so one replay per file records every step of the episode policy
(account, day, risk, health, silent days, the feature adding most); the policies are then re-run over those
traces: a plain ``alert_threshold`` (the comparator, as a curve), and the candidates. The plain policy at the
default threshold must reproduce the replay's own openings (checked, printed). Tuning split only.

Usage::

    .venv/bin/python benchmarks/alert_policy_screen.py --files 3 --jobs 2 --workdir WORKDIR
    .venv/bin/python benchmarks/alert_policy_screen.py --diagnose --files 5 --workdir WORKDIR
    .venv/bin/python benchmarks/alert_policy_screen.py --budgets 0.03 0.05 --warmup-days 15 --workdir WORKDIR

Size: ~500 lines, over the ~400 aim: the trace recorder, the episode policy's re-run, the candidate gates and
the alert budget's re-run share the traces and the comparator; split, each part would import the others.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from detectors.episode import EpisodePolicy, RiskSnapshot
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.windows import DAY_MS
from streams.offline.backtest import CHURNWATCH, BacktestConfig, backtest
from streams.offline.replay import replay_file

sys.path.insert(0, str(Path(__file__).parent))
from generalization_sources import SOURCES, SourceFile  # benchmarks/generalization_sources.py


class Step(NamedTuple):
    """One account's assessed day, as the episode policy saw it."""

    day: float
    risk: float
    usage_drop: float
    silent: bool
    new_days: int
    silent_days: int
    mean_gap: float
    drop_age: int
    top: str  # the feature adding most to the risk ("" below 0.3)
    weight: float


@dataclass(slots=True)
class Trace:
    label: str
    steps: dict[str, list[Step]]
    churn: dict[str, float]
    warm: float
    end_day: float
    non_days: float
    shape_of: dict[str, str]
    vacation: set[str]
    real_openings: dict[str, list[float]]
    suppressed: set[tuple[str, float]]


def trace_file(source_file: SourceFile, config: DetectorConfig, cache: Path) -> Trace:
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    steps: dict[str, list[Step]] = defaultdict(list)
    suppressed: set[tuple[str, float]] = set()
    last: dict[str, Any] = {}
    monitors: list[AccountMonitor] = []
    original_step, original_of, original_init = EpisodePolicy.step, RiskSnapshot.of, AccountMonitor.__init__
    original_suppress = EpisodePolicy.suppress

    def init(self: AccountMonitor, *a: Any, **k: Any) -> None:
        original_init(self, *a, **k)
        monitors.append(self)

    def of(cls: Any, *a: Any) -> RiskSnapshot:
        last["features"] = a[-1]
        return original_of(*a)

    def step(self: EpisodePolicy, state: Any, seen: RiskSnapshot, now_ms: int, *a: Any, **k: Any) -> Any:
        today = now_ms // DAY_MS
        top, weight = "", 0.0
        if seen.risk >= 0.3 and monitors:
            contrib = monitors[-1].risk_model.contributions(last["features"])
            if contrib:
                top, weight = max(contrib.items(), key=lambda kv: kv[1])
        drop_age = -1 if state.drop_since is None else today - state.drop_since
        steps[seen.account_id].append(
            Step(
                now_ms / DAY_MS,
                seen.risk,
                seen.usage_drop,
                seen.silent,
                a[1],
                state.gaps.silent_days(today),
                state.gaps.mean_gap,
                drop_age,
                top,
                weight,
            )
        )
        return original_step(self, state, seen, now_ms, *a, **k)

    def suppress(state: Any, alert: Any) -> None:
        suppressed.add((alert.account_id, alert.event_ts_ms / DAY_MS))
        original_suppress(state, alert)

    AccountMonitor.__init__ = init  # type: ignore[method-assign]
    RiskSnapshot.of = classmethod(of)  # type: ignore[method-assign,assignment]
    EpisodePolicy.step = step  # type: ignore[method-assign]
    EpisodePolicy.suppress = staticmethod(suppress)  # type: ignore[method-assign,assignment]
    try:
        result = replay_file(
            source_file.events,
            config=config,
            snapshot_ms=[d * DAY_MS for d in source_file.as_of_days],
            record_activity=True,
        )
    finally:
        AccountMonitor.__init__ = original_init  # type: ignore[method-assign]
        RiskSnapshot.of = original_of  # type: ignore[method-assign]
        EpisodePolicy.step = original_step  # type: ignore[method-assign]
        EpisodePolicy.suppress = original_suppress  # type: ignore[method-assign]
    bt = backtest(
        result,
        BacktestConfig(
            horizon_days=source_file.horizon_days,
            outcome=source_file.outcome,
            as_of_days=source_file.as_of_days,
            warmup_days=21,
        ),
    )
    assert bt is not None
    ours = bt.scorers[CHURNWATCH].alerts
    false_alerts = sum(len(ts) for a, ts in ours.openings.items() if a not in bt.churn_day)
    rate = ours.nonchurner_alerts_per_30d or 0.0
    trace = Trace(
        source_file.label,
        dict(steps),
        dict(bt.churn_day),
        bt.warm_day,
        bt.end_day,
        30 * false_alerts / rate if rate else 0.0,
        source_file.shape_of,
        source_file.vacation,
        ours.openings,
        suppressed,
    )
    cache.write_bytes(pickle.dumps(trace))
    return trace


# -- policies -----------------------------------------------------------------------------------------------

# A gate sees the account's steps so far (the current one last) and its memory dict; True holds the opening.
Gate = Callable[[list[Step], dict[str, Any]], bool]


def simulate(
    trace: Trace, threshold: float, gate: Gate | None = None, cfg: DetectorConfig | None = None
) -> dict[str, list[float]]:
    """Openings (epoch days, after warm-up) of the episode policy at ``threshold`` with ``gate``."""
    cfg = cfg or DetectorConfig()
    out: dict[str, list[float]] = {}
    for account, steps in trace.steps.items():
        open_ = False
        healthy = 0
        cooldown = -1e18
        memory: dict[str, Any] = {"peaks": []}
        peak = 0.0
        for i, s in enumerate(steps):
            day, risk, usage_drop, silent, new_days = s.day, s.risk, s.usage_drop, s.silent, s.new_days
            if not open_:
                if risk < threshold or day < cooldown:
                    continue
                if gate is not None and gate(steps[: i + 1], memory):
                    continue
                open_, healthy, peak = True, 0, risk
                if (account, day) not in trace.suppressed and day >= trace.warm:
                    out.setdefault(account, []).append(day)
                continue
            peak = max(peak, risk)
            if new_days:
                ok = risk < cfg.resolve_threshold and usage_drop <= 1.0 - cfg.recover_ratio and not silent
                healthy = healthy + new_days if ok else 0
                if healthy >= cfg.resolve_after_days:
                    open_ = False
                    cooldown = day + cfg.cooldown_days
                    memory["peaks"].append((day, peak))
    return out


def stats(trace: Trace, openings: dict[str, list[float]]) -> tuple[int, int, int, float]:
    """(churners, flagged >= 7 d ahead, false openings, non-churner days)."""
    churners = ahead = 0
    for account, c in trace.churn.items():
        if c < trace.warm:
            continue
        churners += 1
        ahead += any(c - 60 <= t <= c - 7 for t in openings.get(account, []))
    false = sum(len(ts) for a, ts in openings.items() if a not in trace.churn)
    return churners, ahead, false, trace.non_days


def summary(traces: list[Trace], openings: list[dict[str, list[float]]]) -> tuple[float, float, float]:
    """(flagged >= 7 d ahead, non-churner alerts / 30 d (mean over files), vacation ever alerted)."""
    ch = ah = 0
    rates, vac = [], []
    for t, o in zip(traces, openings, strict=True):
        c, a, f, nd = stats(t, o)
        ch += c
        ah += a
        rates.append(f / (nd / 30) if nd else 0.0)
        v = [x for x in t.vacation if x not in t.churn]
        if v:
            vac.append(sum(1 for x in v if o.get(x)) / len(v))
    return ah / ch, statistics.fmean(rates), statistics.fmean(vac) if vac else float("nan")


def comparator(traces: list[Trace], rate: float) -> float:
    """Flagged >= 7 d ahead of a plain threshold at non-churner rate ``rate`` (linear interpolation)."""
    curve = []
    for k in range(0, 50):
        th = 0.30 + 0.0125 * k
        f, r, _ = summary(traces, [simulate(t, th) for t in traces])
        curve.append((r, f))
    curve.sort()
    for (r0, f0), (r1, f1) in itertools.pairwise(curve):
        if r0 <= rate <= r1:
            return f0 + (f1 - f0) * (rate - r0) / (r1 - r0) if r1 > r0 else max(f0, f1)
    return float("nan")


# -- candidate gates ----------------------------------------------------------------------------------------


def survived_peak(half_life: float, margin: float = 0.0) -> Gate:
    """Hold while risk is not above the peaks of this account's earlier episodes that resolved (decayed)."""

    def gate(steps: list[Step], memory: dict[str, Any]) -> bool:
        day, risk = steps[-1].day, steps[-1].risk
        bar = 0.0
        for d, p in memory["peaks"]:
            bar = max(bar, p * 0.5 ** ((day - d) / half_life))
        return risk <= bar + margin

    return gate


def own_longest_gap(factor: float = 1.0) -> Gate:
    """Hold a silence-led opening while the silent spell is no longer than the account's longest earlier gap
    it came back from (times ``factor``)."""

    def gate(steps: list[Step], memory: dict[str, Any]) -> bool:
        longest, prev = 0, 0
        for s in steps[:-1]:
            if s.silent_days < prev:
                longest = max(longest, prev)
            prev = s.silent_days
        current = steps[-1]
        return current[8] == "silence" and current[5] <= factor * longest

    return gate


def persist(days: int) -> Gate:
    """Hold until risk has stayed above the opening threshold on ``days`` evaluated days (this included)."""

    def gate(steps: list[Step], memory: dict[str, Any]) -> bool:
        risk0 = memory.setdefault("threshold", 0.5)
        seen_days: set[int] = set()
        for s in reversed(steps):
            if s.risk < risk0:
                break
            seen_days.add(int(s.day))
        return len(seen_days) < days

    return gate


# -- diagnosis ----------------------------------------------------------------------------------------------


def _silent_bin(days: int) -> str:
    for top, label in ((0, "0"), (3, "1-3"), (6, "4-6"), (13, "7-13")):
        if days <= top:
            return label
    return "14+"


def diagnose(traces: list[Trace]) -> None:
    first: Counter[str] = Counter()
    by: dict[str, Counter[str]] = defaultdict(Counter)
    silent_bins: dict[str, Counter[str]] = defaultdict(Counter)
    repeat: Counter[str] = Counter()
    accounts: Counter[str] = Counter()
    alerted: Counter[str] = Counter()
    for t in traces:
        for account, steps in t.steps.items():
            if account in t.churn:
                continue
            shape = t.shape_of.get(account, "?")
            accounts[shape] += 1
            times = t.real_openings.get(account, [])
            alerted[shape] += bool(times)
            repeat[shape] += max(0, len(times) - 1)
            index = {s.day: s for s in steps}
            for n, day in enumerate(times):
                s = index.get(day)
                if s is None:
                    continue
                by[shape][s.top or "-"] += 1
                silent_bins[shape][_silent_bin(s.silent_days)] += 1
                if n == 0:
                    first[shape] += 1
    print("\nnon-churners by shape: accounts, ever alerted, openings, repeat openings")
    for shape in sorted(accounts):
        total = sum(by[shape].values())
        print(
            f"  {shape}: {accounts[shape]} accounts, {alerted[shape] / accounts[shape]:.0%} alerted, "
            f"{total} openings ({repeat[shape]} repeats); top feature {dict(by[shape].most_common(6))}; "
            f"silent days {dict(silent_bins[shape])}"
        )


def _add_source_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sources", nargs="+", default=["simulator", "shapes-tuning"])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--sim-seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--monthly-cycles",
        action=argparse.BooleanOptionalAction,
        default=DetectorConfig().monthly_cycles,
        help="DetectorConfig.monthly_cycles (on by default since the tenth pass).",
    )


def _tuning_traces(args: argparse.Namespace) -> Iterator[tuple[str, list[Trace]]]:
    """Each chosen *tuning* source's traces of the default, or with ``--no-monthly-cycles`` (held-out
    sources are never read)."""
    args.workdir.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        if source.name not in args.sources or source.split != "tuning":
            continue
        files = list(source.files(args.workdir, args))
        config = DetectorConfig(monthly_cycles=args.monthly_cycles)
        tag = "-cycles" if args.monthly_cycles else ""  # traces of the other setting are kept apart
        caches = [args.workdir / f"trace-{f.label}{tag}.pickle" for f in files]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            yield source.name, list(pool.map(trace_file, files, [config] * len(files), caches))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _add_source_args(parser)
    parser.add_argument("--diagnose", action="store_true")
    args = parser.parse_args(argv)
    for name, traces in _tuning_traces(args):
        same = all(simulate(t, 0.5) == {a: ts for a, ts in t.real_openings.items()} for t in traces)
        print(f"\n## {name}: {len(traces)} files; plain 0.5 reproduces the replay's openings: {same}")
        if args.diagnose:
            diagnose(traces)
        curve = []
        for th in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85):
            f, r, v = summary(traces, [simulate(t, th) for t in traces])
            curve.append(f"{th}: {f:.1%} / {r:.2%} / vac {v:.0%}")
        print("plain threshold (flagged >= 7 d / non-churner alerts per 30 d / vacation):")
        print("  " + "\n  ".join(curve))
        candidates: dict[str, tuple[float, Gate]] = {
            "survived peak hl 60": (0.5, survived_peak(60.0)),
            "survived peak hl 30": (0.5, survived_peak(30.0)),
            "survived peak hl 90 +0.05": (0.5, survived_peak(90.0, 0.05)),
            "own longest gap x1": (0.5, own_longest_gap(1.0)),
            "persist 2 days": (0.5, persist(2)),
            "persist 3 days": (0.5, persist(3)),
        }
        for name, (th, gate) in candidates.items():
            f, r, v = summary(traces, [simulate(t, th, gate) for t in traces])
            at = comparator(traces, r)
            print(f"{name}: {f:.1%} / {r:.2%} / vac {v:.0%}; plain threshold at that rate: {at:.1%}")
    return 0


GRID = tuple(round(0.5 + 0.02 * k, 2) for k in range(25))  # 0.50 .. 0.98


def simulate_budget(
    trace: Trace,
    budget: float,
    half_life: float = 30.0,
    floor: float = 0.5,
    cfg: DetectorConfig | None = None,
    by_rhythm: bool = False,
    warmup_days: int = 0,
) -> dict[str, list[float]]:
    """Openings under an alert budget: each day the threshold is the lowest of GRID whose decayed rate of
    fresh crossings (accounts without an episode whose risk rose past it since their previous day), per
    account per 30 days, is within ``budget``; never below ``floor``. ``warmup_days``: an account's first
    days (since its first step) are not counted (approximately the detectors' warm-up)."""
    cfg = cfg or DetectorConfig()
    by_day: dict[int, list[tuple[str, Step]]] = defaultdict(list)
    warm_from: dict[str, float] = {}
    for account, steps in trace.steps.items():
        warm_from[account] = steps[0].day + warmup_days if steps else 0.0
        for s in steps:
            by_day[int(s.day)].append((account, s))
    classes = ("daily", "sparse") if by_rhythm else ("all",)
    crossings = {c: [0.0] * len(GRID) for c in classes}
    account_days = dict.fromkeys(classes, 0.0)
    decay = 0.5 ** (1.0 / half_life)
    ep: dict[str, list[Any]] = {}  # account -> [open, healthy, cooldown_until]
    prev_risk: dict[str, float] = {}
    out: dict[str, list[float]] = {}

    def klass(s: Step) -> str:
        return ("sparse" if s.mean_gap >= 2.5 else "daily") if by_rhythm else "all"

    for day in sorted(by_day):
        thresholds = {}
        for c in classes:
            threshold = floor
            if account_days[c] >= 30 * 50:
                for t, n in zip(GRID, crossings[c], strict=True):
                    if t >= floor and n / (account_days[c] / 30) <= budget:
                        threshold = t
                        break
                else:
                    threshold = GRID[-1]
            thresholds[c] = threshold
        free_at_start = {a for a, e in ep.items() if not e[0] and day >= e[2]}
        today: dict[str, tuple[float, str]] = {}
        for account, s in by_day[day]:
            if account not in ep:
                free_at_start.add(account)
            e = ep.setdefault(account, [False, 0, -1e18])
            d, risk, usage_drop, silent, new_days = s.day, s.risk, s.usage_drop, s.silent, s.new_days
            today[account] = (risk, klass(s))
            if not e[0]:
                if risk < thresholds[klass(s)] or d < e[2]:
                    continue
                e[0], e[1] = True, 0
                if (account, d) not in trace.suppressed and d >= trace.warm:
                    out.setdefault(account, []).append(d)
                continue
            if new_days:
                ok = risk < cfg.resolve_threshold and usage_drop <= 1.0 - cfg.recover_ratio and not silent
                e[1] = e[1] + new_days if ok else 0
                if e[1] >= cfg.resolve_after_days:
                    e[0], e[2] = False, d + cfg.cooldown_days
        for c in classes:
            crossings[c] = [n * decay for n in crossings[c]]
            account_days[c] *= decay
        for account, (risk, c) in today.items():
            if day < warm_from[account]:
                continue
            account_days[c] += 1
            before = prev_risk.get(account, 0.0)
            if account in free_at_start:
                for k, t in enumerate(GRID):
                    if before < t <= risk:
                        crossings[c][k] += 1
        prev_risk = {a: r for a, (r, _) in today.items()}
    return out


def budget_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    _add_source_args(parser)
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.02, 0.03, 0.04, 0.05, 0.06])
    parser.add_argument("--half-lives", type=float, nargs="+", default=[30.0])
    parser.add_argument("--floor", type=float, default=0.5)
    parser.add_argument("--by-rhythm", action="store_true")
    parser.add_argument("--warmup-days", type=int, default=0, help="Count accounts from this day of theirs.")
    args = parser.parse_args(argv)
    for name, traces in _tuning_traces(args):
        print(f"\n## {name}: {len(traces)} files")
        for hl in args.half_lives:
            for b in args.budgets:
                runs = [
                    simulate_budget(
                        t, b, hl, args.floor, by_rhythm=args.by_rhythm, warmup_days=args.warmup_days
                    )
                    for t in traces
                ]
                f, r, v = summary(traces, runs)
                print(
                    f"budget {b:.0%} hl {hl:g} floor {args.floor}: {f:.1%} / {r:.2%} / vac {v:.0%}; "
                    f"plain threshold at that rate: {comparator(traces, r):.1%}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(budget_main() if "--budgets" in sys.argv else main())
