"""The per-account exchange gateway against the simulator, through real ccxt clients and the simulator's HTTP
faults: reads retried on passing errors for a bounded number of attempts and never sooner than the exchange
asked, fatal errors raised at once, every error typed, and actions sent exactly once whatever happens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest

from daemon.core.backoff import Backoff
from daemon.core.types import MarginMode, Side
from daemon.exchanges.actuator import NotSent, OutcomeUnknown
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.errors import (
    AuthenticationFailed,
    ExchangeError,
    ExchangeUnavailable,
    InvalidRequest,
    TransientError,
)
from daemon.exchanges.gateway import ExchangeGateway, GatewaySettings
from daemon.exchanges.quirks import quirks_for, unified_add_margin
from daemon.sim.server import SimServer

pytestmark = pytest.mark.integration

BTC = "BTC/USDT:USDT"
WAIT_S = 5.0
FAST = GatewaySettings(read_attempts=3, backoff=Backoff(initial=0.02, cap=0.05, floor=0.01))


@dataclass(frozen=True)
class Venue:
    dialect: str
    one_btc: float  # contracts making one BTC
    positions_path: str
    margin_path: str


VENUES = [
    Venue("binance", 1.0, "/fapi/v3/positionRisk", "/fapi/v1/positionMargin"),
    Venue("bybit", 1.0, "/v5/position/list", "/v5/position/add-margin"),
    Venue("okx", 100.0, "/api/v5/account/positions", "/api/v5/account/position/margin-balance"),
]
BYBIT = VENUES[1]


@dataclass
class Waits:
    """The gateway's retry waits, recorded (and kept short: the schedule is what is under test)."""

    seconds: list[float]

    async def sleep(self, delay: float) -> None:
        self.seconds.append(delay)
        await asyncio.sleep(0)


@asynccontextmanager
async def gateway_on(
    venue: Venue, *, dry_run: bool = False, **config: Any
) -> AsyncIterator[tuple[SimServer, ExchangeGateway, Waits]]:
    async with SimServer(venue.dialect, mark_interval_s=None) as sim:
        ccxt_config = {**sim.ccxt_config(), "enableRateLimit": False, "timeout_on_exit": 0, **config}
        account = ExchangeAccount("acct-1", sim.ccxt_id, ccxt_config=ccxt_config)
        waits = Waits([])
        async with ExchangeGateway(account, dry_run=dry_run, settings=FAST, sleep=waits.sleep) as gateway:
            await gateway.read(gateway.client.load_markets)
            yield sim, gateway, waits
        assert {entry["remote"] for entry in sim.engine.request_log} <= {"127.0.0.1"}


def requests_to(sim: SimServer, path: str) -> list[dict[str, Any]]:
    return [entry for entry in sim.engine.request_log if entry["path"] == path]


def open_isolated_btc(sim: SimServer, venue: Venue) -> float:
    key = sim.account.api_key
    sim.engine.set_margin_mode(key, "BTCUSDT", MarginMode.ISOLATED)
    sim.engine.set_leverage(key, "BTCUSDT", 10)
    sim.engine.open_position(key, "BTCUSDT", Side.LONG, venue.one_btc)
    return isolated_margin(sim)


def isolated_margin(sim: SimServer) -> float:
    pos = sim.engine.find_position(sim.account.api_key, "BTCUSDT", Side.LONG)
    assert pos is not None
    return pos.isolated_margin


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    async def loop() -> None:
        while not await condition():  # noqa: ASYNC110 - a REST read has no event to wait on
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), WAIT_S)


# ---- reads ----


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.dialect)
async def test_a_read_is_retried_through_passing_errors_and_answers(venue: Venue) -> None:
    async with gateway_on(venue) as (sim, gateway, waits):
        open_isolated_btc(sim, venue)
        await gateway.fetch_positions([BTC])  # ccxt's first-call look-ups (Binance's brackets) are done
        sim.faults.set("http_status", status=503, count=2, path=venue.positions_path)
        before = len(requests_to(sim, venue.positions_path))
        rows = await gateway.fetch_positions([BTC])
        assert [(row["symbol"], row["side"]) for row in rows] == [(BTC, "long")]
        assert len(requests_to(sim, venue.positions_path)) - before == 3  # two 503s, then the answer
        assert len(waits.seconds) == 2 and gateway.failed_reads == 0


