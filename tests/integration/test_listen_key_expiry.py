"""Binance's user-data stream says `listenKeyExpired` and goes silent: the feed reconnects with a new key at once.

Found by the market-path harness (binance seed 4 of `bench/market_paths.py --first-seed 2`): ccxt has no handler
for the event, so its socket stayed open and silent; a position stream that pushes only on change cannot be
judged by silence, and only the next reconciliation (60 s, then a confirming one) found the stream deaf. Meanwhile
a top-up's margin change and a liquidation were never pushed, and the picture was wrong for over a minute.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from daemon.core.backoff import Backoff
from daemon.core.events import Freshness, StreamHealth
from daemon.core.types import MarginMode, Side
from tests.integration.connector_support import (
    FAST_FEED,
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
# Far below the reconciliation period (30 s here): only a reconnect brings the change this soon.
WITHIN_S = 5.0
# The backoff of a real deployment: its first retry waits at most 0.4 s, the sixth up to 12.8 s.
DAEMON_LIKE_FEED = replace(FAST_FEED, backoff=Backoff(initial=0.4, cap=30.0))
# One reconnect: the first retry's longest wait, the dial and the resubscription, with room for a busy machine.
ONE_RECONNECT_S = 2.5


async def test_an_expired_listen_key_costs_a_reconnect_not_a_deaf_stream() -> None:
    async with simulator("binance", mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)
        async with connected(sim) as (_hub, connector):
            await until_in_step(sim, connector)
            dropped = next_update(
                connector,
                lambda u: (
                    isinstance(u.event, StreamHealth)
                    and u.event.stream == "positions"
                    and u.event.freshness is Freshness.DOWN
                ),
            )
            reconnected = next_update(
                connector,
                lambda u: (
                    isinstance(u.event, StreamHealth)
                    and u.event.stream == "positions"
                    and u.event.freshness is Freshness.FRESH
                ),
            )
            sim.faults.set("listen_key_expired")
            sim.faults.clear("listen_key_expired")
            down = (await dropped).event
            assert isinstance(down, StreamHealth) and "listenKeyExpired" in down.detail  # said as it is
            await reconnected

            sim.engine.open_position(sim.account.api_key, ETH, Side.SHORT, 1.0)  # pushed on the new socket
            eth = unified(sim, ETH)
            await until(connector, lambda c: (eth, Side.SHORT) in c.state.legs, within_s=WITHIN_S)
            await until_in_step(sim, connector)


async def test_a_stream_that_pushes_only_on_change_reconnects_as_fast_the_seventh_time_as_the_first() -> None:
    """Binance seed 11010 of `bench/market_paths.py`: the balance stream carries nothing while the wallet stands
    still, so its backoff, reset only by data, grew with every drop of the day, and one more expiry kept it
    down past the stale threshold. Each reconnect that carries the subscription again now starts afresh."""
    async with simulator("binance", mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)
        async with connected(sim, feed=DAEMON_LIKE_FEED) as (_hub, connector):
            await until_in_step(sim, connector)
            took: list[float] = []
            for _ in range(7):
                fresh = {
                    stream: next_update(
                        connector,
                        lambda u, s=stream: (
                            isinstance(u.event, StreamHealth)
                            and u.event.stream == s
                            and u.event.freshness is Freshness.FRESH
                        ),
                    )
                    for stream in ("positions", "balance")
                }
                expired_at = time.monotonic()
                sim.faults.set("listen_key_expired")
                sim.faults.clear("listen_key_expired")
                for update in fresh.values():
                    await update
                took.append(time.monotonic() - expired_at)
            assert max(took) < ONE_RECONNECT_S, [f"{t:.1f}" for t in took]
            sim.engine.transfer(sim.account.api_key, "USDT", 100.0)  # the last session carries pushes
            await until_in_step(sim, connector)
