"""Renders incident charts off the event loop and keeps them in the journal, never in the way of an alert.

A runner journals a critical or liquidated alert with its chart-showing deliveries held until `now + HOLD_S`
(see `daemon.store.journal_charts`) and hands the chart's data here (`request`, synchronous and instant). One
task (`run`, under the supervisor's TaskGroup) draws each chart in a single worker thread — matplotlib's
object-oriented API in one thread at a time — and stores the PNG, which makes the held deliveries due at once.

The alert is never delayed past its hold nor prevented: a chart that fails to draw releases the hold at once
(a warning is logged and the message goes as text); one not drawn before the hold runs out is abandoned (the
message has gone as text by then); a backlog (many accounts critical at once) skips charts whose hold has
already run out rather than drawing pictures nobody will be sent. On stop, the holds of charts still queued are
released, so a flush at shutdown sends their messages as text instead of leaving them for the next start.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import structlog

from daemon.app.chart_render import render_png
from daemon.core.alerts import Alert
from daemon.core.incident import IncidentChart

log = structlog.get_logger("marginguard.charts")

HOLD_S = 5.0  # the longest a message waits for its chart (the first chart pays matplotlib's import)
QUEUE_MAX = 256  # requests beyond this push out the oldest (whose holds run out on their own)


class ChartJournal(Protocol):
    """The part of the journal port (daemon.store.JournalPort) the renderer uses."""

    async def store_chart(self, key: str, sequence: int, png: bytes, now: float) -> int | None: ...

    async def release_hold(self, key: str, sequence: int, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class _Request:
    key: str
    sequence: int
    chart: IncidentChart
    deadline: float  # the hold's end, on `clock`


class ChartRenderer:
    def __init__(
        self,
        journal: ChartJournal,
        wake_outbox: Callable[[], None],
        render: Callable[[IncidentChart], bytes] = render_png,
        clock: Callable[[], float] = time.time,
        hold_s: float = HOLD_S,
    ) -> None:
        self.journal = journal
        self.wake_outbox = wake_outbox
        self.render = render
        self.clock = clock
        self.hold_s = hold_s
        self._queue: deque[_Request] = deque(maxlen=QUEUE_MAX)
        self._woken = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self.drawn = 0  # charts stored (for tests and the log)

    def request(self, alert: Alert, chart: IncidentChart, deadline: float) -> None:
        """Draw `chart` for the journaled `alert`, whose held deliveries wait until `deadline` at most."""
        self._queue.append(_Request(alert.identity.key, alert.sequence, chart, deadline))
        self._woken.set()

    async def run(self) -> None:
        try:
            while True:
                await self._woken.wait()
                self._woken.clear()
                while self._queue:
                    await self._draw(self._queue.popleft())
        finally:
            for left in self._queue:  # stopping: their messages go as text now rather than after a restart
                # Awaited in a cancelled task: the cancellation was delivered already, so this still runs (a
                # second cancel would cut it short; the hold then runs out by itself).
                await self.journal.release_hold(left.key, left.sequence, self.clock())
            self._queue.clear()
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    async def _draw(self, request: _Request) -> None:
        fields = {"key": request.key, "sequence": request.sequence}
        left = request.deadline - self.clock()
        if left <= 0:
            log.warning("incident chart skipped: its message has gone as text", **fields)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="incident-chart")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(left):
                png = await loop.run_in_executor(self._executor, self.render, request.chart)
        except TimeoutError:
            log.warning(
                "incident chart not drawn in time: the message goes as text", **fields, hold_s=self.hold_s
            )
            self.wake_outbox()  # its hold has run out: the message is due
            return
        except asyncio.CancelledError:
            await self.journal.release_hold(request.key, request.sequence, self.clock())
            raise
        except Exception as exc:  # a drawing bug must cost the picture, never the alert
            log.warning("incident chart failed: the message goes as text", **fields, error=repr(exc)[:200])
            await self.journal.release_hold(request.key, request.sequence, self.clock())
            self.wake_outbox()
            return
        number = await self.journal.store_chart(request.key, request.sequence, png, self.clock())
        if number is not None:
            self.drawn += 1
            log.info("incident chart drawn", **fields, number=number, size=len(png))
        self.wake_outbox()
