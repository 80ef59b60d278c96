"""A feed that dies is never silent: it fails whoever runs its connector, the account's runner fails with it,
the supervisor starts it again, and /readyz says the account is not ready until it sees again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daemon.core.types import MarginMode, Side
from daemon.exchanges.connector import Connector, ConnectorUpdate
from daemon.exchanges.marketdata import hub_for
from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from tests.e2e.support import account_for as configured_account
from tests.e2e.support import webhook_alerts, webhook_sink
from tests.integration.connector_support import (
    FAST_FEED,
    FAST_HUB,
    WAIT_S,
    account_for,
    open_leg,
    unified,
    until,
)
from tests.integration.daemon_support import eventually, eventually_async, running_daemon

pytestmark = pytest.mark.integration

BTC, ETH = "BTCUSDT", "ETHUSDT"


class Unreadable(Exception):
    """What the connector's consumer raises on a picture it cannot take."""


async def test_a_feed_that_dies_fails_the_task_running_its_connector() -> None:
    async with SimServer("binance", mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)
        eth = unified(sim, ETH)

        def consumer(update: ConnectorUpdate) -> None:
            if any(symbol == eth for symbol, _side in update.state.legs):
                raise Unreadable(f"cannot take a picture holding {eth}")

        account = account_for(sim)
        async with hub_for(account, FAST_HUB) as hub:
            connector = Connector(account, hub, FAST_FEED, on_update=consumer)
            # Before: the failure was logged and swallowed, the feed ran on without the event, and the block
            # below waited out its deadline with the account "fresh".
            with pytest.raises(ExceptionGroup) as failed:
                async with asyncio.timeout(WAIT_S), connector:
                    await until(connector, lambda c: c.feed.snapshots >= 2)
                    open_leg(sim, ETH, Side.SHORT, 1.0, MarginMode.CROSS, leverage=10)
                    await asyncio.Event().wait()  # the connector's failure is the only way out
            assert failed.value.subgroup(Unreadable) is not None, failed.value
            assert not connector.running
            assert (connector.stopped_because() or "").startswith("feed failed: Unreadable")


async def test_a_feed_that_cannot_come_back_fails_its_runner_which_is_restarted_and_not_ready_meanwhile(
    tmp_path: Path,
) -> None:
    """A long exchange outage: the private streams stay down past 4 x stale_after_s, the feed gives up, its runner
    fails and is restarted on a new client, and /readyz says not ready until the account is seen again."""
    async with SimServer("binance", mark_interval_s=0.25) as sim:
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.CROSS, leverage=10)
        rules = {"stale_after_s": 1}  # the feed gives up after 4 s down
        async with running_daemon(tmp_path, [configured_account("main", sim)], rules) as running:
            daemon = running.daemon
            await eventually_async(running.ready, what="ready at first")
            sim.faults.set("restart", down_s=8.0)
            await eventually(
                lambda: daemon.restarts.get("main", 0) >= 1, what="the runner failed and restarted"
            )
            status, body = await running.readyz()
            assert status == 503, body
            assert body["accounts"]["main"] != "fresh"

            # The shared mark stream comes back on its own backoff (capped at 30 s) after the outage.
            await eventually_async(running.ready, within_s=40.0, what="ready again once the exchange is back")
            runner = daemon.runners[0]
            assert runner.view is not None and [leg.key[0] for leg in runner.view.legs] == [unified(sim, BTC)]


async def test_a_leg_liquidated_while_its_runner_restarts_is_told_as_a_liquidation(tmp_path: Path) -> None:
    """Found by the market-path harness (binance seed 7007): a 429 with Retry-After held the listen key back, the
    feed gave up and its runner was restarted; meanwhile a gap liquidated a leg that had never been near a
    threshold. The restarted run's first picture simply lacked it, and only the first run of a daemon asked the
    exchange's records about legs gone while nobody watched: nothing at all was said about the liquidation."""
    async with SimServer("binance", mark_interval_s=0.25) as sim, Receiver() as receiver:
        key = sim.account.api_key
        sim.engine.set_wallet(key, "USDT", 10_000.0)
        open_leg(sim, BTC, Side.LONG, 0.1, MarginMode.ISOLATED, leverage=10)  # about 10 % from liquidation
        btc = unified(sim, BTC)
        liquidation = sim.engine.liquidation_price(key, BTC, Side.LONG)
        assert liquidation is not None
        rules = {"stale_after_s": 1}  # the feed gives up after 4 s down
        sinks = [webhook_sink(receiver.url)]
        async with running_daemon(tmp_path, [configured_account("main", sim)], rules, sinks) as running:
            daemon = running.daemon
            await eventually_async(running.ready, what="ready at first")
            sim.faults.set("restart", down_s=8.0)
            sim.engine.set_mark(BTC, round(liquidation * 0.95, 1))  # liquidated while the exchange is away
            assert [r["symbol"] for r in sim.engine.liquidations] == [BTC]
            await eventually(
                lambda: daemon.restarts.get("main", 0) >= 1, what="the runner failed and restarted"
            )
            await eventually(
                lambda: any(a["symbol"] == btc for a in webhook_alerts(receiver)),
                within_s=40.0,
                what="what the restarted runner says about BTC",
            )
        told = [
            (a["kind"], a["severity"], a["resolved"]) for a in webhook_alerts(receiver) if a["symbol"] == btc
        ]
        assert told == [("liquidated", "critical", False)], told
