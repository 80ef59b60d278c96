"""One account's silences in force, as its runner reads them: from the journal at most once a tick (steps follow
every burst of marks, and a silence set from the command line may take a second or two to apply: the journal
itself reads them at most once a second for all accounts, `daemon.store.silence_cache`), and the last ones read
while the journal cannot be read (PostgreSQL away), so a journal outage never stops the watching."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

import structlog

from daemon.core.policy_rules import Silence
from daemon.store import JournalPort, JournalUnavailable
from daemon.store.schema import SilenceRecord
from daemon.store.silence_cache import SILENCES_FRESH_S

log = structlog.get_logger("marginguard.silences")


class AccountSilences:
    def __init__(self, journal: JournalPort, account_id: str, every_s: float) -> None:
        self.journal = journal
        self.account_id = account_id
        self.every_s = every_s
        self._known: list[Silence] = []
        self._read_at = -math.inf

    def known(self, now: float) -> list[Silence] | None:
        """The silences in force at `now` without waiting on the journal: this account's last read, or the
        journal's own answer of the last second when a read is due; None when only a read can tell (`in_force`)."""
        if now >= self._read_at + self.every_s:
            read = self.journal.known_silences(now)
            if read is None:
                return None
            self._keep(read, now)
        if not self._known:
            return []  # most accounts have none, and every mark asks
        return [s for s in self._known if s.until > now]

    async def in_force(self, now: float) -> list[Silence]:
        if now >= self._read_at + self.every_s:
            try:
                read = await self.journal.active_silences(now)
            except JournalUnavailable:  # the journal_failure alert says it is away; asked again next tick
                read = None
            if read is not None:
                self._keep(read, now)
        return [s for s in self._known if s.until > now]

    def _keep(self, read: list[SilenceRecord], now: float) -> None:
        self._known = [Silence(s.account, s.symbol, s.until) for s in read if s.account == self.account_id]
        self._read_at = now


async def keep_silences_read(
    journal: JournalPort,
    clock: Callable[[], float] = time.time,
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Read the silences in force twice a second (the journal reads only once its last read is a second old), so
    that runners deciding marks where they are delivered, which must not wait on the journal, always have an
    answer under two seconds old (`JournalPort.known_silences`). One task for the daemon, in its group."""
    failing = False
    while True:
        try:
            await journal.active_silences(clock())
        except JournalUnavailable:
            pass  # the journal_failure alert says so; read again
        except Exception as exc:
            # Not a reason to stop the daemon: runners then decide in their full steps, which read (and meet the
            # failure where the supervisor handles it). Told when it starts, not twice a second.
            if not failing:
                log.warning("reading the silences in force failed", error=repr(exc))
            failing = True
        else:
            if failing:
                log.info("reading the silences in force works again")
            failing = False
        await pause(SILENCES_FRESH_S / 2)
