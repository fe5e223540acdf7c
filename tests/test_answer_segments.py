"""What answers teach about a plan (issue 18): per-plan reliability of reasons, and what it does to unanswered
accounts, without Kafka."""

from __future__ import annotations

import pytest

from detectors.answer_segments import MAX_PLANS, SegmentAnswers
from detectors.answers import DAY_MS, AnswerPolicy
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.windows import AccountWindow, WindowConfig
from streams.engine.detection import Detection
from streams.engine.state import AccountState

POLICY = AnswerPolicy()


def tallied(answers: dict[str, tuple[int, int]], kind: str = "silence") -> SegmentAnswers:
    """Segments with (real, false alarms) answered per plan on one reason kind, all at time 0."""
    segments = SegmentAnswers()
    for plan, (real, false) in answers.items():
        for is_real in [True] * real + [False] * false:
            segments.record(plan, [kind], real=is_real, now_ms=0, policy=POLICY)
    return segments


def test_a_plan_where_a_reason_cries_wolf_damps_it_the_others_keep_it() -> None:
    segments = tallied({"pro": (1, 30), "starter": (10, 20), "business": (5, 5)})
    pro = segments.weights("pro", 0, POLICY)
    assert set(pro) == {"silence"} and pro["silence"] < 0.5
    assert segments.weights("starter", 0, POLICY) == {}  # precision 1/3 > 16/71 overall
    assert segments.weights("business", 0, POLICY) == {}
    assert segments.weights("enterprise", 0, POLICY) == {}  # never answered: nothing learned


def test_the_lesson_is_relative_a_reason_wrong_everywhere_is_left_to_the_global_model() -> None:
    segments = tallied({"pro": (2, 40), "starter": (2, 40)})
    assert segments.weights("pro", 0, POLICY) == {} and segments.weights("starter", 0, POLICY) == {}


def test_few_answers_say_little_many_say_more_never_below_the_floor() -> None:
    def pro_weight(false_alarms: int) -> float:
        segments = tallied({"pro": (0, false_alarms), "starter": (20, 20)})
        return segments.weights("pro", 0, POLICY).get("silence", 1.0)

    weights = [pro_weight(n) for n in (1, 5, 20, 200)]
    assert weights == sorted(weights, reverse=True) and weights[0] > 0.85
    assert weights[-1] == pytest.approx(1 - POLICY.damping)  # the floor: what one account's answer damps
    assert (
        tallied({"pro": (0, 20), "starter": (20, 20)}).weights(
            "pro", 0, AnswerPolicy(segment_prior_answers=0)
        )
        == {}
    )


def test_tallies_fade_with_the_damping_half_life() -> None:
    segments = tallied({"pro": (0, 30), "starter": (20, 20)})
    now = segments.weights("pro", 0, POLICY)["silence"]
    # Halving every count alike keeps the precisions but weakens the plan's evidence against the prior.
    later = segments.weights("pro", int(2 * POLICY.damping_half_life_days * DAY_MS), POLICY)["silence"]
    assert now < later < 1.0


def test_bounded_and_round_trips() -> None:
    segments = SegmentAnswers()
    for i in range(MAX_PLANS + 5):
        segments.record(f"plan-{i}", ["silence", "base_rate", "tickets"], real=False, now_ms=0, policy=POLICY)
    assert len(segments.tallies) == MAX_PLANS
    assert all(set(kinds) == {"silence", "tickets"} for kinds in segments.tallies.values())  # no feature
    assert SegmentAnswers.from_state(segments.to_state()).to_state() == segments.to_state()


def test_an_unanswered_account_of_the_plan_is_weighed_by_its_plan_and_its_own_answers() -> None:
    detection = Detection(AccountMonitor(DetectorConfig(), WindowConfig()))
    detection.segments.tallies = tallied({"pro": (0, 40), "starter": (20, 20)}).tallies

    def account(plan: str) -> AccountState:
        window = AccountWindow(WindowConfig())
        window.plan = plan
        return AccountState(window, 0)

    pro, starter = account("pro"), account("starter")
    plan_weight = detection.feature_weights(pro, 0)
    assert plan_weight is not None and plan_weight["silence"] < 0.5
    assert detection.feature_weights(starter, 0) is None
    detection.adopt_segments(SegmentAnswers().to_state())  # an emptier saved copy does not replace it
    assert detection.feature_weights(pro, 0) == plan_weight
