"""Shared set-up for the OKX simulator tests: an unmodified ccxt.pro okx client on a `SimServer("okx")`, and
waiting for pushes or server state with a timeout, never a sleep.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import ccxt.pro as ccxtpro

from daemon.sim.okx import OkxDialect
from daemon.sim.server import SimServer

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
RECORDED = json.loads((Path(__file__).parents[1] / "data" / "okx_recorded_responses.json").read_text())
PUSH_TIMEOUT_S = 5.0

T = TypeVar("T")


@asynccontextmanager
async def okx_client(
    sim: SimServer, config: dict[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[Any]:
    # ccxt's own request throttle (110 ms per weight unit for okx) only slows a loopback test down.
    client = ccxtpro.okx({**(config or sim.ccxt_config()), "enableRateLimit": False, **overrides})
    try:
        yield client
    finally:
        await client.close()
        assert_loopback_only(sim)


def assert_loopback_only(sim: SimServer) -> None:
    remotes = {entry["remote"] for entry in sim.engine.request_log}
    assert remotes <= {"127.0.0.1"}, remotes


async def wait_for(watch: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """Call `watch` until its result satisfies `done`, failing after PUSH_TIMEOUT_S."""

    async def loop() -> T:
        while True:
            result = await watch()
            if done(result):
                return result

    return await asyncio.wait_for(loop(), PUSH_TIMEOUT_S)


async def until(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds (checked every few milliseconds), failing after PUSH_TIMEOUT_S."""

    async def loop() -> None:
        while not condition():  # noqa: ASYNC110 - server-side state with no event to wait on
            await asyncio.sleep(0.005)

    await asyncio.wait_for(loop(), PUSH_TIMEOUT_S)


def okx_dialect(sim: SimServer) -> OkxDialect:
    assert isinstance(sim.dialect, OkxDialect)
    return sim.dialect


def isolated_margin(sim: SimServer, symbol: str) -> float:
    pos = sim.engine.find_position(sim.account.api_key, symbol)
    assert pos is not None, f"no {symbol} position"
    return pos.isolated_margin


def leg(positions: list[dict[str, Any]], symbol: str) -> dict[str, Any] | None:
    return next((p for p in positions if p["symbol"] == symbol and p["contracts"]), None)
