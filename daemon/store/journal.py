"""The SQLite journal: every alert with its deliveries (the durable outbox), top-up intents, silences.

Write-ahead: an alert and one delivery row per sink are written in ONE transaction before anything is sent, and a
top-up intent is written before the exchange is called, so a crash at any point leaves a record of what was
decided. A top-up intent key is unique: the same decision can never be journaled — and so never executed —
twice. The database runs in WAL mode with `synchronous=FULL`: a committed row survives a power cut.

Calls are synchronous and short (one small transaction each); the daemon makes a handful per second at most.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.core.alerts import Alert
from daemon.store.codec import alert_from_json, alert_to_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    ts REAL NOT NULL,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    resolved INTEGER NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (key, sequence)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    sink TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',   -- pending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    sent_at REAL,
    UNIQUE (alert_id, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS topup_intents (
    intent_key TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    action TEXT NOT NULL,                     -- add_margin | transfer
    asset TEXT NOT NULL,
    amount REAL NOT NULL,
    status TEXT NOT NULL,                     -- pending | done | failed | unknown | dry_run
    margin_before REAL,
    detail TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    episode INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS policy_memory (
    account TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    symbol TEXT,
    until REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
"""

# Intent statuses whose outcome is not known: on start-up they are reconciled against the exchange before any
# new top-up for the same position.
UNSETTLED = ("pending", "unknown")


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    alert_id: int
    sink: str
    attempts: int
    alert: Alert


@dataclass(frozen=True, slots=True)
class IntentRecord:
    intent_key: str
    account: str
    symbol: str
    side: str
    action: str
    asset: str
    amount: float
    status: str
    margin_before: float | None
    detail: str
    created: float
    updated: float
    episode: int = 0  # the firing episode the decision belongs to (limits count attempts per episode)


@dataclass(frozen=True, slots=True)
class SilenceRecord:
    id: int
    account: str
    symbol: str | None
    until: float
    reason: str


