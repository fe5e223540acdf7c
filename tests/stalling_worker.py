"""``churnwatch worker`` whose event reader's first consumer stops fetching once a trigger file exists.

A test fault for the consumer that goes quiet for good while the broker is up (aio-libs/aiokafka#712; seen
here under load): once ``STALL_TRIGGER`` (a path in the environment) exists, the first consumer that reads the
usage topic pauses every partition it has (aiokafka's own ``pause``: its fetcher stops asking for them, so no
fetch is answered and ``getmany`` returns nothing). Consumers built after it, the replacement, are healthy.

Run as ``python -m tests.stalling_worker worker``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

import streams.live.event_reader as event_reader
from streams.cli.main import main

stalled_once = False
healthy_consumer = event_reader.assigning_consumer


class StallingConsumer(AIOKafkaConsumer):
    async def getmany(self, *partitions: Any, **options: Any) -> Any:
        global stalled_once
        reads_usage = any(tp.topic.endswith(".usage") for tp in self.assignment())
        if not stalled_once and reads_usage and Path(os.environ["STALL_TRIGGER"]).exists():
            stalled_once = True
            self.pause(*self.assignment())
            print("stalling_worker: consumer paused", flush=True)
        return await super().getmany(*partitions, **options)


def first_one_stalls(options: Any, **extra: Any) -> AIOKafkaConsumer:
    if stalled_once:
        return healthy_consumer(options, **extra)
    return StallingConsumer(
        **options, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **extra
    )


if __name__ == "__main__":
    event_reader.assigning_consumer = first_one_stalls  # type: ignore[assignment]
    main()
