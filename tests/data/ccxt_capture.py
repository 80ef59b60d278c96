"""Capture ccxt's parsed structures from the simulator once, into tests/data/ccxt_sim_captured.json.

    .venv/bin/python tests/data/ccxt_capture.py

Real ccxt 4.5.90 clients (unmodified, URLs from the simulator's config) against `daemon.sim` on loopback.
The parser tests read the JSON only, so they need no network and no simulator.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import ccxt.pro as ccxtpro

from daemon.core.types import MarginMode, Side
from daemon.sim.server import SimServer

OUT = Path(__file__).with_name("ccxt_sim_captured.json")
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
TIMEOUT_S = 5.0


def plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities (which ccxt sometimes returns) as the string "NaN"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN"
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def setup_positions(sim: SimServer, one_btc: float, hedge: bool) -> None:
    key = sim.account.api_key
    sim.engine.set_wallet(key, "USDT", 100_000)
    if hedge:
        sim.engine.set_hedge_mode(key, True)
    sim.engine.set_margin_mode(key, "BTCUSDT", MarginMode.ISOLATED)
    sim.engine.set_leverage(key, "BTCUSDT", 10)
    sim.engine.open_position(key, "BTCUSDT", Side.LONG, one_btc)
    if hedge:
        sim.engine.open_position(key, "BTCUSDT", Side.SHORT, one_btc / 2)
    sim.engine.open_position(key, "ETHUSDT", Side.SHORT, one_btc * 10)  # cross


async def capture(dialect: str, one_btc: float) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with SimServer(dialect, mark_interval_s=None) as sim:
        client = getattr(ccxtpro, sim.ccxt_id)(sim.ccxt_config())
        try:
            markets = await client.load_markets()
            result["market"] = {BTC: markets[BTC], ETH: markets[ETH]}
            if client.has.get("fetchLeverageTiers") and dialect == "binance":
                tiers = await client.fetch_leverage_tiers([BTC])
            else:
                tiers = {BTC: await client.fetch_market_leverage_tiers(BTC)}
            result["leverage_tiers"] = {BTC: tiers[BTC]}
            setup_positions(sim, one_btc, hedge=False)
            result["positions_one_way"] = await client.fetch_positions()
            result["balance"] = await client.fetch_balance()
            if dialect == "bybit":
                result["ticker"] = await client.fetch_ticker(BTC)
            else:
                result["mark_price"] = await client.fetch_mark_price(BTC)
            if dialect == "binance":
                result["watch_positions"] = await thin_pushes(sim, client)
        finally:
            await client.close()
    async with SimServer(dialect, mark_interval_s=None) as sim:
        client = getattr(ccxtpro, sim.ccxt_id)(sim.ccxt_config())
        try:
            await client.load_markets()
            setup_positions(sim, one_btc, hedge=True)
            result["positions_hedge"] = await client.fetch_positions()
        finally:
            await client.close()
    return result


async def thin_pushes(sim: SimServer, client: Any) -> dict[str, Any]:
    """Binance's ACCOUNT_UPDATE as ccxt parses it: after a margin change, and after a one-way close."""
    key = sim.account.api_key
    await client.watch_positions()  # the first call is a REST snapshot; the socket opens on the next one
    pending = asyncio.ensure_future(client.watch_positions())
    await asyncio.sleep(0)  # let the watch subscribe before the engine pushes
    await asyncio.wait_for(until_subscribed(sim), TIMEOUT_S)
    sim.engine.adjust_isolated_margin(key, "BTCUSDT", None, 25.0)
    margin_push = await asyncio.wait_for(pending, TIMEOUT_S)
    pending = asyncio.ensure_future(client.watch_positions())
    await asyncio.sleep(0)
    sim.engine.close_position(key, "BTCUSDT")
    close_push = await asyncio.wait_for(pending, TIMEOUT_S)
    return {"after_margin_added": margin_push, "after_close": close_push}


async def until_subscribed(sim: SimServer) -> None:
    while not any(entry["websocket"] and "private" in entry["path"] for entry in sim.engine.request_log):  # noqa: ASYNC110 - server-side log, no event to wait on
        await asyncio.sleep(0.01)


async def main() -> None:
    captured = {
        "source": (
            "captured from marginguard's exchange simulator (daemon/sim) through unmodified ccxt 4.5.90 "
            "clients by tests/data/ccxt_capture.py; values are ccxt's parsed (unified) structures"
        ),
        "binance": await capture("binance", 1.0),
        "bybit": await capture("bybit", 1.0),
        "okx": await capture("okx", 100.0),
    }
    OUT.write_text(json.dumps(plain(captured), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
