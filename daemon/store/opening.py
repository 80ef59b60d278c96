"""Open the journal the configuration names: PostgreSQL when a `journal_url` is given, else SQLite at
`storage_path` (the embedded default)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from daemon.store.port import JournalPort
from daemon.store.sqlite_port import SqliteJournal

T = TypeVar("T")


async def open_journal(
    storage_path: Path | str,
    journal_url: str | None = None,
    redact: Callable[[str], str] | None = None,
    *,
    shared: bool = False,
) -> JournalPort:
    """`shared`: a cluster's PostgreSQL journal, open in several instances at once (no journal-wide lock)."""
    if journal_url:
        # Imported here: a SQLite user never loads the PostgreSQL driver.
        from daemon.store.postgres import PostgresJournal

        return await PostgresJournal.open(journal_url, redact, shared=shared)
    return await SqliteJournal.open(storage_path, redact)


def use_journal(
    storage_path: Path | str,
    journal_url: str | None,
    use: Callable[[JournalPort], Awaitable[T]],
    redact: Callable[[str], str] | None = None,
    *,
    shared: bool = False,
) -> T:
    """For a command outside the daemon (silence, history): open the journal, `use` it, close it, in an event
    loop of its own."""

    async def session() -> T:
        journal = await open_journal(storage_path, journal_url, redact, shared=shared)
        try:
            return await use(journal)
        finally:
            await journal.close()

    return asyncio.run(session())
