"""The daemon's reader of the silences in force (`keep_silences_read`): it keeps the journal's shared answer fresh
twice a second, and a failing read neither stops it (nor the daemon's task group with it) nor fills the log."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from daemon.app.account_silences import keep_silences_read
from daemon.store import JournalUnavailable
from daemon.store.silence_cache import SILENCES_FRESH_S


class Journal:
    """Answers reads from a script: an exception to raise, or None to answer."""

    def __init__(self, script: list[BaseException | None]) -> None:
        self.script = script
        self.reads = 0

    async def active_silences(self, now: float) -> list[object]:
        self.reads += 1
        outcome = self.script[self.reads - 1] if self.reads <= len(self.script) else None
        if outcome is not None:
            raise outcome
        return []


class Pauses:
    """The reader's pauses, counted; the reader is stopped after `limit` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        if len(self.seconds) >= self.limit:
            raise asyncio.CancelledError


async def test_reads_twice_a_second_through_failures_and_tells_each_streak_once() -> None:
    broken = RuntimeError("disk I/O error")
    script: list[BaseException | None] = [
        None,
        broken,
        broken,
        broken,
        JournalUnavailable("away"),
        None,
        broken,
    ]
    journal, pauses = Journal(script), Pauses(limit=len(script))
    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await keep_silences_read(journal, clock=lambda: 1_800_000_000.0, pause=pauses)  # type: ignore[arg-type]
    assert journal.reads == len(script)  # no failure stopped it
    assert pauses.seconds == [SILENCES_FRESH_S / 2] * len(script)
    told = [entry["event"] for entry in logs]
    assert told == [
        "reading the silences in force failed",  # the first streak, once for three failures
        "reading the silences in force works again",
        "reading the silences in force failed",  # the second
    ]
