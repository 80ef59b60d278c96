"""The simulator as a whole, seen from outside: ccxt clients, the control API and the `marginguard sim` command."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
import pytest

from daemon.sim.engine import Event, Liquidated, MarginCall
from daemon.sim.server import SimServer

pytestmark = pytest.mark.integration

WAIT_S = 5.0
ROOT = Path(__file__).resolve().parents[2]


def first_event(sim: SimServer, kind: type[Any]) -> asyncio.Future[Any]:
    """A future resolved by the engine's next event of `kind`."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def listen(event: Event) -> None:
        if isinstance(event, kind) and not future.done():
            future.set_result(event)

    sim.engine.subscribe(listen)
    return future


@pytest.fixture
async def control() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_ccxt_client_sees_the_model_liquidation_price_and_then_the_liquidation(
    control: aiohttp.ClientSession,
) -> None:
    async with SimServer("binance", mark_interval_s=None) as sim:
        base = sim.http_base
        opened = await control.post(
            f"{base}/_sim/position",
            json={
                "symbol": "ETHUSDT",
                "side": "short",
                "contracts": 2,
                "margin_mode": "isolated",
                "leverage": 25,
            },
        )
        expected = (await opened.json())["position"]["liquidation_price"]
        exchange = ccxtpro.binanceusdm(sim.ccxt_config())
        try:
            [position] = await exchange.fetch_positions(["ETH/USDT:USDT"])
            assert position["liquidationPrice"] == pytest.approx(expected, rel=1e-6)
            await exchange.watch_positions()  # ccxt answers the first call with a REST snapshot
            pushed = asyncio.ensure_future(exchange.watch_positions())
            await asyncio.sleep(0.1)  # the second watch opens the user-data socket

            await control.post(f"{base}/_sim/mark", json={"symbol": "ETHUSDT", "price": expected * 1.001})
            [closed] = await asyncio.wait_for(pushed, WAIT_S)
            assert closed["contracts"] == 0
        finally:
            await exchange.close()
        liquidations = (await (await control.get(f"{base}/_sim/liquidations")).json())["liquidations"]
        assert [(r["symbol"], r["side"], r["liquidation_price"]) for r in liquidations] == [
            ("ETHUSDT", "short", pytest.approx(expected))
        ]
        assert liquidations[0]["loss"] == pytest.approx(2 * 3500 / 25)  # the isolated margin


async def test_a_scenario_started_through_the_control_api_plays_at_the_requested_speed(
    control: aiohttp.ClientSession,
) -> None:
    async with SimServer("bybit", mark_interval_s=None) as sim:
        margin_call = first_event(sim, MarginCall)
        liquidated = first_event(sim, Liquidated)
        answer = await control.post(
            f"{sim.http_base}/_sim/scenario", json={"name": "slow_bleed", "speed": 40}
        )
        state = (await answer.json())["state"]
        assert [(p["symbol"], p["margin_mode"]) for p in state["positions"]] == [("BTCUSDT", "isolated")]
        loop = asyncio.get_running_loop()
        started = loop.time()

        assert (await asyncio.wait_for(margin_call, WAIT_S)).symbols == ("BTCUSDT",)
        event = await asyncio.wait_for(liquidated, WAIT_S)
        assert (event.symbol, event.contracts) == ("BTCUSDT", 0.1)
        assert loop.time() - started == pytest.approx(36.5 / 40, abs=0.4)  # ~36.5 s of scenario time


async def test_the_three_dialects_run_side_by_side_in_one_process() -> None:
    async with (
        SimServer("binance", mark_interval_s=None) as binance,
        SimServer("bybit", mark_interval_s=None) as bybit,
        SimServer("okx", mark_interval_s=None) as okx,
    ):
        sims = (binance, bybit, okx)
        assert len({sim.port for sim in sims}) == 3
        clients = [getattr(ccxtpro, sim.ccxt_id)(sim.ccxt_config()) for sim in sims]
        try:
            balances = await asyncio.gather(*(client.fetch_balance() for client in clients))
        finally:
            await asyncio.gather(*(client.close() for client in clients))
        assert [balance["USDT"]["total"] for balance in balances] == [10_000.0] * 3
        for sim in sims:
            assert {entry["remote"] for entry in sim.engine.request_log} == {"127.0.0.1"}


async def test_marks_are_pushed_every_interval_even_when_they_do_not_move() -> None:
    async with SimServer("okx", mark_interval_s=0.05) as sim:
        exchange = ccxtpro.okx(sim.ccxt_config())
        try:
            first = await asyncio.wait_for(exchange.watch_mark_price("BTC/USDT:USDT"), WAIT_S)
            second = await asyncio.wait_for(exchange.watch_mark_price("BTC/USDT:USDT"), WAIT_S)
        finally:
            await exchange.close()
        assert first["markPrice"] == second["markPrice"] == 67_000.0
        assert second["timestamp"] > first["timestamp"]


async def test_the_sim_command_prints_a_ccxt_config_first_and_stops_cleanly_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon.app.cli",
        "sim",
        "--exchange",
        "bybit",
        "--scenario",
        "flash_crash",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        first_line = json.loads(await asyncio.wait_for(process.stdout.readline(), 15))
        assert first_line["exchange"] == "bybit"
        exchange = ccxtpro.bybit(first_line["ccxt_config"])
        try:
            [position] = await exchange.fetch_positions(["ETH/USDT:USDT"])  # the scenario's account
        finally:
            await exchange.close()
        assert position["contracts"] == 5
        assert "127.0.0.1" in first_line["ccxt_config"]["urls"]["api"]["public"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
