"""An unmodified ccxt.pro okx client against the simulator's OKX v5 REST endpoints, over loopback.

Each test starts its own `SimServer("okx")`; the client is configured only through its constructor config.
The websocket side is in `test_sim_okx_streams.py`.
"""

from __future__ import annotations

import asyncio

import pytest
from ccxt.base.errors import (
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    InvalidNonce,
    RateLimitExceeded,
)

from daemon.core.types import MarginMode, Side
from daemon.sim.server import SimServer
from tests.integration.okx_support import (
    BTC,
    ETH,
    PUSH_TIMEOUT_S,
    RECORDED,
    isolated_margin,
    leg,
    okx_client,
    okx_dialect,
)

pytestmark = pytest.mark.integration


# ---- markets, balance, positions, tiers ----


async def test_load_markets_lists_usdt_swaps_sized_in_contracts() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        markets = await client.load_markets()
        btc = markets[BTC]
        assert btc["id"] == "BTC-USDT-SWAP"
        assert (btc["swap"], btc["linear"], btc["settle"]) == (True, True, "USDT")
        assert btc["contractSize"] == 0.01  # OKX: one contract is 0.01 BTC
        assert btc["precision"]["amount"] == 0.01
        assert btc["limits"]["leverage"]["max"] == 125
        assert len([m for m in markets.values() if m["swap"]]) == len(sim.engine.markets)


async def test_default_ccxt_options_also_load_with_other_instrument_types_empty() -> None:
    async with SimServer("okx") as sim:
        config = sim.ccxt_config()
        config.pop("options")
        async with okx_client(sim, config) as client:
            markets = await client.load_markets()
        assert all(m["swap"] for m in markets.values())
        asked = {e["query"] for e in sim.engine.request_log if e["path"] == "/api/v5/public/instruments"}
        assert {"instType=SPOT", "instType=SWAP", "instType=FUTURES"} <= asked


async def test_fetch_balance_reports_wallet_and_isolated_margin() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        balance = await client.fetch_balance()
        assert balance["USDT"]["total"] == pytest.approx(10_000)
        sim.engine.set_margin_mode(sim.account.api_key, "ETHUSDT", MarginMode.ISOLATED)
        sim.engine.set_leverage(sim.account.api_key, "ETHUSDT", 10)
        sim.engine.open_position(sim.account.api_key, "ETHUSDT", Side.SHORT, 10)  # 1 ETH at 3500
        fee = 3500 * 0.0005
        balance = await client.fetch_balance()
        assert balance["USDT"]["total"] == pytest.approx(10_000 - fee)
        detail = balance["info"]["data"][0]["details"][0]
        assert float(detail["isoEq"]) == pytest.approx(350.0)
        assert float(detail["frozenBal"]) == pytest.approx(350.0)
        recorded = RECORDED["balance"]["data"][0]
        assert set(recorded["details"][0]) <= set(detail)
        assert set(recorded) <= set(balance["info"]["data"][0])


async def test_fetch_positions_report_the_model_liquidation_price() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        key = sim.account.api_key
        sim.engine.set_margin_mode(key, "BTCUSDT", MarginMode.ISOLATED)
        sim.engine.set_leverage(key, "BTCUSDT", 20)
        sim.engine.open_position(key, "BTCUSDT", Side.LONG, 100)  # 1 BTC
        sim.engine.set_wallet(key, "USDT", 1_000)
        sim.engine.open_position(key, "ETHUSDT", Side.SHORT, 20)  # 2 ETH, cross
        positions = await client.fetch_positions()
        btc, eth = leg(positions, BTC), leg(positions, ETH)
        assert btc is not None and eth is not None
        assert (btc["side"], btc["contracts"], btc["contractSize"]) == ("long", 100, 0.01)
        assert (btc["marginMode"], btc["leverage"]) == ("isolated", 20)
        assert btc["collateral"] == pytest.approx(67_000 / 20)
        assert btc["maintenanceMarginPercentage"] == 0.005  # 100 contracts: the second published tier
        assert btc["liquidationPrice"] == pytest.approx(
            sim.engine.liquidation_price(key, "BTCUSDT"), rel=1e-12
        )
        assert (eth["side"], eth["marginMode"], eth["hedged"]) == ("short", "cross", False)
        assert eth["liquidationPrice"] == pytest.approx(
            sim.engine.liquidation_price(key, "ETHUSDT"), rel=1e-12
        )
        assert eth["info"]["pos"] == "-20" and eth["info"]["posSide"] == "net"


