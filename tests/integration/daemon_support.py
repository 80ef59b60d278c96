"""The daemon itself (`Daemon.run`, the supervisor with its runners and hubs) in the test's event loop, against
simulators: written as a user configures it (a TOML file), stopped as SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from daemon.app.settings import load_settings
from daemon.app.supervisor import Daemon
from tests.e2e.support import free_port, write_config

WAIT_S = 15.0


@dataclass
class Running:
    daemon: Daemon
    port: int

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        """The daemon's /readyz as an orchestrator reads it: (status, body)."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status, await response.json()

    async def ready(self) -> bool:
        """/readyz answers 200 (False while it does not, or is not listening yet)."""
        try:
            return (await self.readyz())[0] == 200
        except aiohttp.ClientConnectionError:
            return False


@contextlib.asynccontextmanager
async def running_daemon(
    tmp_path: Path,
    accounts: list[dict[str, Any]],
    rules: dict[str, Any] | None = None,
    sinks: list[dict[str, Any]] | None = None,
) -> AsyncIterator[Running]:
    """A configured daemon, running until the block is left (then stopped and awaited, as on SIGTERM); a
    daemon that fails meanwhile fails the test. `sinks`: where its alerts go (none by default)."""
    port = free_port()
    document: dict[str, Any] = {
        "daemon": {
            "storage_path": str(tmp_path / "journal.sqlite"),
            "http_bind": f"127.0.0.1:{port}",
            "log_level": "warning",
            "shutdown_timeout_s": 5,
        },
        "rules": rules or {"stale_after_s": 10},
        "accounts": accounts,
    }
    if sinks:
        document["sinks"] = sinks
    config = write_config(tmp_path / "marginguard.toml", document)
    daemon = await Daemon.open(load_settings(config, env={}))
    stop = asyncio.Event()
    async with asyncio.timeout(None) as deadline, asyncio.TaskGroup() as group:
        group.create_task(daemon.run(stop), name="daemon-under-test")
        try:
            yield Running(daemon, port)
        finally:
            stop.set()
            deadline.reschedule(asyncio.get_running_loop().time() + WAIT_S)


async def eventually(condition: Callable[[], bool], within_s: float = WAIT_S, what: str = "") -> None:
    """Poll `condition` every 20 ms until it holds, failing after `within_s` (the daemon has no event to wait
    on from outside)."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - state of a running daemon, polled with a deadline
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), within_s)
    except TimeoutError:
        raise AssertionError(f"not within {within_s} s: {what}") from None


async def eventually_async(
    check: Callable[[], Awaitable[bool]], within_s: float = WAIT_S, what: str = ""
) -> None:
    """Poll an async `check` every 50 ms until it answers True, failing after `within_s`."""
    try:
        async with asyncio.timeout(within_s):
            while not await check():  # noqa: ASYNC110 - an HTTP endpoint has no event to wait on
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {within_s} s: {what}") from None
