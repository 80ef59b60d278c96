"""An unmodified ccxt.pro `binanceusdm` client against the simulator's Binance USD-M dialect.

Each test starts its own simulator on a loopback port and configures ccxt only through its constructor.
Pushes are awaited with timeouts, never slept for. Wire shapes are compared with real Binance payloads
(`tests/data/binance_payloads.json`, sources inside).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

import aiohttp
import ccxt.pro
import pytest
from ccxt.base import errors

from daemon.core.types import MarginMode, Side
from daemon.sim.binance import BinanceDialect
from daemon.sim.binance.auth import sign
from daemon.sim.binance.streams import user_channel
from daemon.sim.server import SimServer

pytestmark = pytest.mark.integration

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
TIMEOUT = 5.0
REAL = json.loads((Path(__file__).parents[1] / "data" / "binance_payloads.json").read_text())["samples"]
T = TypeVar("T")


def make_client(sim: SimServer, **overrides: Any) -> Any:
    # ccxt's own throttle only slows the tests down: the simulator rate-limits only when told to (faults).
    config = {**sim.ccxt_config(), "enableRateLimit": False}
    config.update(overrides)
    return ccxt.pro.binanceusdm(config)


def assert_loopback_only(sim: SimServer) -> None:
    assert sim.engine.request_log, "the client made no request at all"
    assert {entry["remote"] for entry in sim.engine.request_log} == {"127.0.0.1"}


async def until(watch: Callable[[], Awaitable[T]], accept: Callable[[T], bool]) -> T:
    """Call `watch` until what it returns is accepted (stream updates can carry older news first)."""

    async def loop() -> T:
        while True:
            result = await watch()
            if accept(result):
                return result

    return await asyncio.wait_for(loop(), TIMEOUT)


def shape(value: Any) -> Any:
    """Field names and JSON types, recursively (lists by their first element)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [keys(value[0])] if value else []
    return None


async def signed_get(sim: SimServer, path: str, **params: Any) -> Any:
    """A raw signed request, as Binance's own documentation builds one."""
    query = urlencode({**params, "timestamp": int(time.time() * 1000)})
    query += "&signature=" + sign(sim.account.secret, query)
    headers = {"X-MBX-APIKEY": sim.account.api_key}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.http_base}{path}?{query}", headers=headers) as r,
    ):
        return await r.json()


async def test_markets_balance_and_tiers_load_through_ccxt() -> None:
    async with SimServer("binance") as sim:
        client = make_client(sim)
        try:
            markets = await client.load_markets()
            btc = markets[BTC]
            assert (btc["id"], btc["type"], btc["linear"], btc["settle"]) == ("BTCUSDT", "swap", True, "USDT")
            assert btc["contractSize"] == 1.0
            assert btc["precision"]["amount"] == 0.001
            assert len(markets) == len(sim.engine.markets)

            balance = await client.fetch_balance()
            assert balance["USDT"]["total"] == pytest.approx(10_000.0)
            assert balance["USDT"]["free"] == pytest.approx(10_000.0)

            tiers = await client.fetch_leverage_tiers([BTC])
            expected = sim.engine.markets["BTCUSDT"].tiers
            assert [t["maintenanceMarginRate"] for t in tiers[BTC]] == [t.mmr for t in expected]
            assert [t["minNotional"] for t in tiers[BTC]] == [t.min_notional for t in expected]
            assert [t["maxLeverage"] for t in tiers[BTC]] == [t.max_leverage for t in expected]

            mark = await client.fetch_mark_price(BTC)
            assert mark["markPrice"] == pytest.approx(sim.engine.marks["BTCUSDT"])
        finally:
            await client.close()
        # With a key, ccxt would also ask the spot wallet for currencies unless configured not to.
        assert all(entry["path"].startswith("/fapi/") for entry in sim.engine.request_log)
        assert_loopback_only(sim)


