"""An account with nothing open: after a dropped socket its private streams are fresh again once resubscribed.

Found by the market-path harness (okx-1, once the position ledger stopped re-applying ccxt's cached rows): OKX
answers a positions subscription with the account's positions, an empty list when nothing is open, and pushes
nothing more until something changes. The feed took that answer for a bare acknowledgement, so the stream stayed
DOWN after a routine reconnect, and a critical stale-data alert followed 5 s later for an account marginguard
was watching perfectly well. (Before, a stale cached row re-applied with the answer had hidden this.)
"""

from __future__ import annotations

import pytest

from daemon.core.events import Freshness
from daemon.core.types import MarginMode, Side
from tests.integration.connector_support import (
    EXCHANGES,
    connected,
    health,
    open_leg,
    simulator,
    until,
    until_in_step,
)

pytestmark = pytest.mark.integration

BTC = "BTCUSDT"
RECOVERY_BOUND_S = 4.0  # below the 5 s a stale-data alert waits for


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_private_streams_of_an_empty_account_recover_after_a_drop(exchange: str) -> None:
    async with simulator(exchange, mark_interval_s=0.25) as sim, connected(sim) as (_hub, connector):
        await until_in_step(sim, connector)
        streams = ("positions", "balance")
        await until(connector, lambda c: all(health(c, name) is Freshness.FRESH for name in streams))

        sim.faults.set("drop")
        await until(connector, lambda c: health(c, "positions") is not Freshness.FRESH)
        await until(
            connector,
            lambda c: all(health(c, name) is Freshness.FRESH for name in streams),
            within_s=RECOVERY_BOUND_S,
        )

        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)  # and the stream still carries
        await until_in_step(sim, connector)
