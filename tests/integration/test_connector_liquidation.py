"""The connector follows a cross account to its liquidation: at every mark step its model's liquidation prices
agree with the simulated exchange's own, and the liquidation is seen. Unmodified ccxt against the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from daemon.core.state import ChangeKind
from daemon.core.types import MarginMode, Side
from daemon.exchanges.connector import Connector
from tests.integration.connector_support import (
    EXCHANGES,
    connected,
    next_update,
    open_leg,
    simulator,
    unified,
    until,
    until_in_step,
)

pytestmark = pytest.mark.integration

BTC, ETH = "BTCUSDT", "ETHUSDT"


def _mark_is(symbol: str, price: float) -> Callable[[Connector], bool]:
    return lambda connector: connector.state.marks[symbol].price == price


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_model_liquidation_prices_track_the_exchange_down_to_the_liquidation(exchange: str) -> None:
    async with simulator(exchange, mark_interval_s=0.5) as sim:
        key = sim.account.api_key
        sim.engine.set_wallet(key, "USDT", 4_000.0)
        open_leg(sim, BTC, Side.LONG, 0.5, MarginMode.CROSS, leverage=20)
        open_leg(sim, ETH, Side.LONG, 4.0, MarginMode.CROSS, leverage=20)
        btc, eth = unified(sim, BTC), unified(sim, ETH)
        entry = sim.engine.marks[BTC]
        liquidation = sim.engine.liquidation_price(key, BTC, Side.LONG)
        assert liquidation is not None and 0 < liquidation < entry

        async with connected(sim) as (_hub, connector):
            await until_in_step(sim, connector)
            for fraction in (0.0, 0.3, 0.6, 0.9, 0.97):
                price = round(entry - fraction * (entry - liquidation), 1)
                sim.engine.set_mark(BTC, price)
                await until(connector, _mark_is(btc, price))
                for symbol, market_id in ((btc, BTC), (eth, ETH)):
                    leg = connector.view.leg(symbol, "long")
                    assert leg is not None and leg.risk is not None, connector.view.unknown_because
                    theirs = sim.engine.liquidation_price(key, market_id, Side.LONG)
                    assert theirs is not None and leg.risk.liquidation_price is not None
                    assert math.isclose(leg.risk.liquidation_price, theirs, rel_tol=1e-6), (symbol, price)

            closing = next_update(
                connector,
                lambda u: any(
                    c.kind in (ChangeKind.CLOSED, ChangeKind.VANISHED) and c.symbol == btc for c in u.changes
                ),
            )
            crash = round(liquidation * 0.98, 1)
            sim.engine.set_mark(BTC, crash)
            assert sim.engine.liquidations, "the simulated exchange liquidated nothing"
            await closing
            await until_in_step(sim, connector)
            assert connector.view.leg(btc, "long") is None


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_an_isolated_leg_is_priced_like_the_exchange_and_its_liquidation_seen(exchange: str) -> None:
    async with simulator(exchange, mark_interval_s=0.5) as sim:
        key = sim.account.api_key
        open_leg(sim, BTC, Side.SHORT, 0.2, MarginMode.ISOLATED, leverage=25)
        btc = unified(sim, BTC)
        liquidation = sim.engine.liquidation_price(key, BTC, Side.SHORT)
        assert liquidation is not None

        async with connected(sim) as (_hub, connector):
            await until_in_step(sim, connector)
            leg = connector.view.leg(btc, "short")
            assert leg is not None and leg.risk is not None and leg.risk.liquidation_price is not None
            assert math.isclose(leg.risk.liquidation_price, liquidation, rel_tol=1e-6)

            gone = next_update(
                connector,
                lambda u: any(c.symbol == btc and c.kind is not ChangeKind.OPENED for c in u.changes),
            )
            sim.engine.set_mark(BTC, round(liquidation * 1.01, 1))
            assert [entry["symbol"] for entry in sim.engine.liquidations] == [BTC]
            await gone
            await until_in_step(sim, connector)
            assert connector.view.legs == ()
