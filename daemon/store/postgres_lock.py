"""One PostgreSQL journal, one daemon, until leases exist: a session-level advisory lock, taken at open on a
connection of its own and held for the daemon's life (the SQLite journal's lock file, `lock.py`, for a database
two machines can reach).

The lock is keyed on the journal's schema (`current_schema()`), so journals in two schemas of one database are
two journals. A session lock goes when its connection goes, however the daemon ends (kill -9 included), so none
is left stale; the connection's `application_name` names its holder (pid and host) for the refusal message.

If that connection is lost while the daemon runs (the server restarted, the backend was terminated) another
daemon may take the lock: `lost` then says why, the journal treats it as a write failure (alerts held in memory,
no top-up starts, the journal_failure alert raised) and `retake` tries to take it again on the next probe.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import asyncpg
import structlog

from daemon.store.lock import JournalLocked

log = structlog.get_logger("marginguard.journal")

# Any fixed number, other than the migration lock's: the first key of the two-key advisory lock.
_LOCK_CLASS = 0x6D67  # "mg"
_KEY = "hashtext(current_schema()) & 2147483647"  # non-negative: pg_locks shows it as an oid
# So the server notices a daemon that vanished behind a partition within about half a minute, and frees the
# lock for its successor, rather than after the operating system's two hours.
_KEEPALIVES = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}


class PostgresJournalLocked(JournalLocked):
    """Another daemon holds this PostgreSQL journal: do not start (exit 2)."""

    def __init__(self, where: str, holder: str | None) -> None:
        by = f" ({holder})" if holder else ""
        Exception.__init__(
            self,
            f"the journal {where} is in use by another marginguard{by}: one journal serves one daemon; "
            "stop that one first, or give this one its own daemon.journal_url",
        )
        self.where = where
        self.holder = holder


class SharedAccess:
    """A cluster's journal: many instances at once, kept apart per account by leases (`leases.py`), so no
    journal-wide lock; never lost."""

    lost: str | None = None

    async def acquire(self) -> None:
        return None

    async def check(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class PostgresLock:
    def __init__(self, url: str, where: str, connect_timeout: float, command_timeout: float) -> None:
        """`where`: the URL without its password, the only form that appears in a message."""
        self._url = url
        self._where = where
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._conn: Any = None
        self._backend: int | None = None  # the server pid of the connection that held it last
        self.lost: str | None = None

    async def acquire(self) -> None:
        """Take the lock or raise `PostgresJournalLocked` (the driver's errors when the database is unreachable)."""
        holder = await self._take()
        if holder is not None:
            raise PostgresJournalLocked(self._where, holder)

    async def _take(self) -> str | None:
        """Take the lock; None when taken, else who holds it (or a short description)."""
        conn = await asyncpg.connect(
            self._url,
            timeout=self._connect_timeout,
            command_timeout=self._command_timeout,
            server_settings={
                "application_name": f"marginguard pid {os.getpid()} on {socket.gethostname()}"[:63]
            }
            | _KEEPALIVES,
        )
        try:
            if await conn.fetchval(f"SELECT pg_try_advisory_lock({_LOCK_CLASS}, {_KEY})"):
                self._conn, self._backend, self.lost = conn, conn.get_server_pid(), None
                conn.add_termination_listener(self._terminated)
                return None
            holder = await self._holder(conn)
            if holder is None:
                return "holder unknown"
            if holder[0] == self._backend:
                # Our own previous session, cut off rather than closed and still alive on the server: end it,
                # so that the next attempt takes the lock.
                await conn.execute("SELECT pg_terminate_backend($1)", holder[0])
            return holder[1]
        finally:
            if self._conn is not conn:
                conn.terminate()

    async def _holder(self, conn: Any) -> tuple[int, str] | None:
        """The server pid of the session holding the lock, and who it is."""
        row = await conn.fetchrow(
            "SELECT a.pid, a.application_name, host(a.client_addr) AS addr FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
            f" AND l.classid = {_LOCK_CLASS} AND l.objid = ({_KEY})::oid AND l.objsubid = 2"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        if row is None:
            return None
        name = row["application_name"] or "a session"
        return int(row["pid"]), f"{name}, from {row['addr']}" if row["addr"] else name

    def _terminated(self, conn: Any) -> None:
        if conn is self._conn and self.lost is None:
            self.lost = "the journal lock's connection was lost: another daemon may hold the journal now"
            log.error("journal lock lost: top-ups refused until it is taken again", where=self._where)

    async def check(self) -> bool:
        """Still held? A lock connection that does not answer counts as lost (bounded by the command timeout)."""
        if self.lost is None:
            try:
                await self._conn.fetchval("SELECT 1")
                return True
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                self.lost = "the journal lock's connection does not answer"
                log.error("journal lock lost: top-ups refused until it is taken again", where=self._where)
        return await self.retake()

    async def retake(self) -> bool:
        """Take the lock again after it was lost; False (and `lost` says why) while it cannot be."""
        old, self._conn = self._conn, None
        if old is not None:
            old.terminate()
        try:
            holder = await self._take()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.lost = f"the journal lock cannot be taken again: {type(exc).__name__}"
            return False
        if holder is None:
            log.warning("journal lock taken again", where=self._where)
            return True
        self.lost = f"the journal lock is held by another marginguard ({holder})"
        return False

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                async with asyncio.timeout(self._command_timeout):
                    await conn.close()  # ends the session, and with it the lock
            except (OSError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()
