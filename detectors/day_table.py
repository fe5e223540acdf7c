"""One account's daily buckets in a list indexed by day offset (issue 15, resident bytes per account).

A window keeps up to ``retention_days`` consecutive days. Held in a dict, each day cost a slot of the dict's
table (~45 bytes a day with the table's spare room); held here, a day costs one pointer of a list (8 bytes),
and days without a bucket are ``None``. The reads the detectors make are the dict's (``get``, ``items``,
iteration in day order, ``min``), so a :class:`DayTable` stands where the dict stood.

Invariant: ``slots`` is empty or its first and last entries are buckets, so the table's first day is
``first`` and an empty table is an empty list.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeAlias

Bucket: TypeAlias = list[int] | tuple[int, ...]


class DayTable:
    """Buckets by day number, ascending, for one window.

    Examples
    --------
    >>> t = DayTable()
    >>> t[20_000] = [1]; t[20_003] = [4]; t[19_999] = [0]
    >>> list(t), t.get(20_001), t.get(20_003), len(t)
    ([19999, 20000, 20003], None, [4], 3)
    >>> t.drop_before(20_001); list(t.items())
    [(20003, [4])]
    """

    __slots__ = ("first", "slots")

    def __init__(self) -> None:
        self.first = 0
        self.slots: list[Bucket | None] = []

    @classmethod
    def of_sorted(cls, days: list[int], buckets: list[Bucket]) -> DayTable:
        """A table of ``buckets`` on ``days`` (ascending, distinct)."""
        table = cls()
        if days:
            first = table.first = days[0]
            slots: list[Bucket | None] = [None] * (days[-1] - first + 1)
            for day, bucket in zip(days, buckets, strict=True):
                slots[day - first] = bucket
            table.slots = slots
        return table

    def get(self, day: int) -> Bucket | None:
        """The bucket of ``day``, None when it has none."""
        i = day - self.first
        slots = self.slots
        return slots[i] if 0 <= i < len(slots) else None

    def __getitem__(self, day: int) -> Bucket:
        bucket = self.get(day)
        if bucket is None:
            raise KeyError(day)
        return bucket

    def __setitem__(self, day: int, bucket: Bucket) -> None:
        slots = self.slots
        if not slots:
            self.first = day
            slots.append(bucket)
            return
        i = day - self.first
        if i < 0:
            slots[0:0] = [None] * -i
            self.first = day
            i = 0
        elif i >= len(slots):
            slots.extend([None] * (i - len(slots) + 1))
        slots[i] = bucket

    def __contains__(self, day: object) -> bool:
        return isinstance(day, int) and self.get(day) is not None

    def __len__(self) -> int:
        return len(self.slots) - self.slots.count(None)

    def __bool__(self) -> bool:
        return bool(self.slots)

    def __iter__(self) -> Iterator[int]:
        first = self.first
        return iter([first + i for i, bucket in enumerate(self.slots) if bucket is not None])

    def items(self) -> list[tuple[int, Bucket]]:
        """(day, bucket) of every day with a bucket, ascending."""
        first = self.first
        return [(first + i, bucket) for i, bucket in enumerate(self.slots) if bucket is not None]

    def values(self) -> list[Bucket]:
        """Every bucket, in day order."""
        return [bucket for bucket in self.slots if bucket is not None]

    def before(self, day: int) -> DayTable:
        """A table of the days before ``day`` (sharing the buckets)."""
        view = DayTable()
        slots = self.slots[: max(0, day - self.first)]
        while slots and slots[-1] is None:
            slots.pop()
        if slots:
            view.first, view.slots = self.first, slots
        return view

    def drop_before(self, day: int) -> None:
        """Drop the days before ``day``."""
        slots = self.slots
        cut = day - self.first
        if cut <= 0:
            return
        while cut < len(slots) and slots[cut] is None:
            cut += 1
        del slots[:cut]
        self.first += cut
