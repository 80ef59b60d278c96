"""An unmodified ccxt.pro bybit client against the simulator's Bybit v5 dialect, over loopback.

Every client is configured only through its constructor (URLs and options from `sim.ccxt_config()`); pushes
are awaited with timeouts. Payload types are checked against Bybit's published examples
(tests/data/bybit_*.json, sources inside).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiohttp
import ccxt.pro as ccxtpro
import pytest
from ccxt.base.errors import (
    AuthenticationError,
    BadRequest,
    ExchangeError,
    ExchangeNotAvailable,
    InsufficientFunds,
    InvalidNonce,
    NetworkError,
    RateLimitExceeded,
)

from daemon.core.types import MarginMode, Side
from daemon.sim.bybit import BybitDialect
from daemon.sim.bybit.auth import sign
from daemon.sim.server import SimServer

pytestmark = pytest.mark.integration

BTC = "BTC/USDT:USDT"
DATA = Path(__file__).resolve().parents[1] / "data"
TIMEOUT_S = 5.0


@asynccontextmanager
async def bybit_client(sim: SimServer, **config: Any) -> AsyncIterator[Any]:
    # ccxt's own throttle (100 ms per v5 call) only slows the tests down: the simulator does not rate-limit.
    client = ccxtpro.bybit({**sim.ccxt_config(), "enableRateLimit": False, **config})
    try:
        yield client
    finally:
        await client.close()


async def until_subscribed(sim: SimServer, *channels: str) -> None:
    """Wait until the client's subscriptions have reached the server (ccxt does not report their acks)."""
    streams = cast(BybitDialect, sim.dialect).streams
    await asyncio.wait_for(asyncio.gather(*(streams.until_subscribed(c) for c in channels)), TIMEOUT_S)


def assert_loopback_only(sim: SimServer) -> None:
    remotes = {entry["remote"] for entry in sim.engine.request_log}
    assert remotes == {"127.0.0.1"}, remotes


async def open_isolated_long(
    sim: SimServer, client: Any, contracts: float = 0.1, leverage: int = 10
) -> float:
    """Buy `contracts` BTC at the mark in isolated margin; returns the initial margin it locked."""
    await client.set_margin_mode("isolated", BTC)
    await client.set_leverage(leverage, BTC)
    await client.create_order(BTC, "market", "buy", contracts)
    return contracts * sim.engine.markets["BTCUSDT"].mark / leverage


def doc_sample(endpoint_or_channel: str, label: str | None = None) -> dict[str, Any]:
    for name in ("bybit_rest_doc_samples.json", "bybit_ws_samples.json"):
        for sample in json.loads((DATA / name).read_text())["samples"]:
            where = sample.get("endpoint") or sample.get("channel")
            if where == endpoint_or_channel and (label is None or sample.get("label") == label):
                if isinstance(sample.get("payload"), dict) and sample["payload"].get("topic", "") != "":
                    return dict(sample["payload"])
                if isinstance(sample.get("payload"), dict) and "retCode" in sample["payload"]:
                    return dict(sample["payload"])
    raise LookupError(endpoint_or_channel)


def recorded_response(method: str) -> dict[str, Any]:
    recordings = json.loads((DATA / "bybit_ccxt_static.json").read_text())["response"]
    return dict(recordings[method][0]["httpResponse"])


def json_types(row: dict[str, Any]) -> dict[str, type]:
    return {key: type(value) for key, value in row.items() if value is not None}


async def test_load_markets_lists_linear_usdt_perpetuals_with_exchange_precision() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        markets = await client.load_markets()
        btc = markets[BTC]
        assert (btc["type"], btc["linear"], btc["settle"], btc["contractSize"]) == ("swap", True, "USDT", 1.0)
        assert btc["precision"]["price"] == sim.engine.markets["BTCUSDT"].price_tick
        assert btc["limits"]["leverage"]["max"] == sim.engine.markets["BTCUSDT"].max_leverage
        assert len(markets) == len(sim.engine.markets)
        fee = await client.fetch_trading_fee(BTC)  # the rates the simulator charges and models
        assert (fee["taker"], fee["maker"]) == (
            sim.engine.markets["BTCUSDT"].taker_fee,
            sim.engine.markets["BTCUSDT"].maker_fee,
        )
    assert_loopback_only(sim)


