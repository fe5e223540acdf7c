"""One generic check suite, River style, run over every detector class.

Each detector is described by a :class:`Spec`: how to build it, how to drive it with a seeded random stream
(returning its outputs) and how to serialise it. The same checks then apply to all of them: clone gives a
fresh copy with the same parameters, a pickle round trip and a JSON state round trip both continue with
identical outputs, the same seed gives the same outputs, and the JSON state stays under the class's byte
budget.
"""

from __future__ import annotations

import copy
import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from detectors.baseline import GapTracker, SeasonalBaseline
from detectors.btyd import BtydModel
from detectors.budget import AlertBudget
from detectors.calendar_effects import PopulationCalendar
from detectors.cycle import MonthlyCycle
from detectors.drop import DropDetector
from detectors.engagement import EngagementTracker, SegmentQuantiles
from detectors.features.level import level_evidence
from detectors.monitor import AccountDetectorState, AccountMonitor, Assessment, DetectorConfig, OutageGuard
from detectors.population import PopulationModel
from detectors.risk import FEATURES, PriorScorer, RiskModel
from detectors.spells import SPELL_GAPS, SpellOutcomes
from detectors.vocabulary import BillingKind, Priority, SupportKind
from detectors.windows import DAY_MS, AccountWindow, WindowConfig

DAY0 = 20_601


@dataclass(frozen=True)
class Spec:
    name: str
    make: Callable[[], Any]
    run: Callable[[Any, random.Random, int, int], list[Any]]  # (detector, rng, first step, steps) -> outputs
    dump: Callable[[Any], Any]  # JSON-compatible state
    load: Callable[[Any, Any], Any]  # (state, a template detector with the same parameters) -> detector
    budget: int  # bytes of the JSON state
    params: Callable[[Any], Any]  # the parameters clone() must preserve


# -- drivers -------------------------------------------------------------------------------------------------


