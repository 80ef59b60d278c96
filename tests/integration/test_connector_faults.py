"""A flaky exchange costs the connector nothing: after a dropped socket, a stall, rate limits, server errors or
garbage frames it recovers, and its picture equals the simulated exchange's (legs, sizes, entries, wallet,
marks). A stalled stream is declared stale within its threshold plus a second, reconnected, and fresh again
only once new data arrives.
"""

from __future__ import annotations

import time

import pytest

from daemon.core.backoff import Backoff
from daemon.core.events import Freshness, MarkPrice, StreamHealth
from daemon.core.types import MarginMode, Side
from daemon.exchanges.connector import Connector
from daemon.exchanges.feeds import FeedSettings
from daemon.exchanges.hub_settings import HubSettings
from daemon.exchanges.marketdata import mark_stream_name
from daemon.sim.server import SimServer
from tests.integration.connector_support import (
    EXCHANGES,
    connected,
    contracts_for,
    eventually,
    health,
    next_update,
    open_leg,
    simulator,
    unified,
    until,
    until_in_step,
)

pytestmark = pytest.mark.integration

BTC, ETH = "BTCUSDT", "ETHUSDT"
# Quiet private streams cannot be judged by silence: the reconciliation timer finds what a stall swallowed.
# A garbage frame stops ccxt's receive loop for good (an exception in its callback): only the silence tells.
QUICK_HUB = HubSettings(stale_after_s=1.0, check_every_s=0.05)
RECONCILING_FEED = FeedSettings(
    reconcile_every_s=0.75,
    confirm_after_s=0.3,
    resubscribe_grace_s=0.2,
    backoff=Backoff(initial=0.1, cap=1.0),
)


def change_the_account(sim: SimServer, step: int) -> None:
    """What happens at the exchange while the connector is impaired: a leg resizes, one opens or closes,
    money moves, the mark moves."""
    key = sim.account.api_key
    sim.engine.set_position(
        key, BTC, Side.LONG, contracts_for(sim, BTC, 0.1 * (step + 2)), entry_price=65_000.0
    )
    if step % 2:
        sim.engine.set_position(key, ETH, Side.SHORT, 0.0)
    else:
        open_leg(sim, ETH, Side.SHORT, 1.0 + step, MarginMode.CROSS, leverage=10)
    sim.engine.set_wallet(key, "USDT", 7_500.0 + 100 * step)
    sim.engine.set_mark(BTC, round(sim.engine.marks[BTC] * 0.995, 1))


def drop(sim: SimServer) -> None:
    sim.faults.drop_websockets()


def stall(sim: SimServer) -> None:
    sim.faults.set("stall", duration_s=0.5)


def rate_limited(sim: SimServer) -> None:
    # A short Retry-After (Binance's own 429 says 60 s, and the feeds wait at least that long).
    sim.faults.set("http_status", status=429, count=3, retry_after_s=1)
    sim.faults.drop_websockets()  # the reconnect and its reconciliation meet the errors


def server_error(sim: SimServer) -> None:
    sim.faults.set("http_status", status=503, count=3)
    sim.faults.drop_websockets()


def malformed(sim: SimServer) -> None:
    sim.faults.set("malformed", count=5)


FAULTS = (drop, stall, rate_limited, server_error, malformed)


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_after_each_fault_the_picture_equals_the_exchange(exchange: str) -> None:
    async with simulator(exchange, mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)
        async with connected(sim, feed=RECONCILING_FEED, hub_settings=QUICK_HUB) as (_hub, connector):
            await until_in_step(sim, connector)
            for step, fault in enumerate(FAULTS):
                fault(sim)
                change_the_account(sim, step)
                try:
                    await until_in_step(sim, connector, within_s=10.0)
                except AssertionError as failure:
                    raise AssertionError(f"after {fault.__name__}: {failure}") from None
                sim.faults.clear()
                await until(connector, lambda c: _all_priced(c), within_s=5.0)  # tiers may have met the fault
                await until(connector, _all_fresh, within_s=5.0)