async def test_positions_report_the_core_models_liquidation_price() -> None:
    async with SimServer("binance") as sim:
        key = sim.account.api_key
        sim.engine.set_position(key, "BTCUSDT", Side.LONG, 0.5, entry_price=67_000.0, leverage=20)
        sim.engine.set_position(
            key, "ETHUSDT", Side.SHORT, 4.0, entry_price=3_500.0, margin_mode=MarginMode.ISOLATED, leverage=10
        )
        client = make_client(sim)
        try:
            positions = {p["symbol"]: p for p in await client.fetch_positions()}
            assert set(positions) == {BTC, ETH}
            btc, eth = positions[BTC], positions[ETH]
            assert (btc["side"], btc["contracts"], btc["entryPrice"], btc["marginMode"]) == (
                "long",
                0.5,
                67_000.0,
                "cross",
            )
            assert (eth["side"], eth["contracts"], eth["marginMode"]) == ("short", 4.0, "isolated")
            for symbol, position in (("BTCUSDT", btc), ("ETHUSDT", eth)):
                model = sim.engine.liquidation_price(key, symbol)
                assert model is not None
                assert position["liquidationPrice"] == pytest.approx(model, abs=1e-8)
            assert eth["liquidationPrice"] > 3_500.0  # a short is liquidated above its entry
            assert btc["liquidationPrice"] < 67_000.0  # a long below

            # v2 carries leverage (v3 does not); ccxt switches with an option.
            v2 = await client.fetch_positions(params={"useV2": True})
            assert {p["symbol"]: p["leverage"] for p in v2} == {BTC: 20.0, ETH: 10.0}
        finally:
            await client.close()
        assert_loopback_only(sim)


async def test_isolated_margin_can_be_added_and_reduced() -> None:
    async with SimServer("binance") as sim:
        key = sim.account.api_key
        client = make_client(sim)
        try:
            await client.set_margin_mode("isolated", BTC)
            await client.set_leverage(10, BTC)
            order = await client.create_order(BTC, "market", "buy", 0.2)
            assert order["status"] == "closed"
            leg = sim.engine.find_position(key, "BTCUSDT")
            assert leg is not None and leg.margin_mode is MarginMode.ISOLATED and leg.leverage == 10
            margin_before = leg.isolated_margin
            wallet_before = sim.account.wallet["USDT"]
            liq_before = (await client.fetch_positions([BTC]))[0]["liquidationPrice"]

            added = await client.add_margin(BTC, 250)
            assert (added["type"], added["amount"], added["status"]) == ("add", 250.0, "ok")
            assert leg.isolated_margin == pytest.approx(margin_before + 250)
            assert sim.account.wallet["USDT"] == pytest.approx(wallet_before - 250)
            liq_after_add = (await client.fetch_positions([BTC]))[0]["liquidationPrice"]
            assert liq_after_add < liq_before  # more margin: a long's liquidation moves away
            assert liq_after_add == pytest.approx(sim.engine.liquidation_price(key, "BTCUSDT"), abs=1e-8)

            reduced = await client.reduce_margin(BTC, 100)
            assert (reduced["type"], reduced["amount"]) == ("reduce", 100.0)
            assert leg.isolated_margin == pytest.approx(margin_before + 150)

            with pytest.raises(errors.InsufficientFunds, match="-4051"):
                await client.reduce_margin(BTC, 100_000)  # more than the leg can give back
            with pytest.raises(errors.ExchangeError, match="-2019"):
                await client.add_margin(BTC, 1_000_000)  # more than the wallet holds
        finally:
            await client.close()
        assert_loopback_only(sim)


