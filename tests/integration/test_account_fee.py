"""Bybit's maintenance margin holds the fee to close, at the rate this account pays: read from the exchange, and
read again until it answers.

Found by the market-path harness (bybit seed 12003 of `bench/market_paths.py --first-seed 12000`): the account's
fee-rate read fell in a burst of 502s, ccxt's guessed rate (0.06 % against the 0.05 % charged) stayed for the
runner's life, and every liquidation price of the symbol was 1e-4 off the exchange's (7 USDT on BTC).
"""

from __future__ import annotations

import pytest

from daemon.core.types import MarginMode, Side
from tests.integration.connector_support import connected, open_leg, simulator, unified, until, until_in_step

pytestmark = pytest.mark.integration

BTC = "BTCUSDT"
FEE_RATE_PATH = "/v5/account/fee-rate"


async def test_a_fee_rate_the_exchange_would_not_give_is_asked_again_until_it_does() -> None:
    async with simulator("bybit", mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.SHORT, 0.015, MarginMode.ISOLATED, leverage=10)
        charged = sim.engine.markets[BTC].taker_fee
        btc = unified(sim, BTC)
        sim.faults.set("http_status", status=502, count=3, path=FEE_RATE_PATH)
        async with connected(sim) as (_hub, connector):
            await until_in_step(sim, connector)
            # Meanwhile ccxt's guess stands in, no lower than what the account pays: the requirement is not
            # understated while the account's own rate is unknown.
            assert connector.state.rules[btc].taker_fee_rate >= charged
            await until(connector, lambda c: c.state.rules[btc].taker_fee_rate == charged)
            assert "http_status" not in sim.faults.active()  # every refusal was spent on a read of the rate
