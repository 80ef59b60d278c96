"""The journal's reads, top-up intents, the policy's memory, silences and per-account markers (a part of
`Journal`, kept in its own module).

An intent is journaled before its request is sent and refused when the journal cannot be written; its outcome,
when it cannot be written, is held in memory and read back from there until it can.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from daemon.core.alerts import Alert
from daemon.store.codec import alert_from_json
from daemon.store.schema import UNSETTLED, IntentRecord, JournalUnavailable, SilenceRecord
from daemon.store.spill import Spill

SEEDED_PREFIX = "history|"  # the intent key of a top-up read from the exchange's history by a new journal
_INSERT_INTENT = (
    "INSERT OR IGNORE INTO topup_intents (intent_key, account, symbol, side, action, asset, amount,"
    " status, margin_before, detail, created, updated, episode) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


class JournalRecords:
    _db: sqlite3.Connection
    _spill: Spill
    created: float
    redact: Callable[[str], str]

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[sqlite3.Cursor]:
        raise NotImplementedError

    def _transaction(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[sqlite3.Cursor]:
        raise NotImplementedError

    # -- top-up intents -----------------------------------------------------------------------------------------

    def begin_intent(self, record: IntentRecord) -> bool:
        """Journal a top-up intent before it is sent. False if this intent key was ever journaled: don't send.
        Raises `JournalUnavailable` when it cannot be written: don't send either."""
        cursor = self._write([(_INSERT_INTENT, intent_params(record))])[0]
        return cursor.rowcount == 1

    def settle_intent(self, intent_key: str, status: str, detail: str, now: float) -> None:
        """Record an intent's outcome (held in memory, and read back from there, while it cannot be written)."""
        detail = self.redact(detail)
        statement = (
            "UPDATE topup_intents SET status=?, detail=?, updated=? WHERE intent_key=?",
            (status, detail, now, intent_key),
        )
        try:
            self._write([statement])
        except JournalUnavailable:
            self._spill.intent_updates[intent_key] = (status, detail, now)

    def intents(
        self, account: str | None = None, statuses: Sequence[str] | None = None, *, seeded: bool = False
    ) -> list[IntentRecord]:
        """marginguard's own top-up intents, oldest first; with `seeded`, also the top-ups a new journal read
        from the exchange's history (they count against the daily limits)."""
        sql, params = "SELECT * FROM topup_intents WHERE 1=1", []
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        if not seeded:
            sql += " AND intent_key NOT LIKE ?"
            params.append(SEEDED_PREFIX + "%")
        rows = self._db.execute(sql + " ORDER BY created", params).fetchall()
        records = []
        for row in rows:
            record = IntentRecord(**dict(row))
            held = self._spill.intent_updates.get(record.intent_key)
            if held is not None:
                record = replace(record, status=held[0], detail=held[1], updated=held[2])
            if not statuses or record.status in statuses:
                records.append(record)
        return records

    def unsettled_intents(self, account: str | None = None) -> list[IntentRecord]:
        return self.intents(account, UNSETTLED)

    # -- a new journal's account: the exchange's recent history, counted once ----------------------------------

    def seed_note(self, account: str) -> str | None:
        """How `account`'s recent top-ups were counted when this journal first met it (None: not yet, so the
        journal is new for it, or was lost: nothing may be topped up before they are)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'seeded:' || ?", (account,)).fetchone()
        return None if row is None else str(row[0])

    def record_seed(self, account: str, spent: Sequence[IntentRecord], note: str) -> None:
        """Count the exchange's recent top-ups of `account` (read from its history) and mark the account known,
        in one transaction. Raises `JournalUnavailable` when it cannot be written."""
        statements: list[tuple[str, Sequence[Any]]] = [
            (_INSERT_INTENT, intent_params(record)) for record in spent
        ]
        statements.append(
            ("INSERT OR REPLACE INTO meta (key, value) VALUES ('seeded:' || ?, ?)", (account, note))
        )
        self._write(statements)

    def latest_alerts(self, account: str | None = None) -> list[Alert]:
        """The last message of every identity (for seeding the policy's memory after a restart)."""
        sql = (
            "SELECT payload FROM alerts WHERE id IN (SELECT MAX(id) FROM alerts"
            + (" WHERE account = ?" if account is not None else "")
            + " GROUP BY key) ORDER BY id"
        )
        params: tuple[Any, ...] = (account,) if account is not None else ()
        return [alert_from_json(row[0]) for row in self._db.execute(sql, params)]

    def max_sequences(self, account: str | None = None) -> dict[str, int]:
        """The highest sequence journaled (or held in memory) per identity key: a floor for the next message."""
        sql = (
            "SELECT key, MAX(sequence) FROM alerts"
            + (" WHERE account = ?" if account else "")
            + " GROUP BY key"
        )
        found = {str(k): int(v) for k, v in self._db.execute(sql, (account,) if account else ())}
        for alert, _now in self._spill.alerts:
            if account is None or alert.account == account:
                found[alert.identity.key] = max(found.get(alert.identity.key, 0), alert.sequence)
        return found

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """Latest alerts first, each with its deliveries' status per sink, its number and whether it has a chart."""
        alerts = self._db.execute(
            "SELECT id, payload, EXISTS (SELECT 1 FROM charts WHERE charts.alert_id = alerts.id) AS chart"
            " FROM alerts ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        result = []
        for row in alerts:
            deliveries = self._db.execute(
                "SELECT sink, status, attempts, last_error FROM deliveries WHERE alert_id=? ORDER BY id",
                (row["id"],),
            ).fetchall()
            entry = json.loads(row["payload"])
            entry["deliveries"] = [dict(d) for d in deliveries]
            entry["id"] = row["id"]  # the message's number (its chart, if any: /incident/<id>.png)
            entry["chart"] = bool(row["chart"])
            result.append(entry)
        return result

    # -- the policy's memory -------------------------------------------------------------------------------------

    def save_memory(self, account: str, payload: str, now: float) -> bool:
        """Save the policy memory; False when the journal cannot be written (try again with the next change)."""
        try:
            self._write([save_memory_statement(account, payload, now)])
        except JournalUnavailable:
            return False
        return True

    def load_memory(self, account: str) -> str | None:
        row = self._db.execute("SELECT payload FROM policy_memory WHERE account = ?", (account,)).fetchone()
        return None if row is None else str(row[0])

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
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

    def end_silence(self, silence_id: int, now: float) -> SilenceRecord | None:
        """Lift a silence in force now (kept, ending now, for the record); None when no such silence is in force."""
        row = self._db.execute(
            "SELECT id, account, symbol, until, reason FROM silences WHERE id = ? AND until > ?",
            (silence_id, now),
        ).fetchone()
        if row is None:
            return None
        self._transaction([("UPDATE silences SET until = ? WHERE id = ?", (now, silence_id))])
        return SilenceRecord(**dict(row))

    def active_silences(self, now: float) -> list[SilenceRecord]:
        rows = self._db.execute(
            "SELECT id, account, symbol, until, reason FROM silences WHERE until > ? ORDER BY id", (now,)
        ).fetchall()
        return [SilenceRecord(**dict(row)) for row in rows]


def intent_params(record: IntentRecord) -> tuple[Any, ...]:
    """An intent as the row both journals write (SQLite and PostgreSQL: the same columns, in this order)."""
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


def save_memory_statement(account: str, payload: str, now: float) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO policy_memory (account, payload, updated) VALUES (?, ?, ?)"
        " ON CONFLICT (account) DO UPDATE SET payload = excluded.payload, updated = excluded.updated",
        (account, payload, now),
    )
