"""`SimServer`: one simulated exchange (one dialect) on one loopback port, HTTP and websockets together.

    async with SimServer("binance") as sim:
        exchange = ccxt.pro.binanceusdm(sim.ccxt_config())

The server owns an `Engine`, a `Faults` switchboard and a `SocketHub`, hands them to the dialect, mounts the
dialect's routes and the control API (`/_sim/...`, see `daemon.sim.control`), logs every request into
`engine.request_log` and applies HTTP faults in the dialect's own error shape. A default account
(`DEFAULT_API_KEY`) exists from the start; `ccxt_config()` is built for it unless another is given.

Every `mark_interval_s` the engine re-announces all marks (`MarkChanged`), as the exchanges' mark-price
streams push every second whether or not the price moved. Pass `mark_interval_s=None` to switch that off.

HTTP faults (status, timeout, delay) apply to plain requests, not to websocket upgrades: socket faults are
`drop`, `stall`, `delay` and `malformed`. A `restart` (`POST /_sim/restart`) closes every socket and refuses
requests and upgrades alike with 503 for its `down_s`, then serves the same engine state again.

`sim.sessions` (`GET /_sim/connections`) is the connection log: every authenticated private websocket with its
account, its client's address and its open and close times (`daemon.sim.sessions`). Each `request_log` entry
carries its client's TCP port (`peer_port`) too, so a test can tell which local process sent a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

from daemon.sim.dialect import SimDialect, error_kind_for_status
from daemon.sim.dialects import DIALECTS
from daemon.sim.engine import Engine, SimAccount
from daemon.sim.faults import Faults
from daemon.sim.markets import Market, load_markets
from daemon.sim.sessions import SessionLog
from daemon.sim.sockets import SimSocket, SocketHub

DEFAULT_API_KEY = "mg-sim-key"
DEFAULT_SECRET = "mg-sim-secret"
DEFAULT_PASSPHRASE = "mg-sim-Passphrase1"
API_KEY_HEADERS = ("X-MBX-APIKEY", "X-BAPI-API-KEY", "OK-ACCESS-KEY")


async def open_socket(
    request: web.Request, faults: Faults, hub: SocketHub | None = None, heartbeat: float | None = None
) -> SimSocket:
    """Accept a websocket upgrade and wrap it in a started `SimSocket` (protocol pings are auto-answered).

    With `hub`, the socket leaves all its channels by itself when it closes or is dropped.
    """
    ws = web.WebSocketResponse(autoping=True, heartbeat=heartbeat, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    socket = SimSocket(ws, faults, request, hub=hub)
    socket.start()
    return socket


async def serve_socket(
    request: web.Request,
    faults: Faults,
    hub: SocketHub,
    on_message: Callable[[SimSocket, str], Awaitable[None]],
    on_open: Callable[[SimSocket], Awaitable[None]] | None = None,
) -> web.WebSocketResponse:
    """The whole life of one websocket: open it, feed each text frame to `on_message`, clean up at the end."""
    socket = await open_socket(request, faults, hub)
    try:
        if on_open is not None:
            await on_open(socket)
        async for message in socket.ws:
            if message.type is WSMsgType.TEXT:
                await on_message(socket, message.data)
            elif message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        hub.remove(socket)
        await socket.close()
    return socket.ws


def _peer_port(request: web.Request) -> int | None:
    """The client's TCP port: with the kernel's table of sockets it names the local process that sent this."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return int(peer[1]) if peer else None