def run_baseline(b: SeasonalBaseline, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for day in range(DAY0 + first, DAY0 + first + steps):
        value = float(rng.randrange(0, 60))
        out.append((b.score_one(day, value), b.expected(day)))
        b.learn_one(day, value)
    return out


def run_gaps(g: GapTracker, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for day in range(DAY0 + first, DAY0 + first + steps):
        if rng.random() < 0.4:
            g.learn_one(day)
        out.append((g.score_one(day + 1), g.silent_days(day + 1)))
    return out


def run_cycle(c: MonthlyCycle, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for day in range(DAY0 + first, DAY0 + first + steps):
        busy = (day % 30) < 6  # a rough monthly rhythm, with noise
        c.learn_one(day, rng.uniform(5, 40) if busy or rng.random() < 0.1 else 0.0)
        out.append((c.concentration(), c.cyclic(), c.on_schedule(day + 1, day - rng.randrange(30))))
    return out


def run_drop(d: DropDetector, rng: random.Random, first: int, steps: int) -> list[Any]:
    return [(d.update(rng.gauss(-0.5, 1.5)), d.score()) for _ in range(steps)]


def run_engagement(t: EngagementTracker, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for _ in range(steps):
        usage = 0.0 if rng.random() < 0.3 else float(rng.randrange(1, 80))
        t.learn_one(usage, min(usage, float(rng.randrange(1, 6))))
        out.append((t.usage, t.per_active_day, t.per_user, t.n_active))
    return out


def run_segments(q: SegmentQuantiles, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for step in range(first, first + steps):
        for _ in range(4):
            q.learn_one(rng.choice(["starter", "pro", None]), rng.lognormvariate(2.0, 1.0), DAY0 + step // 3)
        out.append((q.percentile("pro", 7.0), q.percentile("starter", 20.0)))
    return out


def run_btyd(m: BtydModel, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for step in range(first, first + steps):
        T = float(rng.randrange(20, 120))
        t_x = float(rng.randrange(0, int(T)))
        x = float(rng.randrange(0, int(t_x) + 1))
        m.learn_one(f"a{rng.randrange(60)}", x=x, t_x=t_x, T=T, day=DAY0 + step)
        out.append((m.fitted, round(m.score_one(x, t_x, T), 9)))
    return out


def run_calendar(c: PopulationCalendar, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for step in range(first, first + steps):
        day = DAY0 + step
        holiday = rng.random() < 0.15
        for _ in range(25):
            expected = float(rng.randrange(5, 50))
            c.learn_one(day, usage=expected * rng.uniform(0.0, 0.4 if holiday else 1.4), expected=expected)
        c.close_through(day)
        out.append((c.is_quiet(day), c.ratio(day)))
    return out


def run_population(p: PopulationModel, rng: random.Random, first: int, steps: int) -> list[Any]:
    config, window_config = DetectorConfig(), WindowConfig()
    out = []
    for step in range(first, first + steps):
        day = DAY0 + 40 + step
        accounts = []
        for i in range(60):
            state, window = AccountDetectorState(config), AccountWindow(window_config)
            state.first_active_day, state.learned_through = day - rng.randrange(20, 40), day - 1
            gap = rng.choice([1, 3, 9])
            for active in range(state.first_active_day, day, gap):
                state.gaps.learn_one(active)
                state.engagement.learn_one(float(rng.randrange(1, 50)), float(rng.randrange(1, 4)))
            accounts.append((f"a{i}", window, state))
        for spells in (p.spells, p.drops):  # what observations hand over: counted at the census
            spells.learn_spell(0, 0, rng.randrange(len(SPELL_GAPS) + 1), gone=rng.random() < 0.3)
        p.census(accounts, day)
        features = {e.feature: e.value for e in level_evidence(p, accounts[0][1], accounts[0][2], day)}
        fates = (p.silence_fate(accounts[0][2], 5), p.drop_fate(9), p.usually_back(accounts[0][2], day + 5))
        out.append(
            (p.btyd.fitted, p.btyd.params, p.levels.percentile(None, 9.0), sorted(features.items()), fates)
        )
    return out


def run_spells(s: SpellOutcomes, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for step in range(first, first + steps):
        for _ in range(3):
            s.learn_spell(
                rng.randrange(2), rng.randrange(3), rng.randrange(len(SPELL_GAPS) + 1), rng.random() < 0.4
            )
        s.close(DAY0 + step * 2)
        out.append([(s.p_gone(c, d, 1.5), s.share_back(c, d, 1.5)) for c in (0, 1) for d in (0, 4, 12, 40)])
    return out


def run_budget(b: AlertBudget, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for step in range(first, first + steps):
        b.close(DAY0 + step)
        for _ in range(40):
            b.learn_one(rng.random() * 0.6, rng.random(), free=rng.random() < 0.8)
        out.append((b.threshold(), b.rate(b.floor)))
    return out


def random_features(rng: random.Random) -> dict[str, float]:
    return {name: round(rng.random() * 2, 3) for name in FEATURES if rng.random() < 0.3}


def run_model(m: Any, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for _ in range(steps):
        x = random_features(rng)
        out.append(m.predict_proba_one(x))
        m.learn_one(x, rng.random() < 0.2)
    return out


class MonitorHarness:
    """An account monitor with one account's window and state (the state is what is budgeted)."""

    def __init__(self, monitor: AccountMonitor) -> None:
        self.monitor = monitor
        self.window = AccountWindow(monitor.window_config)
        self.state = monitor.new_state()

    def clone(self) -> MonitorHarness:
        return MonitorHarness(self.monitor.clone())


def run_monitor(h: MonitorHarness, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for day in range(DAY0 + first, DAY0 + first + steps):
        level = 0 if rng.random() < 0.1 else rng.randrange(5, 40)
        for k in range(level):
            h.window.add_usage(
                day * DAY_MS + 30_000_000 + k * 1000, f"e{rng.randrange(6)}", f"u{rng.randrange(8)}", 1
            )
        if rng.random() < 0.05:
            h.window.add_support(
                day * DAY_MS + 40_000_000,
                SupportKind.TICKET_OPENED,
                rng.choice([Priority.URGENT, Priority.LOW]),
                None,
            )
        if rng.random() < 0.03:
            h.window.add_billing(day * DAY_MS + 50_000_000, BillingKind.PAYMENT_FAILED, 199.0, "pro")
        a = h.monitor.observe("acct", h.window, h.state, (day + 1) * DAY_MS)
        h.monitor.learn(a.outcomes)
        out.append((a.risk, a.reasons, sorted(a.flags), [x.to_dict() for x in a.alerts]))
    return out


def dump_monitor(h: MonitorHarness) -> Any:
    return h.state.to_state()


def load_monitor(state: Any, template: MonitorHarness) -> MonitorHarness:
    # Window and risk model are checked by their own owners; here only the detector state goes through JSON.
    h = copy.deepcopy(template)
    h.state = AccountDetectorState.from_state(state, h.monitor.config)
    return h


def run_guard(g: OutageGuard, rng: random.Random, first: int, steps: int) -> list[Any]:
    out = []
    for step in range(first, first + steps):
        now = (DAY0 + step) * DAY_MS
        batch = [
            Assessment(
                account_id=f"a{i}",
                now_ms=now,
                risk=0.1,
                severity=None,
                monitored=True,
                flags=frozenset({"quiet"}) if rng.random() < 0.45 else frozenset(),
                onset_day=DAY0 + step - rng.randrange(0, 3),
            )
            for i in range(30)
        ]
        decision = g.review(batch, now)
        out.append(([a.to_dict() for a in decision.incident_alerts], decision.affected))
    return out


SPECS = [
    Spec(
        "SeasonalBaseline",
        lambda: SeasonalBaseline(half_life_days=21.0),
        run_baseline,
        lambda b: b.to_state(),
        lambda s, t: SeasonalBaseline.from_state(
            s, half_life_days=t.half_life_days, sd_floor=t.sd_floor, z_clip=t.z_clip
        ),
        SeasonalBaseline.STATE_BUDGET_BYTES,
        lambda b: (b.half_life_days, b.sd_floor, b.z_clip),
    ),
    Spec(
        "GapTracker",
        lambda: GapTracker(half_life_gaps=8.0),
        run_gaps,
        lambda g: g.to_state(),
        lambda s, t: GapTracker.from_state(
            s,
            half_life_gaps=t.half_life_gaps,
            rel_floor=t.rel_floor,
            abs_floor_days=t.abs_floor_days,
            min_gaps=t.min_gaps,
        ),
        GapTracker.STATE_BUDGET_BYTES,
        lambda g: (g.half_life_gaps, g.rel_floor, g.abs_floor_days, g.min_gaps),
    ),
    Spec(
        "MonthlyCycle",
        lambda: MonthlyCycle(half_life_days=45.0, min_active=6.0),
        run_cycle,
        lambda c: c.to_state(),
        lambda s, t: MonthlyCycle.from_state(
            s, half_life_days=t.half_life_days, min_concentration=t.min_concentration, min_active=t.min_active
        ),
        MonthlyCycle.STATE_BUDGET_BYTES,
        lambda c: (c.half_life_days, c.min_concentration, c.min_active),
    ),
    Spec(
        "DropDetector",
        lambda: DropDetector(threshold=4.0),
        run_drop,
        lambda d: d.to_state(),
        lambda s, t: DropDetector.from_state(
            s, threshold=t.threshold, delta=t.delta, alpha=t.alpha, min_instances=t.min_instances
        ),
        DropDetector.STATE_BUDGET_BYTES,
        lambda d: (d.threshold, d.delta, d.alpha, d.min_instances),
    ),
    Spec(
        "EngagementTracker",
        lambda: EngagementTracker(half_life_days=10.0),
        run_engagement,
        lambda t: t.to_state(),
        lambda s, t: EngagementTracker.from_state(s, half_life_days=t.half_life_days),
        EngagementTracker.STATE_BUDGET_BYTES,
        lambda t: t.half_life_days,
    ),
    Spec(
        "SegmentQuantiles",
        lambda: SegmentQuantiles(half_life_days=5.0, min_weight=10.0),
        run_segments,
        lambda q: q.to_state(),
        lambda s, t: SegmentQuantiles.from_state(
            s,
            bins=t.bins,
            bin_width=t.bin_width,
            half_life_days=t.half_life_days,
            max_segments=t.max_segments,
            min_weight=t.min_weight,
        ),
        SegmentQuantiles.STATE_BUDGET_BYTES,
        lambda q: (q.bins, q.bin_width, q.half_life_days, q.max_segments, q.min_weight),
    ),
    Spec(
        "BtydModel",
        lambda: BtydModel(sample_size=40, refit_every_days=20, min_accounts=20, min_span_days=10.0),
        run_btyd,
        lambda m: m.to_state(),
        lambda s, t: BtydModel.from_state(
            s,
            sample_size=t.sample_size,
            refit_every_days=t.refit_every_days,
            min_accounts=t.min_accounts,
            min_span_days=t.min_span_days,
        ),
        BtydModel.STATE_BUDGET_BYTES,
        lambda m: (m.sample_size, m.refit_every_days, m.min_accounts, m.min_span_days),
    ),
    Spec(
        "PopulationCalendar",
        lambda: PopulationCalendar(min_accounts=10, keep_days=30),
        run_calendar,
        lambda c: c.to_state(),
        lambda s, t: PopulationCalendar.from_state(
            s,
            quiet_ratio=t.quiet_ratio,
            active_ratio=t.active_ratio,
            min_accounts=t.min_accounts,
            keep_days=t.keep_days,
        ),
        PopulationCalendar.STATE_BUDGET_BYTES,
        lambda c: (c.quiet_ratio, c.active_ratio, c.min_accounts, c.keep_days),
    ),
    Spec(
        "PopulationModel",
        lambda: PopulationModel(
            10, 2.0, horizon_days=21, relative_trends=True, silence_outcomes=False, drop_outcomes=True
        ),
        run_population,
        lambda p: p.to_state(),
        lambda s, t: PopulationModel.from_state(s),
        PopulationModel.STATE_BUDGET_BYTES,
        lambda p: (
            p.min_history_days,
            p.sparse_gap_days,
            p.horizon_days,
            p.relative_tenure,
            p.relative_trends,
            p.silence_outcomes,
            p.drop_outcomes,
        ),
    ),
    Spec(
        "SpellOutcomes",
        lambda: SpellOutcomes(half_life_days=30.0, prior_count=2.0),
        run_spells,
        lambda s: s.to_state(),
        lambda s, t: SpellOutcomes.from_state(s, half_life_days=t.half_life_days, prior_count=t.prior_count),
        SpellOutcomes.STATE_BUDGET_BYTES,
        lambda s: (s.half_life_days, s.prior_count),
    ),
    Spec(
        "AlertBudget",
        lambda: AlertBudget(budget=0.3, floor=0.6, half_life_days=10.0, min_account_days=100.0),
        run_budget,
        lambda b: b.to_state(),
        lambda s, t: AlertBudget.from_state(
            s,
            budget=t.budget,
            floor=t.floor,
            half_life_days=t.half_life_days,
            min_account_days=t.min_account_days,
        ),
        AlertBudget.STATE_BUDGET_BYTES,
        lambda b: (b.budget, b.floor, b.half_life_days, b.min_account_days, b.levels),
    ),
    Spec(
        "PriorScorer",
        PriorScorer,
        run_model,
        lambda p: p.to_state(),
        lambda s, t: PriorScorer.from_state(s),
        PriorScorer.STATE_BUDGET_BYTES,
        lambda p: (p.weights, p.intercept),
    ),
    Spec(
        "RiskModel",
        lambda: RiskModel(min_positives=5, learning_rate=0.05),
        run_model,
        lambda m: m.to_state(),
        lambda s, t: RiskModel.from_state(s),
        RiskModel.STATE_BUDGET_BYTES,
        lambda m: (m.min_positives, m.learning_rate, m.l2, m.eta, m.half_life, m.prior.to_state()),
    ),
    Spec(
        "AccountMonitor",
        lambda: MonitorHarness(AccountMonitor(DetectorConfig(min_history_days=10), WindowConfig())),
        run_monitor,
        dump_monitor,
        load_monitor,
        AccountDetectorState.STATE_BUDGET_BYTES,
        lambda h: (h.monitor.config, h.monitor.window_config),
    ),
    Spec(
        "OutageGuard",
        lambda: OutageGuard(DetectorConfig(outage_min_accounts=5)),
        run_guard,
        lambda g: g.to_state(),
        lambda s, t: OutageGuard.from_state(s, t.config),
        OutageGuard.STATE_BUDGET_BYTES,
        lambda g: g.config,
    ),
]
STEPS = 90


@pytest.fixture(params=SPECS, ids=[s.name for s in SPECS])
def spec(request: pytest.FixtureRequest) -> Spec:
    return request.param


def test_clone_is_fresh_with_the_same_parameters(spec: Spec) -> None:
    trained = spec.make()
    spec.run(trained, random.Random(1), 0, STEPS)
    clone = trained.clone()
    assert clone is not trained
    assert spec.params(clone) == spec.params(trained)
    assert spec.run(clone, random.Random(2), 0, STEPS) == spec.run(spec.make(), random.Random(2), 0, STEPS)


def test_pickle_round_trip_continues_identically(spec: Spec) -> None:
    detector = spec.make()
    spec.run(detector, random.Random(3), 0, STEPS // 2)
    restored = pickle.loads(pickle.dumps(detector))
    assert spec.run(restored, random.Random(4), STEPS // 2, STEPS // 2) == spec.run(
        detector, random.Random(4), STEPS // 2, STEPS // 2
    )


def test_same_seed_same_outputs(spec: Spec) -> None:
    assert spec.run(spec.make(), random.Random(5), 0, STEPS) == spec.run(
        spec.make(), random.Random(5), 0, STEPS
    )


def test_json_state_round_trip_continues_identically_within_budget(spec: Spec) -> None:
    detector = spec.make()
    sizes = []
    for chunk in range(3):
        spec.run(detector, random.Random(10 + chunk), chunk * STEPS // 3, STEPS // 3)
        raw = orjson.dumps(spec.dump(detector))
        sizes.append(len(raw))
        restored = spec.load(orjson.loads(raw), detector)
        assert orjson.dumps(spec.dump(restored)) == raw
        detector = restored
    assert max(sizes) <= spec.budget, f"{spec.name} state is {max(sizes)} bytes (budget {spec.budget})"
    twin = spec.load(orjson.loads(orjson.dumps(spec.dump(detector))), detector)
    rng_seed = 99
    assert spec.run(twin, random.Random(rng_seed), STEPS, 20) == spec.run(
        detector, random.Random(rng_seed), STEPS, 20
    )
