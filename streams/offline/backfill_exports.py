"""Segment and Stripe exports as canonical event lines, mapped by the ingest gateway's own code.

``churnwatch backfill --format segment|stripe FILE…`` reads history where it already lives and turns it into
the canonical events the gateway would have produced had it received the same calls live:

- ``segment``: one Segment message per line (``track``, ``page``, ``screen``, ``group``, ``identify``), as
  Segment's and RudderStack's object-storage and warehouse exports write them, or a line holding a tracking
  API body (``{"batch": [...]}``). :class:`~streams.gateway.segment.SegmentMapper` maps them in file order,
  so a ``group`` call assigns its user to the account for the calls after it, as live. A message without a
  ``timestamp`` (or ``originalTimestamp``) is rejected as ``invalid_ts``: history has no "now".
- ``stripe``: one Stripe event object per line (``stripe events list`` output, one ``data`` item per line)
  or a list page (``{"object": "list", "data": [...]}``), mapped by
  :func:`~streams.gateway.stripe_events.map_event` with ``CHURNWATCH_STRIPE_ACCOUNT_MAP``. No signature is
  checked: an export is read from your own disk, not received.

Mapped events then go through the same validation, sort and deduplication as a canonical file. Items the
mappings set aside (no account, not a valid event, a malformed item) are counted as set aside with the
gateway's reason; call types and Stripe event types that map to nothing are counted as ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from streams.gateway.model import Mapped, Rejection
from streams.gateway.segment import SegmentMapper
from streams.settings import Settings

StripeMapper = Callable[[dict[str, Any]], Mapped]


class ExportFormat(StrEnum):
    CANONICAL = "canonical"
    SEGMENT = "segment"
    STRIPE = "stripe"


@dataclass(slots=True)
class ExportStats:
    """What the mapping did with the export's items (canonical events are counted by the input side)."""

    items: int = 0
    events: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)


class ExportReader:
    """Maps the lines of one or more export files (in the order given) to canonical event lines."""

    def __init__(self, export: ExportFormat, settings: Settings) -> None:
        self.export = export
        self.stats = ExportStats()
        self.segment = SegmentMapper({}, now_iso="")  # no receivedAt: a message without a time is invalid
        self.map_stripe = _stripe_mapper(settings) if export is ExportFormat.STRIPE else None

    def lines(self, raw_lines: Iterable[bytes]) -> Iterator[bytes]:
        """Canonical event lines of ``raw_lines`` (blank lines skipped, the others counted)."""
        for raw in raw_lines:
            if not raw.strip():
                continue
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.stats.items += 1
                self.stats.rejected[Rejection.INVALID_JSON.value] += 1
                continue
            for item in self._items(body):
                self.stats.items += 1
                yield from self._events(self._map(item))

    def _items(self, body: Any) -> list[Any]:
        if (
            self.export is ExportFormat.SEGMENT
            and isinstance(body, dict)
            and isinstance(body.get("batch"), list)
        ):
            return list(body["batch"])
        if self.export is ExportFormat.STRIPE and isinstance(body, dict) and body.get("object") == "list":
            data = body.get("data")
            return list(data) if isinstance(data, list) else [body]
        return [body]

    def _map(self, item: Any) -> Mapped:
        if self.export is ExportFormat.SEGMENT:
            kind = item.get("type") if isinstance(item, dict) else None
            return self.segment.one(kind, item)
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            mapped = Mapped()
            mapped.dead_letter(Rejection.INVALID_BODY, "a Stripe event must be an object with 'data'", item)
            return mapped
        assert self.map_stripe is not None
        return self.map_stripe(item)

    def _events(self, mapped: Mapped) -> Iterator[bytes]:
        for dead in mapped.dead:
            self.stats.rejected[dead.reason.value] += 1
        for ignored in mapped.ignored:
            self.stats.ignored[ignored.value] += 1
        for event in mapped.events:
            self.stats.events += 1
            yield orjson.dumps(event)


def _stripe_mapper(settings: Settings) -> StripeMapper:
    """The gateway's Stripe mapping with ``CHURNWATCH_STRIPE_ACCOUNT_MAP`` (imported here: the ``stripe``
    package and the gateway's server module load only when a Stripe export is read, not with the CLI)."""
    from streams.gateway.server import load_account_map
    from streams.gateway.stripe_events import map_event

    accounts = load_account_map(settings.ingest.stripe_account_map)
    return lambda event: map_event(event, accounts)
