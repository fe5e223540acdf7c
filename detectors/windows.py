"""Per-account engagement windows: event-time daily buckets with bounded retention.

An :class:`AccountWindow` folds one account's usage, support and billing events into daily buckets (UTC days)
and keeps only the last ``retention_days`` of them, so its size is bounded however long the account lives.
Distinct active users are counted exactly while a day is still open to late events, then the user set is
dropped and only the count kept. Per-event-name counts are kept for the account's top event names, found
with the Space-Saving algorithm so the set of names stays bounded too; when a day closes its names shrink to
the one number the detectors read, the day's key events (:func:`~detectors.open_names.row_key_events`).

Memory (issue 15): a closed day's bucket is a tuple (a list while its day is open, or again for a late
event) shared by every window whose day has the same counts (:func:`closed_bucket`), and the days are held in
a list indexed by day offset (:class:`~detectors.day_table.DayTable`), so most closed days cost a pointer.
The distinct users of all open days are one sorted array of user hashes and their open days
(:mod:`detectors.open_users`), and their names' counts one array too (:mod:`detectors.open_names`).

The window is plain data (ints, strings, small dicts, tuples and arrays) and round-trips through
:meth:`AccountWindow.to_state` / :meth:`AccountWindow.from_state`, which are JSON-compatible, so it can live
in a changelog-backed table.

Size: ~590 lines: the window's per-event fold is written out in one place on purpose (the hot
path of live ingest and replay, issue 15), next to the bucket layout it depends on; so is its stored form in
two parts (the closed days apart, :meth:`AccountWindow.closed_state`), which depends on when a day closes.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from detectors.day_table import Bucket, DayTable
from detectors.open_names import (
    NO_COUNTS,
    NO_NAMES,
    add_name,
    close_rows,
    drop_name,
    names_from_dicts,
    names_from_state,
    names_state,
    open_key_events,
    open_slots,
    row_key_events,
)
from detectors.open_users import (
    DAY_BITS,
    DAYS_MASK,
    MAX_LATENESS_DAYS,
    close_days,
    users_by_day,
    users_from_state,
)
from detectors.shared import closed_bucket, closed_buckets, stored_days
from detectors.vocabulary import BillingKind, Priority, SupportKind

DAY_MS = 86_400_000

# Column layout of one day's bucket (ints: a list while the day is open, a tuple once it has closed).
USAGE = 0
ACTIVE_USERS = 1
KEY_EVENTS = 2  # filled when the day closes (open_names.row_key_events); the names are kept until then
TICKETS_LOW = 3
TICKETS_NORMAL = 4
TICKETS_HIGH = 5
TICKETS_URGENT = 6
ESCALATED = 7
SOLVED = 8
CSAT_SUM = 9
CSAT_COUNT = 10
PAYMENT_FAILED = 11
PAYMENT_SUCCEEDED = 12
N_COLUMNS = 13

# Streams, each with its own watermark (the order of detectors.vocabulary.EventType).
USAGE_STREAM = 0
SUPPORT_STREAM = 1
BILLING_STREAM = 2

TICKET_COLUMN = {
    Priority.LOW: TICKETS_LOW,
    Priority.NORMAL: TICKETS_NORMAL,
    Priority.HIGH: TICKETS_HIGH,
    Priority.URGENT: TICKETS_URGENT,
}
# A distinct-user set larger than this per day stops growing (the count saturates); seats beyond it are rare.
MAX_USERS_PER_DAY = 2_000


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowConfig:
    """How much history a window keeps and how late an event may be."""

    retention_days: int = 56
    allowed_lateness_ms: int = 2 * DAY_MS
    top_events: int = 5

    def __post_init__(self) -> None:
        if not 0 <= self.allowed_lateness_ms <= MAX_LATENESS_DAYS * DAY_MS:
            # The open days' users keep a bit per open day in 32 bits (detectors.open_users).
            raise ValueError(f"allowed_lateness_ms must be 0 to {MAX_LATENESS_DAYS} days")


def day_of(ts_ms: int) -> int:
    """UTC day number (days since the epoch) of an event time."""
    return ts_ms // DAY_MS


def user_hash(user_id: str) -> int:
    """A stable 32-bit hash (Python's ``hash`` is salted per process, which would break restarts)."""
    return zlib.crc32(user_id.encode())


# AccountWindow's attributes, named here for as_of: a class compiled by mypyc has no __slots__ to read.
_ATTRIBUTES = (
    "billing_ts_ms",
    "canceled_ts_ms",
    "closed_changed",
    "config",
    "days",
    "event_totals",
    "first_seen_ms",
    "mrr",
    "open_counts",
    "open_names",
    "open_users",
    "plan",
    "watermarks",
)


class AccountWindow:
    """Daily engagement buckets of one account.

    Parameters
    ----------
    config
        Retention, lateness allowance and the number of event names tracked.

    Examples
    --------
    >>> w = AccountWindow(WindowConfig())
    >>> t = 1_795_687_200_000  # 2026-11-26T10:00:00Z
    >>> w.add_usage(t, "report_exported", "u1", 1), w.add_usage(t + 60_000, "report_exported", "u2", 2)
    (True, True)
    >>> w.add_support(t, SupportKind.TICKET_OPENED, Priority.URGENT, None)
    True
    >>> w.add_usage(t - 3 * DAY_MS, "login", "u1", 1)  # beyond the 2-day lateness allowance
    False
    >>> b = w.bucket(day_of(t))
    >>> b[USAGE], b[ACTIVE_USERS], b[TICKETS_URGENT]
    (3, 2, 1)
    >>> AccountWindow.from_state(w.to_state(), WindowConfig()).to_state() == w.to_state()
    True
    """

    __slots__ = _ATTRIBUTES

    def __init__(self, config: WindowConfig) -> None:
        self.config = config
        self.days = DayTable()
        # The tracked names' counts of the days still open to late usage (detectors.open_names): the names,
        # a tuple shared between windows, and a row of counts per open-day slot.
        self.open_names: tuple[str, ...] = NO_NAMES
        self.open_counts: array[int] = NO_COUNTS
        # The distinct users of the days still open to late usage: user_hash << DAY_BITS | a bit per open day
        # it was seen on, sorted (detectors.open_users), one array for all open days (None while empty); the
        # bucket keeps each day's count.
        self.open_users: array[int] | None = None
        self.event_totals: dict[str, int] = {}
        # Newest event time per stream (usage, support, billing). Lateness is judged within a stream: Kafka
        # orders records only within a partition, and how far one topic's consumption runs ahead of another's
        # is an artefact of fetching, not of the events.
        self.watermarks: list[int | None] = [None, None, None]
        self.first_seen_ms: int | None = None
        self.plan: str | None = None
        self.mrr: float | None = None
        self.billing_ts_ms: int | None = None
        self.canceled_ts_ms: int | None = None
        # Whether the closed days (those before the first day open to late usage, closed_state) may have
        # changed since the stored row's closed part was written or read (streams.engine.state: a row keeps
        # that part in a frame of its own, copied while this stays False). Set where a day closes, reopens or
        # is dropped, and at every day turn (which alone moves the first open day); cleared by the store.
        self.closed_changed = True

    # -- folding events -------------------------------------------------------------------------------------

    @property
    def watermark_ms(self) -> int | None:
        """Newest event time seen on any stream (None before the first event)."""
        seen = [mark for mark in self.watermarks if mark is not None]
        return max(seen) if seen else None

    def accepts(self, stream: int, ts_ms: int) -> bool:
        """Whether an event at ``ts_ms`` on ``stream`` is within the lateness allowance of that stream."""
        mark = self.watermarks[stream]
        return mark is None or ts_ms >= mark - self.config.allowed_lateness_ms

    def _bucket_for(self, stream: int, ts_ms: int) -> list[int] | Literal[False] | None:
        """The bucket to update; None: the day is beyond the retention; False: the event is too late.

        The hot path of every fold (replay calls it once per event): written out rather than through
        :meth:`accepts`, :func:`day_of` and :meth:`oldest_kept_day`, with the same results.
        """
        marks = self.watermarks
        mark = marks[stream]
        if mark is None or ts_ms > mark:
            lateness = self.config.allowed_lateness_ms
            if (
                mark is None
                or ts_ms // DAY_MS > mark // DAY_MS
                or (ts_ms - lateness) // DAY_MS > (mark - lateness) // DAY_MS
            ):
                # Expiry depends only on watermark days, so running it when a day turns is enough (and cheap).
                was_open_from = self._open_from()
                marks[stream] = ts_ms
                self._expire(was_open_from)
            else:
                marks[stream] = ts_ms
        elif ts_ms < mark - self.config.allowed_lateness_ms:
            return False
        first = self.first_seen_ms
        if first is None or ts_ms < first:
            self.first_seen_ms = ts_ms
        day = ts_ms // DAY_MS
        newest = ts_ms  # the newest watermark of any stream (this stream's is at least ts_ms now)
        for other in marks:
            if other is not None and other > newest:
                newest = other
        if day <= newest // DAY_MS - self.config.retention_days:
            # Accepted (its own stream is in order) but older than the retention: no bucket to update.
            return None
        days = self.days
        slots = days.slots
        i = day - days.first
        bucket = slots[i] if 0 <= i < len(slots) else None  # days.get(day), inlined
        if bucket is None:
            new: list[int] = [0] * N_COLUMNS
            days[day] = new
            return new
        if isinstance(bucket, tuple):  # a closed day: a late support or billing event opens it again
            bucket = slots[i] = list(bucket)
            self.closed_changed = True
        return bucket

    def oldest_kept_day(self) -> int:
        newest = self.watermark_ms
        return -(2**62) if newest is None else day_of(newest) - self.config.retention_days + 1

    def add_usage(self, ts_ms: int, event: str, user_id: str | None, count: int) -> bool:
        """Fold one usage event; returns False (and changes nothing) when it is too late."""
        bucket = self._bucket_for(USAGE_STREAM, ts_ms)
        if bucket is False:
            return False
        if bucket is None:
            # Beyond the retention: no day to count in, but the name's running total still counts, so the
            # result does not depend on how far other streams had run ahead.
            self._track_event_name(event, count)
            return True
        day = ts_ms // DAY_MS
        slot = day % (
            self.config.allowed_lateness_ms // DAY_MS + 2
        )  # the day's slot among the open days (open_slots)
        bucket[USAGE] += count
        if user_id is not None and bucket[ACTIVE_USERS] < MAX_USERS_PER_DAY:
            users = self.open_users
            if users is None:
                users = self.open_users = array("Q")
            # user_hash and open_users.user_day_bit, inlined: once per usage event
            user = zlib.crc32(user_id.encode()) << DAY_BITS
            bit = 1 << slot
            i = bisect_left(users, user)  # the user's entry, if any: user | its days
            if i < len(users) and (entry := users[i]) <= user | DAYS_MASK:
                if not entry & bit:
                    users[i] = entry | bit
                    bucket[ACTIVE_USERS] += 1
            else:
                users.insert(i, user | bit)
                bucket[ACTIVE_USERS] += 1
        totals = self.event_totals
        if event in totals:  # the common case of _track_event_name, inlined
            totals[event] += count
        else:
            self._track_event_name(event, count)
        names = self.open_names
        try:
            column = names.index(event)
        except ValueError:  # the first count of this name on any open day
            slots = open_slots(self.config.allowed_lateness_ms)
            names, self.open_counts = add_name(names, self.open_counts, event, slots)
            self.open_names = names
            column = len(names) - 1
        self.open_counts[slot * len(names) + column] += count
        return True

    def _track_event_name(self, event: str, count: int) -> None:
        """Space-Saving heavy hitters over ``4 * top_events`` candidates (``event`` always among them after).

        The candidate table is wider than the reported top-k so that a name growing popular late is admitted
        before the reported top is decided; a name evicted from it loses its daily counts.
        """
        totals = self.event_totals
        if event in totals:
            totals[event] += count
            return
        # A new name: one object for every window (an event's name is a new string; ~60 bytes each, kept).
        event = sys.intern(event)
        if len(totals) < 4 * self.config.top_events:
            totals[event] = count
            return
        weakest = min(totals, key=totals.__getitem__)
        floor = totals.pop(weakest)
        totals[event] = floor + count
        self.open_names, self.open_counts = drop_name(
            self.open_names, self.open_counts, weakest, open_slots(self.config.allowed_lateness_ms)
        )

    def top_event_names(self) -> list[str]:
        """The account's ``top_events`` most frequent event names, most frequent first."""
        ranked = sorted(self.event_totals.items(), key=lambda item: (-item[1], item[0]))
        return [name for name, _ in ranked[: self.config.top_events]]

    def add_support(
        self, ts_ms: int, kind: SupportKind, priority: Priority | None, score: int | None
    ) -> bool:
        """Fold one support event; returns False when it is too late."""
        bucket = self._bucket_for(SUPPORT_STREAM, ts_ms)
        if bucket is False:
            return False
        if bucket is None:
            return True
        if kind == SupportKind.TICKET_OPENED:
            bucket[TICKET_COLUMN[priority or Priority.NORMAL]] += 1
        elif kind == SupportKind.ESCALATED:
            bucket[ESCALATED] += 1
        elif kind == SupportKind.TICKET_SOLVED:
            bucket[SOLVED] += 1
        elif kind == SupportKind.CSAT and score is not None:
            bucket[CSAT_SUM] += score
            bucket[CSAT_COUNT] += 1
        self._close_if_closed(ts_ms // DAY_MS)
        return True

    def add_billing(self, ts_ms: int, kind: BillingKind, mrr: float | None, plan: str | None) -> bool:
        """Fold one billing event; the newest billing event decides the current plan and MRR."""
        bucket = self._bucket_for(BILLING_STREAM, ts_ms)
        if bucket is False:
            return False
        if bucket is not None:
            if kind == BillingKind.PAYMENT_FAILED:
                bucket[PAYMENT_FAILED] += 1
            elif kind == BillingKind.PAYMENT_SUCCEEDED:
                bucket[PAYMENT_SUCCEEDED] += 1
            self._close_if_closed(ts_ms // DAY_MS)
        if self.billing_ts_ms is None or ts_ms >= self.billing_ts_ms:
            self.billing_ts_ms = ts_ms
            if mrr is not None:
                self.mrr = mrr
            if plan is not None:
                self.plan = sys.intern(plan)  # one object for every window, as names
            if kind == BillingKind.SUBSCRIPTION_CANCELED:
                self.canceled_ts_ms = ts_ms
            elif kind == BillingKind.SUBSCRIPTION_CREATED:
                self.canceled_ts_ms = None
        return True

    def _kept_and_open(self) -> tuple[int, int]:
        """(:meth:`oldest_kept_day`, the first day still open to late usage): days in between have closed
        (no users or names kept). Written out: it runs at every day turn of every account."""
        newest = None
        for mark in self.watermarks:
            if mark is not None and (newest is None or mark > newest):
                newest = mark
        if newest is None:
            return -(2**62), -(2**62)
        config = self.config
        oldest_kept = newest // DAY_MS - config.retention_days + 1
        usage_mark = self.watermarks[USAGE_STREAM]
        if usage_mark is None:
            return oldest_kept, oldest_kept
        return oldest_kept, max(oldest_kept, (usage_mark - config.allowed_lateness_ms) // DAY_MS)

    def _open_from(self) -> int:
        """The first day still open to late usage."""
        return self._kept_and_open()[1]

    def _user_days(self) -> range:
        """The days that may hold users: the first open day to the usage watermark's day."""
        mark = self.watermarks[USAGE_STREAM]
        open_from = self._open_from()
        return range(open_from, open_from if mark is None else mark // DAY_MS + 1)

    def _close_if_closed(self, day: int) -> None:
        """Share ``day``'s bucket again after a late support or billing event when the day has closed."""
        if day < self._open_from():
            bucket = self.days.get(day)
            if type(bucket) is list:
                self.days[day] = closed_bucket(bucket)
                self.closed_changed = True

    def _expire(self, was_open_from: int) -> None:
        """Drop the days beyond the retention; close the days no longer open to late usage (the days from
        ``was_open_from``, the first open day before the watermarks moved: later ones close at later calls,
        and a late support or billing event's day is closed again by :meth:`_close_if_closed`)."""
        oldest_kept, open_from = self._kept_and_open()
        days = self.days
        self.closed_changed = True  # days dropped or closed (once per day turn: not worth finding out which)
        days.drop_before(oldest_kept)
        users = self.open_users
        if users is not None and open_from > was_open_from:
            # Before any user of a new day is added, which may reuse a closing day's bit.
            kept = close_days(users, was_open_from, open_from, self.config.allowed_lateness_ms)
            self.open_users = kept or None
        if self.open_names and open_from > was_open_from:
            slots = open_slots(self.config.allowed_lateness_ms)
            closing = range(was_open_from, open_from)
            key, self.open_names, self.open_counts = close_rows(
                self.open_names, self.open_counts, closing, slots
            )
            for day, events in key.items():
                bucket = days.get(day)
                if bucket is not None:
                    closed = list(bucket)
                    closed[KEY_EVENTS] = events
                    days[day] = closed_bucket(closed)
        for day in range(max(was_open_from, oldest_kept), open_from):  # at most the retention's days
            bucket = days.get(day)
            if type(bucket) is list:
                days[day] = closed_bucket(bucket)

    # -- reading --------------------------------------------------------------------------------------------

    def bucket(self, day: int) -> list[int]:
        """A copy of the bucket of ``day`` (zeros when the account did nothing that day)."""
        return list(self.days.get(day) or _ZEROS)

    def key_events(self, day: int) -> int:
        """The key events of ``day`` (:func:`~detectors.open_names.row_key_events`): from its names' counts
        while it is open, from its bucket once closed."""
        if self.open_names and day in self._user_days():
            slots = open_slots(self.config.allowed_lateness_ms)
            return row_key_events(self.open_counts, len(self.open_names), day % slots)
        bucket = self.days.get(day)
        return bucket[KEY_EVENTS] if bucket is not None else 0

    def open_key_events(self) -> dict[int, int]:
        """:meth:`key_events` of each open day that counted names (the others' are their buckets'): for
        passes over the days that read every day's key events."""
        names = self.open_names
        mark = self.watermarks[USAGE_STREAM]
        if not names or mark is None:
            return {}
        # A row that counts names is an open day's: within the last ``slots`` days to the usage watermark's
        # (closed days' rows are cleared), so the first open day need not be found.
        slots, last = open_slots(self.config.allowed_lateness_ms), mark // DAY_MS
        return open_key_events(names, self.open_counts, range(last - slots + 1, last + 1), slots)

    def total(self, column: int, first_day: int, last_day: int) -> int:
        """Sum of ``column`` over the days ``first_day..last_day`` inclusive."""
        return sum(b[column] for d, b in self.days.items() if first_day <= d <= last_day)

    def as_of(self, now_ms: int) -> AccountWindow:
        """The window as the detectors may read it at ``now_ms``: without the days that start at or after
        ``now_ms`` (at a midnight, the new day itself), whose events a sweep at ``now_ms`` must not see yet.
        The hidden days stay in the window for the next sweep.

        A worker reading several partitions sweeps a midnight once its slowest partition reaches it, and
        the others have folded events of the new day by then; replay of a time-sorted file sweeps before
        them. Through this view both judge the account on the same days. When nothing is hidden, the window
        itself is returned; otherwise a shallow copy sharing everything but ``days``. The window keeps only
        the newest plan and MRR, so those can still be newer than ``now_ms`` (docs/engine.md, "Live equals
        replay").

        >>> w = AccountWindow(WindowConfig())
        >>> _ = w.add_usage(10 * DAY_MS + 5, "login", "u1", 1), w.add_usage(11 * DAY_MS + 5, "login", "u1", 1)
        >>> night = 11 * DAY_MS  # a midnight
        >>> sorted(w.as_of(night).days), sorted(w.as_of(night + 1).days), w.as_of(night + DAY_MS) is w
        ([10], [10, 11], True)
        """
        first_hidden = (now_ms - 1) // DAY_MS + 1
        for mark in self.watermarks:  # watermark_ms, written out: sweeps call this twice per account
            if mark is not None and mark // DAY_MS >= first_hidden:
                break
        else:
            return self
        view = AccountWindow(self.config)
        for name in _ATTRIBUTES:
            setattr(view, name, getattr(self, name))
        view.days = self.days.before(first_hidden)
        return view

    def used_before(self, now_ms: int) -> bool:
        """Whether the window holds usage of a day that started before ``now_ms``."""
        return any(bucket[USAGE] for bucket in self.as_of(now_ms).days.values())

    # -- state ----------------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state (lists and string-keyed dicts only)."""
        return self._state(stored_days(self.days))  # trailing zero columns dropped: most days have usage only

    def closed_state(self) -> list[list[int]]:
        """The closed days of :meth:`to_state`'s ``"d"`` (before the first day open to late usage, the days
        :meth:`from_state` shares): they change about once a day, so a stored row keeps them apart; every
        change to them sets :attr:`closed_changed`."""
        return stored_days(self.days, until=self._open_from())

    def closed_slots(self) -> int:
        """Days (with or without a bucket) before the first day open to late usage: :meth:`closed_state`'s
        length at most, without taking it."""
        days = self.days
        return max(0, min(len(days.slots), self._open_from() - days.first))

    def open_state(self) -> dict[str, Any]:
        """:meth:`to_state` without its closed days (:meth:`closed_state`): what an event changes."""
        return self._state(stored_days(self.days, since=self._open_from()))

    @classmethod
    def from_parts(
        cls, closed: list[list[int]], state: dict[str, Any], config: WindowConfig
    ) -> AccountWindow:
        """The window :meth:`closed_state` and :meth:`open_state` were taken from.

        >>> w = AccountWindow(WindowConfig())
        >>> for day in (10, 11, 15):
        ...     _ = w.add_usage(day * DAY_MS, "login", f"u{day}", 1)
        >>> w.closed_state(), [row[0] for row in w.open_state()["d"]]
        ([[10, 1, 1], [11, 1, 1]], [15])
        >>> again = AccountWindow.from_parts(w.closed_state(), w.open_state(), WindowConfig())
        >>> again.to_state() == w.to_state()
        True
        """
        return cls.from_state({**state, "d": sorted(closed + state["d"], key=itemgetter(0))}, config)

    def _state(self, days: list[list[int]]) -> dict[str, Any]:
        users = self.open_users
        lateness = self.config.allowed_lateness_ms
        return {
            "d": days,
            "k": names_state(self.open_names, self.open_counts, self._user_days(), open_slots(lateness)),
            "u": users_by_day(users, self._user_days(), lateness) if users else [],
            "t": self.event_totals,
            "w": self.watermarks,
            "f": self.first_seen_ms,
            "p": self.plan,
            "m": self.mrr,
            "b": self.billing_ts_ms,
            "c": self.canceled_ts_ms,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: WindowConfig) -> AccountWindow:
        window = cls(config)
        window.watermarks = list(state["w"])
        open_from = window._open_from()
        rows = state["d"]
        # closed_bucket written out: every decode of a state runs this for each of its days.
        shared = closed_buckets(len(rows))
        day_numbers: list[int] = []
        buckets: list[Bucket] = []
        for row in rows:
            bucket = (*row[1:], *_ZEROS[len(row) - 1 :])
            day = row[0]
            day_numbers.append(day)
            buckets.append(shared.setdefault(bucket, bucket) if day < open_from else list(bucket))
        window.days = DayTable.of_sorted(day_numbers, buckets)
        slots = open_slots(config.allowed_lateness_ms)
        if "k" in state:
            window.open_names, window.open_counts = names_from_state(state["k"], slots)
        else:  # written before the names' counts were one array: a dict of names per day
            window.open_names, window.open_counts = names_from_dicts(state["e"], slots)
        window.open_users = users_from_state(state["u"], config.allowed_lateness_ms)
        window.event_totals = dict(state["t"])
        window.first_seen_ms = state["f"]
        plan = state["p"]
        window.plan = sys.intern(plan) if plan is not None else None
        window.mrr = state["m"]
        window.billing_ts_ms = state["b"]
        window.canceled_ts_ms = state["c"]
        return window


_ZEROS = (0,) * N_COLUMNS
