"""The garbage collector's settings for `marginguard run`: what survives a full pass is frozen (later passes walk
only newer objects), a cycle among frozen objects is still reclaimed by the hourly full pass, and uninstalling
gives Python its own settings back."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import Iterator

import pytest

from daemon.app import collector as collector_module
from daemon.app.collector import YOUNG_THRESHOLD, Collector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def _pair() -> Node:
    """A pair that refers to each other: once dropped, only the collector can free it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


async def _settle() -> None:
    for _ in range(3):  # the freeze is scheduled on the loop by the collection's callback
        await asyncio.sleep(0)


async def test_survivors_of_a_full_pass_are_frozen_and_a_frozen_cycle_goes_at_the_hourly_pass(
    restored: None,
) -> None:
    collector = Collector(asyncio.get_running_loop())
    collector.install()
    try:
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        kept = Node()  # alive: survives the pass and is frozen
        gc.collect()
        await _settle()
        assert collector.full_passes >= 1
        assert gc.get_freeze_count() > 0
        assert gc.is_tracked(kept)

        # A cycle alive at a full pass (so frozen), dropped after it: the collector's own passes do not see it,
        # the hourly one does.
        pair = _pair()
        cycle = weakref.ref(pair)
        gc.collect()
        await _settle()
        del pair
        gc.collect()
        assert cycle() is not None  # garbage, but frozen: out of the collector's sight
        collector.full_pass()
        assert cycle() is None
        await _settle()
        assert gc.get_freeze_count() > 0  # and frozen again after it
    finally:
        collector.uninstall()
    assert gc.get_freeze_count() == 0


async def test_a_young_cycle_is_reclaimed_without_waiting_for_the_hour(restored: None) -> None:
    collector = Collector(asyncio.get_running_loop())
    collector.install()
    try:
        gc.collect()
        await _settle()
        cycle = weakref.ref(_pair())  # made after the freeze and dropped: in the collector's sight
        gc.collect()
        assert cycle() is None
    finally:
        collector.uninstall()


def test_uninstall_gives_python_its_own_settings_back(restored: None) -> None:
    before = gc.get_threshold()
    collector = Collector(asyncio.new_event_loop())
    collector.install()
    collector.uninstall()
    assert gc.get_threshold() == before
    assert collector._observe not in gc.callbacks


async def test_a_young_pass_reclaims_what_was_dropped_since_the_last_and_freezes_what_survives(
    restored: None,
) -> None:
    """However the young generation's count stands (the daemon frees an old object for each new one, so the count
    alone would leave it growing for minutes), a timed young pass walks only what was made since the last pass."""
    collector = Collector(asyncio.get_running_loop())
    collector.install()
    try:
        collector.young_pass()
        kept, dropped = _pair(), weakref.ref(_pair())
        assert any(o is kept for o in gc.get_objects(generation=0))
        collector.young_pass()
        assert dropped() is None  # a cycle made and dropped since the last pass: reclaimed
        # A survivor: frozen, not walked again.
        assert not any(o is kept for o in gc.get_objects(generation=0))
        assert not any(o is kept for o in gc.get_objects(generation=1))
        assert gc.get_freeze_count() > 0
    finally:
        collector.uninstall()


async def test_run_makes_young_passes_on_its_timer(restored: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector_module, "YOUNG_PASS_EVERY_S", 0.0)
    collector = Collector(asyncio.get_running_loop())
    passed = asyncio.Event()
    young_pass = collector.young_pass

    def counted() -> None:
        young_pass()
        passed.set()

    monkeypatch.setattr(collector, "young_pass", counted)
    collector.install()
    task = asyncio.create_task(collector.run())
    try:
        dropped = weakref.ref(_pair())
        await asyncio.wait_for(passed.wait(), 10.0)
        assert dropped() is None
        assert collector.full_passes == 0  # the full pass waits for its hour
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        collector.uninstall()