class SimServer:
    def __init__(
        self,
        exchange: str,
        scenario: str | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        markets: dict[str, Market] | None = None,
        mark_interval_s: float | None = 1.0,
        clock: Callable[[], float] = time.time,
        scenario_speed: float = 1.0,
    ) -> None:
        if exchange not in DIALECTS:
            raise ValueError(f"unknown exchange {exchange!r}; known: {', '.join(DIALECTS)}")
        dialect_class = DIALECTS[exchange]
        self.exchange = exchange
        self.host = host
        self.requested_port = port
        self.mark_interval_s = mark_interval_s
        self.scenario_name = scenario
        self.scenario_speed = scenario_speed
        self.engine = Engine(
            markets if markets is not None else load_markets(exchange),
            clock=clock,
            family=dialect_class.family,
        )
        self.faults = Faults(wall_clock=clock)
        self.hub = SocketHub(SessionLog(clock))
        self.sessions = self.hub.sessions  # the connection log of private streams (daemon.sim.sessions)
        self.dialect: SimDialect = dialect_class(self.engine, self.faults, self.hub)
        self.account: SimAccount = self.engine.add_account(
            DEFAULT_API_KEY, DEFAULT_SECRET, DEFAULT_PASSPHRASE
        )
        self.engine.subscribe(self.dialect.on_event)
        self.faults.on_change(self.dialect.on_event)
        self.port = 0
        self.scenario_task: asyncio.Task[Any] | None = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None

    # ---- addresses and client configuration ----

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def ccxt_id(self) -> str:
        return self.dialect.ccxt_id

    def ccxt_config(self, account: SimAccount | None = None) -> dict[str, Any]:
        """Constructor config for an unmodified `ccxt.pro.<ccxt_id>` client talking to this server."""
        return self.dialect.ccxt_config(self.http_base, self.ws_base, account or self.account)

    # ---- life cycle ----

    async def start(self) -> SimServer:
        from daemon.sim.control import control_routes

        app = web.Application(middlewares=[self._middleware])
        app.add_routes(control_routes(self))
        app.add_routes(self.dialect.routes())
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the port the OS chose when asked for 0
        if self.mark_interval_s:
            self._ticker = asyncio.create_task(self._tick_marks(self.mark_interval_s), name="sim-mark-ticker")
        if self.scenario_name:
            self.start_scenario(self.scenario_name, self.scenario_speed)
        return self

    async def stop(self) -> None:
        for task in (self._ticker, self.scenario_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.faults.clear()
        for socket in self.faults.sockets:
            await socket.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def start_scenario(self, name: str, speed: float = 1.0) -> asyncio.Task[Any]:
        """Set the scenario's accounts up on the default account and play its path in the background."""
        from daemon.sim.scenario import ScenarioRunner, load_scenario

        if self.scenario_task is not None and not self.scenario_task.done():
            self.scenario_task.cancel()
        runner = ScenarioRunner(load_scenario(name), self.engine, self.faults, speed=speed)
        runner.setup(self.account.api_key)
        self.scenario_task = asyncio.create_task(runner.play(), name=f"sim-scenario-{name}")
        return self.scenario_task

    async def _tick_marks(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.engine.publish_marks()

    # ---- request logging and HTTP faults ----

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        entry: dict[str, Any] = {
            "ts": self.engine.clock(),
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "remote": request.remote,
            "peer_port": _peer_port(request),
            "api_key": next((request.headers[h] for h in API_KEY_HEADERS if h in request.headers), None),
            "websocket": request.headers.get("Upgrade", "").lower() == "websocket",
            "status": None,
        }
        self.engine.request_log.append(entry)
        retry_after_s = self.faults.http_status_retry_after_s()  # before the fault may be used up
        if self.faults.restarting and not request.path.startswith("/_sim/"):
            # Down for a restart: refused like a load balancer with no backend (websocket upgrades too).
            entry["fault"] = "restart"
            entry["status"] = 503
            return web.Response(status=503, text="503 Service Unavailable: restarting")
        if not request.path.startswith("/_sim/") and not entry["websocket"]:
            if self.faults.delay_ms > 0:
                await asyncio.sleep(self.faults.delay_ms / 1000.0)
            hold_s = self.faults.take_http_timeout(request.path, request.method)
            if hold_s is not None:
                entry["fault"] = "http_timeout"
                # The request arrived in full: once released it is served even if its client has gone, as an
                # exchange executes what it received whether or not anyone is left to read the answer.
                await request.read()
                await self.faults.hold(hold_s)
            status = self.faults.take_http_status(request.path, request.method)
            if status is not None:
                entry["fault"] = f"http_status:{status}"
                response = self.dialect.error_response(error_kind_for_status(status), status)
                if retry_after_s is not None:
                    response.headers["Retry-After"] = f"{retry_after_s:g}"
                entry["status"] = response.status
                return response
        try:
            result = await handler(request)
        except web.HTTPException as exc:
            entry["status"] = exc.status
            raise
        entry["status"] = result.status
        return result
