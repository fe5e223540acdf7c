"""How silent spells end in this base: :class:`SpellOutcomes`, learned online from every account's spells.

A *silent spell* is an account's run of days without activity after an active day. Early in one, a vacation
and a silent churner look the same; what tells them apart is how spells of that length end *in this base*.
:class:`SpellOutcomes` counts, for spells that reached ``t`` usual gaps of silence (:data:`SPELL_GAPS`,
small fixed bins; daily and sparse accounts apart, :data:`SPELL_CLASSES`), how many then came back and how
many did not (competing outcomes): **back** when the account was active again (its spell ended), **gone**
when it cancelled, or, when inactivity counts as churn (``DetectorConfig.inactivity_is_churn``), stayed
silent for a whole horizon after reaching ``t``. A spell still running is censored: it adds nothing to a
bin until its outcome there is known. So :meth:`SpellOutcomes.p_gone` is the base's own answer to "an
account silent this long: how often does it not come back within the horizon?", the question the risk
model's label asks, which the silence surprise (how unusual the silence is for the account's own rhythm)
does not answer: for a daily account the surprise saturates within a week, whether the base's week-long
silences are vacations or departures.

Per account it keeps three integers (``AccountDetectorState.spell``: the spell's last active day, how
many of its bins are already counted and the account's usual gap when it began), updated by
:func:`track_spell` when the account is observed; outcomes go to :attr:`SpellOutcomes.pending` and
are merged at the next census (:meth:`SpellOutcomes.close`), so every account of a sweep reads the
same counts. The counts decay (half-life :attr:`SpellOutcomes.half_life_days`), so a base that changes
its habits is followed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from detectors.windows import USAGE, AccountWindow

if TYPE_CHECKING:
    from detectors.account_state import AccountDetectorState

__all__ = ["SPELL_CLASSES", "SPELL_GAPS", "SpellOutcomes", "spell_class", "track_drop", "track_spell"]

SPELL_GAPS: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 14.0, 21.0, 30.0)  # bin edges, in gaps
SPELL_CLASSES: tuple[str, ...] = ("daily", "sparse")


def spell_class(mean_gap: float, sparse_gap_days: float) -> tuple[int, float]:
    """``(class index, unit in days)`` of an account whose usual gap is ``mean_gap`` days: spells are
    measured in usual gaps (at least a day) and daily and sparse accounts are counted apart.

    >>> spell_class(1.1, 2.5), spell_class(7.0, 2.5)
    ((0, 1.1), (1, 7.0))
    """
    return (1 if mean_gap >= sparse_gap_days else 0), max(1.0, mean_gap)


def reached(silent_days: float, unit: float) -> int:
    """How many bins a spell of ``silent_days`` silent days has reached (``unit``: its usual gap).

    >>> reached(0, 1.0), reached(4, 1.0), reached(4.5, 1.0), reached(13, 7.0), reached(500, 1.0)
    (0, 4, 4, 1, 10)
    """
    gaps = silent_days / unit
    return sum(1 for edge in SPELL_GAPS if gaps >= edge)


class SpellOutcomes:
    """Counts of silent spells that came back or did not, by how long they had lasted (decayed).

    Parameters
    ----------
    half_life_days
        Counts halve over this many census days.
    prior_count
        Pseudo-spells that did *not* come back, added to every bin: with no evidence :meth:`p_gone` is 1
        (a silence keeps its full weight until the base shows that silences this long usually end).

    Examples
    --------
    Forty daily accounts go quiet for a week and come back; ten stay silent until they cancel, 20 days on:

    >>> spells = SpellOutcomes()
    >>> for _ in range(40):
    ...     spells.learn_spell(0, 0, reached(7, 1.0), gone=False)  # every bin up to 7 silent days: back
    >>> for _ in range(10):
    ...     spells.learn_spell(0, 0, reached(20, 1.0), gone=True)  # every bin up to 20 days: gone
    >>> spells.close(20_000)
    >>> spells.p_gone(0, 0) is None  # not silent: not a spell
    True
    >>> [round(spells.p_gone(0, d) or 0.0, 2) for d in (3, 7, 10, 20)]  # silent 3, 7, 10, 20 days
    [0.27, 0.27, 1.0, 1.0]
    >>> round(spells.share_back(0, 5), 2), spells.p_gone(1, 5)  # no sparse spell seen yet: full weight
    (0.8, 1.0)
    >>> SpellOutcomes.from_state(spells.to_state()).to_state() == spells.to_state()
    True
    """

    # 2 classes x 10 bins x (back, gone), twice (counts and pending).
    STATE_BUDGET_BYTES: ClassVar[int] = 1_200
    __slots__ = ("counts", "day", "half_life_days", "pending", "prior_count")

    def __init__(self, half_life_days: float = 180.0, prior_count: float = 5.0) -> None:
        self.half_life_days = half_life_days
        self.prior_count = prior_count
        self.counts = _zeros()  # [class][bin] = [back, gone], as of the last census
        self.pending = _zeros()  # outcomes seen since then, merged by close()
        self.day: int | None = None

    def clone(self) -> SpellOutcomes:
        return SpellOutcomes(self.half_life_days, self.prior_count)

    def learn_one(self, cls: int, bin_index: int, gone: bool, weight: float = 1.0) -> None:
        """One spell of class ``cls`` that reached bin ``bin_index`` ended there ``gone`` (or back);
        pending until the next :meth:`close`."""
        self.pending[cls][bin_index][1 if gone else 0] += weight

    def learn_spell(self, cls: int, first_bin: int, last_bin: int, gone: bool) -> None:
        """The outcome of one spell in bins ``first_bin`` .. ``last_bin - 1`` (those it reached and had not
        yet counted)."""
        for b in range(first_bin, min(last_bin, len(SPELL_GAPS))):
            self.learn_one(cls, b, gone)

    def close(self, day: int) -> None:
        """The census of ``day``: decay the counts to it and merge the pending outcomes."""
        decay = 0.5 ** ((day - self.day) / self.half_life_days) if self.day is not None else 1.0
        for counts, pending in zip(self.counts, self.pending, strict=True):
            for row, new in zip(counts, pending, strict=True):
                row[0] = round(row[0] * decay + new[0], 4)
                row[1] = round(row[1] * decay + new[1], 4)
                new[0] = new[1] = 0.0
        self.day = day if self.day is None else max(day, self.day)

    def _bin(self, cls: int, silent_days: float, unit: float) -> list[float] | None:
        n = reached(silent_days, unit)
        return self.counts[cls][n - 1] if n else None

    def p_gone(self, cls: int, silent_days: float, unit: float = 1.0) -> float | None:
        """Share of the base's spells this long (class ``cls``) that did not come back within the horizon,
        with :attr:`prior_count` pseudo-spells that did not (None: not a spell yet, under one usual gap)."""
        row = self._bin(cls, silent_days, unit)
        if row is None:
            return None
        back, gone = row
        return (gone + self.prior_count) / (back + gone + self.prior_count)

    def share_back(self, cls: int, silent_days: float, unit: float = 1.0) -> float | None:
        """Share of the spells this long that came back (observed counts only; None without any)."""
        row = self._bin(cls, silent_days, unit)
        if row is None or row[0] + row[1] <= 0:
            return None
        return row[0] / (row[0] + row[1])

    def to_state(self) -> dict[str, Any]:
        return {"c": self.counts, "p": self.pending, "d": self.day}

    @classmethod
    def from_state(
        cls, state: dict[str, Any], half_life_days: float = 180.0, prior_count: float = 5.0
    ) -> SpellOutcomes:
        spells = cls(half_life_days, prior_count)
        spells.counts = [[[float(v) for v in row] for row in rows] for rows in state["c"]]
        spells.pending = [[[float(v) for v in row] for row in rows] for rows in state["p"]]
        spells.day = state["d"]
        return spells


def _zeros() -> list[list[list[float]]]:
    return [[[0.0, 0.0] for _ in SPELL_GAPS] for _ in SPELL_CLASSES]


def _first_active_after(window: AccountWindow, day: int, through: int) -> int | None:
    for d in range(day + 1, through + 1):
        bucket = window.days.get(d)
        if bucket is not None and bucket[USAGE] > 0:
            return d
    return None


def track_spell(
    spells: SpellOutcomes,
    state: AccountDetectorState,
    window: AccountWindow,
    today: int,
    *,
    sparse_gap_days: float,
    horizon_days: int,
    inactivity_is_churn: bool,
    canceled: bool = False,
) -> None:
    """Follow the account's current silent spell to ``today`` (its days learned through ``today - 1``) and
    hand the outcomes now known to ``spells`` (pending); ``canceled``: the account has just cancelled.

    ``state.spell`` is ``[last active day, bins counted, usual gap in hundredths of a day]`` of the spell
    being followed (None: none). Bins
    reached a horizon ago by a spell still silent count as gone when ``inactivity_is_churn`` (else they
    are censored for good); a return counts every reached bin not yet counted as back, a cancellation as
    gone. Accounts without a rhythm yet (fewer gaps than the gap tracker needs) are not followed.
    """
    gaps = state.gaps
    last_active = gaps.last_active_day
    spell = state.spell
    if last_active is None or gaps.n_gaps < gaps.min_gaps:
        state.spell = None
        return
    if spell is not None:
        start, counted, gap = spell
        # Measured in the usual gap it started with (a return's own gap moves the tracker's mean).
        cls, unit = spell_class(gap / 100.0, sparse_gap_days)
        if last_active > start:  # came back: the spell ended after ``back - start - 1`` silent days
            back = _first_active_after(window, start, last_active)
            length = (back if back is not None else last_active) - start - 1
            spells.learn_spell(cls, counted, reached(length, unit), gone=False)
        else:
            silent = today - 1 - start
            if canceled:
                spells.learn_spell(cls, counted, reached(silent, unit), gone=True)
                state.spell = None
                return
            ripe = reached(silent - horizon_days, unit)  # bins reached at least a horizon ago
            if ripe > counted:
                if inactivity_is_churn:
                    spells.learn_spell(cls, counted, ripe, gone=True)
                state.spell = [start, ripe, gap]
            return
    state.spell = None if canceled else [last_active, 0, round(gaps.mean_gap * 100)]


def track_drop(
    drops: SpellOutcomes,
    state: AccountDetectorState,
    today: int,
    *,
    horizon_days: int,
    inactivity_is_churn: bool,
    canceled: bool = False,
) -> None:
    """Follow the account's flagged sustained drop like a silent spell (class 0, in days since the flag):
    back when the flag clears (recovered, or re-levelled), gone at a cancellation; bins reached a horizon
    ago by a drop still flagged count as gone only when the account was also silent all that time and
    ``inactivity_is_churn`` (the risk model's label), else as back. ``state.drop_spell`` is
    ``[flag day, bins counted]``.
    """
    spell, since = state.drop_spell, state.drop_since
    if spell is not None:
        start, counted = spell
        age = today - start
        if canceled or since != start:
            drops.learn_spell(0, counted, reached(age, 1.0), gone=canceled)
        else:
            ripe = reached(age - horizon_days, 1.0)
            if ripe > counted:
                silent = state.gaps.silent_days(today) >= horizon_days
                drops.learn_spell(0, counted, ripe, gone=inactivity_is_churn and silent)
                state.drop_spell = [start, ripe]
            return
    state.drop_spell = [since, 0] if since is not None and not canceled else None
