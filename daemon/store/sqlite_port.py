"""`SqliteJournal`: the SQLite journal (`Journal`, unchanged: its lock file, redaction, size limit and spill on a
full disk) behind the async port.

sqlite3 blocks, so every call runs on ONE worker thread that owns the connection (opened there too): the event
loop never waits on the disk, and because that thread takes jobs in the order they were submitted, writes land
in the order the loop issued them, as they did when they ran inline. The attributes (`write_failure`, …) are
read straight from the journal: plain values, set only by that thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from daemon.core.alerts import Alert
from daemon.store.journal import Journal
from daemon.store.schema import Delivery, IntentRecord, SilenceRecord
from daemon.store.silence_cache import SilenceCache

P = ParamSpec("P")
T = TypeVar("T")


class SqliteJournal:
    def __init__(self, journal: Journal, worker: ThreadPoolExecutor) -> None:
        """Use `open`: the journal must have been opened on `worker`, the thread that will own it."""
        self._journal = journal
        self._worker = worker
        self._silences = SilenceCache(lambda now: self._run(journal.active_silences, now))

    @classmethod
    async def open(cls, path: Path | str, redact: Callable[[str], str] | None = None) -> SqliteJournal:
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        try:
            journal = await asyncio.get_running_loop().run_in_executor(worker, Journal, path, redact)
        except BaseException:
            worker.shutdown(wait=False)
            raise
        return cls(journal, worker)

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._worker, functools.partial(fn, *args, **kwargs)
        )

    # -- state kept in memory -----------------------------------------------------------------------------------
    @property
    def write_failure(self) -> str | None:
        return self._journal.write_failure

    @property
    def created(self) -> float:
        return self._journal.created

    @property
    def instance(self) -> str:
        return self._journal.instance

    @property
    def path(self) -> Path:
        return self._journal.path

    @property
    def where(self) -> str:
        return str(self._journal.path)

    async def close(self) -> None:
        await self._run(self._journal.close)
        self._worker.shutdown(wait=True)

    async def __aenter__(self) -> SqliteJournal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def limit_size(self, max_bytes: int | None) -> None:
        """SQLite only: cap the file (writes beyond it fail as on a full disk)."""
        await self._run(self._journal.limit_size, max_bytes)

    # -- the outbox ---------------------------------------------------------------------------------------------
    async def record_alert(
        self,
        alert: Alert,
        sinks: Sequence[str],
        now: float,
        memory: tuple[str, str] | None = None,
        hold: Mapping[str, float] | None = None,
    ) -> Alert | None:
        return await self._run(self._journal.record_alert, alert, sinks, now, memory, hold)

    async def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        return await self._run(self._journal.due_deliveries, now, limit)

    async def next_delivery_time(self) -> float | None:
        return await self._run(self._journal.next_delivery_time)

    async def pending_deliveries(self) -> int:
        return await self._run(self._journal.pending_deliveries)

    async def mark_sent(self, delivery_id: int, now: float) -> None:
        await self._run(self._journal.mark_sent, delivery_id, now)

    async def mark_retry(self, delivery_id: int, next_attempt_at: float, error: str) -> None:
        await self._run(self._journal.mark_retry, delivery_id, next_attempt_at, error)

    async def mark_failed(self, delivery_id: int, error: str) -> None:
        await self._run(self._journal.mark_failed, delivery_id, error)

    async def probe(self) -> bool:
        return await self._run(self._journal.probe)

    async def max_sequences(self, account: str | None = None) -> dict[str, int]:
        return await self._run(self._journal.max_sequences, account)

    async def latest_alerts(self, account: str | None = None) -> list[Alert]:
        return await self._run(self._journal.latest_alerts, account)

    async def history(self, limit: int = 50) -> list[dict[str, Any]]:
        return await self._run(self._journal.history, limit)

    # -- top-up intents -----------------------------------------------------------------------------------------
    async def begin_intent(self, record: IntentRecord) -> bool:
        return await self._run(self._journal.begin_intent, record)

    async def settle_intent(
        self, intent_key: str, status: str, detail: str, now: float, account: str | None = None
    ) -> None:
        await self._run(self._journal.settle_intent, intent_key, status, detail, now)

    async def intents(
        self, account: str | None = None, statuses: Sequence[str] | None = None, *, seeded: bool = False
    ) -> list[IntentRecord]:
        return await self._run(self._journal.intents, account, statuses, seeded=seeded)

    async def unsettled_intents(self, account: str | None = None) -> list[IntentRecord]:
        return await self._run(self._journal.unsettled_intents, account)

    async def seed_note(self, account: str) -> str | None:
        return await self._run(self._journal.seed_note, account)

    async def record_seed(self, account: str, spent: Sequence[IntentRecord], note: str) -> None:
        await self._run(self._journal.record_seed, account, spent, note)

    # -- the policy's memory and silences -----------------------------------------------------------------------
    async def save_memory(self, account: str, payload: str, now: float) -> bool:
        return await self._run(self._journal.save_memory, account, payload, now)

    async def load_memory(self, account: str) -> str | None:
        return await self._run(self._journal.load_memory, account)

    async def add_silence(
        self, account: str, symbol: str | None, until: float, reason: str, now: float
    ) -> int:
        silence_id = await self._run(self._journal.add_silence, account, symbol, until, reason, now)
        self._silences.forget()
        return silence_id

    async def end_silence(self, silence_id: int, now: float) -> SilenceRecord | None:
        ended = await self._run(self._journal.end_silence, silence_id, now)
        self._silences.forget()
        return ended

    async def active_silences(self, now: float) -> list[SilenceRecord]:
        return await self._silences.active(now)

    def known_silences(self, now: float) -> list[SilenceRecord] | None:
        return self._silences.known(now)

    # -- incident charts ----------------------------------------------------------------------------------------
    async def store_chart(self, key: str, sequence: int, png: bytes, now: float) -> int | None:
        return await self._run(self._journal.store_chart, key, sequence, png, now)

    async def release_hold(self, key: str, sequence: int, now: float) -> None:
        await self._run(self._journal.release_hold, key, sequence, now)

    async def chart(self, alert_id: int) -> bytes | None:
        return await self._run(self._journal.chart, alert_id)
