"""A one-way position flipped through zero, through real ccxt against the simulated exchange: the connector
shows the new side only, the position stream stays trusted, and the reconciliation never declares it deaf.

Found by the market-path harness (binance-1): after a flip ccxt's position cache (keyed by symbol and side)
still held the old side's row; the feed re-applied it and kept the old leg, the next two snapshots disagreed,
the stream was declared STALE ("missed changes") and reconnected, and a stale-data alert followed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from daemon.core.backoff import Backoff
from daemon.core.events import Freshness, PositionSnapshot, StreamHealth
from daemon.core.types import MarginMode, Side
from daemon.exchanges.connector import Connector, ConnectorUpdate
from daemon.exchanges.feeds import FeedSettings
from tests.integration.connector_support import (
    connected,
    contracts_for,
    open_leg,
    simulator,
    unified,
    until,
    until_in_step,
)

pytestmark = pytest.mark.integration

BTC = "BTCUSDT"
# Reconcile often and confirm a disagreement quickly, so a false "missed changes" verdict shows within seconds.
RECONCILING_FEED = FeedSettings(
    reconcile_every_s=0.4,
    reconcile_after_thin_push_s=0.2,
    confirm_after_s=0.2,
    resubscribe_grace_s=0.2,
    backoff=Backoff(initial=0.1, cap=1.0),
)


def only_side(symbol: str, side: Side) -> Callable[[Connector], bool]:
    return lambda c: set(c.state.legs) == {(symbol, side)}


def snapshots_after(taken: int, more: int) -> Callable[[Connector], bool]:
    return lambda c: c.feed.snapshots >= taken + more


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_a_one_way_flip_shows_the_new_side_and_keeps_the_stream_trusted(exchange: str) -> None:
    async with simulator(exchange, mark_interval_s=0.25) as sim:
        key = sim.account.api_key
        open_leg(sim, BTC, Side.SHORT, 0.2, MarginMode.CROSS, leverage=5)
        async with connected(sim, feed=RECONCILING_FEED) as (_hub, connector):
            await until_in_step(sim, connector)
            btc = unified(sim, BTC)
            seen: list[ConnectorUpdate] = []
            updates = connector.updates()

            async def record() -> None:
                async for update in updates:
                    seen.append(update)

            recorder = asyncio.ensure_future(record())
            try:
                sides = [Side.LONG, Side.SHORT, Side.LONG]  # short -> long -> short -> long
                for side in sides:
                    size = sum(p.contracts for p in sim.engine.account(key).positions if p.symbol == BTC)
                    sim.engine.open_position(key, BTC, side, size + contracts_for(sim, BTC, 0.1))
                    await until(connector, only_side(btc, side))
                    # Three more snapshots: the flip judged, and a disagreement (if any) confirmed.
                    await until(connector, snapshots_after(connector.feed.snapshots, 3))
                await until_in_step(sim, connector)
            finally:
                recorder.cancel()

            unhealthy = [
                u.event
                for u in seen
                if isinstance(u.event, StreamHealth) and u.event.freshness is not Freshness.FRESH
            ]
            assert unhealthy == []
            # Between pushes and snapshots the picture never held both sides of the one-way position.
            both = [u.event for u in seen if {(btc, Side.LONG), (btc, Side.SHORT)} <= set(u.state.legs)]
            assert both == []
            assert sum(isinstance(u.event, PositionSnapshot) for u in seen) >= 3 * len(sides)


# Reconciling only every 30 s: a flip must reach the picture through the stream itself.
PUSHED_ONLY_FEED = FeedSettings(
    reconcile_every_s=30.0,
    confirm_after_s=0.3,
    resubscribe_grace_s=0.2,
    backoff=Backoff(initial=0.1, cap=1.0),
)


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_a_flip_pushed_as_a_close_then_an_open_shows_the_new_side_at_once(exchange: str) -> None:
    """Found by the market-path soak (bybit seed 8007): a one-way flip reaches the stream as two messages, the
    position going flat, then the new side. ccxt answered the waiting watch with the first; the second only
    reached its cache, where nothing looked until the next push of anything (30 s later): the flipped leg was
    missing from the picture, unwatched, and was liquidated meanwhile."""
    async with simulator(exchange, mark_interval_s=0.25) as sim:
        key = sim.account.api_key
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.ISOLATED, leverage=5)
        async with connected(sim, feed=PUSHED_ONLY_FEED) as (_hub, connector):
            btc = unified(sim, BTC)
            # A slow link: frames queued together arrive together, as after a hiccup on a loaded machine.
            sim.faults.set("delay", ms=300)
            for side in (Side.SHORT, Side.LONG, Side.SHORT):
                size = sum(p.contracts for p in sim.engine.account(key).positions if p.symbol == BTC)
                sim.engine.open_position(key, BTC, side, size + contracts_for(sim, BTC, 0.1))
                await until(connector, only_side(btc, side), within_s=3.0)
