"""The garbage collector's settings for `marginguard run`: what survives a full pass is frozen (later passes walk
only newer objects), a cycle among frozen objects is still reclaimed by the hourly full pass, and uninstalling
gives Python its own settings back."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import weakref
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.app import collector as collector_module
from daemon.app.collector import (
    BUSY_LATENESS_S,
    YOUNG_PASS_AT_LATEST_S,
    YOUNG_PASS_EVERY_S,
    YOUNG_THRESHOLD,
    Collector,
    YoungPassTimer,
)


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


def _hold_loop(seconds: float) -> None:
    """Keep the event loop's thread busy (a long pass of the loop, as a burst of marks being decided makes)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


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


@contextlib.asynccontextmanager
async def _running(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Collector, asyncio.Event]]:
    """A collector installed and running, with an event set at each young pass it makes."""
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
        yield collector, passed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        collector.uninstall()


async def test_run_makes_young_passes_on_its_timer(restored: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector_module, "YOUNG_PASS_EVERY_S", 0.0)
    monkeypatch.setattr(collector_module, "CHECK_EVERY_S", 0.0)
    async with _running(monkeypatch) as (collector, passed):
        dropped = weakref.ref(_pair())
        await asyncio.wait_for(passed.wait(), 10.0)
        assert dropped() is None
        assert collector.full_passes == 0  # the full pass waits for its hour


async def test_a_busy_stretch_of_the_loop_is_followed_by_a_young_pass_at_once(
    restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop held 50 ms (a burst of marks being decided): the first timely check after it makes the young pass,
    an hour before the timer alone would."""
    monkeypatch.setattr(collector_module, "YOUNG_PASS_EVERY_S", 3600.0)
    monkeypatch.setattr(collector_module, "YOUNG_PASS_AT_LATEST_S", 3600.0)
    async with _running(monkeypatch) as (_collector, passed):
        await asyncio.sleep(0)  # the collector's first check is on the timer now
        dropped = weakref.ref(_pair())
        _hold_loop(0.05)  # that check comes due 30 ms late
        await asyncio.wait_for(passed.wait(), 10.0)
        assert dropped() is None


CHECKS = st.lists(
    st.tuples(
        st.floats(0.0, 0.3),  # the check's lateness (s)
        st.floats(0.0, 0.06),  # how long the loop ran after it before the next check asked (s)
    ),
    max_size=300,
)


@settings(max_examples=300)
@given(CHECKS)
def test_young_passes_wait_for_an_idle_loop_follow_every_busy_stretch_and_are_never_far_apart(
    checks: list[tuple[float, float]],
) -> None:
    """Over any run of the collector's checks, however late each comes: no pass while the loop is busy unless
    one is `YOUNG_PASS_AT_LATEST_S` overdue; the first timely check after a busy one makes a pass; and an idle
    loop gets one at least every `YOUNG_PASS_EVERY_S`."""
    now = 0.0
    timer = YoungPassTimer(now)
    last_pass, busy_since_pass = now, False
    for lateness, ran in checks:
        now += collector_module.CHECK_EVERY_S + lateness
        busy = lateness > BUSY_LATENESS_S
        due = timer.due(now, lateness)
        overdue = now - last_pass >= YOUNG_PASS_AT_LATEST_S
        if busy and not overdue:
            assert not due
        if not busy and (busy_since_pass or now - last_pass >= YOUNG_PASS_EVERY_S):
            assert due
        if not due:
            assert now - last_pass < YOUNG_PASS_AT_LATEST_S
            busy_since_pass = busy_since_pass or busy
        else:
            last_pass, busy_since_pass = now, False
            timer.passed(now)
        now += ran
