"""Many accounts in one process: market metadata is loaded once per exchange and shared by every account's
client, and each (exchange, symbol) has exactly one mark subscription whatever the number of accounts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math

import pytest

from daemon.core.types import MarginMode, Side
from daemon.exchanges.client import build_client
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.connector import Connector
from daemon.exchanges.marketdata import hub_for
from daemon.sim.server import SimServer
from tests.integration.connector_support import (
    EXCHANGES,
    FAST_FEED,
    FAST_HUB,
    account_for,
    open_leg,
    simulator,
    unified,
    until,
    until_in_step,
)

pytestmark = pytest.mark.integration

ACCOUNTS = 8
HELD = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
AMOUNT = {"BTCUSDT": 0.1, "ETHUSDT": 1.0, "SOLUSDT": 10.0}  # whole lots of each market
MARKETS_PATHS = ("/fapi/v1/exchangeInfo", "/v5/market/instruments-info", "/api/v5/public/instruments")


def mark_channels(sim: SimServer, market_id: str) -> dict[str, int]:
    """The simulator's public channels naming `market_id`, with their number of subscribed sockets."""
    wire_ids = {market_id.lower(), market_id.replace("USDT", "-USDT-SWAP").lower()}
    return {
        channel: len(sim.hub.subscribers(channel))
        for channel in sim.hub.channels
        if any(wire in channel.lower() for wire in wire_ids)
    }


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_accounts_share_markets_and_one_mark_subscription_per_symbol(exchange: str) -> None:
    async with simulator(exchange, mark_interval_s=0.5) as sim:
        keys = [sim.account.api_key]
        for n in range(1, ACCOUNTS):
            keys.append(sim.engine.add_account(f"key-{n}", f"secret-{n}", "Passphrase-1").api_key)
        for n, key in enumerate(keys):
            sim.engine.set_wallet(key, "USDT", 5_000.0 + 100 * n)
            for i, market_id in enumerate(HELD[: 1 + n % len(HELD)]):
                open_leg(
                    sim,
                    market_id,
                    Side.LONG if (n + i) % 2 else Side.SHORT,
                    AMOUNT[market_id],
                    MarginMode.CROSS,
                    api_key=key,
                )

        accounts = [account_for(sim, f"acct-{n}", key) for n, key in enumerate(keys)]
        async with hub_for(accounts[0], FAST_HUB) as hub, contextlib.AsyncExitStack() as stack:
            connectors = [await stack.enter_async_context(Connector(a, hub, FAST_FEED)) for a in accounts]
            for key, connector in zip(keys, connectors, strict=True):
                await until(connector, lambda c: c.feed.snapshots >= 2)
                await until_in_step(sim, connector, api_key=key)

            market_loads = [e for e in sim.engine.request_log if e["path"] in MARKETS_PATHS]
            assert hub.markets_loads == 1
            assert all(c.client.markets is hub.client.markets for c in connectors)
            # OKX and Bybit list markets with one request per instrument type: still one load in all.
            assert len({e["query"] for e in market_loads}) == len(market_loads), market_loads

            assert hub.subscriptions == {
                unified(sim, m): sum(1 + n % 3 > i for n in range(ACCOUNTS)) for i, m in enumerate(HELD)
            }
            for market_id in HELD:
                channels = mark_channels(sim, market_id)
                assert channels and all(sockets == 1 for sockets in channels.values()), channels

            # One frame reaches every holder: a move on SOL is priced by every account holding it.
            sim.engine.set_mark("SOLUSDT", sim.engine.marks["SOLUSDT"] * 1.01)
            sol = unified(sim, "SOLUSDT")
            holders = [c for c in connectors if any(k[0] == sol for k in c.state.legs)]
            assert holders
            for connector in holders:
                await until(
                    connector, lambda c: math.isclose(c.state.marks[sol].price, sim.engine.marks["SOLUSDT"])
                )


async def test_accounts_take_their_first_snapshots_side_by_side_within_the_bound() -> None:
    """Once the first client has loaded what clients share, the others' first snapshots overlap (one at a time,
    1,000 accounts took minutes to start), never more of them at once than the environment's bound."""
    bound = 3
    async with simulator("binance") as sim:
        accounts = [account_for(sim, f"acct-{n}") for n in range(8)]
        settings = dataclasses.replace(FAST_HUB, startup_concurrency=bound)
        async with hub_for(accounts[0], settings) as hub:
            inside: list[int] = []
            now_inside = 0

            async def first_snapshot(account: ExchangeAccount) -> None:
                nonlocal now_inside
                client = build_client(account)
                try:
                    async with hub.adopted(client):
                        now_inside += 1
                        inside.append(now_inside)
                        await client.fetch_positions()  # the snapshot's requests, as the feed makes them
                        await asyncio.sleep(0.05)
                        now_inside -= 1
                finally:
                    await client.close()

            await asyncio.gather(*(first_snapshot(account) for account in accounts))
    assert inside[0] == 1  # the first client alone, while it loads the tables the others share
    assert max(inside) == bound, inside
