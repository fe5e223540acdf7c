"""Mixture weights of experts by how well each *ranks* recent outcomes: AUC over time-matched outcomes.

Churnwatch's value is the order in which it lists accounts, so :class:`~detectors.risk.RiskModel` weighs its
experts by their AUC on recent labelled outcomes as well as by their log-loss: on a base where one expert is
best calibrated but ranks at chance (ChurnSim's ``learned`` regression), the log-loss follows the calibration
and the ranking is lost (``docs/detection.md``). By default the model multiplies these rank weights with the
log-loss weights (``weigh_by="both"``): an expert must rank *and* predict.

:class:`RankWeights` keeps the inputs of recent positive and negative outcomes, each with the week of its
snapshot, and compares only positives and negatives of the same week (since the sixth pass; before, the last
64 positives and 128 negatives as they were labelled, which set positives from newer snapshots against older
negatives). It has every expert score them as it is *now*, and weighs expert ``k`` by ``exp(-(best AUC -
AUC_k) / (temperature * SE))``, SE being the rank-sum test's standard error of an AUC on the matched
outcomes. With a handful of outcomes the SE is large and the weights stay near uniform (a few skewed outcomes
cannot hand the mixture to one expert); with a full reservoir (SE ~0.04-0.05) an expert ``temperature * SE``
behind the best keeps ``1/e`` of its weight. The experts are scored as they are now rather than as they were
when each outcome arrived: scores kept from the time of each outcome held a regression's first, immature
guesses for hundreds of outcomes and ranked the tuning shapes worse (rank weights alone: 0.821 vs 0.826 AUC).
The experts have learned these outcomes, so their AUC here is slightly optimistic, least so for the
one-or-two-input experts.
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = ["RankWeights", "WeekSamples", "auc_of", "reservoir_slot"]

Scores = Callable[[Mapping[str, float]], Sequence[float]]
Row = tuple[int, tuple[float, ...]]  # (snapshot week, inputs)
UNDATED = -1  # the week of outcomes learned without a day


def auc_of(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Share of (positive, negative) pairs the scores order correctly, ties counting half; 0.5 if empty.

    >>> auc_of([0.9, 0.4], [0.1, 0.4, 0.5])
    0.75
    >>> auc_of([], [0.3])
    0.5
    """
    if not positives or not negatives:
        return 0.5
    ordered = sorted(negatives)
    wins = sum(
        bisect_left(ordered, p) + 0.5 * (bisect_right(ordered, p) - bisect_left(ordered, p))
        for p in positives
    )
    return wins / (len(positives) * len(negatives))


def reservoir_slot(seen: int, row: object) -> int:
    """Where a uniform reservoir puts the row offered after ``seen`` others: kept in that slot when it is
    below the reservoir's room. Seeded by the row, so the same stream keeps the same rows.

    >>> reservoir_slot(0, (1, (0.5,))), reservoir_slot(9, (1, (0.5,))) < 10
    (0, True)
    """
    return zlib.crc32(repr((seen, row)).encode()) % (seen + 1)


class WeekSamples:
    """A uniform sample of at most ``room`` rows per snapshot week (reservoir sampling, seeded by the row:
    the same stream keeps the same rows), for at most ``weeks`` weeks: the latest (a new week drops the
    oldest) or, with ``oldest=True``, the earliest (a new week is not kept while ``weeks`` older ones are);
    the undated week keeps its latest ``undated_room`` rows instead.

    >>> kept = WeekSamples(room=2, weeks=2, undated_room=2)
    >>> first = WeekSamples(room=2, weeks=2, undated_room=2, oldest=True)
    >>> for i in range(50):
    ...     kept.add((i // 20, (float(i),)))
    ...     first.add((i // 20, (float(i),)))
    >>> sorted(kept.rows), [len(r) for r in kept.rows.values()], kept.seen, sorted(first.rows)
    ([1, 2], [2, 2], {1: 20, 2: 10}, [0, 1])
    """

    __slots__ = ("oldest", "room", "rows", "seen", "undated_room", "weeks")

    def __init__(self, *, room: int, weeks: int, undated_room: int, oldest: bool = False) -> None:
        self.room = room
        self.weeks = weeks
        self.undated_room = undated_room
        self.oldest = oldest
        self.rows: dict[int, list[Row]] = {}
        self.seen: dict[int, int] = {}

    def add(self, row: Row) -> None:
        week = row[0]
        kept = self.rows.get(week)
        if kept is None:
            if self.oldest and len(self.rows) >= self.weeks and week > max(self.rows):
                return
            kept = self.rows[week] = []
            self.seen[week] = 0
            ordered = sorted(self.rows)
            for old in ordered[self.weeks :] if self.oldest else ordered[: -self.weeks]:
                del self.rows[old], self.seen[old]
        seen = self.seen[week]
        self.seen[week] = seen + 1
        room = self.undated_room if week == UNDATED else self.room
        if len(kept) < room:
            kept.append(row)
        elif week == UNDATED:
            kept.pop(0)
            kept.append(row)
        elif (slot := reservoir_slot(seen, row)) < room:
            kept[slot] = row

    def pop(self, week: int) -> list[Row]:
        self.seen.pop(week, None)
        return self.rows.pop(week, [])

    def count(self) -> int:
        return sum(len(r) for r in self.rows.values())

    def to_state(self) -> tuple[list[Row], list[list[int]]]:
        return [r for w in sorted(self.rows) for r in self.rows[w]], [
            [w, n] for w, n in sorted(self.seen.items())
        ]

    def restore(self, rows: Iterable[Row], seen: Iterable[Sequence[int]]) -> None:
        self.rows, self.seen = {}, {}
        for row in rows:
            self.rows.setdefault(row[0], []).append(row)
        self.seen = {int(w): int(n) for w, n in seen}


