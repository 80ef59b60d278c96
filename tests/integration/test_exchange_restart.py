"""The daemon rides out an exchange restart shorter than its `stale_after_s`: every stream comes back by itself,
/readyz is green again, and nobody is alerted (a reconnect within the threshold says nothing)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from daemon.core.types import MarginMode, Side
from daemon.sim.server import SimServer
from tests.e2e.support import account_for
from tests.integration.connector_support import open_leg
from tests.integration.daemon_support import eventually_async, running_daemon

pytestmark = pytest.mark.integration

BTC = "BTCUSDT"
STALE_AFTER_S = 30.0
DOWN_S = 3.0


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_a_short_exchange_restart_costs_no_alert_and_readiness_comes_back(
    exchange: str, tmp_path: Path
) -> None:
    async with SimServer(exchange, mark_interval_s=0.5) as sim:
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)
        rules = {"stale_after_s": STALE_AFTER_S}
        async with running_daemon(tmp_path, [account_for("main", sim)], rules) as running:

            async def not_ready() -> bool:
                return not await running.ready()

            await eventually_async(running.ready, what="ready at first")
            sim.faults.set("restart", down_s=DOWN_S)
            restarted_at = time.monotonic()
            await eventually_async(not_ready, what="not ready while the exchange is down")
            # Before: Binance's private streams dialled the forgotten listen key for 20 minutes.
            await eventually_async(running.ready, within_s=STALE_AFTER_S, what="ready again")
            back_after_s = time.monotonic() - restarted_at
            assert back_after_s < STALE_AFTER_S
            assert running.daemon.restarts.get("main", 0) == 0  # the streams came back on their own
            assert not [a for a in await running.daemon.journal.history() if a["kind"] == "stale_data"]