async def test_margin_mode_and_leverage_changes_follow_binance_rules() -> None:
    async with SimServer("binance") as sim:
        key = sim.account.api_key
        client = make_client(sim)
        tolerant_options = {
            **sim.ccxt_config()["options"],
            "setMarginMode": {"throwMarginModeAlreadySet": False},
        }
        tolerant = make_client(sim, options=tolerant_options)
        try:
            await client.set_margin_mode("isolated", ETH)
            assert sim.account.margin_mode_for("ETHUSDT") is MarginMode.ISOLATED
            config = await client.fetch_margin_mode(ETH)
            assert config["marginMode"] == "isolated"
            # Binance answers -4046 "No need to change margin type."; ccxt raises MarginModeAlreadySet...
            with pytest.raises(errors.MarginModeAlreadySet, match="-4046"):
                await client.set_margin_mode("isolated", ETH)
            # ...or, told to tolerate it, hands the answer back.
            again = await tolerant.set_margin_mode("isolated", ETH)
            assert again == {"code": -4046, "msg": "No need to change margin type."}

            answer = await client.set_leverage(5, ETH)
            assert answer["leverage"] == 5 and answer["symbol"] == "ETHUSDT"
            assert sim.account.leverage_for("ETHUSDT") == 5
            too_high = int(sim.engine.markets["ADAUSDT"].max_leverage) + 1  # within ccxt's own 1..125 check
            with pytest.raises(errors.BadRequest, match="-4028"):
                await client.set_leverage(too_high, "ADA/USDT:USDT")

            sim.engine.set_position(key, "ETHUSDT", Side.LONG, 1.0)
            with pytest.raises(errors.OperationRejected, match="-4048"):
                await client.set_margin_mode("cross", ETH)  # not with an open position

            # 100x is allowed on BTC, but not for a position in the upper brackets.
            sim.engine.set_position(key, "BTCUSDT", Side.LONG, 10.0, leverage=10)  # 670k: the 75x bracket
            with pytest.raises(errors.ExchangeError, match="-2027"):  # ccxt maps -2027 only on fapi hosts
                await client.set_leverage(100, BTC)
        finally:
            await client.close()
            await tolerant.close()
        assert_loopback_only(sim)


async def test_mark_prices_stream_over_the_market_websocket() -> None:
    async with SimServer("binance", mark_interval_s=None) as sim:
        streams = cast(BinanceDialect, sim.dialect).streams
        client = make_client(sim)
        try:
            one = asyncio.create_task(client.watch_mark_price(BTC))
            await asyncio.wait_for(streams.until_subscribed("btcusdt@markPrice@1s"), TIMEOUT)
            sim.engine.set_mark("BTCUSDT", 61_234.5, index=61_230.0)
            ticker = await asyncio.wait_for(one, TIMEOUT)
            assert (ticker["symbol"], ticker["markPrice"], ticker["indexPrice"]) == (BTC, 61_234.5, 61_230.0)

            every = asyncio.create_task(client.watch_mark_prices())
            await asyncio.wait_for(streams.until_subscribed("!markPrice@arr@1s"), TIMEOUT)
            sim.engine.set_marks({"ETHUSDT": 3_333.0, "SOLUSDT": 155.5})  # one array frame for both
            tickers = await asyncio.wait_for(every, TIMEOUT)
            assert {symbol: t["markPrice"] for symbol, t in tickers.items()} == {
                ETH: 3_333.0,
                "SOL/USDT:USDT": 155.5,
            }
        finally:
            await client.close()
        assert any(e["path"].startswith("/market/ws") and e["websocket"] for e in sim.engine.request_log)
        assert_loopback_only(sim)


async def test_position_and_balance_pushes_reach_watch_positions_and_watch_balance() -> None:
    async with SimServer("binance") as sim:
        client = make_client(sim)
        try:
            snapshot = await asyncio.wait_for(client.watch_positions(), TIMEOUT)  # REST snapshot first
            assert snapshot == []
            positions = asyncio.create_task(client.watch_positions())
            balance = asyncio.create_task(client.watch_balance())
            await _private_stream_open(sim)
            await client.create_order(ETH, "market", "sell", 2.0)
            update = await asyncio.wait_for(positions, TIMEOUT)
            assert [(p["symbol"], p["side"], p["contracts"]) for p in update] == [(ETH, "short", 2.0)]
            pushed = await asyncio.wait_for(balance, TIMEOUT)
            entry = sim.engine.marks["ETHUSDT"]
            fee = 2.0 * entry * sim.engine.markets["ETHUSDT"].taker_fee
            assert pushed["USDT"]["total"] == pytest.approx(10_000.0 - fee)

            # Buying half back after a 100 USDT drop realises 100 on the short: the row's "cr" says so.
            sim.engine.set_mark("ETHUSDT", entry - 100.0)
            positions = asyncio.create_task(client.watch_positions())
            await client.create_order(ETH, "market", "buy", 1.0)
            [reduced] = await asyncio.wait_for(positions, TIMEOUT)
            assert (reduced["contracts"], reduced["side"]) == (1.0, "short")
            assert float(reduced["info"]["cr"]) == pytest.approx(100.0)
        finally:
            await client.close()
        assert_loopback_only(sim)