async def test_position_rows_carry_every_field_okx_sends_all_as_strings() -> None:
    recorded = RECORDED["position_linear_cross"]["data"][0]
    async with SimServer("okx") as sim, okx_client(sim) as client:
        sim.engine.open_position(sim.account.api_key, "LTCUSDT", Side.LONG, 2)
        positions = await client.fetch_positions(["LTC/USDT:USDT"])
        row = positions[0]["info"]
        assert set(recorded) <= set(row)
        assert all(type(row[k]) is type(recorded[k]) for k in recorded)
        assert row["liqPx"] == "" and row["margin"] == ""  # cross and far from liquidation: not applicable


async def test_leverage_tiers_are_sized_in_contracts() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        tiers = await client.fetch_market_leverage_tiers(BTC)
        assert tiers[0]["maintenanceMarginRate"] == 0.004 and tiers[0]["maxLeverage"] == 125
        # 50 000 USDT at the listed 67 000 is 0.746 BTC, i.e. 75 contracts of 0.01 BTC
        assert (tiers[0]["minNotional"], tiers[0]["maxNotional"]) == (0, 75)
        assert [t["minNotional"] for t in tiers[1:]] == [t["maxNotional"] for t in tiers[:-1]]


# ---- changing margin, leverage and mode ----


async def test_add_and_reduce_isolated_margin_move_the_liquidation_price() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        key = sim.account.api_key
        sim.engine.set_margin_mode(key, "BTCUSDT", MarginMode.ISOLATED)
        sim.engine.open_position(key, "BTCUSDT", Side.LONG, 100)
        before = sim.engine.liquidation_price(key, "BTCUSDT")
        request = {"instId": "BTC-USDT-SWAP", "posSide": "net", "type": "add", "amt": "500"}
        answer = await client.private_post_account_position_margin_balance(request)
        assert answer["code"] == "0" and answer["data"][0]["amt"] == "500"
        positions = await client.fetch_positions([BTC])
        assert positions[0]["collateral"] == pytest.approx(3350 + 500)
        assert positions[0]["liquidationPrice"] < before
        answer = await client.private_post_account_position_margin_balance({**request, "type": "reduce"})
        assert answer["code"] == "0"
        assert isolated_margin(sim, "BTCUSDT") == pytest.approx(3350)
        with pytest.raises(ExchangeError, match="59301"):
            await client.private_post_account_position_margin_balance(
                {**request, "type": "reduce", "amt": "3000"}
            )


async def test_unified_add_margin_moves_margin_but_ccxt_fails_parsing_the_answer() -> None:
    # ccxt 4.5.90's okx.parse_margin_modification indexes a string ('type': type['type']); the request
    # succeeds on the exchange and the client raises afterwards, so a retry would add the margin twice.
    async with SimServer("okx") as sim, okx_client(sim) as client:
        key = sim.account.api_key
        sim.engine.set_margin_mode(key, "BTCUSDT", MarginMode.ISOLATED)
        sim.engine.open_position(key, "BTCUSDT", Side.LONG, 100)
        with pytest.raises(TypeError):
            await client.add_margin(BTC, 100)
        assert isolated_margin(sim, "BTCUSDT") == pytest.approx(3450)


async def test_margin_of_a_cross_position_cannot_be_adjusted() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        sim.engine.open_position(sim.account.api_key, "BTCUSDT", Side.LONG, 100)
        with pytest.raises(ExchangeError, match="59300"):
            await client.private_post_account_position_margin_balance(
                {"instId": "BTC-USDT-SWAP", "posSide": "net", "type": "add", "amt": "10"}
            )


async def test_set_margin_mode_and_leverage_then_trade_isolated() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        key = sim.account.api_key
        await client.set_margin_mode("isolated", ETH, {"leverage": 10})
        assert sim.engine.account(key).margin_mode_for("ETHUSDT") is MarginMode.ISOLATED
        await client.set_leverage(5, ETH, {"marginMode": "isolated"})
        order = await client.create_order(ETH, "market", "buy", 10, None, {"tdMode": "isolated"})
        assert order["id"]
        position = (await client.fetch_positions([ETH]))[0]
        assert (position["marginMode"], position["leverage"], position["contracts"]) == ("isolated", 5, 10)
        assert position["collateral"] == pytest.approx(3500 / 5)
        with pytest.raises(ExchangeError, match="59000"):
            await client.set_margin_mode("cross", ETH, {"leverage": 5})
        with pytest.raises(ExchangeError, match="59102"):
            await client.set_leverage(100, "SOL/USDT:USDT")  # SOL allows 75x at most


