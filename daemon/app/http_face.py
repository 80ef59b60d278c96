"""The daemon's HTTP listener, up before the daemon itself is built.

`marginguard run` opens the listener first and builds the daemon behind it: importing ccxt (about half a second),
opening the journal, and building one ccxt client per account (milliseconds each: seconds for thousands of
accounts) all happen while /healthz already answers 200 and /readyz answers 503 "starting". An orchestrator's
liveness probe sees a live process from the first second, and readiness says what it waits for, instead of a
refused connection that looks like a crash. This module imports only `daemon.app.http` (aiohttp and the
Prometheus client): never ccxt, nor the daemon's exchange or runtime modules.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from daemon.app.http import Chart, Metrics, Readiness, build_app, start_http

STARTING = "starting: the accounts' clients are being built"


@dataclass(frozen=True)
class Served:
    """The built daemon's answers (`daemon.app.supervisor.Daemon.run` hands them over)."""

    readiness: Readiness
    status: Callable[[], Awaitable[dict[str, Any]]]
    before_scrape: Callable[[], Awaitable[None]]
    health: Callable[[], list[str]]
    chart: Chart


class Face:
    """The listener and its endpoints: the daemon's answers once `serve` is called, a starting one's before."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.serving: Served | None = None
        self.runner: web.AppRunner | None = None

    async def open(self, bind: str) -> None:
        app = build_app(
            self.metrics, self.readiness, self.status, self.before_scrape, self.health, self.chart
        )
        self.runner = await start_http(app, bind)

    async def close(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.cleanup()

    def serve(self, served: Served) -> None:
        self.serving = served

    def readiness(self) -> tuple[bool, dict[str, str]]:
        if self.serving is None:
            return False, {"daemon": STARTING}
        return self.serving.readiness()

    async def status(self) -> dict[str, Any]:
        if self.serving is None:
            # The shape of the daemon's own document, with nothing in it yet.
            return {"accounts": {}, "outbox_pending": None, "alerts": [], "journal_unreadable": None}
        return await self.serving.status()

    async def before_scrape(self) -> None:
        if self.serving is not None:
            await self.serving.before_scrape()

    def health(self) -> list[str]:
        # Alive while starting: nothing is broken yet; that the accounts are not watched yet is /readyz's to say.
        return [] if self.serving is None else self.serving.health()

    async def chart(self, number: int) -> bytes | None:
        if self.serving is None:
            return None
        answer = self.serving.chart(number)
        return await answer if inspect.isawaitable(answer) else answer
