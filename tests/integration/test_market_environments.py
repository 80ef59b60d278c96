"""Accounts of one exchange in two environments (say demo and live, each on its own server) are judged on their
own server's marks, through hubs whose public clients carry no credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.core.types import MarginMode, Side
from daemon.core.view import AccountView
from daemon.sim.server import SimServer
from tests.e2e.support import account_for
from tests.integration.daemon_support import eventually, running_daemon

pytestmark = pytest.mark.integration

BTC, UNIFIED_BTC = "BTCUSDT", "BTC/USDT:USDT"


def _mark_of(view: AccountView | None) -> float | None:
    legs = view.legs if view is not None else ()
    return next((leg.mark_price for leg in legs if leg.key[0] == UNIFIED_BTC), None)


async def test_demo_and_live_accounts_of_one_exchange_follow_their_own_servers_marks(tmp_path: Path) -> None:
    async with (
        SimServer("binance", mark_interval_s=0.25) as demo,
        SimServer("binance", mark_interval_s=0.25) as live,
    ):
        for sim, mark in ((demo, 60_000.0), (live, 64_000.0)):
            sim.engine.set_mark(BTC, mark)
            sim.engine.set_position(
                sim.account.api_key,
                BTC,
                Side.LONG,
                0.1,
                entry_price=mark,
                margin_mode=MarginMode.CROSS,
                leverage=5,
            )
        accounts = [
            account_for("demo-account", demo),
            {**account_for("live-account", live), "mode": "live", "allow_live": True},
        ]
        async with running_daemon(tmp_path, accounts) as running:
            runners = {runner.account_id: runner for runner in running.daemon.runners}
            servers = {"demo-account": demo, "live-account": live}

            def each_on_its_own_marks() -> bool:
                return all(
                    _mark_of(runners[name].view) == sim.engine.marks[BTC] for name, sim in servers.items()
                )

            await eventually(each_on_its_own_marks, what="each account's mark is its own server's")
            demo.engine.set_mark(BTC, 59_000.0)
            live.engine.set_mark(BTC, 65_500.0)
            await eventually(each_on_its_own_marks, what="each account follows its own server's moves")

            hubs = list(running.daemon.hubs.values())
            assert len(hubs) == 2
            assert {runner.hub for runner in runners.values()} == set(hubs)
            for hub in hubs:  # public data only: no key ever leaves for a market-data server
                assert not hub.client.apiKey and not hub.client.secret
