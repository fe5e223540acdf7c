"""With ``learn_at_horizon`` the risk model learns an outcome only once its snapshot's horizon has closed.

A cancellation labels its account's snapshots as positives at once, while a negative is known only a
horizon after its snapshot; learned as they came, the model always sees more recent positives than
negatives (see ``detectors.outcomes.ripe``). These tests hold the engine's sweep to the setting.
"""

from __future__ import annotations

import orjson

from detectors.monitor import AccountMonitor, DetectorConfig, Outcome
from detectors.windows import DAY_MS, WindowConfig
from streams.engine.clock import EventClock
from streams.engine.detection import Detection
from streams.engine.saved import encode

DAY = 20_000


def _detection(learn_at_horizon: bool = True) -> Detection:
    config = DetectorConfig(horizon_days=30, learn_at_horizon=learn_at_horizon)
    return Detection(AccountMonitor(config, WindowConfig()))


def _sweep_at(detection: Detection, day: int) -> None:
    # Midnight of ``day`` plus the day-close delay: the sweep's ``today`` is ``day``.
    delay = detection.monitor.config.day_close_delay_ms
    detection.sweep([], day * DAY_MS + delay, day * DAY_MS + delay)


def test_a_positive_waits_for_its_horizon_and_a_negative_does_not() -> None:
    detection = _detection()
    positive = Outcome("acme", DAY, 0.4, {"recency": 1.0}, True)  # cancelled within 30 days of DAY
    negative = Outcome("bolt", DAY - 30, 0.1, {"recency": 0.1}, False)  # survived its horizon by DAY
    detection.unlearned = [positive, negative]
    _sweep_at(detection, DAY + 10)
    model = detection.risk_model
    assert (model.n_positives, model.n_negatives) == (0, 1)
    assert detection.unlearned == [positive]
    _sweep_at(detection, DAY + 29)
    assert model.n_positives == 0 and detection.unlearned == [positive]
    _sweep_at(detection, DAY + 30)
    assert (model.n_positives, model.n_negatives) == (1, 1)
    assert detection.unlearned == []


def test_a_waiting_positive_is_saved_with_the_model() -> None:
    detection = _detection()
    positive = Outcome("acme", DAY, 0.4, {"recency": 1.0}, True)
    detection.unlearned = [positive]
    _sweep_at(detection, DAY + 1)
    saved = orjson.loads(encode(detection, EventClock()))
    assert [Outcome.from_state(item) for item in saved["unlearned"]] == [positive]


def test_by_default_every_labelled_outcome_is_learned_at_the_next_sweep() -> None:
    detection = _detection(learn_at_horizon=False)
    detection.unlearned = [Outcome("acme", DAY, 0.4, {"recency": 1.0}, True)]
    _sweep_at(detection, DAY + 1)
    assert detection.risk_model.n_positives == 1 and detection.unlearned == []
