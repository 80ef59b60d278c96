"""Binance's position risk (v3, which ccxt reads) carries no leverage: marginguard reads it from the account's
symbol configuration (at a snapshot holding a leg not yet answered for, else every five minutes), so status, the
status page and `calc --compare-modes` show the leverage the exchange holds. Leverage only informs (isolated
margin is read as it is): a failed read never holds the picture up.
"""

from __future__ import annotations

import pytest

from daemon.core.types import MarginMode, Side
from tests.integration.connector_support import (
    connected,
    eventually,
    open_leg,
    simulator,
    unified,
    until,
    until_in_step,
)

pytestmark = pytest.mark.integration

BTC, ETH = "BTCUSDT", "ETHUSDT"
SYMBOL_CONFIG_PATH = "/fapi/v1/symbolConfig"


def _leverage(connector: object, symbol: str, side: Side) -> float | None:
    facts = connector.state.legs.get((symbol, side))  # type: ignore[attr-defined]
    return None if facts is None else facts.leverage


async def test_binance_legs_carry_the_leverage_the_exchange_holds_for_each_symbol() -> None:
    async with simulator("binance", mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.05, MarginMode.ISOLATED, leverage=7)
        open_leg(sim, ETH, Side.SHORT, 1.0, MarginMode.CROSS, leverage=12)
        btc, eth = unified(sim, BTC), unified(sim, ETH)
        async with connected(sim) as (_hub, connector):
            await until_in_step(sim, connector)
            await until(connector, lambda c: _leverage(c, btc, Side.LONG) == 7.0)
            assert _leverage(connector, eth, Side.SHORT) == 12.0


async def test_a_leverage_read_that_fails_leaves_the_positions_watched_and_is_made_good_at_a_later_snapshot() -> (
    None
):
    async with simulator("binance", mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.05, MarginMode.ISOLATED, leverage=9)
        btc = unified(sim, BTC)
        sim.faults.set("http_status", status=500, count=1_000, path=SYMBOL_CONFIG_PATH)
        async with connected(sim) as (_hub, connector):
            await until_in_step(sim, connector)  # the picture is whole without it
            assert (btc, Side.LONG) in connector.state.legs
            assert _leverage(connector, btc, Side.LONG) is None  # unknown, not a guess
            sim.faults.clear("http_status")
            connector.feed.request_reconcile()
            await until(connector, lambda c: _leverage(c, btc, Side.LONG) == 9.0)


def _leverage_reads(sim: object) -> int:
    return sum(1 for entry in sim.engine.request_log if entry["path"] == SYMBOL_CONFIG_PATH)  # type: ignore[attr-defined]


async def test_leverage_is_asked_again_for_a_new_leg_not_at_every_reconciliation() -> None:
    async with simulator("binance", mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.05, MarginMode.ISOLATED, leverage=7)
        btc, eth = unified(sim, BTC), unified(sim, ETH)
        async with connected(sim) as (_hub, connector):
            await until(connector, lambda c: _leverage(c, btc, Side.LONG) == 7.0)
            asked = _leverage_reads(sim)
            for _ in range(3):  # reconciliations with every held leg answered for: no new read
                taken = connector.feed.snapshots
                connector.feed.request_reconcile()
                await eventually(lambda taken=taken: connector.feed.snapshots > taken)
            assert _leverage_reads(sim) == asked
            assert _leverage(connector, btc, Side.LONG) == 7.0  # the answer stays on the leg
            open_leg(sim, ETH, Side.SHORT, 1.0, MarginMode.CROSS, leverage=12)
            connector.feed.request_reconcile()
            await until(connector, lambda c: _leverage(c, eth, Side.SHORT) == 12.0)
            assert _leverage_reads(sim) == asked + 1
