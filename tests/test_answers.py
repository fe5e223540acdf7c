"""Answers to alerts folded by the engine (issue 18), without Kafka: replay drives the same engine.

A seasonal account dips for three weeks every 90 days and stops for good on day 360; six steady accounts
keep the population company. Without answers every dip alerts; the tests answer the first dip's alert.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import subprocess
import sys
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from detectors.alerts import Alert, Transition
from detectors.answers import MAX_ALERTS, MAX_SEEN, AnswerBook, AnswerPolicy
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.reasons import reason_kind
from detectors.risk import FEATURES
from detectors.windows import DAY_MS, AccountWindow, WindowConfig
from streams.engine import Engine, MemoryStore
from streams.engine.answers import HANDLED_OUTCOME, AnswerArrival
from streams.engine.state import AccountState, decode_detector
from streams.feedback import Feedback, FeedbackLabel, FeedbackSource
from streams.live.ingest import FEEDBACK_TYPE, BatchFolder, RawRecord
from streams.offline.replay import ReplayResult, run_replay

DAY0 = 20_400
DIPS = ((90, 111), (180, 201), (270, 291))  # days after DAY0: usage at an eighth of its level
STOP = 360  # the seasonal account stops for good: a real drop
DAYS = 380


def _usage(account: str, day: int, n: int) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "type": "usage",
                "account_id": account,
                "ts": day * DAY_MS + 36_000_000 + k * 1_000,
                "event": "report_exported" if k % 3 else "dashboard_viewed",
                "user_id": f"u{k % 4}",
            }
        )
        for k in range(n)
    ]


@functools.cache
def seasonal_lines() -> tuple[bytes, ...]:
    lines: list[tuple[int, bytes]] = []
    for account in ["school", *(f"steady{i}" for i in range(6))]:
        for day in range(DAY0, DAY0 + DAYS):
            n = 20 if (day + 3) % 7 < 5 else 5
            offset = day - DAY0
            if account == "school":
                if any(start <= offset < end for start, end in DIPS):
                    n = max(1, n // 8)
                if offset >= STOP:
                    n = 0
            lines += [(day, line) for line in _usage(account, day, n)]
    return tuple(line for _, line in sorted(lines, key=lambda item: item[0]))


def replay(answers: Sequence[Feedback] = (), policy: AnswerPolicy | None = None) -> ReplayResult:
    # The threshold is pinned: the scenario (each dip opens, escalates and resolves) is about answers, not
    # about where the default alert threshold sits.
    config = DetectorConfig(alert_threshold=0.35)
    return run_replay(list(seasonal_lines()), config=config, feedback=answers, answer_policy=policy)


def school_alerts(result: ReplayResult, transition: Transition | None = None) -> list[tuple[int, Alert]]:
    return [
        ((alert.event_ts_ms // DAY_MS) - DAY0, alert)
        for alert in result.alerts
        if alert.account_id == "school" and (transition is None or alert.transition is transition)
    ]


def answer(alert: Alert, label: FeedbackLabel, *, after_days: int = 1, user: str = "ana") -> Feedback:
    return Feedback(
        account_id=alert.account_id,
        alert_id=alert.idempotency_key,
        label=label,
        user=user,
        source=FeedbackSource.API,
        answered_ts_ms=alert.event_ts_ms + after_days * DAY_MS + DAY_MS // 2,  # noon: after that midnight
    )


@functools.cache
def unanswered() -> ReplayResult:
    return replay()


def first_alert() -> Alert:
    return school_alerts(unanswered(), Transition.OPENED)[0][1]


def season_of(day: int) -> int | None:
    return next((i for i, (start, end) in enumerate(DIPS) if start <= day <= end + 14), None)


def test_without_answers_every_season_alerts() -> None:
    """The baseline the other tests change: each dip opens an episode, and so does the real stop."""
    opened = [day for day, _ in school_alerts(unanswered(), Transition.OPENED)]
    assert {season_of(day) for day in opened} >= {0, 1, 2}
    assert any(day >= STOP for day in opened)
    assert season_of(opened[0]) == 0


def test_false_alarm_stops_next_seasons_for_that_reason_but_a_real_drop_still_alerts() -> None:
    alert = first_alert()
    result = replay([answer(alert, FeedbackLabel.FALSE_ALARM)])
    opened = school_alerts(result, Transition.OPENED)
    assert [season_of(day) for day, _ in opened if day < STOP] == [0]  # seasons 2 and 3: no alert
    answered_kinds = {reason_kind(r) for r in alert.reasons}
    later = [a for day, a in opened if day >= STOP]
    assert later, "the real drop (another reason) must still alert"
    assert "silence" in {reason_kind(r) for r in later[0].reasons} - answered_kinds
    book = result.account_states[b"school"].answers
    assert book is not None and set(book.damped) == answered_kinds - {"base_rate", "other"}
    # Other accounts are untouched by one account's answer.
    assert [a for a in result.alerts if a.account_id != "school"] == [
        a for a in unanswered().alerts if a.account_id != "school"
    ]


def test_false_alarm_teaches_the_risk_model_a_negative_and_real_a_positive() -> None:
    alert = first_alert()
    base = unanswered().monitor
    assert base is not None
    for label, field in ((FeedbackLabel.FALSE_ALARM, "n_negatives"), (FeedbackLabel.REAL, "n_positives")):
        result = replay([answer(alert, label)])
        assert result.monitor is not None
        learned = getattr(result.monitor.risk_model, field) - getattr(base.risk_model, field)
        assert learned >= 1 and result.answers.learned == 1
    silent = replay([answer(alert, FeedbackLabel.REAL)], AnswerPolicy(label_weight=0.0))
    assert silent.answers.learned == 0 and silent.alerts == unanswered().alerts


def test_same_answer_twice_counts_once() -> None:
    once_answer = answer(first_alert(), FeedbackLabel.FALSE_ALARM)
    again = dataclasses.replace(once_answer, answered_ts_ms=once_answer.answered_ts_ms + DAY_MS)
    once, twice = replay([once_answer]), replay([once_answer, again])
    assert twice.answers.duplicates == 1 and twice.answers.applied == {"false-alarm": 1}
    assert twice.alerts == once.alerts
    assert once.monitor is not None and twice.monitor is not None
    assert twice.monitor.risk_model.to_state() == once.monitor.risk_model.to_state()
    other_user = replay([once_answer, answer(first_alert(), FeedbackLabel.FALSE_ALARM, user="bo")])
    assert other_user.answers.applied == {"false-alarm": 2}  # another person's answer is another answer


def test_snooze_holds_back_the_accounts_alerts_for_14_days() -> None:
    alert = first_alert()
    base_day = (alert.event_ts_ms // DAY_MS) - DAY0
    unanswered_soon = [d for d, _ in school_alerts(unanswered()) if base_day < d <= base_day + 15]
    assert unanswered_soon, "the first season escalates and resolves within 15 days"
    result = replay([answer(alert, FeedbackLabel.SNOOZE)])
    assert [d for d, _ in school_alerts(result) if base_day < d <= base_day + 15] == []
    assert {season_of(d) for d, _ in school_alerts(result, Transition.OPENED)} >= {1, 2}  # snooze ends
    assert result.answers.applied == {"snooze": 1}


def test_handled_closes_the_episode_with_the_outcome_action_taken() -> None:
    alert = first_alert()
    result = replay([answer(alert, FeedbackLabel.HANDLED)])
    resolved = [a for _, a in school_alerts(result, Transition.RESOLVED) if a.episode_id == alert.episode_id]
    assert len(resolved) == 1
    assert resolved[0].extra["outcome"] == HANDLED_OUTCOME and "by ana" in resolved[0].reasons[0]
    day = (alert.event_ts_ms // DAY_MS) - DAY0
    assert resolved[0].event_ts_ms // DAY_MS - DAY0 == day + 1  # the answer's day, not the natural end
    episode_alerts = [a for _, a in school_alerts(result) if a.episode_id == alert.episode_id]
    assert [a.transition for a in episode_alerts] == [Transition.OPENED, Transition.RESOLVED]
    late = replay([answer(alert, FeedbackLabel.HANDLED, after_days=60)])  # the episode is over by then
    assert late.answers.unknown == 1 and late.alerts == unanswered().alerts


def test_answer_to_an_unknown_alert_or_account_changes_nothing() -> None:
    alert = first_alert()
    stranger = Feedback(
        account_id="nobody",
        alert_id="nobody:0:opened",
        label=FeedbackLabel.FALSE_ALARM,
        user="ana",
        source=FeedbackSource.API,
        answered_ts_ms=alert.event_ts_ms,
    )
    wrong = dataclasses.replace(stranger, account_id="school", alert_id="school:1:opened")
    result = replay([stranger, wrong])
    assert result.answers.unknown == 2 and result.alerts == unanswered().alerts


def test_the_answer_book_stays_bounded() -> None:
    book = AnswerBook()
    policy = AnswerPolicy()
    reasons = [
        "silent for 8 days (usually active every 1.1 days)",
        "usage -60% vs its usual level (1/day over the last 7 days, 3/day expected)",
        "3 tickets in 14 days (usually 0.2), 1 urgent/high, 0 escalated",
        "CSAT 2.0/5 over 3 ratings in 30 days",
    ]
    features = {"silence": 3.0, "usage_drop": 0.6, "ticket_burst": 1.1, "urgent": 1.0, "low_csat": 1.5}
    for i in range(500):
        alert_id = f"acme:{i}:opened"
        book.remember(alert_id, i * DAY_MS, reasons, features)
        for user in ("ana", "bo"):
            assert book.first_time(f"{alert_id}|false-alarm|{user}")
            remembered = book.alert(alert_id)
            assert remembered is not None
            book.false_alarm(remembered, now_ms=i * DAY_MS, policy=policy)
    assert len(book.alerts) == MAX_ALERTS and len(book.seen) == MAX_SEEN
    assert set(book.muted) == set(book.damped) == {"silence", "usage_drop", "tickets", "low_csat"}
    assert max(d for d, _ in book.damped.values()) < 1.0
    state = AccountState(AccountWindow(WindowConfig()), 3, answers=book)
    raw = state.to_bytes()
    assert len(orjson.dumps(book.to_state())) < 1_200
    restored = AccountState.from_bytes(raw, WindowConfig())
    assert restored.answers is not None and restored.answers.to_state() == book.to_state()
    # Years later the damping has faded below the floor: the next answer forgets it.
    book.false_alarm(book.alerts[-1], now_ms=(500 + 10 * 365) * DAY_MS, policy=AnswerPolicy())
    assert all(since == (500 + 10 * 365) * DAY_MS for _, since in book.damped.values())


def _full_book() -> AnswerBook:
    """A book at its bounds: four alerts of ten features, sixteen answer ids, muted and damped kinds."""
    book = AnswerBook()
    reasons = [
        "silent for 8 days (usually active every 1.1 days)",
        "usage -60% vs its usual level (1/day over the last 7 days, 3/day expected)",
        "3 tickets in 14 days (usually 0.2), 1 urgent/high, 0 escalated",
    ]
    for i in range(MAX_ALERTS):
        features = {name: 0.1234 * (k + 1) + i for k, name in enumerate(FEATURES[:10])}
        book.remember(f"acct-{i:06d}:17859744{i:05d}:opened", i * DAY_MS, reasons, features)
        for j in range(MAX_SEEN // MAX_ALERTS):
            assert book.first_time(f"acct:{i}|false-alarm|user{j}")
        book.false_alarm(book.alerts[-1], now_ms=i * DAY_MS, policy=AnswerPolicy())
    return book


def test_a_decoded_answer_book_is_small_and_shares_its_names_and_values() -> None:
    """Every alerted account keeps its book in memory (issue 15): features as flat pairs of shared values,
    kinds as shared names, answer ids 4 bytes each. A book at its bounds took ~5.3 KB decoded as dicts and
    lists of int objects, ~2.8 KB now."""
    stored = orjson.dumps(_full_book().to_state())
    first, second = (AnswerBook.from_state(orjson.loads(stored)) for _ in range(2))
    assert orjson.dumps(first.to_state()) == stored  # the stored form is unchanged
    assert first.alerts[0].kinds[0] is second.alerts[0].kinds[0]
    assert first.alerts[0].flat[1] is second.alerts[0].flat[1]
    assert first.alerts[-1].features == {
        name: round(0.1234 * (k + 1) + 3, 3) for k, name in enumerate(FEATURES[:10])
    }
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        books = [AnswerBook.from_state(orjson.loads(stored)) for _ in range(100)]
        gc.collect()
        per_book = (tracemalloc.get_traced_memory()[0] - before) / len(books)
    finally:
        tracemalloc.stop()
    assert per_book < 3_500


def test_live_decoding_turns_feedback_records_into_answers() -> None:
    folder = BatchFolder(
        window_config=WindowConfig(), max_event_bytes=10_000, max_future_skew_ms=0, clock=lambda: 0
    )
    good = answer(first_alert(), FeedbackLabel.REAL)
    records = [
        RawRecord(FEEDBACK_TYPE, b"school", good.to_bytes(), "f", 0, 5),
        RawRecord(FEEDBACK_TYPE, b"school", b'{"account_id": "school"}', "f", 0, 6),
        RawRecord(FEEDBACK_TYPE, b"other", good.to_bytes(), "f", 0, 7),
        RawRecord(FEEDBACK_TYPE, b"school", None, "f", 0, 8),
    ]
    arrivals, dead = folder.decode(records)
    assert len(arrivals) == 1 and isinstance(arrivals[0], AnswerArrival)
    assert arrivals[0].feedback == good and arrivals[0].offset == 5
    assert [d.reason.value for d in dead] == ["invalid_value", "key_mismatch", "invalid_value"]


def test_replay_cli_folds_a_feedback_file_and_names_a_bad_line(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(seasonal_lines()) + b"\n")
    alert = first_alert()
    answers = tmp_path / "answers.jsonl"
    answers.write_bytes(answer(alert, FeedbackLabel.FALSE_ALARM).to_bytes() + b"\n\n")
    report = tmp_path / "report.json"
    args = [sys.executable, "-m", "streams", "replay", str(events), "--no-baselines", "--report", str(report)]
    args += ["--alert-threshold", "0.35"]  # as replay() above
    done = subprocess.run([*args, "--feedback", str(answers)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    body = orjson.loads(report.read_bytes())
    assert body["answers"]["applied"] == {"false-alarm": 1}
    answers.write_bytes(answer(alert, FeedbackLabel.REAL).to_bytes() + b'\n{"label": "real"}\n')
    bad = subprocess.run([*args, "--feedback", str(answers)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"error: --feedback {answers} line 2: not an answer to an alert (missing 'account_id')"
    ]


@pytest.mark.parametrize("weight", [0.0, 2.5])
def test_label_weight_scales_the_models_step(weight: float) -> None:
    from detectors.risk import RiskModel

    x = {"usage_drop": 0.8, "decline": 0.5}
    base, once, weighted = RiskModel(), RiskModel(), RiskModel()
    once.learn_one(x, False)
    weighted.learn_one(x, False, weight)
    step = once.to_state()["weights"]["usage_drop"] - base.to_state()["weights"]["usage_drop"]
    moved = weighted.to_state()["weights"]["usage_drop"] - base.to_state()["weights"]["usage_drop"]
    assert moved == pytest.approx(weight * step)


def test_an_answer_read_late_acts_at_its_own_time() -> None:
    """A snooze read ten days after it was given (a lagging partition) ends when it was meant to."""
    engine = Engine(AccountMonitor(DetectorConfig(), WindowConfig()), MemoryStore())
    engine.store.put(b"school", AccountState(AccountWindow(WindowConfig()), 0))
    answered = (DAY0 + 100) * DAY_MS
    engine.sweep(answered + 10 * DAY_MS)  # the engine's clock is ten days past the answer
    snooze = Feedback(
        account_id="school",
        alert_id="school:0:opened",
        label=FeedbackLabel.SNOOZE,
        user="ana",
        source=FeedbackSource.SLACK,
        answered_ts_ms=answered,
    )
    engine.answer(AnswerArrival(snooze, 0, 0))
    state = engine.store.get(b"school")
    assert state is not None and state.detector is not None
    stored = engine.monitor.state_from(decode_detector(state.detector))
    assert stored.snoozed_until_ms == snooze.snooze_until_ms
    assert snooze.snooze_until_ms == answered + 14 * DAY_MS