async def test_fetch_balance_reports_the_unified_wallet() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        balance = await client.fetch_balance()
        assert balance["USDT"]["total"] == 10_000.0
        assert balance["USDT"]["free"] == 10_000.0
        assert balance["info"]["result"]["list"][0]["totalMarginBalance"] == "10000"  # cross: totals given
        await open_isolated_long(sim, client)
        balance = await client.fetch_balance()
        position = sim.engine.find_position(sim.account.api_key, "BTCUSDT")
        assert position is not None
        assert balance["USDT"]["used"] == pytest.approx(position.isolated_margin, rel=0.01)
        [account] = balance["info"]["result"]["list"]
        # In ISOLATED_MARGIN mode Bybit leaves the account totals empty; only equity and PnL stay.
        assert (account["totalMarginBalance"], account["accountMMRate"]) == ("", "")
        assert float(account["totalEquity"]) == pytest.approx(balance["USDT"]["total"], abs=5)
    assert_loopback_only(sim)


async def test_fetch_positions_reports_the_models_liquidation_price() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        await open_isolated_long(sim, client, contracts=0.2, leverage=10)
        [position] = await client.fetch_positions()
        expected = sim.engine.liquidation_price(sim.account.api_key, "BTCUSDT", Side.LONG)
        assert expected is not None
        tick = sim.engine.markets["BTCUSDT"].price_tick
        assert position["liquidationPrice"] == pytest.approx(expected, abs=tick / 2)
        assert (position["symbol"], position["side"], position["contracts"]) == (BTC, "long", 0.2)
        assert position["leverage"] == 10
        assert position["entryPrice"] == sim.engine.markets["BTCUSDT"].mark
        assert position["maintenanceMargin"] > 0
    assert_loopback_only(sim)


async def test_position_list_fields_carry_bybits_json_types() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        await open_isolated_long(sim, client)
        response = await client.private_get_v5_position_list({"category": "linear", "symbol": "BTCUSDT"})
        [row] = response["result"]["list"]
        documented = doc_sample("GET /v5/position/list")["result"]["list"][0]  # Bybit's docs: JSON types
        assert (
            json_types(row).items() >= {k: v for k, v in json_types(documented).items() if k in row}.items()
        )
        recorded = recorded_response("fetchPositions")["result"]["list"][0]  # a real answer, via ccxt
        assert set(recorded) - {"nextPageCursor"} - set(row) == set()  # ccxt adds nextPageCursor itself
        assert response["retCode"] == 0 and isinstance(response["time"], int)
    assert_loopback_only(sim)


async def test_fetch_leverage_tiers_returns_the_markets_brackets() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        tiers = await client.fetch_leverage_tiers([BTC])
        brackets = sim.engine.markets["BTCUSDT"].tiers
        assert [t["maintenanceMarginRate"] for t in tiers[BTC]] == [b.mmr for b in brackets]
        assert [t["maxNotional"] for t in tiers[BTC]] == [b.max_notional for b in brackets]
        assert tiers[BTC][1]["minNotional"] == brackets[1].min_notional
    assert_loopback_only(sim)


async def test_add_and_reduce_isolated_margin_moves_the_liquidation_price() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        initial_margin = await open_isolated_long(sim, client)
        key = sim.account.api_key
        before = sim.engine.liquidation_price(key, "BTCUSDT", Side.LONG)
        added = await client.private_post_v5_position_add_margin(
            {"category": "linear", "symbol": "BTCUSDT", "margin": "100", "positionIdx": 0}
        )
        after_add = sim.engine.liquidation_price(key, "BTCUSDT", Side.LONG)
        assert before is not None and after_add is not None and after_add < before
        assert float(added["result"]["liqPrice"]) == pytest.approx(after_add, abs=0.05)
        assert float(added["result"]["positionIM"]) > 0

        await client.private_post_v5_position_add_margin(
            {"category": "linear", "symbol": "BTCUSDT", "margin": "-60", "positionIdx": 0}
        )
        position = sim.engine.find_position(key, "BTCUSDT")
        assert position is not None and position.isolated_margin == pytest.approx(initial_margin + 40.0)
        market = sim.engine.markets["BTCUSDT"]
        opening_fee = 0.1 * market.mark * market.taker_fee
        assert sim.engine.account(key).wallet["USDT"] == pytest.approx(
            10_000.0 - initial_margin - 40.0 - opening_fee
        )

        with pytest.raises(InsufficientFunds):
            await client.private_post_v5_position_add_margin(
                {"category": "linear", "symbol": "BTCUSDT", "margin": "1000000", "positionIdx": 0}
            )
        with pytest.raises(ExchangeError, match="110078"):
            await client.private_post_v5_position_add_margin(
                {"category": "linear", "symbol": "BTCUSDT", "margin": "-5000", "positionIdx": 0}
            )
    assert_loopback_only(sim)