class RankWeights:
    """Weights of experts from their AUC on time-matched outcomes: positives against negatives of the same
    snapshot week.

    A positive is known when its account cancels, a negative only once its snapshot's horizon has passed;
    compared as they arrive, the positives would come from newer snapshots than the negatives, and whatever
    drifts with calendar time for the whole base (tenure) would look like ranking (on ChurnSim the reservoir
    rated the ``learned`` regression 0.54 where it ranked 0.34). So each outcome is kept with its snapshot
    week, in a uniform sample of ``per_week`` rows per week (:class:`WeekSamples`): negatives for the latest
    ``weeks`` weeks; positives wait (the earliest ``weeks`` weeks) until all their week's negatives are in
    (a later week's have started), then join a FIFO of the last ``positives`` matched positives. An
    expert's AUC counts only pairs of the same week. Outcomes without a day (``day=None``) share one
    undated week, which keeps the latest ``per_week * weeks`` negatives and passes its positives at once.

    Parameters
    ----------
    names
        The experts, in a fixed order.
    keys
        The inputs kept of each outcome (others are dropped; a missing key is 0).
    positives
        How many of the most recently matched positives are kept.
    per_week, weeks
        Outcomes of each class kept per snapshot week, and how many weeks are kept.
    temperature
        Weights ``∝ exp(-(best - AUC_k) / (temperature * SE))``.

    Examples
    --------
    >>> def scores(x):  # expert "good" ranks by x, expert "flat" cannot rank
    ...     return [x["x"], 0.0]
    >>> mix = RankWeights(("good", "flat"), ("x",), positives=8, per_week=8)
    >>> mix.weights(scores)  # nothing seen: uniform
    [0.5, 0.5]
    >>> mix.update({"x": 2.0}, True, day=70)  # a positive of week 10 waits for that week's negatives
    >>> mix.update({"x": -1.0}, False, day=71)
    >>> mix.weights(scores), mix.waiting.count()  # week 10's negatives may not all be in yet
    ([0.5, 0.5], 1)
    >>> mix.update({"x": -3.0}, False, day=77)  # week 11's have started: week 10 is matched
    >>> [round(w, 2) for w in mix.weights(scores)]  # one matched pair: little evidence, close to uniform
    [0.88, 0.12]
    >>> for i in range(8):
    ...     mix.update({"x": 2.0 + i}, True, day=72)
    ...     mix.update({"x": -1.0 - i}, False, day=73)
    >>> mix.aucs(scores), [round(w, 3) for w in mix.weights(scores)]
    ([1.0, 0.5], [0.999, 0.001])
    >>> again = RankWeights(("good", "flat"), ("x",), positives=8, per_week=8)
    >>> again.restore(mix.to_state())
    >>> again.weights(scores) == mix.weights(scores)
    True
    """

    __slots__ = ("_cache", "keys", "names", "neg", "pos", "temperature", "waiting")

    def __init__(
        self,
        names: Sequence[str],
        keys: Sequence[str],
        *,
        positives: int = 64,
        per_week: int = 16,
        weeks: int = 8,
        temperature: float = 0.5,
    ) -> None:
        self.names = tuple(names)
        self.keys = tuple(keys)
        self.temperature = temperature
        self.pos: deque[Row] = deque(maxlen=positives)
        self.waiting = WeekSamples(room=per_week, weeks=weeks, undated_room=per_week, oldest=True)
        self.neg = WeekSamples(room=per_week, weeks=weeks, undated_room=per_week * weeks)
        self._cache: tuple[list[float], float] | None = None

    def update(self, x: Mapping[str, float], y: bool, weight: float = 1.0, day: int | None = None) -> None:
        """Keep the inputs of a labelled outcome of snapshot ``day`` (weight 0 keeps nothing; any other
        counts once)."""
        if weight <= 0.0:
            return
        week = UNDATED if day is None else day // 7
        row = (week, tuple(round(float(x.get(k, 0.0)), 3) for k in self.keys))
        (self.waiting if y else self.neg).add(row)
        self._ripen()
        self._cache = None

    def _ripen(self) -> None:
        """Move the waiting positives whose week's negatives are all in (a later week's have started) into
        the matched FIFO, oldest week first; undated ones as soon as there is an undated negative."""
        if not self.neg.rows:
            return
        newest = max(self.neg.rows)
        for week in sorted(self.waiting.rows):
            if week < newest or (week == UNDATED and UNDATED in self.neg.rows):
                self.pos.extend(self.waiting.pop(week))

    def changed(self) -> None:
        """The experts learned: recompute the weights when next asked."""
        self._cache = None

    def _matched(self) -> list[tuple[Row, list[Row]]]:
        return [(p, self.neg.rows[p[0]]) for p in self.pos if p[0] in self.neg.rows]

    def aucs(self, scores: Scores) -> list[float]:
        """Each expert's AUC over the same-week pairs as ``scores`` (inputs -> one score per expert) rank
        them now (0.5 without a pair)."""
        matched = self._matched()
        n = len(self.names)
        ordered: dict[int, list[list[float]]] = {}
        for week in {p[0] for p, _ in matched}:
            rows = [self._score(r, scores) for r in self.neg.rows[week]]
            ordered[week] = [sorted(r[k] for r in rows) for k in range(n)]
        wins = [0.0] * n
        pairs = 0
        for p, negatives in matched:
            mine = self._score(p, scores)
            pairs += len(negatives)
            for k, below in enumerate(ordered[p[0]]):
                lo, hi = bisect_left(below, mine[k]), bisect_right(below, mine[k])
                wins[k] += lo + 0.5 * (hi - lo)
        return [w / pairs if pairs else 0.5 for w in wins]

    def _score(self, row: Row, scores: Scores) -> Sequence[float]:
        return scores(dict(zip(self.keys, row[1], strict=True)))

    def se(self) -> float:
        """Standard error of an AUC on the matched outcomes: the rank-sum test's, at AUC 0.5, for the
        matched positives and the negatives of their weeks (a best AUC near 1 from a few positives has a
        Hanley-McNeil SE near 0, which would make the weights a hard choice)."""
        matched = self._matched()
        n_pos = len(matched)
        n_neg = sum(len(self.neg.rows[w]) for w in {p[0] for p, _ in matched})
        return math.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg)) if n_pos and n_neg else 0.5

    def ranked(self, scores: Scores) -> tuple[list[float], float]:
        """Each expert's AUC on the matched outcomes and their SE (cached until the next :meth:`update` or
        :meth:`changed`)."""
        if self._cache is None:
            self._cache = (self.aucs(scores), self.se())
        aucs, se = self._cache
        return list(aucs), se

    def weights(self, scores: Scores) -> list[float]:
        """The weights, ``∝ exp(-(best AUC - AUC_k) / (temperature * SE))``."""
        aucs, se = self.ranked(scores)
        best = max(aucs)
        raw = [math.exp(-(best - a) / (self.temperature * se)) for a in aucs]
        total = sum(raw)
        return [r / total for r in raw]

    def to_state(self) -> dict[str, Any]:
        """The kept outcomes as ``[week, *inputs]`` rows (zeros written as ``0``: most inputs are 0) and how
        many of each week's were seen."""

        def rows(kept: Iterable[Row]) -> list[list[float]]:
            return [[week, *(v or 0 for v in row)] for week, row in kept]

        waiting, waiting_seen = self.waiting.to_state()
        neg, neg_seen = self.neg.to_state()
        return {
            "keys": list(self.keys),
            "pos": rows(self.pos),
            "waiting": rows(waiting),
            "waiting_seen": waiting_seen,
            "neg": rows(neg),
            "neg_seen": neg_seen,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take the outcomes of a saved state (an input it did not keep is 0). A reservoir saved before
        outcomes were matched by week (no ``waiting``) is dropped: its rows have no week."""
        self.pos.clear()
        self.waiting.restore((), ())
        self.neg.restore((), ())
        self._cache = None
        if "waiting" not in state:
            return
        where = {key: i + 1 for i, key in enumerate(state["keys"])}

        def rows(saved: Iterable[list[float]]) -> list[Row]:
            return [
                (int(r[0]), tuple(float(r[where[k]]) if k in where else 0.0 for k in self.keys))
                for r in saved
            ]

        self.pos.extend(rows(state["pos"]))
        self.waiting.restore(rows(state["waiting"]), state["waiting_seen"])
        self.neg.restore(rows(state["neg"]), state["neg_seen"])
