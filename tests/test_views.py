"""The worker's HTTP view bodies (streams/live/views.py) from a real engine's at-risk view; no Kafka."""

from __future__ import annotations

from types import SimpleNamespace

from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.windows import WindowConfig
from streams.engine import AtRisk, Engine, MemoryStore
from streams.live.views import at_risk_body


def worker_with(rows: list[AtRisk], partitions: list[int]) -> SimpleNamespace:
    engine = Engine(AccountMonitor(DetectorConfig(), WindowConfig()), MemoryStore())
    engine.detection.at_risk = {row.account_id: row for row in rows}
    return SimpleNamespace(engine=engine, assigned_partitions=lambda: partitions)


def row(account: str, risk: float, mrr: float, partition: int = 0) -> AtRisk:
    return AtRisk(
        account, risk, "high", "pro", mrr, ("silent for 6 days",), f"{account}:1", 86_400_000, partition
    )


def test_at_risk_ranks_by_revenue_pages_and_keeps_owned_partitions() -> None:
    worker = worker_with(
        [row("a", 0.5, 100.0), row("b", 0.9, 10.0), row("c", 0.4, 1000.0), row("d", 0.9, 5000.0, 1)], [0]
    )
    body = at_risk_body(worker, {"limit": "2", "offset": "0"})  # type: ignore[arg-type]
    assert body is not None
    assert body["total"] == 3  # d is in a partition this worker no longer owns
    assert [entry["account_id"] for entry in body["accounts"]] == ["c", "a"]
    assert (
        body["accounts"][0]["revenue_at_risk"] == 400.0
        and body["accounts"][0]["since"] == "1970-01-02T00:00:00Z"
    )
    second = at_risk_body(worker, {"limit": "2", "offset": "2"})  # type: ignore[arg-type]
    assert second is not None and [entry["account_id"] for entry in second["accounts"]] == ["b"]


def test_at_risk_refuses_a_limit_that_is_no_integer() -> None:
    assert at_risk_body(worker_with([], [0]), {"limit": "ten"}) is None  # type: ignore[arg-type]
