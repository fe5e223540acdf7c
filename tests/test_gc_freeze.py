"""GcFreezer: what survives a checkpoint leaves the collector's walks; garbage cycles wait for a full one."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from streams.gc_freeze import CollectionTimes, FullCollection, GcFreezer
from streams.metrics import Metrics


class Node:
    def __init__(self) -> None:
        self.other: object = None


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the permanent generation is process-wide


def test_frozen_objects_are_still_freed_by_reference_counting() -> None:
    freezer = GcFreezer(full_every_s=600, monotonic=lambda: 0.0)
    freed: list[str] = []
    node = Node()
    weakref.finalize(node, freed.append, "node")
    freezer.freeze_survivors()
    assert gc.get_freeze_count() > 0
    del node
    assert freed == ["node"]


def test_a_frozen_garbage_cycle_waits_for_the_next_full_collection() -> None:
    now = [0.0]
    freezer = GcFreezer(full_every_s=600, monotonic=lambda: now[0])
    freed: list[str] = []
    node = Node()
    node.other = node  # a cycle: reference counting alone never frees it
    weakref.finalize(node, freed.append, "cycle")
    freezer.freeze_survivors()
    del node
    gc.collect()
    assert freed == []  # frozen: ordinary collections do not look at it
    now[0] = 599.0
    freezer.freeze_survivors()
    assert freed == [] and freezer.full_collections == 0
    now[0] = 600.0
    freezer.freeze_survivors()
    assert freed == ["cycle"] and freezer.full_collections == 1
    assert gc.get_freeze_count() > 0  # and what is alive is frozen again


def test_each_full_collection_is_reported_with_the_garbage_it_found() -> None:
    now = [0.0]
    walks: list[FullCollection] = []
    freezer = GcFreezer(full_every_s=600, monotonic=lambda: now[0], on_full=walks.append)
    node = Node()
    node.other = node
    freezer.freeze_survivors()
    del node
    now[0] = 600.0
    freezer.freeze_survivors()
    assert len(walks) == 1
    assert walks[0].unreachable >= 1  # the frozen cycle (and whatever else the process left)
    assert walks[0].frozen > 0 and walks[0].seconds >= 0


def test_a_period_of_zero_never_walks_everything() -> None:
    now = [0.0]
    walks: list[FullCollection] = []
    freezer = GcFreezer(full_every_s=0, monotonic=lambda: now[0], on_full=walks.append)
    for now[0] in (0.0, 1e6, 1e9):
        freezer.freeze_survivors()
    assert walks == [] and freezer.full_collections == 0
    assert gc.get_freeze_count() > 0


def test_freezing_what_long_work_made_walks_nothing() -> None:
    now = [0.0]
    walks: list[FullCollection] = []
    freezer = GcFreezer(full_every_s=600, monotonic=lambda: now[0], on_full=walks.append)
    made = [Node() for _ in range(100)]
    now[0] = 10_000.0  # a full walk is due, but only a checkpoint runs it
    freezer.freeze_new()
    assert gc.get_freeze_count() >= len(made) and walks == []


def test_a_dead_cycle_made_since_the_last_freeze_is_collected_not_frozen() -> None:
    freezer = GcFreezer(full_every_s=600, monotonic=lambda: 0.0)
    freed: list[str] = []
    gc.disable()  # no automatic collection finds it first
    try:
        node = Node()
        node.other = node
        weakref.finalize(node, freed.append, "dead cycle")
        del node
        freezer.freeze_survivors()  # a checkpoint
    finally:
        gc.enable()
    assert freed == ["dead cycle"]


def test_collection_times_count_each_generation_and_publish_only_the_new_seconds() -> None:
    ticks = iter([1.0, 1.5, 10.0, 12.0, 20.0, 20.25])
    times = CollectionTimes(clock=lambda: next(ticks))
    gc.disable()  # no automatic collection in between to take a tick
    times.install()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        times.remove()
        gc.enable()
    assert times.collections == [1, 0, 1] and times.seconds == [0.5, 0.0, 2.0]
    registry = CollectorRegistry()
    counter = Metrics.build(registry).gc_seconds
    times.publish(counter)
    times.publish(counter)  # nothing new: nothing added
    times._callback("start", {"generation": 0})
    times._callback("stop", {"generation": 0})
    times.publish(counter)
    assert registry.get_sample_value("churnwatch_gc_seconds_total", {"generation": "0"}) == 0.75
    assert registry.get_sample_value("churnwatch_gc_seconds_total", {"generation": "2"}) == 2.0
    assert registry.get_sample_value("churnwatch_gc_seconds_total", {"generation": "1"}) is None