async def _private_stream_open(sim: SimServer) -> None:
    """Wait until the user-data socket is connected and subscribed (the watch calls connect lazily)."""
    streams = cast(BinanceDialect, sim.dialect).streams
    await asyncio.wait_for(streams.until_subscribed(user_channel(sim.account.api_key)), TIMEOUT)


async def test_liquidation_is_pushed_when_the_mark_crosses_the_liquidation_price() -> None:
    async with SimServer("binance") as sim:
        key = sim.account.api_key
        client = make_client(sim)
        try:
            await client.set_margin_mode("isolated", BTC)
            await client.set_leverage(25, BTC)
            await client.create_order(BTC, "market", "buy", 0.3)
            reported = (await client.fetch_positions([BTC]))[0]["liquidationPrice"]
            model = sim.engine.liquidation_price(key, "BTCUSDT")
            assert reported == pytest.approx(model, abs=1e-8)
            wallet_total_before = (await client.fetch_balance())["info"]["totalWalletBalance"]

            await client.watch_positions()  # snapshot
            positions = asyncio.create_task(client.watch_positions())
            liquidations = asyncio.create_task(client.watch_my_liquidations(BTC))
            await _private_stream_open(sim)
            sim.engine.set_mark("BTCUSDT", reported - 50)  # just past the liquidation price

            update = await asyncio.wait_for(positions, TIMEOUT)
            assert [(p["symbol"], p["contracts"]) for p in update] == [(BTC, 0.0)]
            forced = (await asyncio.wait_for(liquidations, TIMEOUT))[0]
            record = sim.engine.liquidations[-1]
            assert forced["info"]["o"] == "LIQUIDATION" and forced["info"]["c"].startswith("autoclose-")
            assert (forced["contracts"], forced["side"]) == (0.3, "sell")
            assert forced["price"] == pytest.approx(record["price"], abs=0.1)
            assert sim.engine.find_position(key, "BTCUSDT") is None
            assert await client.fetch_positions() == []
            # A client that missed the push finds the same forced close in the REST history.
            [history] = await client.fetch_my_liquidations(BTC)
            assert history["info"]["clientOrderId"] == forced["info"]["c"]
            assert (history["contracts"], history["price"]) == (forced["contracts"], forced["price"])

            after = (await client.fetch_balance())["info"]["totalWalletBalance"]
            assert float(after) == pytest.approx(float(wallet_total_before) - record["loss"])
            assert record["loss"] > 0
        finally:
            await client.close()
        assert_loopback_only(sim)


async def test_bad_signature_bad_key_and_stale_timestamp_are_refused_like_binance() -> None:
    async with SimServer("binance") as sim:
        forged = make_client(sim, secret="not-the-secret")
        stranger = make_client(sim, apiKey="nobody")
        honest = make_client(sim)
        try:
            with pytest.raises(errors.AuthenticationError, match=r'"code":-1022'):
                await forged.fetch_balance()
            with pytest.raises(errors.AuthenticationError, match=r'"code":-2015'):
                await stranger.fetch_balance()
            await honest.load_markets()
            sim.faults.set("clock_skew", ms=-60_000)  # the server's clock a minute behind: ahead of it
            with pytest.raises(errors.InvalidNonce, match="-1021"):
                await honest.fetch_balance()
            sim.faults.set("clock_skew", ms=60_000)  # a minute ahead: outside the 10 s recvWindow ccxt sends
            with pytest.raises(errors.InvalidNonce, match="outside of the recvWindow"):
                await honest.fetch_balance()
            sim.faults.clear("clock_skew")
            assert (await honest.fetch_balance())["USDT"]["total"] == pytest.approx(10_000.0)
        finally:
            for client in (forged, stranger, honest):
                await client.close()
        refused = [e for e in sim.engine.request_log if e["status"] in (400, 401)]
        assert len(refused) == 4
        assert_loopback_only(sim)


