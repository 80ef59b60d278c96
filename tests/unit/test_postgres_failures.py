"""The PostgreSQL journal when its database fails, on a real server: one that stops answering (a TCP proxy in
the test that stops forwarding, as a network partition does) costs a call its bound, not the daemon; the alert
is held in memory and deliverable from there, and written exactly once when the database answers again. A
second opener of the same journal is refused naming it (password masked) and its holder; a lost lock refuses
top-ups until it is taken again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from daemon.core.alerts import Alert
from daemon.store import IntentRecord, JournalUnavailable
from daemon.store.postgres import OPERATION_TIMEOUT_S, PostgresJournal
from daemon.store.postgres_lock import PostgresJournalLocked
from tests.pg_server import create_schema
from tests.unit.test_journal_safety import _alert as journal_safety_alert

PASSWORD = "pgSecret-4d1e9b"  # trust auth ignores it; it must never appear in a message


def _alert(sequence: int) -> Alert:
    """The journal-safety tests' critical alert, numbered and worded per message."""
    return journal_safety_alert(sequence, summary=f"BTC long is 3.4% from liquidation ({sequence})")


def _intent(key: str) -> IntentRecord:
    return IntentRecord(
        key, "acct", "BTC/USDT:USDT", "long", "add_margin", "USDT", 10.0, "pending", 0.5, "", 1.0, 1.0
    )


@pytest.fixture
def journal_url(postgres_url: str) -> Iterator[str]:
    """A journal of its own (a schema in the run's database), with a password in its URL."""
    url = create_schema(postgres_url, f"f{os.getpid()}_{time.monotonic_ns()}")
    yield url.replace("://postgres@", f"://postgres:{PASSWORD}@", 1)


class Partition:
    """A TCP proxy to the database. `cut()`: it stops forwarding — connections stay open and silent, a new one is
    accepted and never answered, as behind a network partition. `heal()`: what was held flows on."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._url = url
        self._open = asyncio.Event()
        self._open.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.url = ""

    async def __aenter__(self) -> Partition:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        host, upstream_port = self._upstream
        self.url = self._url.replace(f"@{host}:{upstream_port}/", f"@127.0.0.1:{port}/", 1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await self._open.wait()
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._writers.append(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                await self._open.wait()  # held while cut
                sink.write(data)
                await sink.drain()
        sink.close()


@contextlib.asynccontextmanager
async def _opened(url: str) -> AsyncIterator[PostgresJournal]:
    journal = await PostgresJournal.open(url)
    try:
        yield journal
    finally:
        await journal.close()


async def _until(condition: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Poll a condition (each try bounded by the journal itself) until it holds, or fail at the deadline."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _rows(url: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT a.sequence, d.status FROM alerts a JOIN deliveries d ON d.alert_id = a.id ORDER BY a.id"
        )
    finally:
        await conn.close()
    return [(int(row["sequence"]), str(row["status"])) for row in rows]


async def test_a_database_that_stops_answering_costs_a_bound_and_the_alert_goes_out_from_memory(
    journal_url: str,
) -> None:
    async with Partition(journal_url) as proxy, _opened(proxy.url) as journal:
        assert await journal.record_alert(_alert(1), ["slack"], 1_000.0) is not None
        proxy.cut()

        started = time.monotonic()
        held = await journal.record_alert(_alert(2), ["slack"], 1_001.0)
        assert time.monotonic() - started < OPERATION_TIMEOUT_S + 1.0
        assert held is not None and held.sequence == 2
        assert journal.write_failure is not None and PASSWORD not in journal.write_failure
        with pytest.raises(JournalUnavailable):  # no top-up starts without its record
            await journal.begin_intent(_intent("k1"))

        # The held alert is deliverable from memory (the journaled one waits in the database for it).
        started = time.monotonic()
        due = await journal.due_deliveries(2_000.0)
        assert [(d.alert.sequence, d.id < 0) for d in due] == [(2, True)]
        await journal.mark_sent(due[0].id, 2_001.0)
        assert not await journal.probe()
        assert time.monotonic() - started < OPERATION_TIMEOUT_S + 1.0

        proxy.heal()
        await _until(journal.probe)
        assert journal.write_failure is None
        assert await _rows(journal_url) == [(1, "pending"), (2, "sent")]
        assert await journal.probe()  # nothing held any more: nothing written twice
        assert await _rows(journal_url) == [(1, "pending"), (2, "sent")]
        assert [d.alert.sequence for d in await journal.due_deliveries(2_002.0)] == [1]


async def test_a_second_opener_of_the_same_journal_is_refused_naming_it_and_its_holder(
    journal_url: str,
) -> None:
    async with _opened(journal_url):
        with pytest.raises(PostgresJournalLocked) as refused:
            await PostgresJournal.open(journal_url)
        message = str(refused.value)
        assert PASSWORD not in message and "postgres:***@" in message
        assert urlsplit(journal_url).path in message
        assert f"marginguard pid {os.getpid()}" in message
    async with _opened(journal_url):  # closed: free again
        pass


async def test_a_lost_lock_refuses_top_ups_until_it_is_taken_again(journal_url: str) -> None:
    async with _opened(journal_url) as journal:
        conn = await asyncpg.connect(journal_url, timeout=5)
        try:
            terminated = await conn.fetchval(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                f"marginguard pid {os.getpid()} on {os.uname().nodename}"[:63],
            )
        finally:
            await conn.close()
        assert terminated

        async def lost() -> bool:
            await asyncio.sleep(0)
            return journal.write_failure is not None

        await _until(lost)
        with pytest.raises(JournalUnavailable):
            await journal.begin_intent(_intent("k2"))
        held = await journal.record_alert(_alert(1), ["slack"], 1_000.0)
        assert held is not None and [d.id < 0 for d in await journal.due_deliveries(2_000.0)] == [True]

        await _until(journal.probe)
        assert journal.write_failure is None
        assert await journal.begin_intent(_intent("k2"))
        assert await _rows(journal_url) == [(1, "pending")]
