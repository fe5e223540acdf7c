"""Tests of per-account engagement windows (``detectors.windows``)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from detectors import shared
from detectors.vocabulary import BillingKind, Priority, SupportKind
from detectors.windows import (
    ACTIVE_USERS,
    CSAT_COUNT,
    CSAT_SUM,
    DAY_MS,
    ESCALATED,
    N_COLUMNS,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    SOLVED,
    TICKETS_HIGH,
    TICKETS_LOW,
    TICKETS_NORMAL,
    TICKETS_URGENT,
    USAGE,
    AccountWindow,
    WindowConfig,
    day_of,
)

HOUR_MS = 3_600_000
T0 = (1_795_687_200_000 // DAY_MS) * DAY_MS  # 2026-11-26T00:00:00Z
DAY0 = day_of(T0)
CFG = WindowConfig()

Op = Callable[[AccountWindow], bool]


def window(config: WindowConfig = CFG) -> AccountWindow:
    return AccountWindow(config)


def u(ts: int, event: str = "login", user: str | None = "u1", count: int = 1) -> Op:
    return lambda w: w.add_usage(ts, event, user, count)


def s(ts: int, kind: str = "ticket_opened", priority: str | None = None, score: int | None = None) -> Op:
    return lambda w: w.add_support(ts, SupportKind(kind), Priority(priority) if priority else None, score)


def b(ts: int, kind: str = "payment_succeeded", mrr: float | None = None, plan: str | None = None) -> Op:
    return lambda w: w.add_billing(ts, BillingKind(kind), mrr, plan)


def fold(ops: Sequence[Op], config: WindowConfig = CFG) -> AccountWindow:
    w = window(config)
    for op in ops:
        assert op(w)
    return w


def user_days(w: AccountWindow) -> list[int]:
    """The days a window keeps distinct users for."""
    return [day for day, _ in w.to_state()["u"]]


# -- daily buckets ------------------------------------------------------------------------------------------


def test_buckets_are_utc_days() -> None:
    w = fold([u(T0, count=1), u(T0 + DAY_MS - 1, count=2), u(T0 + DAY_MS, count=4)])
    assert sorted(w.days) == [DAY0, DAY0 + 1]
    assert w.bucket(DAY0)[USAGE] == 3
    assert w.bucket(DAY0 + 1)[USAGE] == 4
    assert w.bucket(DAY0 - 1) == [0] * N_COLUMNS
    assert day_of(T0 - 1) == DAY0 - 1


def test_distinct_active_users_per_day() -> None:
    w = fold(
        [u(T0, user="u1"), u(T0 + HOUR_MS, user="u1"), u(T0 + DAY_MS, user="u1"), u(T0 + DAY_MS, user="u2")]
    )
    assert w.bucket(DAY0)[ACTIVE_USERS] == 1
    assert w.bucket(DAY0 + 1)[ACTIVE_USERS] == 2


def test_anonymous_usage_counts_events_not_users() -> None:
    w = fold([u(T0, user=None, count=3)])
    assert w.bucket(DAY0)[USAGE] == 3
    assert w.bucket(DAY0)[ACTIVE_USERS] == 0


def test_count_field_adds_up() -> None:
    w = fold(
        [u(T0, count=3), u(T0 + HOUR_MS, count=4), u(T0 + DAY_MS, count=10), u(T0 + 2 * DAY_MS, count=1)]
    )
    assert w.bucket(DAY0)[USAGE] == 7
    assert w.total(USAGE, DAY0, DAY0 + 1) == 17
    assert w.total(USAGE, DAY0, DAY0 + 2) == 18
    assert w.total(USAGE, DAY0 + 3, DAY0 + 9) == 0


def test_support_columns() -> None:
    w = fold(
        [
            s(T0, "ticket_opened", "low"),
            s(T0, "ticket_opened", "normal"),
            s(T0, "ticket_opened", None),  # no priority counts as normal
            s(T0, "ticket_opened", "high"),
            s(T0, "ticket_opened", "urgent"),
            s(T0, "ticket_opened", "urgent"),
            s(T0, "escalated"),
            s(T0, "ticket_solved"),
            s(T0, "ticket_solved"),
            s(T0, "csat", score=5),
            s(T0, "csat", score=2),
        ]
    )
    bucket = w.bucket(DAY0)
    assert bucket[TICKETS_LOW] == 1
    assert bucket[TICKETS_NORMAL] == 2
    assert bucket[TICKETS_HIGH] == 1
    assert bucket[TICKETS_URGENT] == 2
    assert bucket[ESCALATED] == 1
    assert bucket[SOLVED] == 2
    assert (bucket[CSAT_SUM], bucket[CSAT_COUNT]) == (7, 2)
    assert bucket[USAGE] == 0


def test_payments() -> None:
    w = fold(
        [
            b(T0, "payment_failed"),
            b(T0 + 1, "payment_failed"),
            b(T0 + 2, "payment_succeeded"),
            b(T0 + 3, "plan_changed"),
        ]
    )
    bucket = w.bucket(DAY0)
    assert (bucket[PAYMENT_FAILED], bucket[PAYMENT_SUCCEEDED]) == (2, 1)
    assert sum(bucket) == 3


# -- billing state ------------------------------------------------------------------------------------------


def test_billing_newest_wins_even_out_of_order() -> None:
    w = fold(
        [
            b(T0 + 5 * HOUR_MS, "plan_changed", mrr=299.0, plan="business"),
            b(T0 + 1 * HOUR_MS, "subscription_created", mrr=49.0, plan="starter"),  # older: ignored
            b(T0 + 3 * HOUR_MS, "plan_changed", mrr=99.0, plan="pro"),  # older: ignored
        ]
    )
    assert (w.plan, w.mrr, w.billing_ts_ms) == ("business", 299.0, T0 + 5 * HOUR_MS)


def test_billing_newer_event_without_plan_or_mrr_keeps_them() -> None:
    w = fold([b(T0, "plan_changed", mrr=99.0, plan="pro"), b(T0 + HOUR_MS, "payment_failed")])
    assert (w.plan, w.mrr, w.billing_ts_ms) == ("pro", 99.0, T0 + HOUR_MS)


def test_cancellation_set_and_cleared_by_later_subscription() -> None:
    w = fold([b(T0, "subscription_created", 99.0, "pro"), b(T0 + HOUR_MS, "subscription_canceled")])
    assert w.canceled_ts_ms == T0 + HOUR_MS
    assert b(T0 + 2 * HOUR_MS, "subscription_created", 49.0, "starter")(w)
    assert w.canceled_ts_ms is None
    assert (w.plan, w.mrr) == ("starter", 49.0)


def test_older_subscription_created_does_not_clear_cancellation() -> None:
    w = fold([b(T0 + HOUR_MS, "subscription_canceled"), b(T0, "subscription_created", 99.0, "pro")])
    assert w.canceled_ts_ms == T0 + HOUR_MS
    assert w.plan is None


# -- lateness and retention ---------------------------------------------------------------------------------


def test_lateness_is_per_stream() -> None:
    w = fold([u(T0 + 10 * DAY_MS)])
    # Ten days behind the usage watermark, but the support stream has seen nothing newer.
    assert s(T0, "ticket_opened", "high")(w)
    assert w.bucket(DAY0)[TICKETS_HIGH] == 1
    assert b(T0, "payment_failed")(w)
    assert w.bucket(DAY0)[PAYMENT_FAILED] == 1


def test_usage_older_than_allowance_rejected_without_change() -> None:
    mark = T0 + 10 * DAY_MS
    w = fold([u(mark, user="u1"), s(mark), b(mark, "plan_changed", 99.0, "pro")])
    assert u(mark - CFG.allowed_lateness_ms)(w)  # exactly at the allowance: accepted
    before = copy.deepcopy(w.to_state())
    assert not u(mark - CFG.allowed_lateness_ms - 1, event="late", user="u9", count=5)(w)
    assert w.to_state() == before
    assert not w.accepts(0, mark - CFG.allowed_lateness_ms - 1)


def test_support_lateness_judged_on_support_watermark() -> None:
    mark = T0 + 10 * DAY_MS
    w = fold([s(mark)])
    before = copy.deepcopy(w.to_state())
    assert not s(mark - CFG.allowed_lateness_ms - 1)(w)
    assert w.to_state() == before
    # The billing stream has its own (still empty) watermark.
    assert b(mark - CFG.allowed_lateness_ms - 1, "payment_failed")(w)


def test_event_older_than_retention_accepted_but_not_bucketed() -> None:
    w = fold([u(T0 + 100 * DAY_MS)])
    days_before = copy.deepcopy(w.days.items())
    # Support's first event: in order for its own stream, but its day is long past the retention.
    assert s(T0, "ticket_opened", "urgent")(w)
    assert b(T0, "payment_failed")(w)
    assert w.days.items() == days_before
    assert w.bucket(DAY0) == [0] * N_COLUMNS
    assert w.oldest_kept_day() == DAY0 + 100 - CFG.retention_days + 1


def test_retention_drops_old_days() -> None:
    cfg = WindowConfig(retention_days=7)
    w = fold([u(T0 + d * DAY_MS, count=d + 1) for d in range(10)], cfg)
    assert sorted(w.days) == list(range(DAY0 + 3, DAY0 + 10))
    assert w.total(USAGE, DAY0, DAY0 + 2) == 0
    assert w.total(USAGE, DAY0 + 3, DAY0 + 9) == sum(range(4, 11))


def test_state_bounded_over_a_year() -> None:
    """A year of daily activity keeps at most ``retention_days`` buckets and a steady-size state.

    Each kept day costs one bucket row (~40 bytes of JSON) and one event-name row (8 names of ~15 bytes,
    ~130 bytes): ~170 bytes x 56 days ~ 9.5 KB, measured 9,598 bytes at steady state. The bound of 12 KiB
    leaves ~25% for longer counters; keeping all 365 days would be ~62 KB, so a broken expiry fails by a
    factor of 5.
    """
    w = window()
    names = [f"feature_{i:02d}" for i in range(8)]
    sizes: list[int] = []
    for d in range(365):
        t = T0 + d * DAY_MS
        for h in range(8):
            assert w.add_usage(t + h * HOUR_MS, names[(h + d) % 8], f"user-{h % 5}", 3)
        assert w.add_support(t + 9 * HOUR_MS, SupportKind.TICKET_OPENED, Priority.HIGH, None)
        assert w.add_support(t + 10 * HOUR_MS, SupportKind.CSAT, None, 4)
        assert w.add_billing(t + 11 * HOUR_MS, BillingKind.PAYMENT_SUCCEEDED, 99.0, "pro")
        assert len(w.days) <= CFG.retention_days
        sizes.append(len(orjson.dumps(w.to_state())))
    assert len(w.days) == CFG.retention_days
    assert min(w.days) == DAY0 + 365 - CFG.retention_days
    # Names counted only for the open days too, and only the tracked ones.
    assert len(w.to_state()["k"]) <= 1 + 3 and set(w.open_names) <= set(w.event_totals)
    # User sets only for days still open to late events (lateness 2 days: today and the two before).
    assert len(user_days(w)) <= 3
    assert len(w.event_totals) <= 4 * CFG.top_events
    assert max(sizes) < 12 * 1024
    # Steady state from the first full window on: growth is only longer counters, never more rows.
    assert sizes[-1] - sizes[CFG.retention_days + 3] < 64


def test_user_sets_dropped_for_closed_days_counts_remain() -> None:
    w = fold([u(T0, user="u1"), u(T0 + HOUR_MS, user="u2")])
    assert DAY0 in user_days(w)
    # Day still open: a late event from a new user counts; a known user does not.
    assert u(T0 + DAY_MS)(w)
    assert u(T0 + 2 * HOUR_MS, user="u3")(w)
    assert u(T0 + 3 * HOUR_MS, user="u1")(w)
    assert w.bucket(DAY0)[ACTIVE_USERS] == 3
    # The usage watermark moves past the lateness allowance of the whole day: the set goes, the count stays.
    assert u(T0 + 3 * DAY_MS, user="u1")(w)
    assert DAY0 not in user_days(w)
    assert w.bucket(DAY0)[ACTIVE_USERS] == 3
    assert w.bucket(DAY0)[USAGE] == 4
    assert all(day >= day_of(T0 + 3 * DAY_MS - CFG.allowed_lateness_ms) for day in user_days(w))


def test_distinct_users_saturate() -> None:
    from detectors.windows import MAX_USERS_PER_DAY

    w = window()
    for i in range(MAX_USERS_PER_DAY + 50):
        assert w.add_usage(T0 + i, "login", f"user-{i}", 1)
    assert w.bucket(DAY0)[ACTIVE_USERS] == MAX_USERS_PER_DAY
    assert len(w.open_users or ()) == MAX_USERS_PER_DAY and user_days(w) == [DAY0]
    assert w.bucket(DAY0)[USAGE] == MAX_USERS_PER_DAY + 50


# -- top event names ----------------------------------------------------------------------------------------


def test_space_saving_keeps_heavy_names() -> None:
    cfg = WindowConfig(top_events=2)  # 8 candidates
    w = window(cfg)
    rare = iter(f"rare_{i:03d}" for i in range(200))
    t = T0
    for step in range(200):
        t += 1000
        w.add_usage(t, "export", None, 3)
        if step % 2 == 0:
            w.add_usage(t, "search", None, 2)
        w.add_usage(t, next(rare), None, 1)
    assert len(w.event_totals) <= 4 * cfg.top_events
    assert w.top_event_names() == ["export", "search"]
    # Space-Saving overestimates by at most the floor it inherited; heavy names were never evicted.
    assert w.event_totals["export"] == 600
    assert w.event_totals["search"] == 200
    names = dict(zip(w.open_names, w.to_state()["k"][1][1:], strict=True))  # DAY0's counts
    assert w.to_state()["k"][1][0] == DAY0
    assert names["export"] == 600
    assert names["search"] == 200
    assert set(names) <= set(w.event_totals)


def test_top_event_names_ranked_then_alphabetical() -> None:
    w = fold(
        [u(T0, "b", count=5), u(T0, "a", count=5), u(T0, "c", count=9), u(T0, "d", count=1)],
        WindowConfig(top_events=3),
    )
    assert w.top_event_names() == ["c", "a", "b"]


# -- state --------------------------------------------------------------------------------------------------


def _busy_window() -> AccountWindow:
    return fold(
        [
            u(T0, "login", "u1"),
            u(T0 + HOUR_MS, "export", "u2", 4),
            u(T0 + DAY_MS, "export", None, 2),
            s(T0, "ticket_opened", "urgent"),
            s(T0 + 2 * HOUR_MS, "csat", score=3),
            b(T0, "subscription_created", 99.0, "pro"),
            b(T0 + DAY_MS, "subscription_canceled"),
        ]
    )


def test_state_round_trip_through_json() -> None:
    w = _busy_window()
    state = w.to_state()
    restored = AccountWindow.from_state(orjson.loads(orjson.dumps(state)), CFG)
    assert restored.to_state() == state
    assert restored.top_event_names() == w.top_event_names()
    # The restored window keeps behaving the same: known users are not counted twice, lateness still applies.
    for target in (w, restored):
        assert target.add_usage(T0 + 5 * HOUR_MS, "login", "u1", 1)
        assert target.add_usage(T0 + 6 * HOUR_MS, "login", "u3", 1)
        assert not target.add_usage(T0 - 2 * DAY_MS, "login", "u1", 1)
    assert restored.to_state() == w.to_state()
    assert restored.bucket(DAY0)[ACTIVE_USERS] == 3


def test_empty_state_round_trip() -> None:
    state = window().to_state()
    assert AccountWindow.from_state(orjson.loads(orjson.dumps(state)), CFG).to_state() == state


def interleavings(*streams: Sequence[Op]) -> Iterator[list[Op]]:
    """Every merge of ``streams`` that keeps each stream's own order."""
    live = [i for i, stream in enumerate(streams) if stream]
    if not live:
        yield []
        return
    for i in live:
        rest = [stream[1:] if j == i else stream for j, stream in enumerate(streams)]
        for tail in interleavings(*rest):
            yield [streams[i][0], *tail]