async def test_add_margin_on_a_cross_position_is_refused() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        await client.create_order(BTC, "market", "buy", 0.1)
        with pytest.raises(BadRequest, match="110015"):
            await client.private_post_v5_position_add_margin(
                {"category": "linear", "symbol": "BTCUSDT", "margin": "10", "positionIdx": 0}
            )
    assert_loopback_only(sim)


async def test_set_margin_mode_and_leverage() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        key = sim.account.api_key
        await client.set_margin_mode("isolated", BTC)
        assert sim.engine.account(key).margin_mode_for("ETHUSDT") is MarginMode.ISOLATED  # account-wide
        assert (await client.fetch_margin_mode(BTC))["marginMode"] == "isolated"

        await client.set_leverage(7, BTC)
        assert sim.engine.account(key).leverage_for("BTCUSDT") == 7
        leverage = await client.fetch_leverage(BTC)  # read back from the (empty) position row
        assert (leverage["longLeverage"], leverage["shortLeverage"]) == (7, 7)
        with pytest.raises(BadRequest, match="110043"):
            await client.set_leverage(7, BTC)
        with pytest.raises(BadRequest, match="110013"):
            await client.set_leverage(500, BTC)

        await client.create_order(BTC, "market", "buy", 0.01)
        with pytest.raises(ExchangeError, match="3400045"):
            await client.set_margin_mode("cross", BTC)
    assert_loopback_only(sim)


async def test_hedge_mode_lists_both_legs_and_adjusts_the_one_named() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        key = sim.account.api_key
        await client.set_position_mode(True)
        assert sim.engine.account(key).hedge_mode
        await client.set_margin_mode("isolated", BTC)
        await client.create_order(BTC, "market", "buy", 0.1, params={"positionIdx": 1})
        await client.create_order(BTC, "market", "sell", 0.05, params={"positionIdx": 2})
        positions = sorted(await client.fetch_positions(), key=lambda p: str(p["side"]))
        assert [(p["side"], p["contracts"], p["hedged"]) for p in positions] == [
            ("long", 0.1, True),
            ("short", 0.05, True),
        ]
        short_before = sim.engine.find_position(key, "BTCUSDT", Side.SHORT)
        assert short_before is not None
        margin_before = short_before.isolated_margin
        await client.private_post_v5_position_add_margin(
            {"category": "linear", "symbol": "BTCUSDT", "margin": "25", "positionIdx": 2}
        )
        short_after = sim.engine.find_position(key, "BTCUSDT", Side.SHORT)
        long_after = sim.engine.find_position(key, "BTCUSDT", Side.LONG)
        assert short_after is not None and long_after is not None
        assert short_after.isolated_margin == pytest.approx(margin_before + 25)
        mark = sim.engine.markets["BTCUSDT"].mark
        assert long_after.isolated_margin == pytest.approx(0.1 * mark / 20)  # untouched, default 20x
        with pytest.raises(BadRequest, match="110024"):
            await client.set_position_mode(False)
    assert_loopback_only(sim)


async def test_watch_ticker_streams_the_mark_price() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        first = await asyncio.wait_for(client.watch_ticker(BTC), TIMEOUT_S)
        assert first["markPrice"] == sim.engine.markets["BTCUSDT"].mark

        async def next_moved_ticker() -> dict[str, Any]:
            while True:
                ticker = await client.watch_ticker(BTC)
                if ticker["markPrice"] != first["markPrice"]:
                    return dict(ticker)

        watching = asyncio.ensure_future(next_moved_ticker())  # ccxt resolves only watches already waiting
        async with aiohttp.ClientSession() as http:
            answer = await http.post(
                f"{sim.http_base}/_sim/mark", json={"symbol": "BTCUSDT", "price": 61234.5}
            )
            assert answer.status == 200
        moved = await asyncio.wait_for(watching, TIMEOUT_S)
        assert moved["markPrice"] == 61234.5
        assert moved["info"]["openInterestValue"] != ""  # still parsed as a swap ticker after the delta
    assert_loopback_only(sim)


