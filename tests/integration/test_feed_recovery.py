"""Streams come back by themselves, quickly: an unreadable frame costs one reconnect (not the stale threshold),
and the account is declared fresh as soon as a snapshot shows it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from daemon.core.events import Freshness, StreamHealth
from daemon.core.types import MarginMode, Side
from daemon.exchanges.marketdata import HubSettings, mark_stream_name
from tests.integration.connector_support import (
    EXCHANGES,
    connected,
    eventually,
    health,
    open_leg,
    simulator,
    unified,
    until,
)

pytestmark = pytest.mark.integration

BTC = "BTCUSDT"
# A threshold far longer than the test may take: only a real recovery brings the marks back in time.
PATIENT_HUB = HubSettings(stale_after_s=30.0, check_every_s=0.1)


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_one_malformed_frame_costs_a_reconnect_not_the_stale_threshold(exchange: str) -> None:
    async with simulator(exchange, mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)
        btc = unified(sim, BTC)
        stream = mark_stream_name(btc)
        async with connected(sim, hub_settings=PATIENT_HUB) as (hub, connector):
            await until(connector, lambda c: health(c, stream) is Freshness.FRESH)
            verdicts: list[Freshness] = []
            updates = connector.updates()

            sim.faults.set("malformed", count=1)
            await eventually(lambda: "malformed" not in sim.faults.active())  # the garbage went out
            corrupted_at = time.monotonic()
            sim.engine.set_mark(BTC, round(sim.engine.marks[BTC] * 1.01, 1))
            # Before: ccxt's receive loop died on the frame and the marks froze for the whole 30 s threshold.
            await until(
                connector,
                lambda c: btc in c.state.marks and c.state.marks[btc].price == sim.engine.marks[BTC],
                within_s=5.0,
            )
            await until(connector, lambda c: health(c, stream) is Freshness.FRESH, within_s=5.0)
            recovered_s = time.monotonic() - corrupted_at
            async with asyncio.timeout(2.0):  # everything published since the fault is buffered already
                async for update in updates:
                    for event in update.folded:
                        if isinstance(event, StreamHealth) and event.stream == stream:
                            verdicts.append(event.freshness)
                    if update.event is connector.state.health.get(stream):
                        break
            assert recovered_s < PATIENT_HUB.stale_after_s / 4
            assert Freshness.STALE not in verdicts, verdicts
            assert hub.forced_reconnects == 0  # the frame itself failed the socket, not the silence
