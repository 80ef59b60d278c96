"""The PostgreSQL journal's top-up intents, policy memory and silences (a part of `PostgresJournal`, kept in its
own module). The writes that lead to an action are fenced in a cluster (`_fence`, `daemon.store.leases`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from daemon.store.journal_records import SEEDED_PREFIX, intent_params
from daemon.store.postgres_outbox import SAVE_MEMORY
from daemon.store.schema import UNSETTLED, IntentRecord, JournalUnavailable, SilenceRecord

SILENCES_FRESH_S = 1.0

_INSERT_INTENT = (
    "INSERT INTO topup_intents (intent_key, account, symbol, side, action, asset, amount, status, margin_before,"
    " detail, created, updated, episode) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)"
    " ON CONFLICT (intent_key) DO NOTHING"
)


class PostgresRecords:
    """Stubs of what `PostgresJournal` gives; the implementations are its own."""

    redact: Any
    _spill: Any
    # When the active silences were last read, and what they were (see `active_silences`).
    _silences: tuple[float, list[SilenceRecord]] | None = None

    def _fence(self, account: str) -> list[tuple[str, Sequence[Any]]]:
        raise NotImplementedError

    async def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[str]:
        raise NotImplementedError

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        raise NotImplementedError

    async def _fetchval(self, sql: str, *params: Any) -> Any:
        raise NotImplementedError

    async def _fetchrow(self, sql: str, *params: Any) -> Any:
        raise NotImplementedError

    # -- top-up intents -----------------------------------------------------------------------------------------

    async def begin_intent(self, record: IntentRecord) -> bool:
        fence = self._fence(record.account)
        return (await self._write([*fence, (_INSERT_INTENT, intent_params(record))]))[-1] == "INSERT 0 1"

    async def settle_intent(
        self, intent_key: str, status: str, detail: str, now: float, account: str | None = None
    ) -> None:
        detail = self.redact(detail)
        statement = (
            "UPDATE topup_intents SET status=$1, detail=$2, updated=$3 WHERE intent_key=$4",
            (status, detail, now, intent_key),
        )
        try:
            await self._write([*self._fence(account or ""), statement])
        except JournalUnavailable:
            self._spill.intent_updates[intent_key] = (status, detail, now)

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
        for row in await self._fetch(sql + " ORDER BY created", *params):
            record = IntentRecord(**dict(row))
            held = self._spill.intent_updates.get(record.intent_key)
            if held is not None:
                record = replace(record, status=held[0], detail=held[1], updated=held[2])
            if not statuses or record.status in statuses:
                records.append(record)
        return records

    async def unsettled_intents(self, account: str | None = None) -> list[IntentRecord]:
        return await self.intents(account, UNSETTLED)

    async def seed_note(self, account: str) -> str | None:
        value = await self._fetchval("SELECT value FROM meta WHERE key = 'seeded:' || $1", account)
        return None if value is None else str(value)

    async def record_seed(self, account: str, spent: Sequence[IntentRecord], note: str) -> None:
        statements = self._fence(account)
        statements += [(_INSERT_INTENT, intent_params(r)) for r in spent]
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
            await self._write([*self._fence(account), (SAVE_MEMORY, (account, payload, now))])
        except JournalUnavailable:
            return False
        return True

    async def load_memory(self, account: str) -> str | None:
        value = await self._fetchval("SELECT payload FROM policy_memory WHERE account = $1", account)
        return None if value is None else str(value)

    async def add_silence(
        self, account: str, symbol: str | None, until: float, reason: str, now: float
    ) -> int:
        self._silences = None
        return int(
            await self._fetchval(
                "INSERT INTO silences (account, symbol, until, reason, created) VALUES ($1,$2,$3,$4,$5) RETURNING id",
                account,
                symbol,
                until,
                reason,
                now,
            )
        )

    async def end_silence(self, silence_id: int, now: float) -> SilenceRecord | None:
        self._silences = None
        row = await self._fetchrow(
            "UPDATE silences SET until = $2 WHERE id = $1 AND until > $2"
            " RETURNING id, account, symbol, until, reason",
            silence_id,
            now,
        )
        return None if row is None else replace(SilenceRecord(**dict(row)), until=now)

    async def active_silences(self, now: float) -> list[SilenceRecord]:
        """Read once a second at most, whoever asks: every runner asks at each step, and the answer is the same
        for all of them (a silence added here is seen at once, one added elsewhere within SILENCES_FRESH_S)."""
        kept = self._silences
        if kept is None or time.monotonic() - kept[0] >= SILENCES_FRESH_S:
            rows = await self._fetch(
                "SELECT id, account, symbol, until, reason FROM silences WHERE until > $1 ORDER BY id", now
            )
            kept = self._silences = (time.monotonic(), [SilenceRecord(**dict(row)) for row in rows])
        return [silence for silence in kept[1] if silence.until > now]
