"""The chart renderer with a real journal: a drawn chart goes out with its message at once; a chart that fails or
is too slow never holds the message past its hold, and the message goes as text with a warning logged; stopping
releases what is queued. `render` is the port here: the real matplotlib drawing, or one that fails or stalls."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.app.chart_render import render_png
from daemon.app.incident_charts import ChartRenderer
from daemon.core.incident import IncidentChart, PricePoint
from daemon.notify.forms import png_size
from daemon.store import SqliteJournal
from tests.unit.test_journal import _alert

T0 = time.time()
CHART = IncidentChart(
    "acct BTC/USDT:USDT long: critical", T0 - 60, T0, ((T0 - 60, PricePoint(100, 90, 90.5)),), ()
)
WAIT = 10.0


@contextlib.asynccontextmanager
async def running(renderer: ChartRenderer) -> AsyncIterator[ChartRenderer]:
    task = asyncio.create_task(renderer.run())
    await asyncio.sleep(0)  # let it start, as the supervisor's task group does long before any stop
    try:
        yield renderer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _journaled(journal: SqliteJournal, hold_s: float) -> tuple[float, float]:
    now = time.time()
    alert = _alert()
    await journal.record_alert(alert, ["telegram"], now, hold={"telegram": now + hold_s})
    return now, now + hold_s


class Wakes:
    """The outbox's doorbell: the renderer rings it once a message's chart is settled, drawn or not."""

    def __init__(self) -> None:
        self.rung = asyncio.Event()

    def __call__(self) -> None:
        self.rung.set()

    async def wait(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.rung.wait()


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[SqliteJournal]:
    async with await SqliteJournal.open(tmp_path / "j.sqlite") as opened:
        yield opened


async def test_a_drawn_chart_sends_its_message_at_once_with_the_picture(journal: SqliteJournal) -> None:
    wakes = Wakes()
    renderer = ChartRenderer(journal, wakes, render=render_png)
    _now, deadline = await _journaled(journal, hold_s=30.0)  # long: only the chart can make it due now
    async with running(renderer):
        renderer.request((await journal.latest_alerts())[0], CHART, deadline)
        await wakes.wait()
    (delivery,) = await journal.due_deliveries(time.time())
    assert delivery.chart is not None and png_size(delivery.chart) == (800, 450) and renderer.drawn == 1


async def test_a_chart_that_fails_to_draw_sends_the_message_as_text_at_once(journal: SqliteJournal) -> None:
    def broken(_chart: IncidentChart) -> bytes:
        raise ValueError("no font")

    wakes = Wakes()
    renderer = ChartRenderer(journal, wakes, render=broken)
    _now, deadline = await _journaled(journal, hold_s=30.0)
    with capture_logs() as logs:
        async with running(renderer):
            renderer.request((await journal.latest_alerts())[0], CHART, deadline)
            await wakes.wait()
    (delivery,) = await journal.due_deliveries(time.time())
    assert delivery.chart is None
    assert any(e["event"] == "incident chart failed: the message goes as text" for e in logs), logs


async def test_a_chart_too_slow_is_abandoned_when_the_hold_runs_out(journal: SqliteJournal) -> None:
    release = threading.Event()

    def stalled(_chart: IncidentChart) -> bytes:
        release.wait(WAIT)  # never returns in time (and lets the worker thread end with the test)
        return b""

    wakes = Wakes()
    renderer = ChartRenderer(journal, wakes, render=stalled)
    _now, deadline = await _journaled(journal, hold_s=0.3)
    try:
        with capture_logs() as logs:
            async with running(renderer):
                renderer.request((await journal.latest_alerts())[0], CHART, deadline)
                await wakes.wait()
    finally:
        release.set()
    assert any(e["event"] == "incident chart not drawn in time: the message goes as text" for e in logs)
    assert time.time() >= deadline
    (delivery,) = await journal.due_deliveries(time.time())  # the hold ran out: it goes, as text
    assert delivery.chart is None and await journal.chart(delivery.alert_id) is None


async def test_stopping_releases_the_holds_of_charts_not_drawn(journal: SqliteJournal) -> None:
    renderer = ChartRenderer(journal, lambda: None, render=render_png)
    _now, deadline = await _journaled(journal, hold_s=30.0)
    renderer.request((await journal.latest_alerts())[0], CHART, deadline)
    async with running(renderer):
        pass  # stopped at once: the chart is queued or being drawn
    assert [d.chart for d in await journal.due_deliveries(time.time())] == [None]
