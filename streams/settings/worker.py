"""Settings of the live worker's process: micro-batches, checkpoints, its HTTP server, health and shutdown."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from streams.settings.kafka import GROUP_CONFIG


class WorkerSettings(BaseModel):
    """How one worker process runs (``churnwatch worker``)."""

    model_config = GROUP_CONFIG

    batch_max_events: int = Field(default=2_000, ge=1, description="Events folded per micro-batch at most.")
    batch_within_seconds: float = Field(default=0.25, gt=0, description="Longest wait to fill a micro-batch.")
    checkpoint_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often changed account states and the consumed offsets are written to the changelog "
        "(a crash re-reads at most this much, harmlessly) while the worker keeps up with its topics. Longer "
        "writes fewer states per event but holds batches longer while a checkpoint writes.",
    )
    checkpoint_backlog_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        description="The checkpoint interval while the worker folds a backlog (more records wait than it "
        "folded since the last checkpoint) and the state cache is within its limit: each account is written "
        "once for more of its events (at 1 M accounts most events reach an account not yet written in 5 s). "
        "A crash then re-reads up to this much; values below checkpoint_interval_seconds act as it. A "
        "checkpoint comes sooner when writing the changed states would take half of "
        "shutdown_timeout_seconds (at the cost per state the last checkpoint measured).",
    )
    state_cache_accounts: int = Field(
        default=50_000, ge=0, description="Decoded account states kept in memory between batches, at most."
    )
    state_decoded_detectors: Literal["auto", "kept", "dropped"] = Field(
        default="auto",
        description="Whether an account's decoded detector state stays in memory between sweeps: 'dropped' "
        "keeps only its stored form (~0.8 KB instead of ~3.6 KB for an account of 90 days; each sweep "
        "decodes it again, ~30 µs), 'kept' keeps both; 'auto': dropped on the wall clock (one sweep of "
        "every account a day), kept on the event clock (a backlog sweeps every account at each midnight it "
        "crosses).",
    )
    state_rows_in_parts: bool = Field(
        default=True,
        description="Store an old account's row in two frames, so a checkpoint copies the closed days and "
        "detector state while they have not changed instead of encoding them again. Workers from before "
        "2026-12-07 cannot read such rows: set false during a rolling upgrade from them (rows stay one "
        "frame, as they wrote), then true once every worker of the group is new.",
    )
    gc_full_collection_seconds: float = Field(
        default=600.0,
        ge=0,
        description="How often the garbage collector walks every object, the cached states too, for garbage "
        "cycles (0: never). The walk stops the worker: ~0.5 s with 100 k accounts (50 k cached) on a quiet "
        "machine, seconds on a busy one, 9.4 s with 1 M accounts cached (keep it under the session timeout, "
        "or use 0); each is logged (gc.full_collection) with its seconds and the garbage it found.",
    )
    web_host: str = Field(
        default="127.0.0.1", description="Bind address of the worker's HTTP server (API, metrics)."
    )
    web_port: int = Field(default=6066, ge=1, le=65535, description="Port of the worker's HTTP server.")
    data_dir: Path = Field(
        default=Path(".churnwatch"), description="Worker data directory (faust's datadir)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")
    shutdown_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        le=600,
        description="A stopping worker (SIGTERM/SIGINT or a fatal error) that has not exited after this long "
        "exits anyway with code 1; a second signal exits at once. Keep it below the grace period of the "
        "orchestrator.",
    )
    ready_read_within_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Ready only if the broker answered a fetch of the event reader (or nothing was assigned) "
        "within this long.",
    )
    reader_rebuild_after_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A reader whose fetches the broker answered none of for this long, with partitions to "
        "read, replaces its Kafka consumer (an aiokafka consumer can go quiet for good, the broker up).",
    )
    liveness_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Live only if the event loop and the event reader's loop turned within this long.",
    )

    def keeps_decoded_detectors(self, event_clock: bool) -> bool:
        """``state_decoded_detectors`` for the evaluation clock (True: kept between sweeps).

        >>> auto = WorkerSettings()
        >>> auto.keeps_decoded_detectors(event_clock=True), auto.keeps_decoded_detectors(event_clock=False)
        (True, False)
        >>> WorkerSettings(state_decoded_detectors="kept").keeps_decoded_detectors(event_clock=False)
        True
        """
        choice = self.state_decoded_detectors
        return choice == "kept" or (choice == "auto" and event_clock)