async def test_rate_limit_and_ban_answer_with_retry_after() -> None:
    async with SimServer("binance") as sim:
        client = make_client(sim)
        try:
            await client.load_markets()
            sim.faults.set("http_status", status=429, count=1)
            with pytest.raises(errors.DDoSProtection):
                await client.fetch_balance()
            sim.faults.set("http_status", status=418, count=1)
            async with aiohttp.ClientSession() as session, session.get(f"{sim.http_base}/fapi/v1/time") as r:
                body = await r.json()
                assert r.status == 418 and int(r.headers["Retry-After"]) > 0
                assert body["code"] == -1003 and "banned until" in body["msg"]
            async with aiohttp.ClientSession() as session, session.get(f"{sim.http_base}/fapi/v1/time") as r:
                assert r.status == 200 and int(r.headers["X-MBX-USED-WEIGHT-1M"]) >= 1
        finally:
            await client.close()
        assert_loopback_only(sim)


async def test_rest_answers_have_binances_shapes_and_types() -> None:
    async with SimServer("binance") as sim:
        key = sim.account.api_key
        sim.engine.set_position(key, "BTCUSDT", Side.LONG, 0.009, entry_price=67_445.9)
        risk = await signed_get(sim, "/fapi/v3/positionRisk")
        assert shape(risk) == shape(REAL["position_risk_v3_doc"]["payload"])
        assert keys(risk) == keys(REAL["position_risk_v3"]["payload"])
        assert keys(await signed_get(sim, "/fapi/v3/account")) == keys(REAL["account_v3"]["payload"])
        assert set(keys(await signed_get(sim, "/fapi/v2/account"))) == set(
            keys(REAL["account_v2"]["payload"])
        )
        assert keys(await signed_get(sim, "/fapi/v1/symbolConfig", symbol="BTCUSDT")) == keys(
            REAL["symbol_config"]["payload"]
        )
        brackets = await signed_get(sim, "/fapi/v1/leverageBracket")
        published = REAL["leverage_bracket_list"]["payload"]
        assert set(brackets[0]) == set(published[0]) - {"notionalCoef"}  # only on adjusted accounts
        assert shape(brackets[0]["brackets"][0]) == shape(published[0]["brackets"][0])
        url = f"{sim.http_base}/fapi/v1/premiumIndex?symbol=BTCUSDT"
        async with aiohttp.ClientSession() as session, session.get(url) as r:
            assert shape(await r.json()) == shape(REAL["premium_index"]["payload"])
        assert_loopback_only(sim)