def _states(*streams: Sequence[Op]) -> list[dict[str, Any]]:
    return [fold(ops).to_state() for ops in interleavings(*streams)]


def test_order_independent_across_streams() -> None:
    usage = [
        u(T0 + 1 * HOUR_MS, "login", "u1"),
        u(T0 + 5 * HOUR_MS, "export", "u2", 2),
        u(T0 + DAY_MS + 3 * HOUR_MS, "export", "u1"),
        u(T0 + 2 * HOUR_MS, "login", "u3"),  # late within its stream
    ]
    support = [
        s(T0 + DAY_MS, "ticket_opened", "urgent"),
        s(T0 + 3 * HOUR_MS, "ticket_opened"),
        s(T0 + 4 * DAY_MS, "csat", score=4),
    ]
    billing = [
        b(T0 + 3 * DAY_MS, "plan_changed", 99.0, "pro"),
        b(T0 + 2 * DAY_MS, "payment_failed", 49.0, "starter"),  # older: counted, but does not win
        b(T0 + 3 * DAY_MS + 1, "subscription_canceled"),
    ]
    states = _states(usage, support, billing)
    assert len(states) == 4200  # 10! / (4! 3! 3!)
    first = states[0]
    assert all(state == first for state in states)
    assert first["p"] == "pro"
    assert first["c"] == T0 + 3 * DAY_MS + 1


