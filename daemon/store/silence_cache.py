"""The silences in force, read from the journal at most once a second whoever asks.

Every account's runner asks at each of its steps, and the answer is the same for all of them: with 1,000
accounts that was 1,000 journal reads a second (a fifth of the daemon's CPU on SQLite, where each read is a hop
to the journal's thread). One read serves every asker meanwhile: a silence added or lifted through this
journal is seen at once (`forget`), one added by another process (`marginguard silence` on the command line)
within `SILENCES_FRESH_S`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from daemon.store.schema import SilenceRecord

SILENCES_FRESH_S = 1.0
# How old an answer `known` still gives (a decision that must not wait takes it): the daemon reads every half
# `SILENCES_FRESH_S` (`Daemon._keep_silences_read`), so an answer is older than one second for at most half a
# second, and a silence set from the command line still applies within two.
SILENCES_KNOWN_S = 2 * SILENCES_FRESH_S


class SilenceCache:
    def __init__(
        self,
        read: Callable[[float], Awaitable[list[SilenceRecord]]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._clock = clock
        self._kept: tuple[float, list[SilenceRecord]] | None = None
        self._generation = 0  # moved by `forget`: a read begun before a write is not kept after it
        self._lock = asyncio.Lock()  # one read at a time: the askers queued behind it take its answer

    def forget(self) -> None:
        """A silence was written through this journal: the next ask reads again."""
        self._kept = None
        self._generation += 1

    def _fresh(self, within_s: float = SILENCES_FRESH_S) -> list[SilenceRecord] | None:
        kept = self._kept
        if kept is None or self._clock() - kept[0] >= within_s:
            return None
        return kept[1]

    def known(self, now: float) -> list[SilenceRecord] | None:
        """The silences in force at `now` from the last read, while it is under `SILENCES_KNOWN_S` old; None:
        only `active` (a read) can tell."""
        known = self._fresh(SILENCES_KNOWN_S)
        return None if known is None else [silence for silence in known if silence.until > now]

    async def active(self, now: float) -> list[SilenceRecord]:
        known = self._fresh()
        if known is None:
            async with self._lock:
                known = self._fresh()
                if known is None:
                    generation, read_at = self._generation, self._clock()
                    known = await self._read(now)
                    if generation == self._generation:
                        self._kept = (read_at, known)
        return [silence for silence in known if silence.until > now]