async def test_watch_positions_and_balance_see_a_liquidation() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        key = sim.account.api_key
        initial_margin = await open_isolated_long(sim, client)
        snapshot = await asyncio.wait_for(client.watch_positions(), TIMEOUT_S)  # ccxt's REST snapshot
        assert [p["contracts"] for p in snapshot] == [0.1]
        total_before = (await client.fetch_balance())["USDT"]["total"]  # wallet incl. the isolated margin

        positions_push = asyncio.ensure_future(client.watch_positions())
        balance_push = asyncio.ensure_future(client.watch_balance())
        orders_push = asyncio.ensure_future(client.watch_orders())
        await until_subscribed(sim, f"position:{key}", f"wallet:{key}", f"order:{key}")
        liquidation_price = sim.engine.liquidation_price(key, "BTCUSDT", Side.LONG)
        assert liquidation_price is not None
        sim.engine.set_mark("BTCUSDT", liquidation_price - 1.0)

        pushed = await asyncio.wait_for(positions_push, TIMEOUT_S)
        assert [(p["symbol"], p["contracts"]) for p in pushed] == [(BTC, 0.0)]
        balance = await asyncio.wait_for(balance_push, TIMEOUT_S)
        [liquidation] = sim.engine.liquidations
        assert balance["USDT"]["total"] == pytest.approx(sim.engine.account(key).wallet["USDT"])
        assert balance["USDT"]["total"] == pytest.approx(total_before - liquidation["loss"])
        assert liquidation["loss"] > 0.9 * initial_margin  # nearly all the isolated margin is gone
        [order] = await asyncio.wait_for(orders_push, TIMEOUT_S)
        assert order["info"]["createType"] == "CreateByLiq"
        assert (order["side"], order["amount"]) == ("sell", 0.1)
        assert order["price"] == pytest.approx(liquidation["price"], abs=0.05)
        assert await client.fetch_positions() == []
    assert_loopback_only(sim)


async def test_position_push_carries_mark_liquidation_price_and_margins() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        key = sim.account.api_key
        initial_margin = await open_isolated_long(sim, client)
        await asyncio.wait_for(client.watch_positions(), TIMEOUT_S)
        push = asyncio.ensure_future(client.watch_positions())
        await until_subscribed(sim, f"position:{key}")
        await client.private_post_v5_position_add_margin(
            {"category": "linear", "symbol": "BTCUSDT", "margin": "50", "positionIdx": 0}
        )
        [position] = await asyncio.wait_for(push, TIMEOUT_S)
        expected = sim.engine.liquidation_price(key, "BTCUSDT", Side.LONG)
        assert expected is not None
        assert position["liquidationPrice"] == pytest.approx(expected, abs=0.05)
        assert position["markPrice"] == sim.engine.marks["BTCUSDT"]
        assert position["collateral"] == pytest.approx(initial_margin + 50.0)  # margin + PnL at entry
        documented = doc_sample("position (private, v5)")["data"][0]
        assert set(documented) - set(position["info"]) == set()
        assert json_types(position["info"]).items() >= json_types(documented).items()
    assert_loopback_only(sim)


async def test_bad_signature_and_unknown_key_are_refused_as_bybit_does() -> None:
    async with SimServer("bybit") as sim:
        async with bybit_client(sim, secret="not-the-secret") as client:
            with pytest.raises(AuthenticationError, match="10004"):
                await client.fetch_balance()
        async with bybit_client(sim, apiKey="unknown-key") as client:
            with pytest.raises(AuthenticationError, match="10003"):
                await client.fetch_balance()
        sim.faults.set("clock_skew", ms=60_000)
        async with bybit_client(sim) as client:
            with pytest.raises(InvalidNonce, match="10002"):
                await client.fetch_positions()
        refused = [e for e in sim.engine.request_log if e["status"] == 401]
        assert {e["path"] for e in refused} == {"/v5/asset/coin/query-info"}  # the first signed call
    assert_loopback_only(sim)


