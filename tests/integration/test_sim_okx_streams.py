"""An unmodified ccxt.pro okx client against the simulator's OKX v5 websockets, over loopback.

Each test starts its own `SimServer("okx")`; pushes are awaited with timeouts, never with sleeps.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from ccxt.base.errors import AuthenticationError, NetworkError

from daemon.core.types import MarginMode, Side
from daemon.sim.server import SimServer
from tests.integration.okx_support import (
    BTC,
    ETH,
    PUSH_TIMEOUT_S,
    RECORDED,
    assert_loopback_only,
    leg,
    okx_client,
    until,
    wait_for,
)

pytestmark = pytest.mark.integration


async def test_watch_positions_snapshot_then_updates_with_model_liquidation_price() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        key = sim.account.api_key
        first = await asyncio.wait_for(client.watch_positions(), PUSH_TIMEOUT_S)
        assert first == []  # OKX pushes the (empty) snapshot right after subscribing
        sim.engine.set_wallet(key, "USDT", 800)
        sim.engine.open_position(key, "BTCUSDT", Side.LONG, 10)  # 0.1 BTC, cross, on an 800 USDT wallet
        pushed = await wait_for(client.watch_positions, lambda ps: leg(ps, BTC) is not None)
        btc = leg(pushed, BTC)
        assert btc is not None and btc["contracts"] == 10 and btc["marginMode"] == "cross"
        assert btc["liquidationPrice"] == pytest.approx(
            sim.engine.liquidation_price(key, "BTCUSDT"), rel=1e-12
        )


async def test_positions_are_repeated_regularly_with_current_marks() -> None:
    # OKX repeats the positions snapshot about every 5 s, so liqPx/upl follow the mark between events.
    offset_s = [0.0]
    async with (
        SimServer("okx", clock=lambda: time.time() + offset_s[0], mark_interval_s=None) as sim,
        okx_client(sim) as client,
    ):
        key = sim.account.api_key
        sim.engine.open_position(key, "BTCUSDT", Side.LONG, 10)
        first = leg(await asyncio.wait_for(client.watch_positions(), PUSH_TIMEOUT_S), BTC)
        assert first is not None
        sim.engine.set_mark("BTCUSDT", 68_000)  # a mark move is not a position event: no push yet
        offset_s[0] = 5.0
        sim.engine.publish_marks(["BTCUSDT"])  # the exchange's next mark tick, 5 s later
        repeated = leg(await asyncio.wait_for(client.watch_positions(), PUSH_TIMEOUT_S), BTC)
        assert repeated is not None and repeated["markPrice"] == 68_000
        assert repeated["unrealizedPnl"] == pytest.approx(0.1 * 1_000)
        sim.engine.open_position(key, "BTCUSDT", Side.LONG, 5)
        grown = leg(await asyncio.wait_for(client.watch_positions(), PUSH_TIMEOUT_S), BTC)
        assert grown is not None and grown["contracts"] == 15
        assert grown["timestamp"] == first["timestamp"]  # cTime: when the leg was opened
        assert grown["lastUpdateTimestamp"] >= first["timestamp"] + 5_000


async def test_watch_mark_price_streams_mark_changes() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        first = await asyncio.wait_for(client.watch_mark_price(BTC), PUSH_TIMEOUT_S)
        assert first["markPrice"] == 67_000
        sim.engine.set_mark("BTCUSDT", 65_432.1)
        ticker = await wait_for(lambda: client.watch_mark_price(BTC), lambda t: t["markPrice"] == 65_432.1)
        assert ticker["symbol"] == BTC
        sim.engine.set_marks({"BTCUSDT": 66_000.0, "ETHUSDT": 3_333.3})
        marks = await wait_for(
            lambda: client.watch_mark_prices([BTC, ETH]),
            lambda _: client.tickers.get(ETH, {}).get("markPrice") == 3_333.3,
        )
        assert marks is not None and client.tickers[BTC]["markPrice"] == 66_000.0


async def test_watch_balance_follows_wallet_changes() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        balance = await asyncio.wait_for(client.watch_balance(), PUSH_TIMEOUT_S)
        assert balance["USDT"]["total"] == pytest.approx(10_000)
        sim.engine.transfer(sim.account.api_key, "USDT", 2_500)
        balance = await wait_for(client.watch_balance, lambda b: b["USDT"]["total"] == pytest.approx(12_500))
        assert balance["USDT"]["free"] == pytest.approx(12_500)


async def test_liquidation_is_pushed_as_a_flat_position_and_charges_the_wallet() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        key = sim.account.api_key
        sim.engine.set_margin_mode(key, "BTCUSDT", MarginMode.ISOLATED)
        sim.engine.open_position(key, "BTCUSDT", Side.LONG, 100)
        await asyncio.wait_for(client.watch_positions(), PUSH_TIMEOUT_S)
        await asyncio.wait_for(client.watch_balance(), PUSH_TIMEOUT_S)
        # ccxt 4.5.90's async watch_my_liquidations returns an un-awaited coroutine; call the plural form.
        my_liquidations = asyncio.create_task(client.watch_my_liquidations_for_symbols([BTC]))
        await until(lambda: any(c.startswith("balance_and_position|") for c in sim.hub.channels))
        wallet_before = sim.engine.account(key).wallet["USDT"]
        liquidation_price = sim.engine.liquidation_price(key, "BTCUSDT")
        assert liquidation_price is not None

        sim.engine.set_mark("BTCUSDT", liquidation_price - 1)

        flat = await wait_for(
            client.watch_positions, lambda ps: any(p["symbol"] == BTC and p["contracts"] == 0 for p in ps)
        )
        assert all(p["contracts"] == 0 for p in flat if p["symbol"] == BTC)
        liquidations = await asyncio.wait_for(my_liquidations, PUSH_TIMEOUT_S)
        assert [(x["symbol"], x["info"]["eventType"]) for x in liquidations] == [(BTC, "liquidation")]
        assert [entry["symbol"] for entry in sim.engine.liquidations] == ["BTCUSDT"]
        assert await client.fetch_positions() == []
        history = await client.fetch_positions_history([BTC])
        rows = [(p["side"], p["info"]["closeTotalPos"], p["info"]["type"]) for p in history]
        assert rows == [("long", "100", "3")]  # type 3: liquidated
        assert set(RECORDED["positions_history"]["data"][0]) <= set(history[0]["info"])
        balance = await client.fetch_balance()
        isolated_margin = 67_000 / 20
        assert balance["USDT"]["total"] == pytest.approx(wallet_before)  # the isolated margin is gone
        assert sim.engine.account(key).wallet["USDT"] == pytest.approx(wallet_before)
        assert wallet_before == pytest.approx(10_000 - isolated_margin - 67_000 * 0.0005)


async def test_after_a_dropped_socket_the_next_watch_logs_in_again_and_gets_a_fresh_snapshot() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        assert await asyncio.wait_for(client.watch_positions(), PUSH_TIMEOUT_S) == []
        pending = asyncio.create_task(client.watch_positions())
        await until(lambda: sim.faults.open_sockets == 1)
        assert sim.faults.drop_websockets() == 1
        with pytest.raises(NetworkError):
            await asyncio.wait_for(pending, PUSH_TIMEOUT_S)
        sim.engine.open_position(sim.account.api_key, "BTCUSDT", Side.SHORT, 5)  # while disconnected
        snapshot = await asyncio.wait_for(client.watch_positions(), PUSH_TIMEOUT_S)
        btc = leg(snapshot, BTC)
        assert btc is not None and (btc["side"], btc["contracts"]) == ("short", 5)


async def test_text_ping_is_answered_with_pong() -> None:
    async with (
        SimServer("okx") as sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_base}/ws/v5/public") as ws,
    ):
        await ws.send_str("ping")
        assert await asyncio.wait_for(ws.receive_str(), PUSH_TIMEOUT_S) == "pong"
        unknown = {"op": "subscribe", "args": [{"channel": "mark-price", "instId": "NOPE-USDT-SWAP"}]}
        await ws.send_str(json.dumps(unknown))
        error = json.loads(await asyncio.wait_for(ws.receive_str(), PUSH_TIMEOUT_S))
        assert (error["event"], error["code"]) == ("error", "60018")
        assert_loopback_only(sim)


async def test_websocket_login_with_a_bad_signature_is_refused() -> None:
    # Without the signed currency list, markets load from public endpoints only and the socket is reached.
    async with (
        SimServer("okx") as sim,
        okx_client(sim, secret="not-the-secret", has={"fetchCurrencies": False}) as client,
    ):
        await client.load_markets()
        with pytest.raises(AuthenticationError, match="60007"):
            await asyncio.wait_for(client.watch_positions(), PUSH_TIMEOUT_S)