async def test_transfer_from_funding_to_trading_feeds_the_futures_wallet_once_per_client_id() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        funding_before = (await client.fetch_balance({"type": "funding"}))["USDT"]["total"]
        done = await client.transfer("USDT", 250, "funding", "trading", {"clientId": "refill7"})
        assert (done["fromAccount"], done["toAccount"], done["amount"]) == ("funding", "trading", 250)
        assert (await client.fetch_balance())["USDT"]["total"] == pytest.approx(10_250)
        assert (await client.fetch_balance({"type": "funding"}))["USDT"]["total"] == funding_before - 250
        assert (await client.fetch_transfer(done["id"], "USDT"))["status"] == "ok"
        with pytest.raises(ExchangeError, match="clientId"):
            await client.transfer("USDT", 250, "funding", "trading", {"clientId": "refill7"})
        with pytest.raises(InsufficientFunds, match="58350"):
            await client.transfer("USDT", 50_000, "trading", "funding")
        assert sim.engine.account(sim.account.api_key).wallet["USDT"] == pytest.approx(10_250)


async def test_order_beyond_the_balance_is_refused_as_insufficient_funds() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        with pytest.raises(InsufficientFunds):
            await client.create_order(BTC, "market", "buy", 100_000)
        assert sim.engine.account(sim.account.api_key).positions == []


@pytest.mark.parametrize("mode", ["isolated", "cross"])
async def test_long_short_mode_keeps_both_legs_with_the_model_liquidation_prices(mode: str) -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        key = sim.account.api_key
        sim.engine.set_wallet(key, "USDT", 1_000)  # small enough for every leg to have a liquidation price
        await client.set_position_mode(True)
        assert (await client.fetch_position_mode())["hedged"] is True
        await client.set_margin_mode(mode, ETH, {"leverage": 20})
        await client.create_order(ETH, "market", "buy", 30, None, {"tdMode": mode, "posSide": "long"})
        await client.create_order(ETH, "market", "sell", 10, None, {"tdMode": mode, "posSide": "short"})
        positions = {p["side"]: p for p in await client.fetch_positions([ETH])}
        assert (positions["long"]["contracts"], positions["short"]["contracts"]) == (30, 10)
        assert positions["long"]["hedged"] and positions["long"]["info"]["posSide"] == "long"
        for side in (Side.LONG, Side.SHORT):
            expected = sim.engine.liquidation_price(key, "ETHUSDT", side)
            assert expected is not None
            assert positions[side.value]["liquidationPrice"] == pytest.approx(expected, rel=1e-12)
        assert sim.engine.liquidations == []
        with pytest.raises(ExchangeError, match="59000"):
            await client.set_position_mode(False)


async def test_demo_trading_client_still_talks_only_to_the_simulator() -> None:
    async with SimServer("okx") as sim, okx_client(sim, sandbox=True) as client:
        okx_dialect(sim).demo_keys[sim.account.api_key] = True
        assert client.headers["x-simulated-trading"] == "1"
        assert (await client.fetch_balance())["USDT"]["total"] == pytest.approx(10_000)
        assert await asyncio.wait_for(client.watch_positions(), PUSH_TIMEOUT_S) == []


async def test_a_demo_key_used_without_demo_mode_is_refused_as_the_wrong_environment() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        okx_dialect(sim).demo_keys[sim.account.api_key] = True
        with pytest.raises(AuthenticationError, match="50101"):
            await client.fetch_balance()


# ---- refusals ----


async def test_bad_signature_key_and_passphrase_are_refused_with_okx_codes() -> None:
    async with SimServer("okx") as sim:
        for field, value, code in (
            ("secret", "not-the-secret", "50113"),
            ("apiKey", "no-such-key", "50111"),
            ("password", "wrong-passphrase", "50105"),
        ):
            async with okx_client(sim, {**sim.ccxt_config(), field: value}) as client:
                with pytest.raises(AuthenticationError, match=code):
                    await client.fetch_balance()
        private = [
            e for e in sim.engine.request_log if e["path"].startswith(("/api/v5/asset/", "/api/v5/account/"))
        ]
        assert private and {e["status"] for e in private} == {401}


async def test_rate_limit_and_clock_skew_map_to_ccxt_errors() -> None:
    async with SimServer("okx") as sim, okx_client(sim) as client:
        await client.load_markets()
        sim.faults.set("http_status", status=429, count=1, path="/api/v5/account/")
        with pytest.raises(RateLimitExceeded):
            await client.fetch_balance()
        sim.faults.set("clock_skew", ms=60_000)
        with pytest.raises(InvalidNonce, match="50102"):
            await client.fetch_balance()
        sim.faults.clear("clock_skew")
        assert (await client.fetch_balance())["USDT"]["total"] == pytest.approx(10_000)