async def test_user_stream_frames_have_binances_shapes() -> None:
    async with SimServer("binance", mark_interval_s=None) as sim:
        key = sim.account.api_key
        headers = {"X-MBX-APIKEY": key}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{sim.http_base}/fapi/v1/listenKey", headers=headers) as r:
                listen_key = (await r.json())["listenKey"]
            async with session.ws_connect(f"{sim.ws_base}/private/ws?listenKey={listen_key}") as ws:
                await _private_stream_open(sim)
                sim.engine.set_position(key, "ETHUSDT", Side.LONG, 5.0, entry_price=3_500.0, leverage=50)
                update = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                real_update = REAL["account_update"]["payload"]
                assert shape(update) == shape(real_update)

                # Near the liquidation price (cross): MARGIN_CALL, as published.
                liquidation = sim.engine.liquidation_price(key, "ETHUSDT")
                assert liquidation is not None
                sim.engine.set_mark("ETHUSDT", liquidation + 0.5)
                call = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                assert shape(call) == shape(REAL["margin_call"]["payload"])
                assert call["p"][0]["mt"] == "CROSSED"

                # Past it: the forced order, then the account update with the leg at zero.
                sim.engine.set_mark("ETHUSDT", liquidation - 1.0)
                order = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                assert (order["e"], order["o"]["o"], order["o"]["x"], order["o"]["X"]) == (
                    "ORDER_TRADE_UPDATE",
                    "LIQUIDATION",
                    "CALCULATED",
                    "FILLED",
                )
                closed = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                row = closed["a"]["P"][0]
                assert closed["e"] == "ACCOUNT_UPDATE" and float(row["pa"]) == 0.0
                record = sim.engine.liquidations[-1]
                realized = (record["price"] - record["entry_price"]) * record["contracts"]
                assert float(row["cr"]) == pytest.approx(realized, abs=1e-6)  # realized at bankruptcy

                sim.faults.set("listen_key_expired")
                expired = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                assert shape(expired) == shape(REAL["listen_key_expired"]["payload"])
            async with session.put(f"{sim.http_base}/fapi/v1/listenKey", headers=headers) as r:
                assert (r.status, (await r.json())["code"]) == (400, -1125)
        assert_loopback_only(sim)


async def test_market_socket_answers_requests_and_protocol_pings() -> None:
    async with SimServer("binance", mark_interval_s=None) as sim:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{sim.ws_base}/market/ws", autoping=False) as ws,
        ):
            await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 7})
            assert await asyncio.wait_for(ws.receive_json(), TIMEOUT) == {"result": None, "id": 7}
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 8})
            assert await asyncio.wait_for(ws.receive_json(), TIMEOUT) == {
                "result": ["btcusdt@markPrice@1s"],
                "id": 8,
            }
            sim.engine.set_mark("BTCUSDT", 66_000.0)
            frame = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
            assert shape(frame) == shape({**REAL["mark_price_update"]["payload"], "ap": ""})
            assert frame["p"] == "66000.00000000"
            await ws.send_json({"method": "NOPE", "id": 9})
            error = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
            assert error["error"]["code"] == 2 and error["id"] == 9

            await ws.ping(b"are you there")
            pong = await asyncio.wait_for(ws.receive(), TIMEOUT)  # autoping off: the PONG is handed up
            assert pong.type is aiohttp.WSMsgType.PONG
        assert_loopback_only(sim)


async def test_watch_survives_several_keepalive_rounds() -> None:
    # ccxt pings every keepAlive ms and fails the watch after two rounds without a pong: pongs must come back.
    async with SimServer("binance", mark_interval_s=0.2) as sim:
        client = make_client(sim, streaming={"keepAlive": 150})
        try:
            await asyncio.wait_for(client.watch_mark_price(BTC), TIMEOUT)
            started_ms = time.time() * 1000
            for _ in range(4):  # four pushes of the 0.2 s mark stream: over five keepAlive rounds
                await asyncio.wait_for(client.watch_mark_price(BTC), TIMEOUT)
            connection = next(iter(client.clients.values()))
            assert connection.lastPong is not None and connection.lastPong > started_ms
        finally:
            await client.close()
        assert_loopback_only(sim)


