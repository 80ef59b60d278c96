"""`PostgresJournal`: the journal port over PostgreSQL (asyncpg, a small connection pool).

Same semantics as the SQLite journal: an alert, its delivery rows and the policy memory that numbered it are
written in one transaction; a message is unique by (identity, sequence) and a top-up intent by its key, so the
same decision is never journaled — and never executed — twice; a sequence already taken by a different message
is renumbered, loudly. Every query is awaited on the event loop's own sockets: nothing blocks it.

When the database cannot be written (unreachable, disk full, read only) `write_failure` says why and a top-up
intent is refused (`JournalUnavailable`), as with SQLite; an intent's outcome is held in memory and written with
the next write that works. Unlike SQLite, alerts are not yet held in memory while it fails (see the README).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from daemon.core.alerts import Alert
from daemon.store.codec import alert_from_json, alert_row, same_message
from daemon.store.journal_records import SEEDED_PREFIX
from daemon.store.postgres_charts import PostgresCharts
from daemon.store.postgres_schema import migrate
from daemon.store.schema import UNSETTLED, Delivery, IntentRecord, JournalUnavailable, SilenceRecord

log = structlog.get_logger("marginguard.journal")

# What "cannot be written right now" looks like; anything else is a bug and propagates.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InsufficientResourcesError,  # disk full, out of memory, too many connections
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
)
_INSERT_ALERT = (
    "INSERT INTO alerts (key, sequence, ts, account, kind, severity, resolved, payload)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key, sequence) DO NOTHING RETURNING id"
)
_INSERT_INTENT = (
    "INSERT INTO topup_intents (intent_key, account, symbol, side, action, asset, amount, status, margin_before,"
    " detail, created, updated, episode) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)"
    " ON CONFLICT (intent_key) DO NOTHING"
)
_SAVE_MEMORY = (
    "INSERT INTO policy_memory (account, payload, updated) VALUES ($1, $2, $3)"
    " ON CONFLICT (account) DO UPDATE SET payload = excluded.payload, updated = excluded.updated"
)


def masked_url(url: str) -> str:
    """The URL without its password, for logs and /healthz."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class PostgresJournal(PostgresCharts):
    def __init__(self, pool: Any, url: str, redact: Callable[[str], str] | None, created: float) -> None:
        """Use `open`."""
        self._pool = pool
        self._where = masked_url(url)
        self.redact: Callable[[str], str] = redact if redact is not None else (lambda text: text)
        self._created = created
        self._instance = secrets.token_hex(4)
        self._failure: str | None = None
        self._intent_updates: dict[str, tuple[str, str, float]] = {}  # outcomes not yet written

    @classmethod
    async def open(cls, url: str, redact: Callable[[str], str] | None = None) -> PostgresJournal:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
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
            raise
        return cls(pool, url, redact, created)

    @property
    def write_failure(self) -> str | None:
        return self._failure

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
        await self._pool.close()

    async def __aenter__(self) -> PostgresJournal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writing, and what happens when it fails ---------------------------------------------------------------

    async def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[str]:
        """One transaction, after the outcomes memory holds; raises `JournalUnavailable` when it cannot."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._flush(conn)
                results = [await conn.execute(sql, *params) for sql, params in statements]
        except _UNAVAILABLE as exc:
            raise self._failed(exc) from exc
        self._recovered()
        return results

    async def _flush(self, conn: Any) -> None:
        for key, (status, detail, ts) in self._intent_updates.items():
            await conn.execute(
                "UPDATE topup_intents SET status=$1, detail=$2, updated=$3 WHERE intent_key=$4",
                status,
                detail,
                ts,
                key,
            )

    def _failed(self, exc: BaseException) -> JournalUnavailable:
        reason = f"{type(exc).__name__}: {exc}"
        if self._failure is None:
            log.error("journal write failed", where=self._where, error=reason)
        self._failure = reason
        return JournalUnavailable(reason)

    def _recovered(self) -> None:
        self._intent_updates.clear()
        if self._failure is not None:
            log.warning("journal writable again", where=self._where)
        self._failure = None

    async def probe(self) -> bool:
        if self._failure is None and not self._intent_updates:
            return True
        try:
            await self._write(
                [
                    (
                        "INSERT INTO meta (key, value) VALUES ('probe', $1) ON CONFLICT (key) DO UPDATE SET value = $1",
                        (repr(time.time()),),
                    )
                ]
            )
        except JournalUnavailable:
            return False
        return True

    # -- alerts and their deliveries (the outbox) ------------------------------------------------------------

    async def record_alert(
        self,
        alert: Alert,
        sinks: Sequence[str],
        now: float,
        memory: tuple[str, str] | None = None,
        hold: Mapping[str, float] | None = None,
    ) -> Alert | None:
        if not alert.origin:
            alert = replace(alert, origin=self._instance)
        held = hold or {}
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._flush(conn)
                stored = await self._insert_alert(conn, alert)
                if stored is not None:
                    for sink in sinks:
                        await conn.execute(
                            "INSERT INTO deliveries (alert_id, sink, next_attempt_at) VALUES ($1, $2, $3)",
                            stored[1],
                            sink,
                            max(now, held.get(sink, now)),
                        )
                if memory is not None:
                    await conn.execute(_SAVE_MEMORY, memory[0], memory[1], now)
        except _UNAVAILABLE as exc:
            self._failed(exc)
            log.error(
                "alert not journaled: it is not delivered", key=alert.identity.key, sequence=alert.sequence
            )
            return alert
        self._recovered()
        return None if stored is None else stored[0]

    async def _insert_alert(self, conn: Any, alert: Alert) -> tuple[Alert, int] | None:
        alert_id = await conn.fetchval(_INSERT_ALERT, *alert_row(alert))
        if alert_id is not None:
            return alert, int(alert_id)
        existing = await conn.fetchval(
            "SELECT payload FROM alerts WHERE key=$1 AND sequence=$2", alert.identity.key, alert.sequence
        )
        if existing is not None and same_message(existing, alert):
            return None
        # Serialised on the identity, so two writers cannot take the same next number.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", alert.identity.key)
        top = await conn.fetchval("SELECT MAX(sequence) FROM alerts WHERE key=$1", alert.identity.key)
        renumbered = replace(alert, sequence=int(top or 0) + 1)
        log.error(
            "alert sequence already taken by another message: renumbered",
            key=alert.identity.key,
            sequence=alert.sequence,
            renumbered=renumbered.sequence,
        )
        alert_id = await conn.fetchval(_INSERT_ALERT, *alert_row(renumbered))
        return renumbered, int(alert_id)

    async def _pending(self) -> list[Any]:
        return list(
            await self._pool.fetch(
                "SELECT d.id, d.alert_id, d.sink, d.attempts, d.next_attempt_at, a.payload FROM deliveries d"
                " JOIN alerts a ON a.id = d.alert_id WHERE d.status = 'pending' ORDER BY d.alert_id, d.id"
            )
        )

    async def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        """As SQLite's: a sink's deliveries in alert order, a sink with an earlier one still waiting held back."""
        due: list[Delivery] = []
        charts: dict[int, bytes | None] = {}
        blocked: set[str] = set()
        for row in await self._pending():
            sink = row["sink"]
            if sink in blocked:
                continue
            if row["next_attempt_at"] > now:
                blocked.add(sink)
                continue
            alert_id = int(row["alert_id"])
            if alert_id not in charts:
                charts[alert_id] = await self._attached_chart(alert_id)
            alert = alert_from_json(row["payload"])
            due.append(Delivery(int(row["id"]), alert_id, sink, row["attempts"], alert, charts[alert_id]))
            if len(due) >= limit:
                break
        return due

    async def next_delivery_time(self) -> float | None:
        first: dict[str, float] = {}
        for row in await self._pending():
            first.setdefault(row["sink"], row["next_attempt_at"])
        return min(first.values(), default=None)

    async def pending_deliveries(self) -> int:
        return int(await self._pool.fetchval("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"))

    async def mark_sent(self, delivery_id: int, now: float) -> None:
        await self._mark(
            "UPDATE deliveries SET status='sent', sent_at=$1, attempts=attempts+1 WHERE id=$2",
            now,
            delivery_id,
        )

    async def mark_retry(self, delivery_id: int, next_attempt_at: float, error: str) -> None:
        await self._mark(
            "UPDATE deliveries SET attempts=attempts+1, next_attempt_at=$1, last_error=$2 WHERE id=$3",
            next_attempt_at,
            self.redact(error)[:500],
            delivery_id,
        )

    async def mark_failed(self, delivery_id: int, error: str) -> None:
        await self._mark(
            "UPDATE deliveries SET status='failed', attempts=attempts+1, last_error=$1 WHERE id=$2",
            self.redact(error)[:500],
            delivery_id,
        )

    async def _mark(self, sql: str, *params: Any) -> None:
        # Not held in memory yet (see the module's note): the delivery stays pending and is sent again.
        with contextlib.suppress(JournalUnavailable):
            await self._write([(sql, params)])

    async def max_sequences(self, account: str | None = None) -> dict[str, int]:
        if account:
            rows = await self._pool.fetch(
                "SELECT key, MAX(sequence) AS top FROM alerts WHERE account = $1 GROUP BY key", account
            )
        else:
            rows = await self._pool.fetch("SELECT key, MAX(sequence) AS top FROM alerts GROUP BY key")
        return {str(row["key"]): int(row["top"]) for row in rows}

    async def latest_alerts(self, account: str | None = None) -> list[Alert]:
        where, params = ("WHERE account = $1", (account,)) if account is not None else ("", ())
        rows = await self._pool.fetch(
            f"SELECT payload FROM alerts WHERE id IN (SELECT MAX(id) FROM alerts {where} GROUP BY key) ORDER BY id",
            *params,
        )
        return [alert_from_json(row["payload"]) for row in rows]

    async def history(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT id, payload, EXISTS (SELECT 1 FROM charts WHERE charts.alert_id = alerts.id) AS chart"
            " FROM alerts ORDER BY id DESC LIMIT $1",
            limit,
        )
        result = []
        for row in rows:
            deliveries = await self._pool.fetch(
                "SELECT sink, status, attempts, last_error FROM deliveries WHERE alert_id=$1 ORDER BY id",
                row["id"],
            )
            entry = json.loads(row["payload"])
            entry["deliveries"] = [dict(d) for d in deliveries]
            entry["id"] = int(row["id"])
            entry["chart"] = bool(row["chart"])
            result.append(entry)
        return result

    # -- top-up intents -----------------------------------------------------------------------------------------

    async def begin_intent(self, record: IntentRecord) -> bool:
        return (await self._write([(_INSERT_INTENT, _intent_params(record))]))[0] == "INSERT 0 1"

    async def settle_intent(self, intent_key: str, status: str, detail: str, now: float) -> None:
        detail = self.redact(detail)
        statement = (
            "UPDATE topup_intents SET status=$1, detail=$2, updated=$3 WHERE intent_key=$4",
            (status, detail, now, intent_key),
        )
        try:
            await self._write([statement])
        except JournalUnavailable:
            self._intent_updates[intent_key] = (status, detail, now)

    async def intents(
        self, account: str | None = None, statuses: Sequence[str] | None = None, *, seeded: bool = False
    ) -> list[IntentRecord]:
        sql, params = "SELECT * FROM topup_intents WHERE TRUE", []
        if account is not None:
            params.append(account)
            sql += f" AND account = ${len(params)}"
        if not seeded:
            params.append(SEEDED_PREFIX + "%")
            sql += f" AND intent_key NOT LIKE ${len(params)}"
        records = []
        for row in await self._pool.fetch(sql + " ORDER BY created", *params):
            record = IntentRecord(**dict(row))
            held = self._intent_updates.get(record.intent_key)
            if held is not None:
                record = replace(record, status=held[0], detail=held[1], updated=held[2])
            if not statuses or record.status in statuses:
                records.append(record)
        return records

    async def unsettled_intents(self, account: str | None = None) -> list[IntentRecord]:
        return await self.intents(account, UNSETTLED)

    async def seed_note(self, account: str) -> str | None:
        value = await self._pool.fetchval("SELECT value FROM meta WHERE key = 'seeded:' || $1", account)
        return None if value is None else str(value)

    async def record_seed(self, account: str, spent: Sequence[IntentRecord], note: str) -> None:
        statements: list[tuple[str, Sequence[Any]]] = [(_INSERT_INTENT, _intent_params(r)) for r in spent]
        statements.append(
            (
                "INSERT INTO meta (key, value) VALUES ('seeded:' || $1, $2)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (account, note),
            )
        )
        await self._write(statements)

    # -- the policy's memory and silences -----------------------------------------------------------------------

    async def save_memory(self, account: str, payload: str, now: float) -> bool:
        try:
            await self._write([(_SAVE_MEMORY, (account, payload, now))])
        except JournalUnavailable:
            return False
        return True

    async def load_memory(self, account: str) -> str | None:
        value = await self._pool.fetchval("SELECT payload FROM policy_memory WHERE account = $1", account)
        return None if value is None else str(value)

    async def add_silence(
        self, account: str, symbol: str | None, until: float, reason: str, now: float
    ) -> int:
        return int(
            await self._pool.fetchval(
                "INSERT INTO silences (account, symbol, until, reason, created) VALUES ($1,$2,$3,$4,$5) RETURNING id",
                account,
                symbol,
                until,
                reason,
                now,
            )
        )

    async def end_silence(self, silence_id: int, now: float) -> SilenceRecord | None:
        row = await self._pool.fetchrow(
            "UPDATE silences SET until = $2 WHERE id = $1 AND until > $2"
            " RETURNING id, account, symbol, until, reason",
            silence_id,
            now,
        )
        return None if row is None else replace(SilenceRecord(**dict(row)), until=now)

    async def active_silences(self, now: float) -> list[SilenceRecord]:
        rows = await self._pool.fetch(
            "SELECT id, account, symbol, until, reason FROM silences WHERE until > $1 ORDER BY id", now
        )
        return [SilenceRecord(**dict(row)) for row in rows]


def _intent_params(record: IntentRecord) -> tuple[Any, ...]:
    return (
        record.intent_key,
        record.account,
        record.symbol,
        record.side,
        record.action,
        record.asset,
        record.amount,
        record.status,
        record.margin_before,
        record.detail,
        record.created,
        record.updated,
        record.episode,
    )