def test_user_set_closing_independent_of_stream_interleaving() -> None:
    states = _states([u(T0 + 10 * DAY_MS), u(T0 + 15 * DAY_MS)], [b(T0 + 20 * DAY_MS)])
    assert all(state == states[0] for state in states)


def test_event_totals_independent_of_stream_interleaving_beyond_retention() -> None:
    states = _states([u(T0, "export", "u1")], [b(T0 + 100 * DAY_MS)])
    assert all(state == states[0] for state in states)


def test_closed_days_share_their_buckets_and_a_late_event_opens_its_own_copy() -> None:
    # Two accounts with the same day, closed once usage is more than the 2-day lateness later.
    ops = [u(T0 + HOUR_MS), u(T0 + 2 * HOUR_MS, user="u2"), s(T0 + 3 * HOUR_MS), u(T0 + 4 * DAY_MS)]
    first, second = fold(ops), fold(ops)
    assert type(first.days[DAY0]) is tuple and first.days[DAY0] is second.days[DAY0]
    assert first.days[DAY0 + 4] is not second.days[DAY0 + 4]  # open days: lists of their own
    restored = AccountWindow.from_state(orjson.loads(orjson.dumps(first.to_state())), CFG)
    assert restored.days[DAY0] is first.days[DAY0]
    # Support is read within its own stream's lateness: a late ticket on the closed day counts in one window.
    assert first.add_support(T0 + 5 * HOUR_MS, SupportKind.TICKET_OPENED, Priority.URGENT, None)
    assert first.bucket(DAY0)[TICKETS_URGENT] == 1 and second.bucket(DAY0)[TICKETS_URGENT] == 0
    assert first.bucket(DAY0)[USAGE] == second.bucket(DAY0)[USAGE] == 2
    assert first.bucket(DAY0)[ACTIVE_USERS] == 2
    assert type(first.days[DAY0]) is tuple  # closed again, its own content now
    # Days close however far the watermark jumps: usage again after 20 silent days, and late tickets.
    ops = [u(T0 + d * DAY_MS) for d in range(5)] + [s(T0 + 3 * HOUR_MS), u(T0 + 25 * DAY_MS)]
    gap = fold([*ops, s(T0 + 2 * DAY_MS), b(T0 + 4 * DAY_MS, "payment_failed")])
    assert [type(gap.days[day]) for day in sorted(gap.days)] == [tuple] * 5 + [list]
    assert gap.bucket(DAY0 + 2)[TICKETS_NORMAL] == gap.bucket(DAY0 + 4)[PAYMENT_FAILED] == 1


def test_the_shared_buckets_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(shared, "MAX_SHARED_BUCKETS", 2)
    monkeypatch.setattr(shared, "CLOSED", {})
    buckets = [shared.closed_bucket([n] * N_COLUMNS) for n in range(5)]
    assert len(shared.CLOSED) <= 2
    assert shared.closed_bucket([4] * N_COLUMNS) is buckets[4]
    assert [bucket[USAGE] for bucket in buckets] == [0, 1, 2, 3, 4]