async def test_hedge_mode_legs_each_carry_the_models_liquidation_price() -> None:
    async with SimServer("binance") as sim:
        key = sim.account.api_key
        client = make_client(sim)
        try:
            await client.set_position_mode(True)
            assert (await client.fetch_position_mode())["hedged"] is True
            await client.set_margin_mode("isolated", BTC)  # each leg then has its own liquidation price
            await client.create_order(BTC, "market", "buy", 0.4, params={"positionSide": "LONG"})
            await client.create_order(BTC, "market", "sell", 0.1, params={"positionSide": "SHORT"})
            legs = {p["side"]: p for p in await client.fetch_positions([BTC])}
            assert {side: leg["contracts"] for side, leg in legs.items()} == {"long": 0.4, "short": 0.1}
            assert all(leg["hedged"] for leg in legs.values())
            for side, leg in legs.items():
                model = sim.engine.liquidation_price(key, "BTCUSDT", Side(side))
                if model is None:
                    assert leg["liquidationPrice"] is None  # Binance writes "0", ccxt reads no price
                else:
                    assert leg["liquidationPrice"] == pytest.approx(model, abs=1e-8)
            # Cross legs of one symbol held both ways: each reports what the model says for it.
            await client.create_order(ETH, "market", "buy", 3.0, params={"positionSide": "LONG"})
            await client.create_order(ETH, "market", "sell", 1.0, params={"positionSide": "SHORT"})
            eth_legs = await client.fetch_positions([ETH])
            assert sorted((leg["side"], leg["marginMode"]) for leg in eth_legs) == [
                ("long", "cross"),
                ("short", "cross"),
            ]
            for leg in eth_legs:
                model = sim.engine.liquidation_price(key, "ETHUSDT", Side(leg["side"]))
                assert leg["liquidationPrice"] == (None if model is None else pytest.approx(model, abs=1e-8))
            with pytest.raises(errors.OperationRejected, match="-4061"):
                await client.create_order(BTC, "market", "buy", 0.1)  # hedge mode needs a positionSide
            with pytest.raises(errors.OperationRejected, match="-4068"):
                await client.set_position_mode(False)  # not while legs are open
        finally:
            await client.close()
        assert_loopback_only(sim)


async def test_dropped_sockets_fail_the_watch_and_the_next_watch_reconnects() -> None:
    async with SimServer("binance", mark_interval_s=0.1) as sim:
        client = make_client(sim)

        async def watch_mark_again() -> Any:
            # A consumer's loop: a watch pending on a dead socket fails once; the next call reconnects.
            try:
                return await client.watch_mark_price(BTC)
            except errors.NetworkError:
                return await client.watch_mark_price(BTC)

        try:
            await asyncio.wait_for(client.watch_mark_price(BTC), TIMEOUT)
            await client.watch_positions()  # snapshot
            positions = asyncio.create_task(client.watch_positions())
            await _private_stream_open(sim)
            assert sim.faults.drop_websockets() == 2  # the market and the user-data socket
            with pytest.raises(errors.NetworkError):
                await asyncio.wait_for(positions, TIMEOUT)

            assert (await asyncio.wait_for(watch_mark_again(), TIMEOUT))["symbol"] == BTC
            positions = asyncio.create_task(client.watch_positions())  # same listen key, new socket
            await _private_stream_open(sim)
            await client.create_order(BTC, "market", "buy", 0.01)
            update = await asyncio.wait_for(positions, TIMEOUT)
            assert [(p["symbol"], p["contracts"]) for p in update] == [(BTC, 0.01)]
        finally:
            await client.close()
        upgrades = [e["path"] for e in sim.engine.request_log if e["websocket"]]
        assert sum(path.startswith("/market/ws") for path in upgrades) == 2
        assert sum(path == "/private/ws" for path in upgrades) == 2
        assert_loopback_only(sim)


async def test_a_hung_request_times_out_in_ccxt() -> None:
    async with SimServer("binance") as sim:
        client = make_client(sim, timeout=300)
        try:
            await client.load_markets()
            sim.faults.set("http_timeout", path="/fapi/v3/account", count=1)
            with pytest.raises(errors.RequestTimeout):
                await client.fetch_balance()
            sim.faults.clear("http_timeout")
            assert (await client.fetch_balance())["USDT"]["total"] == pytest.approx(10_000.0)
        finally:
            await client.close()
        assert_loopback_only(sim)


