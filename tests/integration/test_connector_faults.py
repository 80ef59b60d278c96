"""A flaky exchange costs the connector nothing: after a dropped socket, a stall, rate limits, server errors or
garbage frames it recovers, and its picture equals the simulated exchange's (legs, sizes, entries, wallet,
marks). A stalled stream is declared stale within its threshold plus a second, reconnected, and fresh again
only once new data arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from daemon.core.events import Freshness, MarkPrice, StreamHealth
from daemon.core.types import MarginMode, Side
from daemon.exchanges.connector import Connector
from daemon.exchanges.feeds import FeedSettings
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
RECONCILING_FEED = FeedSettings(reconcile_every_s=1.5, confirm_after_s=0.3)


def change_the_account(sim: SimServer) -> None:
    """What happens at the exchange while the connector is impaired: a leg grows, one opens, money moves.

    Entries stay at the mark: the balance figure ccxt reports includes unrealised PnL on some exchanges (see
    the report on `parse.wallet_balance`), and this test is about recovery, not that figure.
    """
    key = sim.account.api_key
    mark = sim.engine.marks[BTC]
    sim.engine.set_position(key, BTC, Side.LONG, contracts_for(sim, BTC, 0.3), entry_price=mark)
    open_leg(sim, ETH, Side.SHORT, 2.0, MarginMode.CROSS, leverage=10)
    sim.engine.set_wallet(key, "USDT", 7_500.0)


def drop(sim: SimServer) -> None:
    sim.faults.drop_websockets()
    change_the_account(sim)


def stall(sim: SimServer) -> None:
    sim.faults.set("stall", duration_s=2.5)
    change_the_account(sim)


def http_status(status: int) -> Callable[[SimServer], None]:
    def inject(sim: SimServer) -> None:
        sim.faults.set("http_status", status=status, count=4)
        sim.faults.drop_websockets()  # the reconnect and its reconciliation meet the errors
        change_the_account(sim)

    inject.__name__ = f"http_{status}"
    return inject


def malformed(sim: SimServer) -> None:
    sim.faults.set("malformed", count=5)
    change_the_account(sim)


FAULTS = [drop, stall, http_status(429), http_status(503), malformed]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_after_a_fault_the_picture_equals_the_exchange(
    exchange: str, fault: Callable[[SimServer], None]
) -> None:
    async with simulator(exchange, mark_interval_s=0.5) as sim:
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)
        async with connected(sim, feed=RECONCILING_FEED) as (_hub, connector):
            await until_in_step(sim, connector)
            fault(sim)
            await until_in_step(sim, connector, within_s=15.0)
            sim.faults.clear()
            eth = unified(sim, ETH)

            def eth_priced(c: Connector) -> bool:
                leg = c.view.leg(eth, "short")
                return leg is not None and leg.risk is not None

            await until(connector, eth_priced)  # its tiers may have met the fault: fetched on a retry


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_a_stalled_mark_stream_is_declared_stale_reconnected_and_fresh_only_on_new_data(
    exchange: str,
) -> None:
    async with simulator(exchange, mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)
        btc = unified(sim, BTC)
        stream = mark_stream_name(btc)
        async with connected(sim) as (hub, connector):
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
