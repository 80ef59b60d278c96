"""`VenueRecords` reads each venue's own records through unmodified ccxt against the simulator: a leg the
exchange liquidated is found there (size, price, when), a leg its owner closed is not, and Binance's margin
history lists the margin added."""

from __future__ import annotations

import math
import time

import pytest

from daemon.core.types import MarginMode, Side
from daemon.exchanges.client import build_client
from daemon.exchanges.errors import ExchangeError
from daemon.exchanges.quirks import quirks_for
from daemon.exchanges.venue_records import VenueRecords
from tests.integration.connector_support import EXCHANGES, account_for, open_leg, simulator, unified

pytestmark = pytest.mark.integration

BTC, ETH = "BTCUSDT", "ETHUSDT"


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_a_liquidated_leg_is_in_the_records_and_a_leg_closed_by_its_owner_is_not(exchange: str) -> None:
    async with simulator(exchange) as sim:
        key = sim.account.api_key
        open_leg(sim, BTC, Side.SHORT, 0.2, MarginMode.ISOLATED, leverage=25)
        open_leg(sim, ETH, Side.LONG, 2.0, MarginMode.ISOLATED, leverage=10)
        account = account_for(sim)
        client = build_client(account)
        try:
            await client.load_markets()
            records = VenueRecords(client, quirks_for(account.exchange))
            since = int(time.time() * 1000) - 1_000
            assert await records.liquidations(since) == []

            sim.engine.close_position(key, ETH, Side.LONG)  # the owner's close
            liquidation = sim.engine.liquidation_price(key, BTC, Side.SHORT)
            assert liquidation is not None
            sim.engine.set_mark(BTC, round(liquidation * 1.05, 1))  # a gap straight through it
            [done] = sim.engine.liquidations

            found = await records.liquidations(since)
            assert found is not None and len(found) == 1, found
            [record] = found
            assert (record.symbol, record.side) == (unified(sim, BTC), Side.SHORT)
            assert math.isclose(record.contracts, done["contracts"], rel_tol=1e-9)
            assert record.price is not None and math.isclose(record.price, done["price"], rel_tol=1e-4)
            assert record.ts_ms >= since
            # Asked from after it, there is nothing.
            assert await records.liquidations(record.ts_ms + 1) == []
        finally:
            await client.close()


@pytest.mark.parametrize("exchange", ["binance", "okx"])
async def test_the_margin_history_lists_the_margin_added_to_and_removed_from_a_leg(exchange: str) -> None:
    async with simulator(exchange) as sim:
        key = sim.account.api_key
        open_leg(sim, BTC, Side.LONG, 0.2, MarginMode.ISOLATED, leverage=20)
        account = account_for(sim)
        client = build_client(account)
        try:
            await client.load_markets()
            btc = unified(sim, BTC)
            records = VenueRecords(client, quirks_for(account.exchange), symbols=lambda: [btc])
            since = int(time.time() * 1000) - 1_000
            sim.engine.adjust_isolated_margin(key, BTC, Side.LONG, 12.5)
            sim.engine.adjust_isolated_margin(key, BTC, Side.LONG, -2.5)
            changes = await records.margin_changes(since)
            assert changes is not None and [(c.symbol, c.amount, c.kind, c.asset) for c in changes] == [
                (btc, 12.5, "add", "USDT"),
                (btc, -2.5, "reduce", "USDT"),
            ]
            assert await records.margin_changes(changes[-1].ts_ms + 1) == []
        finally:
            await client.close()


async def test_bybit_keeps_no_margin_history_marginguard_reads() -> None:
    async with simulator("bybit") as sim:
        account = account_for(sim)
        client = build_client(account)
        try:
            records = VenueRecords(client, quirks_for(account.exchange))
            assert await records.margin_changes(0) is None
        finally:
            await client.close()


async def test_records_that_cannot_be_read_raise_a_typed_error_never_answer_no() -> None:
    async with simulator("bybit") as sim:
        account = account_for(sim)
        client = build_client(account)
        try:
            await client.load_markets()
            records = VenueRecords(client, quirks_for(account.exchange))
            await sim.stop()
            with pytest.raises(ExchangeError):
                await records.liquidations(0)
        finally:
            await client.close()


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_a_cross_liquidation_is_on_record_once_for_every_leg_it_closed(exchange: str) -> None:
    async with simulator(exchange) as sim:
        key = sim.account.api_key
        sim.engine.set_wallet(key, "USDT", 2_000.0)
        open_leg(sim, BTC, Side.LONG, 0.5, MarginMode.CROSS, leverage=20)
        open_leg(sim, ETH, Side.LONG, 4.0, MarginMode.CROSS, leverage=20)
        account = account_for(sim)
        client = build_client(account)
        try:
            await client.load_markets()
            records = VenueRecords(client, quirks_for(account.exchange))
            since = int(time.time() * 1000) - 1_000
            liquidation = sim.engine.liquidation_price(key, BTC, Side.LONG)
            assert liquidation is not None
            sim.engine.set_mark(BTC, round(liquidation * 0.95, 1))
            assert sorted(r["symbol"] for r in sim.engine.liquidations) == [BTC, ETH]
            found = await records.liquidations(since)
            assert found is not None
            assert sorted((r.symbol, r.side) for r in found) == [
                (unified(sim, BTC), Side.LONG),
                (unified(sim, ETH), Side.LONG),
            ]
        finally:
            await client.close()


async def test_binance_liquidation_records_are_asked_per_named_symbol_at_the_lighter_weight() -> None:
    # GET /fapi/v1/forceOrders weighs 50 without a symbol, 20 with one; ccxt's request queue holds every other
    # call of the account (a reconnect's listen key, a snapshot, a top-up) behind the heavier one for 2.5 s.
    async with simulator("binance") as sim:
        account = account_for(sim)
        client = build_client(account)
        try:
            await client.load_markets()
            records = VenueRecords(client, quirks_for(account.exchange))
            since = int(time.time() * 1000) - 1_000
            first = len(sim.engine.request_log)
            assert await records.liquidations(since, [unified(sim, BTC)]) == []
            asked = [e for e in sim.engine.request_log[first:] if "forceOrders" in str(e.get("path"))]
            assert len(asked) == 1 and f"symbol={BTC}" in asked[0]["query"], asked
        finally:
            await client.close()