async def test_transfers_move_the_futures_wallet_and_are_pushed_as_deposits() -> None:
    async with SimServer("binance") as sim:
        client = make_client(sim)
        try:
            await client.watch_positions()  # opens nothing yet: the snapshot comes by REST
            balance = asyncio.create_task(client.watch_balance())
            await _private_stream_open(sim)
            moved = await client.transfer("USDT", 500, "spot", "linear")
            assert moved["id"] is not None  # Binance answers {"tranId": ...} and nothing else
            pushed = await asyncio.wait_for(balance, TIMEOUT)
            assert pushed["USDT"]["total"] == pytest.approx(10_500.0)
            assert (pushed["info"]["a"]["m"], pushed["info"]["a"]["B"][0]["bc"]) == (
                "DEPOSIT",
                "500.00000000",
            )

            await client.transfer("USDT", 200, "linear", "spot")
            assert (await client.fetch_balance())["USDT"]["total"] == pytest.approx(10_300.0)
            with pytest.raises(errors.ExchangeError, match="-5013"):
                await client.transfer("USDT", 1_000_000, "linear", "spot")

            ticker = await client.fetch_ticker(BTC)  # no trades simulated: last is the mark
            assert ticker["last"] == pytest.approx(sim.engine.marks["BTCUSDT"])
        finally:
            await client.close()
        assert_loopback_only(sim)


async def test_a_listen_key_not_kept_alive_expires_and_a_deleted_one_ends_its_stream() -> None:
    offset = [0.0]  # the simulator's clock runs on a dial so an hour can pass at once
    async with SimServer("binance", mark_interval_s=None, clock=lambda: time.time() + offset[0]) as sim:
        key = sim.account.api_key
        headers = {"X-MBX-APIKEY": key}
        listen = f"{sim.http_base}/fapi/v1/listenKey"
        async with aiohttp.ClientSession() as session:
            async with session.post(listen, headers=headers) as r:
                first_key = (await r.json())["listenKey"]
            async with session.post(listen, headers=headers) as r:
                assert (await r.json())["listenKey"] == first_key  # the live key is handed out again
            async with session.ws_connect(f"{sim.ws_base}/private/ws?listenKey={first_key}") as ws:
                await _private_stream_open(sim)
                offset[0] += 61 * 60  # an hour without PUT /listenKey
                sim.engine.set_position(key, "BTCUSDT", Side.LONG, 0.1)
                expired = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                assert expired == {"e": "listenKeyExpired", "E": expired["E"], "listenKey": first_key}
            async with session.put(listen, headers=headers) as r:
                assert (await r.json())["code"] == -1125

            async with session.post(listen, headers=headers) as r:
                second_key = (await r.json())["listenKey"]
            assert second_key != first_key
            async with session.ws_connect(f"{sim.ws_base}/private/ws?listenKey={second_key}") as ws:
                await _private_stream_open(sim)
                async with session.delete(listen, headers=headers) as r:
                    assert r.status == 200
                closing = await asyncio.wait_for(ws.receive(), TIMEOUT)
                assert closing.type is aiohttp.WSMsgType.CLOSE
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{sim.ws_base}/private/ws?listenKey=nonsense")
            assert refused.value.status == 400
        assert_loopback_only(sim)


async def test_each_account_hears_only_its_own_user_stream() -> None:
    async with SimServer("binance") as sim:
        other = sim.engine.add_account("second-key", "second-secret", wallet={"USDT": 2_000.0})
        alice, bob = make_client(sim), make_client(sim, **sim.ccxt_config(other))
        try:
            await alice.watch_positions()
            await bob.watch_positions()
            alice_update = asyncio.create_task(alice.watch_positions())
            bob_update = asyncio.create_task(bob.watch_positions())
            await _private_stream_open(sim)
            streams = cast(BinanceDialect, sim.dialect).streams
            await asyncio.wait_for(streams.until_subscribed(user_channel("second-key")), TIMEOUT)
            await bob.create_order(ETH, "market", "buy", 0.5)
            await alice.create_order(BTC, "market", "sell", 0.01)
            assert [p["symbol"] for p in await asyncio.wait_for(bob_update, TIMEOUT)] == [ETH]
            assert [p["symbol"] for p in await asyncio.wait_for(alice_update, TIMEOUT)] == [BTC]
            assert (await bob.fetch_balance())["USDT"]["total"] < 2_000.0
        finally:
            await alice.close()
            await bob.close()
        assert {e["api_key"] for e in sim.engine.request_log if e["api_key"]} == {
            sim.account.api_key,
            "second-key",
        }
        assert_loopback_only(sim)