async def test_a_read_gives_up_after_its_attempts_with_a_typed_passing_error() -> None:
    async with gateway_on(BYBIT) as (sim, gateway, waits):
        sim.faults.set("http_status", status=503, path=BYBIT.positions_path)
        with pytest.raises(ExchangeUnavailable):
            await gateway.fetch_positions([BTC])
        assert len(requests_to(sim, BYBIT.positions_path)) == FAST.read_attempts
        assert len(waits.seconds) == FAST.read_attempts - 1  # no wait after the last attempt
        assert gateway.failed_reads == 1


async def test_a_rate_limited_read_waits_at_least_what_the_exchange_asked() -> None:
    async with gateway_on(VENUES[0]) as (sim, gateway, waits):  # Binance: 429 with Retry-After: 60
        sim.faults.set("http_status", status=429, count=1, path="/fapi/v3/account")
        balance = await gateway.fetch_balance()
        assert balance["USDT"]["total"] == pytest.approx(
            sim.engine.account(sim.account.api_key).wallet["USDT"]
        )
        assert waits.seconds == [60.0]


async def test_a_read_that_hangs_gives_up_at_its_deadline_with_a_passing_error() -> None:
    settings = GatewaySettings(read_attempts=10, read_deadline_s=0.5, backoff=FAST.backoff)
    async with SimServer("bybit", mark_interval_s=None) as sim:
        config = {**sim.ccxt_config(), "enableRateLimit": False, "timeout_on_exit": 0, "timeout": 200}
        account = ExchangeAccount("acct-1", "bybit", ccxt_config=config)
        async with ExchangeGateway(account, settings=settings) as gateway:
            await gateway.read(gateway.client.load_markets)
            sim.faults.set("http_timeout", path=BYBIT.positions_path, hold_s=5.0)
            started = asyncio.get_running_loop().time()
            with pytest.raises(TransientError):
                await gateway.fetch_positions([BTC])
            assert asyncio.get_running_loop().time() - started < 2.0  # not 10 tries of 200 ms + waits
            sim.faults.clear("http_timeout")
        assert 1 <= len(requests_to(sim, BYBIT.positions_path)) < 10


async def test_refused_keys_are_fatal_at_once_and_never_retried() -> None:
    async with SimServer("bybit", mark_interval_s=None) as sim:
        config = {**sim.ccxt_config(), "secret": "not-the-secret", "timeout_on_exit": 0}
        waits = Waits([])
        account = ExchangeAccount("acct-1", "bybit", ccxt_config=config)
        async with ExchangeGateway(account, settings=FAST, sleep=waits.sleep) as gateway:
            await gateway.read(gateway.client.load_markets)
            with pytest.raises(AuthenticationFailed):
                await gateway.fetch_balance()
        assert len(requests_to(sim, "/v5/account/wallet-balance")) == 1
        assert waits.seconds == []


async def test_free_balance_is_the_exchanges_figure_and_unknown_when_it_cannot_be_read() -> None:
    async with gateway_on(VENUES[2]) as (sim, gateway, waits):  # OKX
        # One 503 no longer refuses a top-up for want of a balance (the runner's read was neither retried
        # nor translated): the gateway reads through it.
        sim.faults.set("http_status", status=503, count=1, path="/api/v5/account/balance")
        free = await gateway.free_balance("USDT")
        assert free == pytest.approx(sim.engine.account(sim.account.api_key).wallet["USDT"])
        assert len(waits.seconds) == 1
        assert await gateway.free_balance("NOPE") is None  # the exchange says nothing of it: unknown
        sim.faults.set("http_status", status=500, path="/api/v5/account/balance")
        with pytest.raises(TransientError):
            await gateway.free_balance("USDT")


async def test_records_read_the_legs_margin_through_the_retries() -> None:
    async with gateway_on(BYBIT) as (sim, gateway, waits):
        margin = open_isolated_btc(sim, BYBIT)
        sim.faults.set("http_status", status=502, count=1, path=BYBIT.positions_path)
        leg = await gateway.records.leg_margin(BTC, Side.LONG)
        assert leg is not None and leg.margin == pytest.approx(margin) and leg.contracts > 0
        assert await gateway.records.leg_margin(BTC, Side.SHORT) is None  # no such leg
        assert len(waits.seconds) == 1


