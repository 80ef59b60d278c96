"""The actuator against the simulator through real ccxt clients: margin lands exactly as rounded, dry-run
sends nothing, refusals come back typed, and a repeated tag is not sent twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from daemon.core.types import MarginMode, Side
from daemon.exchanges.actuator import Actuator
from daemon.exchanges.client import build_client
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.errors import InvalidRequest
from daemon.exchanges.quirks import quirks_for
from daemon.sim.server import SimServer

pytestmark = pytest.mark.integration

BTC = "BTC/USDT:USDT"


@dataclass(frozen=True)
class Venue:
    dialect: str
    one_btc: float  # contracts making one BTC
    margin_path: str
    # 12.3456789123 USDT rounded DOWN as each exchange will receive it: Binance truncates margin to the
    # market's amount step (0.001, as ccxt does), Bybit to 4 decimals, OKX to 8.
    rounded: float


VENUES = [
    Venue("binance", 1.0, "/fapi/v1/positionMargin", 12.345),
    Venue("bybit", 1.0, "/v5/position/add-margin", 12.3456),
    Venue("okx", 100.0, "/api/v5/account/position/margin-balance", 12.34567891),
]
REQUESTED = 12.3456789123


@asynccontextmanager
async def actuator_on(venue: Venue, dry_run: bool = False) -> AsyncIterator[tuple[SimServer, Actuator]]:
    async with SimServer(venue.dialect, mark_interval_s=None) as sim:
        client = build_client(ExchangeAccount("acct-1", sim.ccxt_id, ccxt_config=sim.ccxt_config()))
        try:
            await client.load_markets()
            yield sim, Actuator(client, quirks_for(sim.ccxt_id), dry_run=dry_run)
        finally:
            await client.close()
        assert {entry["remote"] for entry in sim.engine.request_log} <= {"127.0.0.1"}


def open_btc(
    sim: SimServer, venue: Venue, mode: MarginMode, side: Side = Side.LONG, hedge: bool = False
) -> None:
    key = sim.account.api_key
    if hedge:
        sim.engine.set_hedge_mode(key, True)
        sim.engine.set_wallet(key, "USDT", 100_000)  # room for two legs
    if sim.engine.account(key).margin_mode_for("BTCUSDT") is not mode:
        sim.engine.set_margin_mode(key, "BTCUSDT", mode)
    sim.engine.set_leverage(key, "BTCUSDT", 10)
    sim.engine.open_position(key, "BTCUSDT", side, venue.one_btc)


def isolated_margin(sim: SimServer, side: Side | None = None) -> float:
    pos = sim.engine.find_position(sim.account.api_key, "BTCUSDT", side)
    assert pos is not None
    return pos.isolated_margin


def margin_posts(sim: SimServer, venue: Venue) -> list[dict[str, Any]]:
    return [entry for entry in sim.engine.request_log if entry["path"] == venue.margin_path]


def bybit_isolated(sim: SimServer) -> None:
    # Bybit unified accounts switch isolated margin account-wide; the engine keeps it per symbol.
    sim.engine.set_margin_mode(sim.account.api_key, "BTCUSDT", MarginMode.ISOLATED)


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.dialect)
async def test_added_margin_moves_the_isolated_margin_by_exactly_the_rounded_amount(venue: Venue) -> None:
    async with actuator_on(venue) as (sim, actuator):
        open_btc(sim, venue, MarginMode.ISOLATED)
        before = isolated_margin(sim)
        result = await actuator.add_isolated_margin(BTC, Side.LONG, REQUESTED, tag="top-up-1")
        assert result.sent and not result.dry_run and result.refused is None
        assert result.amount == pytest.approx(venue.rounded, abs=1e-12)
        assert result.amount is not None and result.amount <= REQUESTED
        assert isolated_margin(sim) - before == pytest.approx(venue.rounded, abs=1e-9)
        assert len(margin_posts(sim, venue)) == 1


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.dialect)
async def test_dry_run_reports_the_request_and_sends_nothing(venue: Venue) -> None:
    async with actuator_on(venue, dry_run=True) as (sim, actuator):
        open_btc(sim, venue, MarginMode.ISOLATED)
        before, requests_before = isolated_margin(sim), len(sim.engine.request_log)
        result = await actuator.add_isolated_margin(BTC, Side.LONG, REQUESTED, tag="top-up-1", hedged=False)
        assert result.dry_run and not result.sent
        assert result.amount == pytest.approx(venue.rounded, abs=1e-12)
        assert venue.rounded in (
            float(value)
            for value in (*result.request["args"], *result.request["params"].values())
            if _numeric(value)
        )
        assert len(sim.engine.request_log) == requests_before
        assert isolated_margin(sim) == before


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.dialect)
async def test_margin_on_a_cross_position_is_refused_as_an_invalid_request(venue: Venue) -> None:
    async with actuator_on(venue) as (sim, actuator):
        open_btc(sim, venue, MarginMode.CROSS)
        wallet = sim.engine.account(sim.account.api_key).wallet["USDT"]
        with pytest.raises(InvalidRequest):
            await actuator.add_isolated_margin(BTC, Side.LONG, 10.0, tag="top-up-1")
        assert sim.engine.account(sim.account.api_key).wallet["USDT"] == wallet


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.dialect)
async def test_hedge_mode_short_leg_gets_the_margin_and_the_long_leg_keeps_its_own(venue: Venue) -> None:
    async with actuator_on(venue) as (sim, actuator):
        open_btc(sim, venue, MarginMode.ISOLATED, Side.LONG, hedge=True)
        open_btc(sim, venue, MarginMode.ISOLATED, Side.SHORT)
        long_before, short_before = isolated_margin(sim, Side.LONG), isolated_margin(sim, Side.SHORT)
        result = await actuator.add_isolated_margin(BTC, Side.SHORT, 20.0, tag="top-up-short")
        assert result.sent
        assert isolated_margin(sim, Side.SHORT) - short_before == pytest.approx(20.0)
        assert isolated_margin(sim, Side.LONG) == long_before


async def test_a_repeated_tag_is_answered_from_memory_without_sending_again() -> None:
    venue = VENUES[0]
    async with actuator_on(venue) as (sim, actuator):
        open_btc(sim, venue, MarginMode.ISOLATED)
        before = isolated_margin(sim)
        first = await actuator.add_isolated_margin(BTC, Side.LONG, 5.0, tag="decision-42")
        again = await actuator.add_isolated_margin(BTC, Side.LONG, 5.0, tag="decision-42")
        assert first.sent and not first.repeated
        assert again.repeated and not again.sent and again.amount == first.amount
        assert isolated_margin(sim) - before == pytest.approx(5.0)
        assert len(margin_posts(sim, venue)) == 1


async def test_an_amount_that_rounds_to_nothing_is_refused_without_a_request() -> None:
    venue = VENUES[0]  # Binance: the margin amount is cut to the market's 0.001 step
    async with actuator_on(venue) as (sim, actuator):
        open_btc(sim, venue, MarginMode.ISOLATED)
        result = await actuator.add_isolated_margin(BTC, Side.LONG, 0.0009, tag="dust", hedged=False)
        assert not result.sent and result.refused is not None and "rounds down to 0" in result.refused
        assert margin_posts(sim, venue) == []


async def test_bybit_transfer_into_the_unified_wallet_is_truncated_and_tagged() -> None:
    venue = VENUES[1]
    async with actuator_on(venue) as (sim, actuator):
        wallet = sim.engine.account(sim.account.api_key).wallet["USDT"]
        result = await actuator.transfer_to_futures("USDT", 100.123456789, tag="refill-7")
        assert result.sent and result.amount == pytest.approx(100.1234)
        assert sim.engine.account(sim.account.api_key).wallet["USDT"] - wallet == pytest.approx(100.1234)
        transfer_id = result.request["params"]["transferId"]
        again = Actuator(actuator.client, actuator.quirks, dry_run=True)
        dry = await again.transfer_to_futures("USDT", 100.123456789, tag="refill-7")
        assert dry.request["params"]["transferId"] == transfer_id  # the same decision, the same exchange id


async def test_transfer_where_marginguard_has_no_route_is_refused_without_a_client() -> None:
    actuator = Actuator(client=None, quirks=quirks_for("gate"), dry_run=False)
    result = await actuator.transfer_to_futures("USDT", 50.0, tag="refill-1")
    assert not result.sent and result.refused is not None and "gate" in result.refused


def _numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