class Journal:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[sqlite3.Cursor]:
        cursors = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                cursors.append(self._db.execute(sql, params))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return cursors

    # -- alerts and their deliveries (the outbox) ------------------------------------------------------------

    def record_alert(self, alert: Alert, sinks: Sequence[str], now: float) -> int | None:
        """Journal an alert and queue it for each sink, atomically. None if this (identity, sequence) exists."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO alerts (key, sequence, ts, account, kind, severity, resolved, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.identity.key,
                    alert.sequence,
                    alert.ts,
                    alert.account,
                    alert.kind.value,
                    alert.severity.value,
                    int(alert.resolved),
                    alert_to_json(alert),
                ),
            )
            if cursor.rowcount == 0:
                self._db.execute("ROLLBACK")
                return None
            alert_id = int(cursor.lastrowid or 0)
            for sink in sinks:
                self._db.execute(
                    "INSERT INTO deliveries (alert_id, sink, next_attempt_at) VALUES (?, ?, ?)",
                    (alert_id, sink, now),
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return alert_id

    def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        """Pending deliveries whose time has come, oldest alert first.

        A sink's deliveries are handed out in alert order and a sink with an earlier delivery still waiting is
        held back, so a receiver that was down gets its alerts later, in order.
        """
        rows = self._db.execute(
            "SELECT d.id, d.alert_id, d.sink, d.attempts, d.next_attempt_at, a.payload FROM deliveries d"
            " JOIN alerts a ON a.id = d.alert_id WHERE d.status = 'pending' ORDER BY d.alert_id, d.id",
        ).fetchall()
        due: list[Delivery] = []
        blocked: set[str] = set()
        for row in rows:
            if row["sink"] in blocked:
                continue
            if row["next_attempt_at"] > now:
                blocked.add(row["sink"])
                continue
            due.append(
                Delivery(
                    row["id"], row["alert_id"], row["sink"], row["attempts"], alert_from_json(row["payload"])
                )
            )
            if len(due) >= limit:
                break
        return due

    def next_delivery_time(self) -> float | None:
        """When the outbox next has something to send: the earliest time among each sink's oldest pending row."""
        row = self._db.execute(
            "SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.status = 'pending' AND d.alert_id = ("
            " SELECT MIN(e.alert_id) FROM deliveries e WHERE e.sink = d.sink AND e.status = 'pending')"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def mark_sent(self, delivery_id: int, now: float) -> None:
        self._transaction(
            [
                (
                    "UPDATE deliveries SET status='sent', sent_at=?, attempts=attempts+1 WHERE id=?",
                    (now, delivery_id),
                )
            ]
        )

    def mark_retry(self, delivery_id: int, next_attempt_at: float, error: str) -> None:
        self._transaction(
            [
                (
                    "UPDATE deliveries SET attempts=attempts+1, next_attempt_at=?, last_error=? WHERE id=?",
                    (next_attempt_at, error[:500], delivery_id),
                )
            ]
        )

    def mark_failed(self, delivery_id: int, error: str) -> None:
        self._transaction(
            [
                (
                    "UPDATE deliveries SET status='failed', attempts=attempts+1, last_error=? WHERE id=?",
                    (error[:500], delivery_id),
                )
            ]
        )

    def pending_deliveries(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM deliveries WHERE status='pending'").fetchone()[0])

    def latest_alerts(self, account: str | None = None) -> list[Alert]:
        """The last message of every identity (for seeding the policy's memory after a restart)."""
        sql = (
            "SELECT payload FROM alerts WHERE id IN (SELECT MAX(id) FROM alerts"
            + (" WHERE account = ?" if account is not None else "")
            + " GROUP BY key) ORDER BY id"
        )
        params: tuple[Any, ...] = (account,) if account is not None else ()
        return [alert_from_json(row[0]) for row in self._db.execute(sql, params)]

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """Latest alerts first, each with its deliveries' status per sink."""
        alerts = self._db.execute(
            "SELECT id, payload FROM alerts ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        result = []
        for row in alerts:
            deliveries = self._db.execute(
                "SELECT sink, status, attempts, last_error FROM deliveries WHERE alert_id=? ORDER BY id",
                (row["id"],),
            ).fetchall()
            entry = json.loads(row["payload"])
            entry["deliveries"] = [dict(d) for d in deliveries]
            result.append(entry)
        return result

    # -- top-up intents -----------------------------------------------------------------------------------------

    def begin_intent(self, record: IntentRecord) -> bool:
        """Journal a top-up intent before it is sent. False if this intent key was ever journaled: don't send."""
        cursor = self._transaction(
            [
                (
                    "INSERT OR IGNORE INTO topup_intents (intent_key, account, symbol, side, action, asset, amount,"
                    " status, margin_before, detail, created, updated, episode) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
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
                    ),
                )
            ]
        )[0]
        return cursor.rowcount == 1

    def settle_intent(self, intent_key: str, status: str, detail: str, now: float) -> None:
        self._transaction(
            [
                (
                    "UPDATE topup_intents SET status=?, detail=?, updated=? WHERE intent_key=?",
                    (status, detail, now, intent_key),
                )
            ]
        )

    def intents(
        self, account: str | None = None, statuses: Sequence[str] | None = None
    ) -> list[IntentRecord]:
        sql, params = "SELECT * FROM topup_intents WHERE 1=1", []
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        if statuses:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            params.extend(statuses)
        rows = self._db.execute(sql + " ORDER BY created", params).fetchall()
        return [IntentRecord(**dict(row)) for row in rows]

    def unsettled_intents(self, account: str | None = None) -> list[IntentRecord]:
        return self.intents(account, UNSETTLED)

    # -- the policy's memory -------------------------------------------------------------------------------------

    def save_memory(self, account: str, payload: str, now: float) -> None:
        self._transaction(
            [
                (
                    "INSERT INTO policy_memory (account, payload, updated) VALUES (?, ?, ?)"
                    " ON CONFLICT (account) DO UPDATE SET payload = excluded.payload, updated = excluded.updated",
                    (account, payload, now),
                )
            ]
        )

    def load_memory(self, account: str) -> str | None:
        row = self._db.execute("SELECT payload FROM policy_memory WHERE account = ?", (account,)).fetchone()
        return None if row is None else str(row[0])

    # -- silences -----------------------------------------------------------------------------------------------

    def add_silence(self, account: str, symbol: str | None, until: float, reason: str, now: float) -> int:
        cursor = self._transaction(
            [
                (
                    "INSERT INTO silences (account, symbol, until, reason, created) VALUES (?,?,?,?,?)",
                    (account, symbol, until, reason, now),
                )
            ]
        )[0]
        return int(cursor.lastrowid or 0)

    def active_silences(self, now: float) -> list[SilenceRecord]:
        rows = self._db.execute(
            "SELECT id, account, symbol, until, reason FROM silences WHERE until > ? ORDER BY id", (now,)
        ).fetchall()
        return [SilenceRecord(**dict(row)) for row in rows]