def _all_fresh(connector: Connector) -> bool:
    """Every stream of the account, private and marks, is fresh again."""
    streams = ["positions", "balance", *(mark_stream_name(symbol) for symbol, _side in connector.state.legs)]
    return all(health(connector, stream) is Freshness.FRESH for stream in streams)


def _all_priced(connector: Connector) -> bool:
    return all(leg.risk is not None for leg in connector.view.legs)


@pytest.mark.parametrize(
    ("exchange", "all_markets"), [*((exchange, False) for exchange in EXCHANGES), ("binance", True)]
)
async def test_a_stalled_mark_stream_is_declared_stale_reconnected_and_fresh_only_on_new_data(
    exchange: str, all_markets: bool
) -> None:
    """Also with the stream of every market's marks (Binance's, which a hub of many accounts reads)."""
    async with simulator(exchange, mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)
        btc = unified(sim, BTC)
        stream = mark_stream_name(btc)
        settings = HubSettings(stale_after_s=1.0, check_every_s=0.05, all_markets=all_markets)
        async with connected(sim, hub_settings=settings) as (hub, connector):
            assert hub.all_markets is all_markets
            await until(connector, lambda c: health(c, stream) is Freshness.FRESH)
            threshold = hub.settings.stale_after_s
            sockets_before = sum(1 for entry in sim.engine.request_log if entry["websocket"])

            stale = next_update(
                connector,
                lambda u: (
                    isinstance(u.event, StreamHealth)
                    and u.event.stream == stream
                    and u.event.freshness is Freshness.STALE
                ),
            )
            stalled_at = time.monotonic()
            sim.faults.set("stall")
            await stale
            assert time.monotonic() - stalled_at <= threshold + 1.0

            # The hub reconnected on its own: a new websocket was opened while the stall lasts.
            await eventually(lambda: _new_socket(sim, sockets_before), within_s=threshold)
            assert health(connector, stream) is not Freshness.FRESH

            fresh = next_update(
                connector,
                lambda u: (
                    isinstance(u.event, StreamHealth)
                    and u.event.stream == stream
                    and u.event.freshness is Freshness.FRESH
                ),
            )
            marks_seen = next_update(
                connector, lambda u: isinstance(u.event, MarkPrice) and u.event.symbol == btc
            )
            sim.faults.clear("stall")
            sim.engine.set_mark(BTC, sim.engine.marks[BTC] + 10.0)
            await marks_seen
            await fresh
            assert connector.state.marks[btc].price == sim.engine.marks[BTC]


def _new_socket(sim: SimServer, before: int) -> bool:
    return sum(1 for entry in sim.engine.request_log if entry["websocket"]) > before


async def test_a_position_stream_that_missed_a_change_is_declared_stale_and_reconnected() -> None:
    """Binance pushes positions only on change, so silence proves nothing: the reconciliation does. A change
    the stream never delivered (swallowed by a stall) is found by the snapshot, confirmed by a second one,
    and the stream is declared STALE and reconnected."""
    async with simulator("binance", mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)
        async with connected(sim, feed=RECONCILING_FEED, hub_settings=QUICK_HUB) as (_hub, connector):
            await until_in_step(sim, connector)
            sockets_before = sum(1 for entry in sim.engine.request_log if entry["websocket"])
            deaf = next_update(
                connector,
                lambda u: (
                    isinstance(u.event, StreamHealth)
                    and u.event.stream == "positions"
                    and u.event.freshness is Freshness.STALE
                ),
            )
            sim.faults.set("stall")
            open_leg(sim, ETH, Side.SHORT, 1.0, MarginMode.CROSS, leverage=10)
            update = await deaf
            assert isinstance(update.event, StreamHealth) and unified(sim, ETH) in update.event.detail
            await eventually(lambda: _new_socket(sim, sockets_before))
            sim.faults.clear("stall")
            await until_in_step(sim, connector)
