"""`PostgresJournal`: the journal port over PostgreSQL (asyncpg, a small connection pool).

Same semantics as the SQLite journal: an alert, its delivery rows and the policy memory that numbered it are
written in one transaction; a message is unique by (identity, sequence) and a top-up intent by its key, so the
same decision is never journaled — and never executed — twice; a sequence already taken by a different message
is renumbered, loudly. Every query is awaited on the event loop's own sockets: nothing blocks it.

Every operation has bounded time: a database behind a partition, or a stuck server, is an unavailable one, not a
frozen daemon. When the database cannot be written (unreachable, too slow, disk full, read only, or the journal
lock lost: `postgres_lock.py`) `write_failure` says why, alerts and outcomes are held in memory as with SQLite
(`postgres_outbox.py`, `spill.py`), a top-up intent is refused (`JournalUnavailable`), and everything held is
written in one transaction once the database answers again. While a failure is known, only `probe` (the outbox
calls it every few seconds) tries the database: each write would otherwise wait out its bound in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from daemon.core.alerts import Alert
from daemon.store.codec import alert_from_json
from daemon.store.leases import Fencer, LeaseLost, is_fence_refusal
from daemon.store.postgres_charts import PostgresCharts
from daemon.store.postgres_lock import PostgresLock, SharedAccess
from daemon.store.postgres_outbox import PostgresOutbox
from daemon.store.postgres_records import PostgresRecords
from daemon.store.postgres_schema import migrate
from daemon.store.schema import JournalUnavailable
from daemon.store.silence_cache import SilenceCache
from daemon.store.spill import Spill

log = structlog.get_logger("marginguard.journal")

# A monitor's bounds: a healthy database answers in milliseconds, and a few seconds without an answer is a
# database to stop waiting for (alerts then go out from memory) rather than one to trust a little longer.
CONNECT_TIMEOUT_S = 3.0  # a new connection (the pool's, the lock's)
COMMAND_TIMEOUT_S = 3.0  # one statement (asyncpg's command_timeout)
OPERATION_TIMEOUT_S = 5.0  # one call of the port, end to end: acquire, every statement, commit
PROBE_TIMEOUT_S = 2.0  # one probe while failing: the outbox waits for it, and tries again in 5 s anyway

# Connections per journal: a cluster instance that takes shards over starts a hundred runners at once, each
# reading its account's memory and intents; four made them queue past the call bound.
POOL_SIZE = 10


async def keep_session(conn: Any) -> None:
    """A connection back in the pool keeps its session: the journal sets nothing on it (its locks are
    transaction-scoped, its listener has a connection of its own), and asyncpg's default reset is four
    statements per use."""


# What "cannot be written right now" looks like; anything else is a bug and propagates.
_UNREACHABLE = (TimeoutError, OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
_UNAVAILABLE = (
    *_UNREACHABLE,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InsufficientResourcesError,  # disk full, out of memory, too many connections
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
)


def masked_url(url: str) -> str:
    """The URL without its password, for logs and /healthz."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class PostgresJournal(PostgresOutbox, PostgresCharts, PostgresRecords):
    def __init__(
        self,
        pool: Any,
        lock: PostgresLock | SharedAccess,
        url: str,
        redact: Callable[[str], str] | None,
        created: float,
    ) -> None:
        """Use `open`."""
        self._pool = pool
        self._lock = lock
        self._where = masked_url(url)
        self.redact: Callable[[str], str] = redact if redact is not None else (lambda text: text)
        self._created = created
        self._instance = secrets.token_hex(4)
        self._failure: str | None = None
        self._unreachable = False  # the failure is a database that does not answer: reads wait for probe too
        self._spill = Spill()
        self._writing = asyncio.Lock()  # one write at a time, in the order issued, as SQLite's one thread
        # A cluster instance's leases: every action-leading write is fenced on them (None: one daemon, no fence).
        self._fencer: Fencer | None = None
        self._delivery_accounts: dict[int, str] = {}  # a due delivery's account, for its outcome's fence
        self._silences = SilenceCache(self._read_silences)

    @classmethod
    async def open(
        cls, url: str, redact: Callable[[str], str] | None = None, *, shared: bool = False
    ) -> PostgresJournal:
        """Take the journal's lock (`PostgresJournalLocked` when another daemon holds it), then migrate.
        `shared`: a cluster's journal, which several instances open at once (their leases keep them apart)."""
        lock: PostgresLock | SharedAccess = (
            SharedAccess()
            if shared
            else PostgresLock(url, masked_url(url), CONNECT_TIMEOUT_S, COMMAND_TIMEOUT_S)
        )
        await lock.acquire()
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=POOL_SIZE,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                reset=keep_session,
            )
        except BaseException:
            await lock.release()
            raise
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
                await conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('created', $1) ON CONFLICT DO NOTHING",
                    repr(time.time()),
                )
                created = float(await conn.fetchval("SELECT value FROM meta WHERE key = 'created'"))
        except BaseException:
            await pool.close()
            await lock.release()
            raise
        return cls(pool, lock, url, redact, created)

    def fence_with(self, fencer: Fencer) -> None:
        """From now on every action-leading write is conditional on this instance's lease of its account's shard
        (`LeaseLost` otherwise), and the outbox sees only the deliveries of the shards held."""
        self._fencer = fencer

    def _fence(self, account: str) -> list[tuple[str, Sequence[Any]]]:
        """The fence statement for a write about `account` (none for one daemon, or for a message about no
        account); `LeaseLost` at once when the shard is not held here at all."""
        if self._fencer is None:
            return []
        statement = self._fencer.fence(account)
        return [] if statement is None else [statement]

    @property
    def write_failure(self) -> str | None:
        # A lost lock is a failure as soon as it is noticed, before any write tries: no top-up may start.
        return self._failure or self._lock.lost

    @property
    def created(self) -> float:
        return self._created

    @property
    def instance(self) -> str:
        return self._instance

    @property
    def where(self) -> str:
        return self._where

    async def close(self) -> None:
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT_S):
                await self._pool.close()
        except TimeoutError:
            self._pool.terminate()  # a database that does not answer must not hold up the daemon's stop
        finally:
            await self._lock.release()

    async def __aenter__(self) -> PostgresJournal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writing, and what happens when it fails ---------------------------------------------------------------

    def _held(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._writing

    async def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[str]:
        """One transaction, after what memory holds; raises `JournalUnavailable` when it cannot be written."""
        async with self._held():
            return await self._write_held(statements)

    async def _write_held(
        self, statements: Sequence[tuple[str, Sequence[Any]]], *, probe: bool = False
    ) -> list[str]:
        async with self._transaction(probe=probe) as conn:
            return [await conn.execute(sql, *params) for sql, params in statements]

    @contextlib.asynccontextmanager
    async def _transaction(self, *, probe: bool = False) -> AsyncIterator[Any]:
        if self._failure is not None and not probe:
            raise JournalUnavailable(self._failure)  # known: only probe tries (see the module's note)
        if self._lock.lost is not None:
            raise self._failed(self._lock.lost)
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT_S), self._pool.acquire() as conn, conn.transaction():
                moved = await self._flush_spill(conn)
                yield conn
        except asyncpg.PostgresError as exc:
            if is_fence_refusal(exc):
                if self._fencer is not None:
                    self._fencer.refused()
                raise LeaseLost(exc.args[0] if exc.args else str(exc)) from exc
            if isinstance(exc, _UNAVAILABLE):
                raise self._failed(exc) from exc
            raise
        except _UNAVAILABLE as exc:
            raise self._failed(exc) from exc
        self._recovered(moved)

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        async with self._reading():
            return list(await self._pool.fetch(sql, *params))

    async def _fetchval(self, sql: str, *params: Any) -> Any:
        async with self._reading():
            return await self._pool.fetchval(sql, *params)

    async def _fetchrow(self, sql: str, *params: Any) -> Any:
        async with self._reading():
            return await self._pool.fetchrow(sql, *params)

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[None]:
        """A read, bounded; a database that does not answer fails it at once until probe finds it back."""
        if self._unreachable and self._failure is not None:
            raise JournalUnavailable(self._failure)
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT_S):
                yield
        except _UNAVAILABLE as exc:
            raise self._failed(exc) from exc

    def _failed(self, cause: BaseException | str) -> JournalUnavailable:
        # No exception text from the driver in the reason: it goes to sinks and /healthz, and need not echo
        # connection details; the log keeps the masked location.
        if isinstance(cause, str):
            reason = cause
        elif isinstance(cause, TimeoutError):
            reason = f"the database did not answer within {OPERATION_TIMEOUT_S:g} s"
        else:
            reason = f"{type(cause).__name__}: {cause}"
        self._unreachable = isinstance(cause, _UNREACHABLE)
        if self._failure is None:
            log.error("journal write failed: alerts are held in memory", where=self._where, error=reason)
        self._failure = reason
        return JournalUnavailable(reason)

    def _recovered(self, moved: dict[int, int]) -> None:
        if self._spill:
            log.info("journal wrote what memory held", alerts=len(self._spill.alerts))
        self._spill.flushed(moved)
        if self._failure is not None:
            log.warning("journal writable again", where=self._where)
        self._failure = None
        self._unreachable = False

    async def probe(self) -> bool:
        """While writes fail, try again (within PROBE_TIMEOUT_S): the journal lock first, then what memory
        holds. True once writes work."""
        if self._failure is None and not self._spill and self._lock.lost is None:
            return True
        statement = (
            "INSERT INTO meta (key, value) VALUES ('probe', $1) ON CONFLICT (key) DO UPDATE SET value = $1",
            (repr(time.time()),),
        )
        async with self._held():
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    if not await self._lock.check():
                        raise self._failed(self._lock.lost or "the journal lock is lost")
                    await self._write_held([statement], probe=True)
            except TimeoutError as exc:
                self._failed(exc)
                return False
            except JournalUnavailable:
                return False
        return True

    async def max_sequences(self, account: str | None = None) -> dict[str, int]:
        """The highest number of each message identity; while the database cannot be read, what memory holds
        (the journal_failure alert is numbered from it then: a number taken meanwhile is renumbered, loudly,
        when it is written)."""
        try:
            if account:
                rows = await self._fetch(
                    "SELECT key, MAX(sequence) AS top FROM alerts WHERE account = $1 GROUP BY key", account
                )
            else:
                rows = await self._fetch("SELECT key, MAX(sequence) AS top FROM alerts GROUP BY key")
        except JournalUnavailable:
            rows = []
        tops = {str(row["key"]): int(row["top"]) for row in rows}
        for alert, _now in self._spill.alerts:
            if account is None or alert.account == account:
                tops[alert.identity.key] = max(tops.get(alert.identity.key, 0), alert.sequence)
        return tops

    async def latest_alerts(self, account: str | None = None) -> list[Alert]:
        where, params = ("WHERE account = $1", (account,)) if account is not None else ("", ())
        rows = await self._fetch(
            f"SELECT payload FROM alerts WHERE id IN (SELECT MAX(id) FROM alerts {where} GROUP BY key) ORDER BY id",
            *params,
        )
        return [alert_from_json(row["payload"]) for row in rows]

    async def history(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT id, payload, EXISTS (SELECT 1 FROM charts WHERE charts.alert_id = alerts.id) AS chart"
            " FROM alerts ORDER BY id DESC LIMIT $1",
            limit,
        )
        result = []
        for row in rows:
            deliveries = await self._fetch(
                "SELECT sink, status, attempts, last_error FROM deliveries WHERE alert_id=$1 ORDER BY id",
                row["id"],
            )
            entry = json.loads(row["payload"])
            entry["deliveries"] = [dict(d) for d in deliveries]
            entry["id"] = int(row["id"])
            entry["chart"] = bool(row["chart"])
            result.append(entry)
        return result
