"""The PostgreSQL journal's outbox (a part of `PostgresJournal`, kept in its own module): alerts with their
deliveries, and what is held in memory (`Spill`, the SQLite journal's) while the database cannot be written.

As with SQLite: an alert that cannot be journaled lives in memory with its deliveries (negative ids) and is sent
from there; an outcome that cannot be written is overlaid on what the database says; the first write that works
writes everything held, first, in its own transaction. While the database does not answer at all, the outbox
sees only what memory holds (the journaled deliveries wait in the database for it to come back).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog

from daemon.core.alerts import Alert
from daemon.store.codec import alert_from_json, alert_row, same_message
from daemon.store.leases import Fencer, LeaseLost
from daemon.store.schema import Delivery, JournalUnavailable
from daemon.store.spill import HeldRow, Pending, Spill

log = structlog.get_logger("marginguard.journal")

_INSERT_ALERT = (
    "INSERT INTO alerts (key, sequence, ts, account, kind, severity, resolved, payload)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key, sequence) DO NOTHING RETURNING id"
)
_INSERT_DELIVERY = (
    "INSERT INTO deliveries (alert_id, sink, status, attempts, next_attempt_at, last_error, sent_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
)
SAVE_MEMORY = (
    "INSERT INTO policy_memory (account, payload, updated) VALUES ($1, $2, $3)"
    " ON CONFLICT (account) DO UPDATE SET payload = excluded.payload, updated = excluded.updated"
)


class PostgresOutbox:
    _spill: Spill
    _instance: str
    redact: Any
    _fencer: Fencer | None
    _delivery_accounts: dict[int, str]

    def _fence(self, account: str) -> list[tuple[str, Sequence[Any]]]:
        raise NotImplementedError

    def _transaction(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A connection in a transaction, after writing what memory holds (bounded; under `_held`)."""
        raise NotImplementedError

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        raise NotImplementedError

    async def _fetchval(self, sql: str, *params: Any) -> Any:
        raise NotImplementedError

    if TYPE_CHECKING:  # PostgresCharts', after this class in PostgresJournal's bases: no stub may shadow it

        async def _attached_chart(self, alert_id: int) -> bytes | None: ...

    async def _write_held(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[str]:
        raise NotImplementedError

    def _held(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Serialises everything that writes or changes what memory holds."""
        raise NotImplementedError

    async def record_alert(
        self,
        alert: Alert,
        sinks: Sequence[str],
        now: float,
        memory: tuple[str, str] | None = None,
        hold: Mapping[str, float] | None = None,
    ) -> Alert | None:
        """As SQLite's: journaled with its deliveries and `memory` in one transaction; when it cannot be, held in
        memory (nothing waits for a chart there) and sent from there."""
        if not alert.origin:
            alert = replace(alert, origin=self._instance)
        held = hold or {}
        rows = [HeldRow(sink, max(now, held.get(sink, now))) for sink in sinks]
        async with self._held():
            try:
                fence = self._fence(
                    alert.account
                )  # JournalUnavailable too: a cluster cut off from its database
                async with self._transaction() as conn:
                    for sql, params in fence:
                        await conn.execute(sql, *params)
                    stored = await self._insert_alert(conn, alert, rows)
                    if memory is not None:
                        await conn.execute(SAVE_MEMORY, memory[0], memory[1], now)
            except JournalUnavailable:
                self._spill.add_alert(alert, list(sinks), now)
                return alert
        return None if stored is None else stored[0]

    async def _flush_spill(self, conn: Any) -> dict[int, int]:
        """Write what memory holds inside the caller's transaction; returns held delivery id -> database id."""
        spill = self._spill
        for delivery_id, update in spill.delivery_updates.items():
            await conn.execute(
                "UPDATE deliveries SET status=$1, attempts=attempts+$2, next_attempt_at=COALESCE($3, next_attempt_at),"
                " last_error=COALESCE($4, last_error), sent_at=COALESCE($5, sent_at) WHERE id=$6",
                update.status,
                update.attempts_added,
                update.next_attempt_at,
                update.last_error,
                update.sent_at,
                delivery_id,
            )
        for key, (status, detail, ts) in spill.intent_updates.items():
            await conn.execute(
                "UPDATE topup_intents SET status=$1, detail=$2, updated=$3 WHERE intent_key=$4",
                status,
                detail,
                ts,
                key,
            )
        moved: dict[int, int] = {}
        for alert, _now, ids, rows in spill.held_alerts():
            stored = await self._insert_alert(conn, alert, rows)
            if stored is not None:
                moved.update(zip(ids, stored[1], strict=True))
        return moved

    async def _insert_alert(
        self, conn: Any, alert: Alert, rows: Sequence[HeldRow]
    ) -> tuple[Alert, list[int]] | None:
        """Insert inside the caller's transaction; the alert as stored and its delivery ids (None: this very
        message is already journaled)."""
        alert_id = await conn.fetchval(_INSERT_ALERT, *alert_row(alert))
        if alert_id is None:
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
            alert = renumbered
            alert_id = await conn.fetchval(_INSERT_ALERT, *alert_row(alert))
        ids = []
        for row in rows:
            delivery_id = await conn.fetchval(
                _INSERT_DELIVERY,
                alert_id,
                row.sink,
                row.status,
                row.attempts,
                row.next_attempt_at,
                row.last_error,
                row.sent_at,
            )
            ids.append(int(delivery_id))
        return alert, ids

    async def _pending(self) -> list[Pending]:
        """Every pending delivery, oldest alert first, what memory holds included; only what memory holds while
        the database cannot be read."""
        try:
            if self._fencer is None:
                rows = await self._fetch(
                    "SELECT d.id, d.alert_id, d.sink, d.attempts, d.next_attempt_at, a.payload FROM deliveries d"
                    " JOIN alerts a ON a.id = d.alert_id WHERE d.status = 'pending' ORDER BY d.alert_id, d.id"
                )
            else:
                # A cluster instance delivers the messages of the shards it holds, and its own about no account
                # (its journal's failures): each message has one deliverer.
                rows = await self._fetch(
                    "SELECT d.id, d.alert_id, d.sink, d.attempts, d.next_attempt_at, a.payload FROM deliveries d"
                    " JOIN alerts a ON a.id = d.alert_id LEFT JOIN account_shards s ON s.account = a.account"
                    " WHERE d.status = 'pending' AND (s.shard = ANY($1::int[])"
                    " OR (s.shard IS NULL AND (a.payload::jsonb ->> 'origin') = $2))"
                    " ORDER BY d.alert_id, d.id",
                    self._fencer.held_shards(),
                    self._instance,
                )
        except JournalUnavailable:
            rows = []
        return self._spill.overlay(rows)

    async def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        """As SQLite's: a sink's deliveries in alert order, a sink with an earlier one still waiting held back."""
        due: list[Delivery] = []
        charts: dict[int, bytes | None] = {}
        blocked: set[str] = set()
        for sink, when, delivery_id, alert_id, attempts, payload in await self._pending():
            if sink in blocked:
                continue
            if when > now:
                blocked.add(sink)
                continue
            if alert_id >= 0 and alert_id not in charts:
                with contextlib.suppress(JournalUnavailable):  # sent without its chart rather than not at all
                    charts[alert_id] = await self._attached_chart(alert_id)
            alert = alert_from_json(payload) if isinstance(payload, str) else payload
            if delivery_id >= 0:
                self._delivery_accounts[delivery_id] = alert.account
            due.append(Delivery(delivery_id, alert_id, sink, attempts, alert, charts.get(alert_id)))
            if len(due) >= limit:
                break
        return due

    async def next_delivery_time(self) -> float | None:
        first: dict[str, float] = {}
        for sink, when, *_rest in await self._pending():
            first.setdefault(sink, when)
        return min(first.values(), default=None)

    async def pending_deliveries(self) -> int:
        return len(await self._pending())

    async def mark_sent(self, delivery_id: int, now: float) -> None:
        await self._mark(
            delivery_id,
            "UPDATE deliveries SET status='sent', sent_at=$1, attempts=attempts+1 WHERE id=$2",
            (now,),
            status="sent",
            sent_at=now,
        )

    async def mark_retry(self, delivery_id: int, next_attempt_at: float, error: str) -> None:
        error = self.redact(error)[:500]
        await self._mark(
            delivery_id,
            "UPDATE deliveries SET attempts=attempts+1, next_attempt_at=$1, last_error=$2 WHERE id=$3",
            (next_attempt_at, error),
            status="pending",
            next_attempt_at=next_attempt_at,
            error=error,
        )

    async def mark_failed(self, delivery_id: int, error: str) -> None:
        error = self.redact(error)[:500]
        await self._mark(
            delivery_id,
            "UPDATE deliveries SET status='failed', attempts=attempts+1, last_error=$1 WHERE id=$2",
            (error,),
            status="failed",
            error=error,
        )

    async def _mark(
        self,
        delivery_id: int,
        sql: str,
        params: tuple[Any, ...],
        *,
        status: str,
        next_attempt_at: float | None = None,
        error: str | None = None,
        sent_at: float | None = None,
    ) -> None:
        """A delivery's outcome: written when the journal can be, else held in memory with the delivery."""
        async with self._held():
            delivery_id = self._spill.journaled_id(delivery_id)
            if delivery_id >= 0:
                try:
                    fence = self._fence(self._delivery_accounts.pop(delivery_id, ""))
                    await self._write_held([*fence, (sql, (*params, delivery_id))])
                    return
                except LeaseLost as exc:
                    # The account's shard moved on while this was out: its new owner sends the message again
                    # (the same idempotency key, for the receiver to drop) and records the outcome.
                    log.warning(
                        "delivery outcome not recorded: the shard moved on",
                        delivery=delivery_id,
                        why=str(exc),
                    )
                    return
                except JournalUnavailable:
                    pass
            self._spill.update_delivery(delivery_id, status, next_attempt_at, error, sent_at)
