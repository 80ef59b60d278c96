"""Each account's mark streams are judged on its own `stale_after_s` (per account, and per symbol within it),
although accounts on one server share one mark stream per symbol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.app.settings import load_settings
from daemon.app.wiring import feed_settings
from daemon.core.events import Freshness
from daemon.core.types import MarginMode, Side
from daemon.exchanges.marketdata import mark_stream_name
from daemon.sim.server import SimServer
from tests.e2e.support import account_for, write_config
from tests.integration.daemon_support import eventually, eventually_async, running_daemon

pytestmark = pytest.mark.integration

BTC, UNIFIED_BTC = "BTCUSDT", "BTC/USDT:USDT"
MARKS = mark_stream_name(UNIFIED_BTC)


def _stale_mark_alerts(history: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    return [
        alert
        for alert in history
        if alert["kind"] == "stale_data" and alert["account"] == account and "mark prices" in alert["summary"]
    ]


async def test_an_account_with_a_short_stale_threshold_hears_of_silent_marks_before_one_with_the_default(
    tmp_path: Path,
) -> None:
    async with SimServer("binance", mark_interval_s=0.25) as sim:
        second = sim.engine.add_account("second-key", "second-secret", wallet={"USDT": 10_000.0})
        for api_key in (sim.account.api_key, second.api_key):
            sim.engine.set_position(
                api_key, BTC, Side.LONG, 0.1, entry_price=sim.engine.marks[BTC], margin_mode=MarginMode.CROSS
            )
        strict = {**account_for("strict", sim), "rules": {"stale_after_s": 1}}
        relaxed = {
            **{**account_for("relaxed", sim), **_credentials(sim.ccxt_config(second))},
            "id": "relaxed",
        }
        async with running_daemon(tmp_path, [strict, relaxed], rules={"stale_after_s": 30}) as running:
            daemon = running.daemon
            runners = {runner.account_id: runner for runner in daemon.runners}

            def mark_health(account: str) -> Freshness | None:
                connector = runners[account].connector
                health = None if connector is None else connector.state.health.get(MARKS)
                return None if health is None else health.freshness

            await eventually(lambda: mark_health("strict") is mark_health("relaxed") is Freshness.FRESH)
            assert len(daemon.hubs) == 1  # one server: one hub, one mark stream for both accounts

            sim.faults.set("stall")

            # Before: both were judged on the hub's one threshold (the global 30 s) and neither heard a thing.
            async def strict_told() -> bool:
                return bool(_stale_mark_alerts(await daemon.journal.history(), "strict"))

            await eventually_async(
                strict_told,
                within_s=5.0,
                what="the strict account's 1 s threshold raised its stale-data alert",
            )
            assert mark_health("relaxed") is not Freshness.STALE
            assert not _stale_mark_alerts(await daemon.journal.history(), "relaxed")

            sim.faults.clear("stall")
            await eventually(lambda: mark_health("strict") is mark_health("relaxed") is Freshness.FRESH)
            assert not _stale_mark_alerts(await daemon.journal.history(), "relaxed")


def _credentials(ccxt_config: dict[str, Any]) -> dict[str, Any]:
    return {"api_key": ccxt_config["apiKey"], "secret": ccxt_config["secret"]}


def test_per_symbol_thresholds_reach_the_mark_streams_of_their_account(tmp_path: Path) -> None:
    document = {
        "daemon": {"storage_path": str(tmp_path / "journal.sqlite")},
        "rules": {"stale_after_s": 30, "symbols": {"ETH/USDT:USDT": {"stale_after_s": 20}}},
        "accounts": [
            {
                "id": "main",
                "exchange": "binanceusdm",
                "mode": "demo",
                "api_key": "k",
                "secret": "s",
                "rules": {"stale_after_s": 12, "symbols": {UNIFIED_BTC: {"stale_after_s": 5}}},
            }
        ],
    }
    settings = load_settings(write_config(tmp_path / "marginguard.toml", document), env={})
    feed = feed_settings(settings, "main")
    assert feed.mark_stale_after_s == 12
    assert dict(feed.mark_stale_after_s_by_symbol) == {UNIFIED_BTC: 5, "ETH/USDT:USDT": 20}