async def test_private_stream_login_and_pings() -> None:
    async with SimServer("bybit") as sim, aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{sim.ws_base}/v5/private") as ws:
            expires = str(int(time.time() * 1000) + 10_000)
            await ws.send_json({"op": "auth", "args": [sim.account.api_key, expires, "0" * 64]})
            refused = await ws.receive_json(timeout=TIMEOUT_S)
            assert (refused["op"], refused["success"]) == ("auth", False)
            await ws.send_json({"op": "subscribe", "req_id": "7", "args": ["position"]})
            unauthorised = await ws.receive_json(timeout=TIMEOUT_S)
            assert (unauthorised["success"], unauthorised["req_id"]) == (False, "7")

            signature = sign(sim.account.secret, f"GET/realtime{expires}")
            await ws.send_json({"op": "auth", "args": [sim.account.api_key, expires, signature]})
            accepted = await ws.receive_json(timeout=TIMEOUT_S)
            assert (accepted["op"], accepted["success"], accepted["ret_msg"]) == ("auth", True, "")
            await ws.send_json({"req_id": "p1", "op": "ping"})
            pong = await ws.receive_json(timeout=TIMEOUT_S)
            assert (pong["op"], pong["req_id"]) == ("pong", "p1") and pong["args"][0].isdigit()

        async with http.ws_connect(f"{sim.ws_base}/v5/public/linear") as ws:
            await ws.send_json({"req_id": "p2", "op": "ping"})
            pong = await ws.receive_json(timeout=TIMEOUT_S)
            assert (pong["op"], pong["ret_msg"], pong["success"]) == ("ping", "pong", True)
            await ws.send_json({"op": "subscribe", "req_id": "s1", "args": ["tickers.NOPEUSDT"]})
            refused = await ws.receive_json(timeout=TIMEOUT_S)
            assert (refused["op"], refused["success"], refused["req_id"]) == ("subscribe", False, "s1")
    assert_loopback_only(sim)


async def test_http_faults_answer_in_bybits_shape() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        await client.load_markets()
        sim.faults.set("http_status", status=429, count=1)
        with pytest.raises(RateLimitExceeded, match="10006"):
            await client.fetch_positions()
        wallet = "/v5/account/wallet-balance"
        sim.faults.set("http_status", status=502, count=1, path=wallet)
        with pytest.raises(ExchangeNotAvailable):
            await client.fetch_balance()
        sim.faults.set("http_status", status=418, count=1, path=wallet)
        with pytest.raises(RateLimitExceeded):  # Bybit bans an IP with 403, which ccxt reads as a rate limit
            await client.fetch_balance()
        assert (await client.fetch_balance())["USDT"]["total"] == 10_000.0
    assert_loopback_only(sim)


async def test_dropped_stream_fails_the_watch_and_the_next_watch_resubscribes() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        await asyncio.wait_for(client.watch_ticker(BTC), TIMEOUT_S)
        pending = asyncio.ensure_future(client.watch_ticker(BTC))
        await until_subscribed(sim, "tickers.BTCUSDT")
        assert sim.faults.drop_websockets() == 1
        with pytest.raises(NetworkError):
            await asyncio.wait_for(pending, TIMEOUT_S)
        again = await asyncio.wait_for(client.watch_ticker(BTC), TIMEOUT_S)  # a fresh snapshot
        assert again["markPrice"] == sim.engine.marks["BTCUSDT"]
        assert sim.hub.has_subscribers("tickers.BTCUSDT")
    assert_loopback_only(sim)


async def test_stalled_stream_still_answers_pings_but_withholds_data() -> None:
    async with (
        SimServer("bybit", mark_interval_s=None) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{sim.ws_base}/v5/public/linear") as ws,
    ):
        await ws.send_json({"op": "subscribe", "req_id": "1", "args": ["tickers.BTCUSDT"]})
        assert (await ws.receive_json(timeout=TIMEOUT_S))["success"] is True
        assert (await ws.receive_json(timeout=TIMEOUT_S))["type"] == "snapshot"
        sim.faults.set("stall")
        sim.engine.set_mark("BTCUSDT", 60_000.0)  # withheld
        await ws.send_json({"req_id": "2", "op": "ping"})
        assert (await ws.receive_json(timeout=TIMEOUT_S))["ret_msg"] == "pong"  # the very next frame
        sim.faults.clear("stall")
        sim.engine.set_mark("BTCUSDT", 60_100.0)
        delta = await ws.receive_json(timeout=TIMEOUT_S)
        assert (delta["type"], delta["data"]["markPrice"]) == ("delta", "60100.0")
    assert_loopback_only(sim)


async def test_a_position_that_cannot_be_liquidated_reports_no_liquidation_price() -> None:
    async with SimServer("bybit") as sim, bybit_client(sim) as client:
        await client.create_order(BTC, "market", "buy", 0.01)  # cross, 670 USDT against a 10 000 USDT wallet
        model = sim.engine.liquidation_price(sim.account.api_key, "BTCUSDT", Side.LONG)
        assert model is None or model <= sim.engine.markets["BTCUSDT"].price_tick
        raw = await client.private_get_v5_position_list({"category": "linear", "symbol": "BTCUSDT"})
        assert raw["result"]["list"][0]["liqPrice"] == ""  # Bybit's "none", never "0"
        [position] = await client.fetch_positions()
        assert position["liquidationPrice"] is None
    assert_loopback_only(sim)
