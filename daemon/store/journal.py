"""The SQLite journal: every alert with its deliveries (the durable outbox), top-up intents, the policy's memory,
silences.

Write-ahead: an alert, one delivery row per sink and the policy memory that numbered it are written in ONE
transaction before anything is sent, and a top-up intent is written before the exchange is called, so a crash at
any point leaves a record of what was decided and no later message can reuse its number. A top-up intent key is
unique: the same decision can never be journaled — and so never executed — twice. The database runs in WAL mode
with `synchronous=FULL`: a committed row survives a power cut.

When a write fails (disk full, read-only file system, I/O error) the journal does not take marginguard down with
it: `write_failure` says why, alerts and delivery outcomes are held in memory (`Spill`) and sent from there, a top-up
intent is refused (`JournalUnavailable`: no top-up starts without its record), and the first write that works
again writes everything held, in order.

Every message is stamped with this journal instance's `origin` (random, per open), which is part of its
idempotency key: a journal that was lost cannot make a new message look like an old one to a receiver.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from daemon.core.alerts import Alert
from daemon.store.codec import alert_from_json, alert_row, same_message
from daemon.store.journal_charts import JournalCharts
from daemon.store.journal_records import JournalRecords, save_memory_statement
from daemon.store.schema import SCHEMA, Delivery, JournalUnavailable
from daemon.store.spill import HeldRow, Pending, Spill

log = structlog.get_logger("marginguard.journal")

BUSY_TIMEOUT_S = 5.0  # another process (a CLI command) holding the write lock briefly


class Journal(JournalRecords, JournalCharts):
    def __init__(self, path: Path | str, redact: Callable[[str], str] | None = None) -> None:
        """`redact` masks secrets in the free text the journal keeps (delivery errors, top-up details): a
        receiver's error page that echoes its webhook URL must not bring the token into `history`."""
        self.path = Path(path)
        self.redact: Callable[[str], str] = redact if redact is not None else _unchanged
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        with contextlib.suppress(sqlite3.OperationalError):  # a full disk must not stop `history` reading it
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('created', ?)", (repr(time.time()),)
            )
        self.created = float(self._meta("created") or time.time())
        self.instance = secrets.token_hex(4)
        self.write_failure: str | None = None
        self._spill = Spill()

    def limit_size(self, max_bytes: int | None) -> None:
        """Cap the database at `max_bytes` (None: SQLite's own ceiling). Writes beyond it fail as on a full
        disk ("database or disk is full"), and are then handled like one."""
        page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        pages = 4_294_967_294 if max_bytes is None else max(1, max_bytes // page_size)
        self._db.execute(f"PRAGMA max_page_count = {int(pages)}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing, and what happens when it fails ---------------------------------------------------------------

    def _transaction(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[sqlite3.Cursor]:
        cursors = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                cursors.append(self._db.execute(sql, params))
        except BaseException:
            self._rollback()
            raise
        self._db.execute("COMMIT")
        return cursors

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[sqlite3.Cursor]:
        """One transaction, after whatever memory holds (so the journal keeps the order things happened in).
        Raises `JournalUnavailable` when the database cannot be written."""
        try:
            if self._spill:
                self._flush()
            cursors = self._transaction(statements)
        except sqlite3.OperationalError as exc:
            raise self._failed(exc) from exc
        self._recovered()
        return cursors

    def _rollback(self) -> None:
        # SQLite rolls some failures (a full disk) back by itself; a second ROLLBACK would mask the reason.
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _failed(self, exc: sqlite3.OperationalError) -> JournalUnavailable:
        self._rollback()
        if self.write_failure is None:
            log.error("journal write failed: alerts are held in memory", path=str(self.path), error=str(exc))
        self.write_failure = str(exc)
        return JournalUnavailable(str(exc))

    def _recovered(self) -> None:
        if self.write_failure is not None:
            log.warning("journal writable again", path=str(self.path))
        self.write_failure = None

    def probe(self) -> bool:
        """While writes fail, try again: write what memory holds (or a tiny probe). True once writes work."""
        if self.write_failure is None and not self._spill:
            return True
        try:
            self._write(
                [("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)", (repr(time.time()),))]
            )
        except JournalUnavailable:
            return False
        return True

    def _flush(self) -> None:
        """Write everything held in memory, in one transaction (sqlite3.OperationalError when it cannot)."""
        spill = self._spill
        self._db.execute("BEGIN IMMEDIATE")
        moved: dict[int, int] = {}
        try:
            for delivery_id, update in spill.delivery_updates.items():
                self._db.execute(
                    "UPDATE deliveries SET status=?, attempts=attempts+?, next_attempt_at=COALESCE(?, next_attempt_at),"
                    " last_error=COALESCE(?, last_error), sent_at=COALESCE(?, sent_at) WHERE id=?",
                    (
                        update.status,
                        update.attempts_added,
                        update.next_attempt_at,
                        update.last_error,
                        update.sent_at,
                        delivery_id,
                    ),
                )
            for key, (status, detail, ts) in spill.intent_updates.items():
                self._db.execute(
                    "UPDATE topup_intents SET status=?, detail=?, updated=? WHERE intent_key=?",
                    (status, detail, ts, key),
                )
            for alert, now, ids, rows in spill.held_alerts():
                stored = self._insert_alert(alert, rows, now)
                if stored is not None:
                    moved.update(zip(ids, stored[1], strict=True))
        except BaseException:
            self._rollback()
            raise
        self._db.execute("COMMIT")
        log.info("journal wrote what memory held", alerts=len(spill.alerts))
        spill.flushed(moved)

    # -- alerts and their deliveries (the outbox) ------------------------------------------------------------

    def record_alert(
        self,
        alert: Alert,
        sinks: Sequence[str],
        now: float,
        memory: tuple[str, str] | None = None,
        hold: Mapping[str, float] | None = None,
    ) -> Alert | None:
        """Journal an alert, queue it for each sink and save `memory` (account, payload), atomically.

        `hold`: sinks whose delivery waits until the given time for the message's incident chart (see
        `store_chart`, which ends the wait); held in memory, nothing waits.

        Returns the alert as journaled (stamped with this journal's origin; renumbered, loudly, if its sequence
        was already taken by a different message), or None if this very message is already journaled. When the
        journal cannot be written the alert is held in memory and sent from there (see `write_failure`).
        """
        if not alert.origin:
            alert = replace(alert, origin=self.instance)
        try:
            if self._spill:
                self._flush()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                held = hold or {}
                rows = [HeldRow(sink, max(now, held.get(sink, now))) for sink in sinks]
                stored = self._insert_alert(alert, rows, now)
                if memory is not None:
                    self._db.execute(*save_memory_statement(memory[0], memory[1], now))
            except BaseException:
                self._rollback()
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._failed(exc)
            self._spill.add_alert(alert, list(sinks), now)
            return alert
        self._recovered()
        return None if stored is None else stored[0]

    def _insert_alert(
        self, alert: Alert, rows: Sequence[HeldRow], now: float
    ) -> tuple[Alert, list[int]] | None:
        """Insert inside the caller's transaction; the alert as stored and its delivery ids."""
        cursor = self._db.execute(_INSERT_ALERT, alert_row(alert))
        if cursor.rowcount == 0:
            existing = self._db.execute(
                "SELECT payload FROM alerts WHERE key=? AND sequence=?", (alert.identity.key, alert.sequence)
            ).fetchone()
            if existing is not None and same_message(existing[0], alert):
                return None
            top = self._db.execute("SELECT MAX(sequence) FROM alerts WHERE key=?", (alert.identity.key,))
            renumbered = replace(alert, sequence=int(top.fetchone()[0] or 0) + 1)
            log.error(
                "alert sequence already taken by another message: renumbered",
                key=alert.identity.key,
                sequence=alert.sequence,
                renumbered=renumbered.sequence,
            )
            alert = renumbered
            cursor = self._db.execute(_INSERT_ALERT, alert_row(alert))
        alert_id = int(cursor.lastrowid or 0)
        ids = []
        for row in rows:
            delivery = self._db.execute(
                "INSERT INTO deliveries (alert_id, sink, status, attempts, next_attempt_at, last_error, sent_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    alert_id,
                    row.sink,
                    row.status,
                    row.attempts,
                    row.next_attempt_at,
                    row.last_error,
                    row.sent_at,
                ),
            )
            ids.append(int(delivery.lastrowid or 0))
        return alert, ids

    def _pending(self) -> list[Pending]:
        """Every pending delivery, oldest alert first, what memory holds included."""
        rows = self._db.execute(
            "SELECT d.id, d.alert_id, d.sink, d.attempts, d.next_attempt_at, a.payload FROM deliveries d"
            " JOIN alerts a ON a.id = d.alert_id WHERE d.status = 'pending' ORDER BY d.alert_id, d.id",
        ).fetchall()
        return self._spill.overlay(rows)

    def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        """Pending deliveries whose time has come, oldest alert first.

        A sink's deliveries are handed out in alert order and a sink with an earlier delivery still waiting is
        held back, so a receiver that was down gets its alerts later, in order.
        """
        due: list[Delivery] = []
        charts: dict[int, bytes | None] = {}
        blocked: set[str] = set()
        for sink, when, delivery_id, alert_id, attempts, payload in self._pending():
            if sink in blocked:
                continue
            if when > now:
                blocked.add(sink)
                continue
            alert = alert_from_json(payload) if isinstance(payload, str) else payload
            if alert_id >= 0 and alert_id not in charts:
                charts[alert_id] = self.attached_chart(alert_id)
            due.append(Delivery(delivery_id, alert_id, sink, attempts, alert, charts.get(alert_id)))
            if len(due) >= limit:
                break
        return due

    def next_delivery_time(self) -> float | None:
        """When the outbox next has something to send: the earliest time among each sink's oldest pending row."""
        first: dict[str, float] = {}
        for sink, when, *_rest in self._pending():
            first.setdefault(sink, when)
        return min(first.values(), default=None)

    def mark_sent(self, delivery_id: int, now: float) -> None:
        self._update_delivery(
            delivery_id,
            (
                "UPDATE deliveries SET status='sent', sent_at=?, attempts=attempts+1 WHERE id=?",
                (now, delivery_id),
            ),
            status="sent",
            sent_at=now,
        )

    def mark_retry(self, delivery_id: int, next_attempt_at: float, error: str) -> None:
        self._update_delivery(
            delivery_id,
            (
                "UPDATE deliveries SET attempts=attempts+1, next_attempt_at=?, last_error=? WHERE id=?",
                (next_attempt_at, self.redact(error)[:500], delivery_id),
            ),
            status="pending",
            next_attempt_at=next_attempt_at,
            error=self.redact(error)[:500],
        )

    def mark_failed(self, delivery_id: int, error: str) -> None:
        self._update_delivery(
            delivery_id,
            (
                "UPDATE deliveries SET status='failed', attempts=attempts+1, last_error=? WHERE id=?",
                (self.redact(error)[:500], delivery_id),
            ),
            status="failed",
            error=self.redact(error)[:500],
        )

    def _update_delivery(
        self,
        delivery_id: int,
        statement: tuple[str, Sequence[Any]],
        *,
        status: str,
        next_attempt_at: float | None = None,
        error: str | None = None,
        sent_at: float | None = None,
    ) -> None:
        """A delivery's outcome: written when the journal can be, else held in memory with the delivery."""
        moved = self._spill.moved.get(delivery_id)
        if moved is not None:
            delivery_id, statement = moved, (statement[0], (*statement[1][:-1], moved))
        if delivery_id >= 0:
            try:
                self._write([statement])
                return
            except JournalUnavailable:
                pass
        self._spill.update_delivery(delivery_id, status, next_attempt_at, error, sent_at)

    def pending_deliveries(self) -> int:
        return len(self._pending())


_INSERT_ALERT = (
    "INSERT OR IGNORE INTO alerts (key, sequence, ts, account, kind, severity, resolved, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _unchanged(text: str) -> str:
    return text
