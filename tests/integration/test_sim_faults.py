"""What an unmodified ccxt.pro client observes when the simulated exchange misbehaves (Binance USD-M dialect).

Each test switches one fault on the simulator and asserts the exception (or silence) ccxt surfaces, and
that the client recovers once the fault is gone. The client is built from `sim.ccxt_config()` plus ccxt's
own knobs for a fast test (request `timeout`, websocket `keepAlive`, listen-key refresh rate).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
import pytest
from ccxt.base.errors import (
    AuthenticationError,
    DDoSProtection,
    ExchangeError,
    ExchangeNotAvailable,
    InvalidNonce,
    NetworkError,
    OperationFailed,
    RequestTimeout,
)

from daemon.core.types import Side
from daemon.sim.server import SimServer

pytestmark = pytest.mark.integration

SYMBOL = "BTC/USDT:USDT"
WAIT_S = 5.0


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer("binance", mark_interval_s=0.1) as server:
        yield server
        # Whatever the fault, nothing ever left the loopback interface.
        assert server.engine.request_log
        assert {entry["remote"] for entry in server.engine.request_log} == {"127.0.0.1"}


def client(sim: SimServer, **ccxt_knobs: Any) -> Any:
    config = sim.ccxt_config()
    options = {**config.get("options", {}), **ccxt_knobs.pop("options", {})}
    return ccxtpro.binanceusdm({**config, **ccxt_knobs, "options": options})


@pytest.fixture
async def exchange(sim: SimServer) -> AsyncIterator[Any]:
    ex = client(sim, timeout=1000, streaming={"keepAlive": 300})
    await ex.load_markets()
    yield ex
    await ex.close()


def websocket_upgrades(sim: SimServer) -> int:
    return sum(1 for entry in sim.engine.request_log if entry["websocket"])


async def test_a_dropped_socket_fails_the_pending_watch_and_the_next_watch_reconnects(
    sim: SimServer, exchange: Any
) -> None:
    await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S)
    pending = asyncio.ensure_future(exchange.watch_mark_price(SYMBOL))
    await asyncio.sleep(0)  # let the watch register its future before the drop

    assert sim.faults.drop_websockets() == 1
    with pytest.raises(NetworkError, match="closing code 1006"):
        await asyncio.wait_for(pending, WAIT_S)

    ticker = await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S)
    assert ticker["markPrice"] == pytest.approx(67_000.0)
    assert websocket_upgrades(sim) == 2


async def test_a_stalled_stream_stays_connected_but_says_nothing_until_the_stall_ends(
    sim: SimServer, exchange: Any
) -> None:
    await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S)
    sim.faults.set("stall")

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), 1.0)  # > 3 keepalives: pongs still flow
    assert sim.faults.open_sockets == 1

    sim.faults.clear("stall")
    sim.engine.set_mark("BTCUSDT", 66_000.0)
    ticker = await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S)
    assert ticker["markPrice"] in (66_000.0, 67_000.0)
    assert websocket_upgrades(sim) == 1  # the same connection carried on


@pytest.mark.parametrize(("status", "says"), [(429, "Too many requests"), (418, "IP banned until")])
async def test_rate_limit_and_ban_answers_raise_ddos_protection_once(
    sim: SimServer, exchange: Any, status: int, says: str
) -> None:
    sim.faults.set("http_status", status=status, count=1)

    with pytest.raises(DDoSProtection, match=says):
        await exchange.fetch_balance()
    balance = await exchange.fetch_balance()  # the fault was good for one request only
    assert balance["USDT"]["total"] == pytest.approx(10_000.0)


@pytest.mark.parametrize(
    ("status", "raised", "is_network_error"),
    [
        (502, ExchangeNotAvailable, True),  # the front proxy's HTML page: ccxt maps the HTTP status
        (504, RequestTimeout, True),
        # Binance's own JSON errors are mapped by their code before the status is looked at:
        # -1001 is OperationFailed (the parent of NetworkError, not one of its children) ...
        (500, OperationFailed, False),
        # ... and -1008 is OperationFailed only for https://fapi.* URLs; on any other base URL ccxt falls back
        # to a plain ExchangeError.
        (503, ExchangeError, False),
    ],
)
async def test_server_errors_surface_as_what_ccxt_maps_them_to(
    sim: SimServer, exchange: Any, status: int, raised: type[Exception], is_network_error: bool
) -> None:
    sim.faults.set("http_status", status=status, count=1)

    with pytest.raises(raised) as caught:
        await exchange.fetch_balance()
    assert isinstance(caught.value, NetworkError) is is_network_error
    assert (await exchange.fetch_balance())["USDT"]["total"] == pytest.approx(10_000.0)


async def test_a_hanging_request_raises_request_timeout_after_the_client_timeout(
    sim: SimServer, exchange: Any
) -> None:
    sim.faults.set("http_timeout", count=1, hold_s=10)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(RequestTimeout):
        await exchange.fetch_balance()
    assert 0.9 <= loop.time() - started < 3.0  # the client's own 1 s timeout, not the server's hold

    sim.faults.clear("http_timeout")  # releases the held request
    assert (await exchange.fetch_balance())["USDT"]["total"] == pytest.approx(10_000.0)


async def test_a_malformed_frame_silently_kills_the_stream_until_the_keepalive_notices(
    sim: SimServer, exchange: Any
) -> None:
    await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S)
    loop = asyncio.get_running_loop()
    decode_errors: list[BaseException | None] = []
    loop.set_exception_handler(lambda _loop, context: decode_errors.append(context.get("exception")))
    sim.faults.set("malformed", count=1)

    # ccxt's receive loop dies on the undecodable frame; no error reaches the caller, the frames after it are
    # never read, and only the missing pong (2 x keepAlive) fails the watch.
    with pytest.raises(RequestTimeout, match="ping-pong keepalive"):
        await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S)
    loop.set_exception_handler(None)
    assert [type(error).__name__ for error in decode_errors] == ["JSONDecodeError"]

    ticker = await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S)
    assert ticker["symbol"] == SYMBOL
    assert websocket_upgrades(sim) == 2


async def test_an_expired_listen_key_fails_the_position_watch_at_the_next_keepalive_then_a_new_key_works(
    sim: SimServer,
) -> None:
    exchange = client(sim, options={"listenKeyRefreshRate": 300})
    try:
        await exchange.load_markets()
        assert await asyncio.wait_for(exchange.watch_positions(), WAIT_S) == []  # REST snapshot
        pending = asyncio.ensure_future(exchange.watch_positions())
        await asyncio.sleep(0.05)
        sim.faults.set("listen_key_expired")

        with pytest.raises(AuthenticationError, match="-1125"):
            await asyncio.wait_for(pending, WAIT_S)

        sim.faults.clear("listen_key_expired")
        pending = asyncio.ensure_future(exchange.watch_positions())
        await asyncio.sleep(0.2)  # the watch fetches a new key and reconnects
        sim.engine.open_position(sim.account.api_key, "BTCUSDT", Side.LONG, 0.01)
        [position] = await asyncio.wait_for(pending, WAIT_S)
        assert (position["symbol"], position["contracts"]) == (SYMBOL, 0.01)
        listen_key_calls = [
            (e["method"], e["status"]) for e in sim.engine.request_log if "listenKey" in e["path"]
        ]
        assert listen_key_calls[:3] == [("POST", 200), ("PUT", 400), ("POST", 200)]
    finally:
        # ccxt schedules each keepalive after the previous one; let the pending one run and schedule its
        # successor far away, or it would fire after close() and open a new HTTP session.
        exchange.options["listenKeyRefreshRate"] = 3_600_000
        await asyncio.sleep(0.35)
        await exchange.close()


@pytest.mark.parametrize("skew_ms", [60_000, -60_000])
async def test_a_skewed_server_clock_rejects_signed_requests_with_invalid_nonce(
    sim: SimServer, exchange: Any, skew_ms: int
) -> None:
    sim.faults.set("clock_skew", ms=skew_ms)
    with pytest.raises(InvalidNonce, match="-1021"):
        await exchange.fetch_balance()

    sim.faults.clear("clock_skew")
    assert (await exchange.fetch_balance())["USDT"]["total"] == pytest.approx(10_000.0)


async def test_faults_can_be_switched_through_the_control_api(sim: SimServer, exchange: Any) -> None:
    async with aiohttp.ClientSession() as session:
        answer = await session.post(
            f"{sim.http_base}/_sim/fault", json={"kind": "http_status", "status": 503}
        )
        assert (await answer.json())["faults"]["http_status"]["status"] == 503
        with pytest.raises(ExchangeError):
            await exchange.fetch_balance()
        with pytest.raises(ExchangeError):
            await exchange.fetch_balance()  # no count: it lasts until cleared

        await session.delete(f"{sim.http_base}/_sim/fault", params={"kind": "http_status"})
        assert (await exchange.fetch_balance())["USDT"]["total"] == pytest.approx(10_000.0)
        state = await (await session.get(f"{sim.http_base}/_sim/state")).json()
        assert state["faults"] == {}


async def test_a_delayed_stream_delivers_every_frame_late_but_in_order(sim: SimServer, exchange: Any) -> None:
    await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S)
    sim.faults.set("delay", ms=300)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.35)  # frames queued before the delay was set have gone
    sim.engine.set_mark("BTCUSDT", 65_000.0)
    moved_at = loop.time()

    while (await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S))["markPrice"] != 65_000.0:
        pass
    assert loop.time() - moved_at >= 0.29


async def test_a_restart_closes_every_socket_refuses_everything_for_a_while_and_forgets_listen_keys(
    sim: SimServer, exchange: Any
) -> None:
    await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S)
    listen_key = (await exchange.fapiPrivatePostListenKey())["listenKey"]
    listen_keys = sim.dialect.listen_keys  # type: ignore[attr-defined]
    assert listen_keys.account_for(listen_key) == sim.account.api_key
    async with aiohttp.ClientSession() as session:
        answer = await session.post(f"{sim.http_base}/_sim/restart", json={"down_s": 0.5})
        assert (await answer.json())["restarts"] == 1

        assert sim.faults.open_sockets == 0
        with pytest.raises(NetworkError):  # the socket went with the server, and no new one is accepted yet
            await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S)
        with pytest.raises(ExchangeNotAvailable):
            await exchange.fetch_balance()
        state = await (await session.get(f"{sim.http_base}/_sim/state")).json()  # the control API stays up
        assert "restart" in state["faults"]

        async with asyncio.timeout(WAIT_S):
            while sim.faults.restarting:  # noqa: ASYNC110 - the outage ends on the simulator's clock
                await asyncio.sleep(0.05)
        assert (await exchange.fetch_balance())["USDT"]["total"] == pytest.approx(10_000.0)  # same state
        assert listen_keys.account_for(listen_key) is None  # a new key must be asked for
        ticker = await asyncio.wait_for(exchange.watch_mark_price(SYMBOL), WAIT_S)
        assert ticker["symbol"] == SYMBOL
