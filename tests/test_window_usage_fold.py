"""The usage fold's common case written out (``AccountWindow.add_usage``, issue 15) leaves every window as
the general path (``_bucket_for`` for every event, as before) leaves it, whatever the order and the config."""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.shared import shared_day
from detectors.vocabulary import BillingKind, SupportKind
from detectors.windows import ACTIVE_USERS, DAY_MS, MAX_USERS_PER_DAY, USAGE, AccountWindow, WindowConfig

T0 = 20_000 * DAY_MS


class GeneralWindow(AccountWindow):
    """``add_usage`` as it was before the written-out case: ``_bucket_for`` for every event."""

    __slots__ = ()

    def add_usage(self, ts_ms: int, event: str, user_id: str | None, count: int) -> bool:
        bucket = self._bucket_for(0, ts_ms)
        if bucket is False:
            return False
        if bucket is None:
            self._track_event_name(event, count)
            return True
        day = ts_ms // DAY_MS
        bucket[USAGE] += count
        if user_id is not None and bucket[ACTIVE_USERS] < MAX_USERS_PER_DAY:
            users = self.open_users
            if users is None:
                users = self.open_users = {}
            user = zlib.crc32(user_id.encode())
            seen = users.get(user, 0)
            bit = 1 << day % (self.config.allowed_lateness_ms // DAY_MS + 2)
            if not seen & bit:
                users[user] = seen | bit
                bucket[ACTIVE_USERS] += 1
        if self._track_event_name(event, count):
            names = self.day_events.get(day)
            if names is None:
                names = self.day_events[shared_day(day)] = {}
            names[event] = names.get(event, 0) + count
        return True


steps = st.lists(
    st.tuples(
        st.sampled_from(["usage", "usage", "usage", "support", "billing"]),
        st.integers(-3 * DAY_MS, 2 * DAY_MS),  # a step in time: mostly forward, some late, some far
        st.sampled_from(["login", "search", "export", "a", "b", "c", "d", "e", "f"]),
        st.sampled_from([None, "u1", "u2", "u3"]),
    ),
    max_size=120,
)
configs = st.builds(
    WindowConfig,
    retention_days=st.sampled_from([0, 1, 2, 5, 56]),
    allowed_lateness_ms=st.sampled_from([0, DAY_MS // 2, DAY_MS, 2 * DAY_MS, 2 * DAY_MS + 1]),
    top_events=st.sampled_from([1, 5]),
)


def fold(window: AccountWindow, kind: str, ts: int, name: str, user: str | None) -> bool:
    if kind == "usage":
        return window.add_usage(ts, name, user, 2)
    if kind == "support":
        return window.add_support(ts, SupportKind.TICKET_OPENED, None, None)
    return window.add_billing(ts, BillingKind.PAYMENT_FAILED, None, None)


@settings(max_examples=400, deadline=None)
@given(steps, configs)
def test_the_written_out_usage_fold_equals_the_general_one(
    events: list[tuple[str, int, str, str | None]], config: WindowConfig
) -> None:
    fast, general = AccountWindow(config), GeneralWindow(config)
    ts = T0
    for kind, step, name, user in events:
        ts += step // 4 if step > 0 else step  # forward in small steps, back by up to 3 days
        assert fold(fast, kind, ts, name, user) == fold(general, kind, ts, name, user)
        assert fast.to_state() == general.to_state()
        assert fast.days.items() == general.days.items()
