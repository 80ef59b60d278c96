"""The PostgreSQL journal's incident charts (a part of `PostgresJournal`, kept in its own module). The rules —
a held delivery waits for its chart, a late chart is kept but never attached, pruning — are the SQLite
journal's (see journal_charts.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from daemon.store.journal_charts import CHART_KEEP_MAX, CHART_KEEP_S
from daemon.store.schema import JournalUnavailable

_PENDING = "SELECT alert_id FROM deliveries WHERE status = 'pending'"


class PostgresCharts:
    async def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[str]:
        raise NotImplementedError

    async def _fetchval(self, sql: str, *params: Any) -> Any:
        raise NotImplementedError

    async def store_chart(self, key: str, sequence: int, png: bytes, now: float) -> int | None:
        alert_id = await self._alert_id(key, sequence)
        if alert_id is None:
            return None
        held = await self._fetchval(
            "SELECT COUNT(*) FROM deliveries WHERE alert_id = $1 AND status = 'pending' AND attempts = 0"
            " AND next_attempt_at > $2",
            alert_id,
            now,
        )
        try:
            await self._write(
                [
                    (
                        "INSERT INTO charts (alert_id, png, attached, created) VALUES ($1, $2, $3, $4)"
                        " ON CONFLICT (alert_id) DO UPDATE SET png = excluded.png, attached = excluded.attached,"
                        " created = excluded.created",
                        (alert_id, png, int(held > 0), now),
                    ),
                    _release(alert_id, now),
                    (
                        f"DELETE FROM charts WHERE created < $1 AND alert_id NOT IN ({_PENDING})",
                        (now - CHART_KEEP_S,),
                    ),
                    (
                        "DELETE FROM charts WHERE alert_id NOT IN (SELECT alert_id FROM charts ORDER BY alert_id"
                        f" DESC LIMIT $1) AND alert_id NOT IN ({_PENDING})",
                        (CHART_KEEP_MAX,),
                    ),
                ]
            )
        except JournalUnavailable:
            return None
        return alert_id

    async def release_hold(self, key: str, sequence: int, now: float) -> None:
        alert_id = await self._alert_id(key, sequence)
        if alert_id is not None:
            with contextlib.suppress(JournalUnavailable):  # the hold runs out by itself
                await self._write([_release(alert_id, now)])

    async def chart(self, alert_id: int) -> bytes | None:
        value = await self._fetchval("SELECT png FROM charts WHERE alert_id = $1", alert_id)
        return None if value is None else bytes(value)

    async def _attached_chart(self, alert_id: int) -> bytes | None:
        value = await self._fetchval("SELECT png FROM charts WHERE alert_id = $1 AND attached = 1", alert_id)
        return None if value is None else bytes(value)

    async def _alert_id(self, key: str, sequence: int) -> int | None:
        value = await self._fetchval("SELECT id FROM alerts WHERE key = $1 AND sequence = $2", key, sequence)
        return None if value is None else int(value)


def _release(alert_id: int, now: float) -> tuple[str, tuple[Any, ...]]:
    return (
        "UPDATE deliveries SET next_attempt_at = $1 WHERE alert_id = $2 AND status = 'pending' AND attempts = 0"
        " AND next_attempt_at > $1",
        (now, alert_id),
    )
