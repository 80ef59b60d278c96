"""The journal's tests over each backend: a fixture opens the journal port over SQLite or PostgreSQL and hands
tests a synchronous face of it, so one test body asserts the same behaviour of both.

`journal_at(path, redact=None)` opens the journal that lives "at" `path`: the SQLite file itself, or (PostgreSQL)
a schema of its own in the run's database, the same schema for the same path, so a test can close a journal and
open it again — a restart — or open a second, unrelated one.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.store import JournalPort, SqliteJournal
from tests.pg_server import Unavailable, create_schema, test_database


class SyncJournal:
    """The port's coroutines, run to completion on an event loop of the journal's own (a test's face)."""

    def __init__(self, opener: Callable[[], Awaitable[JournalPort]]) -> None:
        self._runner = asyncio.Runner()
        self.port = self._runner.run(_await(opener()))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.port, name)
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: self._runner.run(value(*args, **kwargs))
        return value

    def close(self) -> None:
        self._runner.run(self.port.close())
        self._runner.close()

    def __enter__(self) -> SyncJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _await(value: Awaitable[JournalPort]) -> JournalPort:
    return await value


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """This run's own PostgreSQL database (see tests/pg_server.py)."""
    try:
        with test_database() as url:
            yield url
    except Unavailable as missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {missing}", pytrace=False)
        pytest.skip(str(missing))


_schemas = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def journal_at(request: pytest.FixtureRequest) -> Callable[..., SyncJournal]:
    if request.param == "sqlite":
        return lambda path, redact=None: SyncJournal(lambda: SqliteJournal.open(path, redact))
    url = request.getfixturevalue("postgres_url")
    urls: dict[Path, str] = {}

    def open_postgres(path: Path, redact: Callable[[str], str] | None = None) -> SyncJournal:
        from daemon.store.postgres import PostgresJournal

        if path not in urls:
            urls[path] = create_schema(url, f"j{os.getpid()}_{next(_schemas)}")
        return SyncJournal(lambda: PostgresJournal.open(urls[path], redact))

    return open_postgres


@pytest.fixture
def sqlite_journal_at() -> Callable[..., SyncJournal]:
    """SQLite only: for what only a file has (a size cap standing in for a full disk, an old file's tables)."""
    return lambda path, redact=None: SyncJournal(lambda: SqliteJournal.open(path, redact))
