"""The journal's shared read of the silences in force: one read serves every runner for a second, a silence
written through the journal is seen at once, and a read overtaken by a write is not kept."""

from __future__ import annotations

import asyncio

from daemon.store.schema import SilenceRecord
from daemon.store.silence_cache import SILENCES_FRESH_S, SILENCES_KNOWN_S, SilenceCache


class Table:
    """Silences as a journal holds them, counting the reads; `gate` holds a read until opened."""

    def __init__(self) -> None:
        self.rows: list[SilenceRecord] = []
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def read(self, now: float) -> list[SilenceRecord]:
        self.reads += 1
        taken = [row for row in self.rows if row.until > now]
        if self.gate is not None:
            await self.gate.wait()
        return taken


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def silence(silence_id: int, until: float) -> SilenceRecord:
    return SilenceRecord(silence_id, "acct", None, until, "maintenance")


async def test_a_thousand_askers_at_once_cost_one_read() -> None:
    table, clock = Table(), Clock()
    table.rows.append(silence(1, 1_000.0))
    cache = SilenceCache(table.read, clock)
    table.gate = asyncio.Event()
    askers = [asyncio.create_task(cache.active(500.0)) for _ in range(1_000)]
    await asyncio.sleep(0)  # every asker is now waiting on the one read
    table.gate.set()
    answers = await asyncio.gather(*askers)
    assert table.reads == 1
    assert all(answer == [silence(1, 1_000.0)] for answer in answers)


async def test_read_again_once_a_second_and_ended_silences_dropped_meanwhile() -> None:
    table, clock = Table(), Clock()
    table.rows.append(silence(1, 500.5))
    cache = SilenceCache(table.read, clock)
    assert await cache.active(500.0) == [silence(1, 500.5)]
    table.rows.append(silence(2, 900.0))  # added by another process: not seen within the second
    clock.now += SILENCES_FRESH_S / 2
    assert await cache.active(500.6) == []  # the first one ended meanwhile: never shown past its end
    assert table.reads == 1
    clock.now += SILENCES_FRESH_S / 2
    assert await cache.active(501.0) == [silence(2, 900.0)]
    assert table.reads == 2


async def test_a_write_through_the_journal_is_seen_at_once() -> None:
    table, clock = Table(), Clock()
    cache = SilenceCache(table.read, clock)
    assert await cache.active(500.0) == []
    table.rows.append(silence(1, 900.0))
    cache.forget()
    assert await cache.active(500.0) == [silence(1, 900.0)]


async def test_a_read_overtaken_by_a_write_is_not_kept() -> None:
    table, clock = Table(), Clock()
    cache = SilenceCache(table.read, clock)
    table.gate = asyncio.Event()
    stale = asyncio.create_task(cache.active(500.0))
    await asyncio.sleep(0)  # the read has taken the table as it was
    table.rows.append(silence(1, 900.0))
    cache.forget()
    table.gate.set()
    assert await stale == []  # answered as it was read...
    table.gate = None
    assert await cache.active(500.0) == [silence(1, 900.0)]  # ...but the next asker reads again


async def test_what_is_known_without_a_read_is_the_fresh_answer_or_nothing() -> None:
    # A decision made where marks are delivered must not wait on the journal: it takes the last read's answer
    # while fresh, and otherwise goes to the full step, which reads.
    table, clock = Table(), Clock()
    table.rows.append(silence(1, 500.5))
    cache = SilenceCache(table.read, clock)
    assert cache.known(500.0) is None  # never read
    assert await cache.active(500.0) == [silence(1, 500.5)]
    assert cache.known(500.2) == [silence(1, 500.5)]
    assert cache.known(500.6) == []  # ended meanwhile
    table.rows.append(silence(2, 900.0))
    cache.forget()  # written through this journal: only a read can tell
    assert cache.known(500.2) is None
    assert await cache.active(500.2) == [silence(1, 500.5), silence(2, 900.0)]
    clock.now += SILENCES_FRESH_S
    # A second old: still given (the daemon reads twice a second, so it is rarely older).
    assert cache.known(500.6) == [silence(2, 900.0)]
    clock.now += SILENCES_KNOWN_S - SILENCES_FRESH_S
    assert cache.known(500.6) is None  # two seconds old: only a read can tell
    assert table.reads == 2
