"""With top-up off, marginguard only warns: the slow bleed runs its course, the simulator liquidates the position
and the daemon tells so."""

from __future__ import annotations

import contextlib
import math
import signal
from pathlib import Path

from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from tests.e2e.support import (
    UNIFIED_SYMBOL,
    Bleed,
    DaemonProcess,
    account_for,
    config_document,
    eventually,
    first,
    free_port,
    index_of,
    webhook_alerts,
    webhook_sink,
    write_config,
)

SPEED = 4.0


async def test_without_top_up_the_position_is_liquidated_and_the_liquidation_is_told(tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(SimServer("binance"))
        receiver = await stack.enter_async_context(Receiver())
        bleed = Bleed(sim, SPEED)
        bleed.setup()
        stack.push_async_callback(bleed.stop)
        liquidation_price = bleed.liquidation_price()
        assert liquidation_price is not None

        port = free_port()
        document = config_document(
            tmp_path, port, [account_for("main", sim)], [webhook_sink(receiver.url)], topup=False
        )
        daemon = await stack.enter_async_context(
            DaemonProcess(write_config(tmp_path / "marginguard.toml", document), port)
        )
        await daemon.wait_ready()
        bleed.play()

        await eventually(lambda: sim.engine.liquidations, 30, "the simulator to liquidate", daemon)
        liquidated = await eventually(
            lambda: first(webhook_alerts(receiver), "liquidated"), 15, "the liquidation alert", daemon
        )
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(10) == 0, daemon.tail()

        [record] = sim.engine.liquidations
        assert record["symbol"] == "BTCUSDT" and record["side"] == "long"
        assert math.isclose(record["liquidation_price"], liquidation_price, rel_tol=1e-9)
        assert liquidated["severity"] == "critical" and liquidated["resolved"] is False
        assert (liquidated["account"], liquidated["symbol"], liquidated["side"]) == (
            "main",
            UNIFIED_SYMBOL,
            "long",
        )

        # It had been warned, then escalated, before; and nothing was ever sent to the exchange but reads.
        alerts = webhook_alerts(receiver)
        warning = first(alerts, "liquidation_risk", "warning")
        critical = first(alerts, "liquidation_risk", "critical")
        assert warning and critical, [a["summary"] for a in alerts]
        assert index_of(alerts, warning) < index_of(alerts, critical) < index_of(alerts, liquidated)
        assert first(alerts, "topup_done") is None and first(alerts, "topup_failed") is None
        assert bleed.add_margin_requests() == []