# ---- actions ----


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.dialect)
async def test_an_action_whose_answer_is_an_error_is_sent_once_and_left_unknown(venue: Venue) -> None:
    async with gateway_on(venue) as (sim, gateway, waits):
        before = open_isolated_btc(sim, venue)
        sim.faults.set("http_status", status=500, path=venue.margin_path)
        with pytest.raises(TransientError):
            await gateway.add_isolated_margin(BTC, Side.LONG, 25.0, tag="t-1", hedged=False)
        assert len(requests_to(sim, venue.margin_path)) == 1
        assert waits.seconds == []
        assert isolated_margin(sim) == before


async def test_an_action_answered_after_the_timeout_is_sent_once_and_its_landing_is_read_from_records() -> (
    None
):
    async with gateway_on(BYBIT, timeout=300) as (sim, gateway, _):
        before = open_isolated_btc(sim, BYBIT)
        # The exchange holds the request past the client's 300 ms, then executes it all the same.
        sim.faults.set("http_timeout", count=1, path=BYBIT.margin_path, hold_s=0.6)
        with pytest.raises(TransientError):
            await gateway.add_isolated_margin(BTC, Side.LONG, 25.0, tag="t-1", hedged=False)
        assert len(requests_to(sim, BYBIT.margin_path)) == 1

        async def landed() -> bool:
            leg = await gateway.records.leg_margin(BTC, Side.LONG)
            return leg is not None and leg.margin == pytest.approx(before + 25.0)

        await until(landed)
        assert len(requests_to(sim, BYBIT.margin_path)) == 1  # never sent again


async def test_a_refused_action_is_raised_as_a_refusal_and_not_retried() -> None:
    async with gateway_on(BYBIT) as (sim, gateway, waits):
        sim.engine.open_position(sim.account.api_key, "BTCUSDT", Side.LONG, 1.0)  # cross
        with pytest.raises(InvalidRequest):
            await gateway.add_isolated_margin(BTC, Side.LONG, 10.0, tag="t-1", hedged=False)
        assert len(requests_to(sim, BYBIT.margin_path)) == 1 and waits.seconds == []


async def test_an_action_whose_look_up_fails_is_not_sent_and_says_so() -> None:
    async with gateway_on(BYBIT) as (sim, gateway, _):
        open_isolated_btc(sim, BYBIT)
        sim.faults.set("http_status", status=503, path=BYBIT.positions_path)
        with pytest.raises(NotSent) as refused:
            await gateway.add_isolated_margin(BTC, Side.LONG, 10.0, tag="t-1")  # hedged? asks the exchange
        assert not isinstance(refused.value, TransientError)  # nothing to settle: it did not happen
        assert isinstance(refused.value.cause, ExchangeError)
        assert requests_to(sim, BYBIT.margin_path) == []


async def test_dry_run_reads_but_sends_nothing() -> None:
    async with gateway_on(BYBIT, dry_run=True) as (sim, gateway, _):
        before = open_isolated_btc(sim, BYBIT)
        result = await gateway.add_isolated_margin(BTC, Side.LONG, 10.0, tag="t-1")
        assert result.dry_run and not result.sent
        assert result.request["method"] == "private_post_v5_position_add_margin"
        assert result.request["params"]["positionIdx"] == 0
        assert requests_to(sim, BYBIT.margin_path) == [] and isolated_margin(sim) == before


async def test_an_action_answered_in_a_shape_ccxt_cannot_read_is_unknown_not_failed() -> None:
    # ccxt 4.5.90's unified okx.add_margin sends the request, then fails on the answer (a TypeError): the
    # margin moved. Through the unified call (what the OKX quirks avoid) the outcome must be unknown, never
    # "failed", so the executor settles it from the records instead of deciding the top-up again.
    venue = VENUES[2]
    async with SimServer("okx", mark_interval_s=None) as sim:
        config = {**sim.ccxt_config(), "enableRateLimit": False, "timeout_on_exit": 0}
        account = ExchangeAccount("acct-1", "okx", ccxt_config=config)
        quirks = replace(quirks_for("okx"), add_margin=unified_add_margin)
        async with ExchangeGateway(account, quirks=quirks, settings=FAST) as gateway:
            before = open_isolated_btc(sim, venue)
            with pytest.raises(OutcomeUnknown):
                await gateway.add_isolated_margin(BTC, Side.LONG, 25.0, tag="t-1", hedged=False)
            assert len(requests_to(sim, venue.margin_path)) == 1
            leg = await gateway.records.leg_margin(BTC, Side.LONG)
            assert leg is not None and leg.margin == pytest.approx(before + 25.0)
