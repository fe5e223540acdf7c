"""What answers teach about a kind of account (issue 18): how reliable each reason is within each plan.

An account's own answers (:class:`~detectors.answers.AnswerBook`) change that account only; an account
nobody answered keeps alerting for the reason that cried wolf on its neighbours. A global risk model cannot
learn "this reason is benign on this kind of account" either: it is linear in the features, and the kind
(the plan, the segment the population percentiles use) is none of them. :class:`SegmentAnswers` carries
that lesson to the unanswered accounts of the same plan.

Every *real* or *false alarm* answer is tallied under (plan, reason kind) for each reason kind of the alert,
in counts that halve every ``damping_half_life_days``. A reason's **precision** is the share of its judged
alerts that were real: over all plans ``p = (real + 1) / (judged + 2)``; within a plan, the same estimate
shrunk towards ``p`` by ``m = segment_prior_answers`` pseudo-answers,
``p_plan = (real + 1 + m p) / (judged + 2 + m)``, so a plan's own answers must outnumber ``m`` before they
say much. When a plan's precision is below the reason's overall one, the reason's features are multiplied,
for every account of that plan, by ``p_plan / p`` (at least ``1 - damping``, the most an account's own false
alarm damps). A plan where the reason is as reliable as anywhere keeps weight 1: the lesson is relative, so
a reason that is mostly wrong everywhere is the global model's to learn (from the same answers, as labels),
not a plan's.

Bounded: at most :data:`MAX_PLANS` plans (answers on further plans are left out), one tally per reason kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from detectors.answers import DAY_MS, AnswerPolicy, features_of

MAX_PLANS = 16
NO_PLAN = ""
MIN_WEIGHT_CHANGE = 0.02  # weights closer to 1 than this are left out (no change worth a multiplication)


class SegmentAnswers:
    """Decayed tallies of real and false-alarm answers per (plan, reason kind), and the weights they give.

    Examples
    --------
    Ten false alarms on ``low_engagement`` in ``starter``, three real and one false in ``pro``:

    >>> policy = AnswerPolicy(segment_prior_answers=4.0)
    >>> segments = SegmentAnswers()
    >>> for _ in range(10):
    ...     segments.record("starter", ["low_engagement"], real=False, now_ms=0, policy=policy)
    >>> for real in (True, True, True, False):
    ...     segments.record("pro", ["low_engagement"], real=real, now_ms=0, policy=policy)
    >>> segments.weights("starter", 0, policy)  # p = 4/16; p_starter = (0 + 1 + 4 * 0.25) / (10 + 2 + 4)
    {'low_engagement': 0.5}
    >>> segments.weights("pro", 0, policy), segments.weights("team", 0, policy)  # as reliable, or unknown
    ({}, {})
    >>> SegmentAnswers.from_state(segments.to_state()).to_state() == segments.to_state()
    True
    """

    __slots__ = ("tallies",)

    def __init__(self) -> None:
        # plan -> reason kind -> [real, false alarm, as of ms] (counts decayed to "as of")
        self.tallies: dict[str, dict[str, list[float]]] = {}

    @property
    def judged(self) -> float:
        """All tallied answers (decayed), for choosing between saved copies."""
        return sum(t[0] + t[1] for kinds in self.tallies.values() for t in kinds.values())

    def record(
        self, plan: str | None, kinds: Iterable[str], *, real: bool, now_ms: int, policy: AnswerPolicy
    ) -> None:
        """Tally one judged alert of an account of ``plan`` under each of its reason ``kinds``."""
        segment = plan or NO_PLAN
        if segment not in self.tallies and len(self.tallies) >= MAX_PLANS:
            return
        by_kind = self.tallies.setdefault(segment, {})
        for kind in kinds:
            if not features_of(kind):
                continue
            real_n, false_n = self._decayed(by_kind.get(kind), now_ms, policy)
            by_kind[kind] = [real_n + real, false_n + (not real), now_ms]

    def weights(self, plan: str | None, now_ms: int, policy: AnswerPolicy) -> dict[str, float]:
        """Multipliers (< 1) of the features of the reasons less reliable in ``plan`` than overall."""
        by_kind = self.tallies.get(plan or NO_PLAN)
        if not by_kind or policy.segment_prior_answers <= 0:
            return {}
        floor = 1.0 - policy.damping
        out: dict[str, float] = {}
        for kind, tally in by_kind.items():
            real_all = false_all = 0.0
            for kinds in self.tallies.values():
                r, f = self._decayed(kinds.get(kind), now_ms, policy)
                real_all, false_all = real_all + r, false_all + f
            precision = (real_all + 1.0) / (real_all + false_all + 2.0)
            real_n, false_n = self._decayed(tally, now_ms, policy)
            m = policy.segment_prior_answers
            in_plan = (real_n + 1.0 + m * precision) / (real_n + false_n + 2.0 + m)
            weight = round(max(floor, min(1.0, in_plan / precision)), 4)
            if weight <= 1.0 - MIN_WEIGHT_CHANGE:
                for name in features_of(kind):
                    out[name] = min(weight, out.get(name, 1.0))
        return out

    @staticmethod
    def _decayed(tally: list[float] | None, now_ms: int, policy: AnswerPolicy) -> tuple[float, float]:
        if tally is None:
            return 0.0, 0.0
        real_n, false_n, as_of = tally
        factor = 0.5 ** (max(0.0, now_ms - as_of) / DAY_MS / policy.damping_half_life_days)
        return real_n * factor, false_n * factor

    def summary(self, now_ms: int, policy: AnswerPolicy) -> dict[str, Any]:
        """Per plan: the weights its answers give now (what the worker's stats show)."""
        return {plan: self.weights(plan, now_ms, policy) for plan in sorted(self.tallies)}

    def to_state(self) -> dict[str, Any]:
        return {
            plan: {k: [round(t[0], 4), round(t[1], 4), int(t[2])] for k, t in kinds.items()}
            for plan, kinds in self.tallies.items()
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SegmentAnswers:
        segments = cls()
        segments.tallies = {
            plan: {k: [float(t[0]), float(t[1]), float(t[2])] for k, t in kinds.items()}
            for plan, kinds in state.items()
        }
        return segments


def merged(*weights: Mapping[str, float] | None) -> dict[str, float] | None:
    """The smallest multiplier of each feature across ``weights`` (None when none applies).

    >>> merged({"silence": 0.5}, None, {"silence": 0.2, "lapsed": 0.9})
    {'silence': 0.2, 'lapsed': 0.9}
    """
    out: dict[str, float] = {}
    for each in weights:
        for name, weight in (each or {}).items():
            out[name] = min(weight, out.get(name, 1.0))
    return out or None
