"""The PostgreSQL journal's top-up intents, policy memory and silences (a part of `PostgresJournal`, kept in its
own module). The writes that lead to an action are fenced in a cluster (`_fence`, `daemon.store.leases`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from daemon.store.journal_records import SEEDED_PREFIX, intent_params
from daemon.store.postgres_outbox import SAVE_MEMORY
from daemon.store.schema import UNSETTLED, IntentRecord, JournalUnavailable, SilenceRecord
from daemon.store.silence_cache import SilenceCache

_INSERT_INTENT = (
    "INSERT INTO topup_intents (intent_key, account, symbol, side, action, asset, amount, status, margin_before,"
    " detail, created, updated, episode) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)"
    " ON CONFLICT (intent_key) DO NOTHING"
)


class PostgresRecords:
    """Stubs of what `PostgresJournal` gives; the implementations are its own."""

    redact: Any
    _spill: Any
    _silences: SilenceCache  # the silences in force, read once a second whoever asks

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
        silence_id = int(
            await self._fetchval(
                "INSERT INTO silences (account, symbol, until, reason, created) VALUES ($1,$2,$3,$4,$5) RETURNING id",
                account,
                symbol,
                until,
                reason,
                now,
            )
        )
        self._silences.forget()
        return silence_id

    async def end_silence(self, silence_id: int, now: float) -> SilenceRecord | None:
        row = await self._fetchrow(
            "UPDATE silences SET until = $2 WHERE id = $1 AND until > $2"
            " RETURNING id, account, symbol, until, reason",
            silence_id,
            now,
        )
        self._silences.forget()
        return None if row is None else replace(SilenceRecord(**dict(row)), until=now)

    async def active_silences(self, now: float) -> list[SilenceRecord]:
        return await self._silences.active(now)

    def known_silences(self, now: float) -> list[SilenceRecord] | None:
        return self._silences.known(now)

    async def _read_silences(self, now: float) -> list[SilenceRecord]:
        rows = await self._fetch(
            "SELECT id, account, symbol, until, reason FROM silences WHERE until > $1 ORDER BY id", now
        )
        return [SilenceRecord(**dict(row)) for row in rows]
