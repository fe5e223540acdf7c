"""Holdout uplift as the engine settles it (issue #18): each alerted account, a horizon after its first alert.

The rule is :func:`streams.offline.uplift.alerted_outcomes`' (what the replay report computes from its
alerts), applied at every sweep to the accounts the engine owns:

* an account's first opened account alert **marks** it: the alert's time and the account's holdout
  membership, kept in the account's state (:attr:`AccountState.uplift`, three integers);
* an account cancelled before that alert is **left out** (no alert could save it);
* once the sweep's time reaches the alert's time + the horizon, the account is **settled**: churned when it
  cancelled within the horizon after the alert, else stayed. A settled account keeps its mark, so a later
  alert does not enter it again (only its first alert counts, as in the report);
* accounts marked but not settled are **pending**.

Counts are per partition and recomputed from the account states at every sweep (a sweep visits every owned
account anyway), and from the stored states when the engine restores (a start, a rebalance): they live in the
same rows as the accounts, so a restart or a takeover neither doubles nor loses them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from detectors.alerts import Alert, AlertKind, Transition
from detectors.windows import DAY_MS
from streams.engine.state import AccountState

# The mark's third field.
PENDING, STAYED, CHURNED, LEFT_OUT = 0, 1, 2, 3


def settle(alerted_ts_ms: int, canceled_ts_ms: int | None, now_ms: int, horizon_ms: int) -> int:
    """Status of an account alerted at ``alerted_ts_ms`` as of ``now_ms``.

    >>> [settle(0, c, now, 30 * DAY_MS) for c, now in [(None, DAY_MS), (-1, DAY_MS), (None, 30 * DAY_MS),
    ...                                               (30 * DAY_MS, 40 * DAY_MS), (31 * DAY_MS, 40 * DAY_MS)]]
    [0, 3, 1, 2, 1]
    """
    if canceled_ts_ms is not None and canceled_ts_ms < alerted_ts_ms:
        return LEFT_OUT
    horizon_end = alerted_ts_ms + horizon_ms
    if horizon_end > now_ms:
        return PENDING
    return CHURNED if canceled_ts_ms is not None and canceled_ts_ms <= horizon_end else STAYED


@dataclass(slots=True)
class Tally:
    """Settled alerted accounts and churners per group, and the accounts still inside their horizon."""

    delivered: int = 0
    delivered_churned: int = 0
    held_out: int = 0
    held_out_churned: int = 0
    pending: int = 0

    def count(self, mark: list[int]) -> None:
        status = mark[2]
        if status == PENDING:
            self.pending += 1
        elif status != LEFT_OUT:
            churned = status == CHURNED
            if mark[1]:
                self.held_out += 1
                self.held_out_churned += churned
            else:
                self.delivered += 1
                self.delivered_churned += churned

    def add(self, other: Tally) -> None:
        self.delivered += other.delivered
        self.delivered_churned += other.delivered_churned
        self.held_out += other.held_out
        self.held_out_churned += other.held_out_churned
        self.pending += other.pending


class UpliftLedger:
    """Marks alerted accounts and settles them at each sweep; the counts per partition of the last sweep.

    Parameters
    ----------
    horizon_days
        Days after its first alert an account is settled (the detectors' outcome horizon).
    member
        Holdout membership of an account id; ``None`` (no holdout experiment): nothing is marked or counted.
    """

    def __init__(self, horizon_days: int, member: Callable[[str], bool] | None = None) -> None:
        self.horizon_ms = horizon_days * DAY_MS
        self.member = member
        self.tallies: dict[int, Tally] = {}
        self.as_of_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.member is not None

    def sweep(
        self, states: Iterable[tuple[bytes, AccountState]], alerts: Iterable[Alert], now_ms: int
    ) -> list[tuple[bytes, AccountState]]:
        """Mark the accounts ``alerts`` opened for the first time, settle the marked ones, count all of them
        per partition; the accounts whose state changed."""
        member = self.member
        if member is None:
            return []
        opened = {
            alert.account_id.encode(): alert
            for alert in reversed(list(alerts))  # the first one wins
            if alert.kind is AlertKind.ACCOUNT_RISK and alert.transition is Transition.OPENED
        }
        changed: list[tuple[bytes, AccountState]] = []
        tallies: dict[int, Tally] = {}
        for key, state in states:
            tally = tallies.get(state.partition)
            if tally is None:  # every partition visited is counted, with or without alerted accounts
                tally = tallies[state.partition] = Tally()
            mark = state.uplift
            fresh = False
            if mark is None:
                alert = opened.get(key)
                if alert is None:
                    continue
                mark = state.uplift = [alert.event_ts_ms, int(member(alert.account_id)), PENDING]
                fresh = True
            if mark[2] == PENDING:
                status = settle(mark[0], state.window.canceled_ts_ms, now_ms, self.horizon_ms)
                if status != PENDING:
                    mark[2] = status
                    fresh = True
            if fresh:
                changed.append((key, state))
            tally.count(mark)
        self.tallies = tallies
        self.as_of_ms = now_ms
        return changed

    def recount(self, states: Iterable[AccountState]) -> None:
        """Count the marks as stored, settling nothing (at a start or a rebalance, before the next sweep)."""
        if self.member is None:
            return
        tallies: dict[int, Tally] = {}
        for state in states:
            tally = tallies.get(state.partition)
            if tally is None:
                tally = tallies[state.partition] = Tally()
            if state.uplift is not None:
                tally.count(state.uplift)
        self.tallies = tallies

    def total(self, partitions: Collection[int]) -> Tally:
        """The counts of ``partitions`` (those this engine still owns) as of the last sweep."""
        total = Tally()
        for partition, tally in self.tallies.items():
            if partition in partitions:
                total.add(tally)
        return total
