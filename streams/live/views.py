"""The worker's HTTP views: stats, readiness and liveness, one account's story, the at-risk list, metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import faust
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.engine.detection import AtRisk
from streams.offline.replay import rfc3339
from streams.offline.uplift import Uplift

if TYPE_CHECKING:
    from streams.live.app import Churnwatch

JSON = "application/json"
MAX_PAGE = 1_000


def at_risk_row(row: AtRisk) -> dict[str, Any]:
    return {
        "account_id": row.account_id,
        "risk": round(row.risk, 4),
        "severity": row.severity,
        "plan": row.plan,
        "mrr": row.mrr,
        "revenue_at_risk": round(row.revenue_at_risk, 2),
        "reasons": list(row.reasons),
        "episode_id": row.episode_id,
        "since": rfc3339(row.since_ms) if row.since_ms is not None else None,
    }


def restore_body(worker: Churnwatch) -> dict[str, Any]:
    """The accounts table's batched restores so far (streams/live/restore.py), and the standby changelog
    records still to read (by the batched restore, then by Faust)."""
    store = worker.store.table.data
    recovery = cast(Any, worker.app.tables).recovery  # faust's TableManager; its type omits it
    return {
        "records": store.restored_records,
        "seconds": round(store.restored_seconds, 3),
        "in_progress": store.restoring,
        "standby_records_left": store.standby_backlog() + recovery.standby_remaining_total(),
    }


def stats_body(worker: Churnwatch) -> dict[str, Any]:
    partitions = worker.assigned_partitions()
    return {
        # Refreshed with the gauges (every 5 s): counting a million rows per request would be a load.
        "accounts": worker.accounts_count,
        "ready": worker.is_ready(),
        "events_folded": worker.events_folded,
        "deadletters": worker.deadletters_sent,
        "partitions": partitions,
        # The outbox offsets a new owner would resume from (what is checkpointed, not what is read).
        "outbox_positions": worker.outbox.checkpointed_offsets(partitions),
        "uplift": uplift_body(worker, partitions),
        "restore": restore_body(worker),
    }


def uplift_body(worker: Churnwatch, partitions: list[int]) -> dict[str, Any] | None:
    """The holdout uplift of the accounts in ``partitions`` as of the last sweep (streams/engine/uplift.py),
    in the replay report's form; None without a holdout experiment."""
    holdout, ledger = worker.holdout, worker.engine.uplift
    if holdout.share <= 0 or not ledger.active:
        return None
    tally = ledger.total(set(partitions))
    estimate = None
    if tally.delivered and tally.held_out:
        estimate = Uplift.from_counts(
            delivered=(tally.delivered, tally.delivered_churned),
            held_out=(tally.held_out, tally.held_out_churned),
            pending=tally.pending,
        ).to_dict()
    return {
        "experiment": holdout.experiment,
        "share": holdout.share,
        "pending": tally.pending,
        "as_of": rfc3339(ledger.as_of_ms) if ledger.as_of_ms is not None else None,
        "partitions_counted": sorted(set(ledger.tallies) & set(partitions)),
        "estimate": estimate,
    }


def account_body(worker: Churnwatch, account_id: str) -> dict[str, Any] | None:
    state = worker.store.account(account_id.encode())
    if state is None:
        return None
    return {
        "account_id": account_id,
        "explained": worker.explained(account_id, state),
        "window": state.window.to_state(),
        "applied_offsets": state.applied_offsets,
        "answers": state.answers.summary() if state.answers is not None else None,
    }


def at_risk_body(worker: Churnwatch, query: Any) -> dict[str, Any] | None:
    """One page of the at-risk list; None when ``limit`` or ``offset`` is no integer."""
    try:
        limit = min(max(int(query.get("limit", 50)), 1), MAX_PAGE)
        offset = max(int(query.get("offset", 0)), 0)
    except ValueError:
        return None
    partitions = worker.assigned_partitions()
    total, rows = worker.engine.detection.page(
        limit=limit, offset=offset, severity=query.get("severity") or None, partitions=set(partitions)
    )
    return {
        "partitions": partitions,
        "total": total,
        "limit": limit,
        "offset": offset,
        "accounts": [at_risk_row(row) for row in rows],
    }


def register_views(worker: Churnwatch) -> None:
    """Add the pages to the worker's Faust app (faust binds handlers as View methods: (view, request))."""
    app = worker.app

    def json(web: faust.web.View, body: Any, status: int = 200) -> faust.web.Response:
        return web.bytes(orjson.dumps(body), content_type=JSON, status=status)

    @app.page("/churnwatch/stats/")
    async def stats(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return json(web, stats_body(worker))

    @app.page("/churnwatch/ready/")
    async def ready(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """Tables recovered and the event reader reading: 200, else 503 and why (streams/live/health.py)."""
        verdict = worker.health.export(worker.metrics)
        return json(web, verdict.body("ready"), 200 if verdict.ok else 503)

    @app.page("/churnwatch/live/")
    async def live(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """Event loop and event reader turning: 200, else 503 (stuck: restart the worker)."""
        verdict = worker.health.liveness()
        return json(web, verdict.body("live"), 200 if verdict.ok else 503)

    @app.page("/churnwatch/accounts/{account_id}/")
    async def account(web: faust.web.View, request: faust.web.Request, account_id: str) -> faust.web.Response:
        body = account_body(worker, account_id)
        return json(web, {"error": "unknown account"}, 404) if body is None else json(web, body)

    @app.page("/churnwatch/at-risk/")
    async def at_risk(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        body = at_risk_body(worker, request.query)
        if body is None:
            return json(web, {"error": "limit and offset must be integers"}, 400)
        return json(web, body)

    @app.page("/metrics")
    async def metrics(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        worker.health.export(worker.metrics)
        return web.bytes(generate_latest(worker.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])
