"""The simulator's connection log (`daemon.sim.sessions`): an unmodified ccxt.pro client's private stream is one
session of its account, from the client's own TCP port, closed when the client closes; the log is served at
GET /_sim/connections and the client's port names this process in the kernel's table (psutil), as the cluster
tests use it to tell which daemon holds an account."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import aiohttp
import ccxt.pro
import psutil
import pytest

from daemon.core.types import Side
from daemon.sim.server import SimServer
from daemon.sim.sessions import Session

pytestmark = pytest.mark.integration
TIMEOUT_S = 10.0
SECOND_KEY, SECOND_SECRET, SECOND_PASSPHRASE = "second-key", "second-secret", "Second-Passphrase1"


def client_for(sim: SimServer, config: dict[str, Any] | None = None) -> Any:
    cls = getattr(ccxt.pro, sim.ccxt_id)
    return cls({**(config or sim.ccxt_config()), "enableRateLimit": False})


def private_port(client: Any) -> int | None:
    """The local port of the client's one private websocket (None while it is not connected)."""
    ports = []
    for url, ws_client in client.clients.items():
        connection = ws_client.connection
        if connection is None or connection.closed or "public" in url or "market" in url:
            continue
        sockname = connection.get_extra_info("sockname")
        ports.append(int(sockname[1]))
    assert len(ports) <= 1, (list(client.clients), ports)
    return ports[0] if ports else None


async def keep_watching(client: Any) -> None:
    """Watch positions as a daemon does, call after call (Binance's first answer is a REST snapshot: its stream
    connects on the next call)."""
    while True:
        try:
            await client.watch_positions()
        except Exception:  # a dropped connection's error; the next call reconnects
            await asyncio.sleep(0.05)


async def until(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return value


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_a_private_stream_is_one_session_of_its_account_from_the_clients_port(exchange: str) -> None:
    async with SimServer(exchange) as sim:
        key = sim.account.api_key
        second = sim.engine.add_account(SECOND_KEY, SECOND_SECRET, SECOND_PASSPHRASE)
        sim.engine.open_position(key, "BTCUSDT", Side.LONG, 1)
        started = time.monotonic()
        client = client_for(sim)
        other = client_for(sim, sim.ccxt_config(second))
        watchers = [asyncio.create_task(keep_watching(c)) for c in (client, other)]
        try:
            mine = await until(
                lambda: [s for s in sim.sessions.of(key) if s.channels], "a subscribed session"
            )
            port = await until(lambda: private_port(client), "the client's private connection")
            await until(lambda: sim.sessions.of(SECOND_KEY), "the second account's session")
            assert len(mine) == 1, mine
            session: Session = mine[0]
            assert session.open and session.peer == ("127.0.0.1", port), (session, port)
            assert started <= session.opened_mono <= time.monotonic()
            assert len(sim.sessions.of(SECOND_KEY)) == 1
            assert sim.sessions.of(SECOND_KEY)[0].peer_port == private_port(other) != port

            # The kernel's table names this process as the holder of that port (how the cluster tests map a
            # session to a daemon).
            local = {c.laddr.port for c in psutil.Process(os.getpid()).net_connections("tcp") if c.raddr}
            assert port in local

            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{sim.http_base}/_sim/connections", params={"open": "1", "api_key": key}) as answer,
            ):
                served = (await answer.json())["sessions"]
            assert [(s["id"], s["peer"], s["open"]) for s in served] == [
                (session.id, ["127.0.0.1", port], True)
            ]
            assert served[0]["channels"], served
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await client.close()
            await other.close()
        await until(lambda: not session.open, "the session to close with its client")
        assert session.closed_mono is not None and session.closed_mono >= session.opened_mono
        assert [s.id for s in sim.sessions.open_sessions()] == [], sim.sessions.open_sessions()
        # Public streams are no sessions: the log holds the two private ones only.
        assert sorted(s.api_key for s in sim.sessions.sessions) == sorted([key, SECOND_KEY])


async def test_a_dropped_socket_closes_its_session_and_the_reconnect_opens_another() -> None:
    async with SimServer("okx") as sim:
        key = sim.account.api_key
        client = client_for(sim)
        watcher = asyncio.create_task(keep_watching(client))
        try:
            first = await until(lambda: sim.sessions.of(key), "the first session")
            sim.faults.drop_websockets()
            await until(lambda: not first[0].open, "the dropped session to close")
            again = await until(lambda: [s for s in sim.sessions.of(key) if s.open], "a new session")
            assert len(again) == 1 and again[0].id != first[0].id
            port = await until(lambda: private_port(client), "the new connection")
            assert again[0].peer_port == port
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await client.close()
