"""A hub of many accounts (ALL_MARKETS_FROM_ACCOUNTS on one server) on Binance reads ONE stream of every market's marks (`!markPrice@arr@1s`) instead of
one stream per symbol: every holder still gets every move of its symbols, and nothing else is subscribed."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path

import pytest

from daemon.app.settings import load_settings
from daemon.app.supervisor import Daemon
from daemon.app.wiring import ALL_MARKETS_FROM_ACCOUNTS
from daemon.core.types import MarginMode, Side
from daemon.exchanges.connector import Connector
from daemon.exchanges.marketdata import hub_for
from tests.e2e.support import write_config
from tests.integration.connector_support import (
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

HELD = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
AMOUNT = {"BTCUSDT": 0.1, "ETHUSDT": 1.0, "SOLUSDT": 10.0}
ALL_MARKETS_STREAM = "!markprice@arr@1s"


async def test_every_holder_follows_its_marks_through_the_one_stream_of_every_market() -> None:
    async with simulator("binance", mark_interval_s=0.25) as sim:
        keys = [sim.account.api_key]
        keys += [sim.engine.add_account(f"key-{n}", f"secret-{n}").api_key for n in range(1, 3)]
        for n, key in enumerate(keys):
            sim.engine.set_wallet(key, "USDT", 5_000.0)
            for market_id in HELD[: n + 1]:
                open_leg(sim, market_id, Side.LONG, AMOUNT[market_id], MarginMode.CROSS, api_key=key)
        accounts = [account_for(sim, f"acct-{n}", key) for n, key in enumerate(keys)]
        settings = dataclasses.replace(FAST_HUB, all_markets=True)
        async with hub_for(accounts[0], settings) as hub, contextlib.AsyncExitStack() as stack:
            connectors = [await stack.enter_async_context(Connector(a, hub, FAST_FEED)) for a in accounts]
            for key, connector in zip(keys, connectors, strict=True):
                await until(connector, lambda c: c.feed.snapshots >= 2)
                await until_in_step(sim, connector, api_key=key)

            assert hub.all_markets
            assert hub.subscriptions == {unified(sim, m): 3 - i for i, m in enumerate(HELD)}
            listened = {c: len(sim.hub.subscribers(c)) for c in sim.hub.channels if "markprice" in c.lower()}
            # One socket for every account, on the one stream: no symbol's own stream is subscribed.
            assert {c.lower(): n for c, n in listened.items() if n} == {ALL_MARKETS_STREAM: 1}

            for market_id in HELD:  # each move reaches every holder of the symbol, and only them
                sim.engine.set_mark(market_id, sim.engine.marks[market_id] * 1.01)
                symbol = unified(sim, market_id)
                holders = [c for c in connectors if any(k[0] == symbol for k in c.state.legs)]
                assert len(holders) == 3 - HELD.index(market_id)
                for connector in holders:
                    await until(
                        connector,
                        lambda c, s=symbol, m=market_id: math.isclose(
                            c.state.marks[s].price, sim.engine.marks[m]
                        ),
                    )
                others = [c for c in connectors if c not in holders]
                assert all(symbol not in c.state.marks for c in others)


@pytest.mark.parametrize("accounts", [1, ALL_MARKETS_FROM_ACCOUNTS - 1, ALL_MARKETS_FROM_ACCOUNTS])
async def test_the_hub_of_an_environment_with_many_accounts_reads_the_stream_of_every_market(
    tmp_path: Path, accounts: int
) -> None:
    document = {
        "daemon": {"storage_path": str(tmp_path / "journal.sqlite")},
        "accounts": [
            {"id": f"a{n}", "exchange": "binanceusdm", "mode": "demo", "api_key": f"k{n}", "secret": "s"}
            for n in range(accounts)
        ]
        # Another environment of the same venue, with one account: its own hub, one stream per symbol.
        + [
            {
                "id": "live",
                "exchange": "binanceusdm",
                "mode": "live",
                "allow_live": True,
                "api_key": "k",
                "secret": "s",
            }
        ],
    }
    settings = load_settings(write_config(tmp_path / "marginguard.toml", document), env={})
    daemon = await Daemon.open(settings)
    try:
        reads = {mode: hub.all_markets for (_exchange, mode, _config), hub in daemon.hubs.items()}
    finally:
        await daemon.journal.close()
    assert reads == {"demo": accounts >= ALL_MARKETS_FROM_ACCOUNTS, "live": False}
