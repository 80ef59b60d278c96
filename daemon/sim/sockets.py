"""Websocket plumbing shared by every dialect: `SimSocket` (one connection) and `SocketHub` (channels).

Every data frame a dialect sends goes through `SimSocket`, which applies the stall / delay / malformed faults
and registers the socket so `Faults.drop_websockets()` can kill it. Sends are queued and written in order by
one writer task per socket, so `enqueue`/`SocketHub.publish` are plain synchronous calls that engine event
handlers may make; a client that stops reading is disconnected once `max_queue` frames pile up (as real
exchanges do with slow consumers) instead of growing memory without bound.

`SocketHub.publish(channel, obj)` encodes a frame once and queues the same string on every subscriber.
`SocketHub.sessions` is the connection log of private streams (`daemon.sim.sessions`): a dialect calls
`hub.private_session(socket, api_key)` once a socket is authenticated, and the hub closes the session when
the socket is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any

from aiohttp import web

from daemon.sim.faults import Faults
from daemon.sim.sessions import Session, SessionLog

MALFORMED_FRAME = '{"e": "markPriceUpdate", "E": 1, "s": '  # cut short: invalid JSON for any parser


def encode(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class SimSocket:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        faults: Faults,
        request: web.Request | None = None,
        max_queue: int = 50_000,
        hub: SocketHub | None = None,
    ) -> None:
        self.ws = ws
        self.faults = faults
        self.hub = hub
        self.request = request
        self.max_queue = max_queue
        self.state: dict[str, Any] = {}  # per-connection dialect state (login, listen key, ...)
        self.sent = 0
        self.withheld = 0  # frames swallowed by a stall
        self._queue: deque[tuple[float, str, bool]] = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    # ---- life cycle ----

    def start(self) -> None:
        """Register with the faults and start the writer; call once the handshake is done."""
        self.faults.register(self)
        self._writer = asyncio.create_task(self._write_loop(), name="sim-socket-writer")

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        self._shutdown()
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message)

    def abort(self) -> None:
        """Drop the connection without a closing handshake: the client sees an abnormal closure (1006)."""
        self._shutdown()
        transport = self.request.transport if self.request is not None else None
        if transport is not None:
            transport.abort()
        else:
            asyncio.get_running_loop().create_task(self.ws.close(code=1006))

    @property
    def closed(self) -> bool:
        return self._closed or self.ws.closed

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.faults.unregister(self)
        if self.hub is not None:
            self.hub.remove(self)
        self._queue.clear()
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()

    # ---- sending ----

    def enqueue(self, text: str, control: bool = False) -> None:
        """Queue one text frame. `control` frames (application-level pongs) ignore stall and malformed."""
        if self._closed:
            return
        if not control and self.faults.stall:
            self.withheld += 1
            return
        if len(self._queue) >= self.max_queue:
            self.abort()
            return
        self._queue.append((time.monotonic(), text, control))
        self._wake.set()

    async def send_text(self, text: str, control: bool = False) -> None:
        self.enqueue(text, control)

    async def send_json(self, obj: Any, control: bool = False) -> None:
        self.enqueue(encode(obj), control)

    async def _write_loop(self) -> None:
        try:
            while not self._closed:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    queued_at, text, control = self._queue.popleft()
                    delay_s = self.faults.delay_ms / 1000.0
                    if delay_s > 0:
                        wait = queued_at + delay_s - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    if not control and self.faults.take_malformed():
                        text = MALFORMED_FRAME
                    await self.ws.send_str(text)
                    self.sent += 1
        except (ConnectionError, RuntimeError):
            self._shutdown()  # the peer went away; the handler's receive loop ends on its own


class SocketHub:
    """Channel -> subscribed sockets, for one dialect."""

    def __init__(self, sessions: SessionLog | None = None) -> None:
        self.sessions = sessions if sessions is not None else SessionLog()
        self._channels: dict[str, set[SimSocket]] = {}
        self._by_socket: dict[SimSocket, set[str]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    def subscribe(self, channel: str, socket: SimSocket) -> None:
        self._channels.setdefault(channel, set()).add(socket)
        self._by_socket.setdefault(socket, set()).add(channel)
        self.sessions.note_channels(socket, frozenset(self._by_socket[socket]))
        for waiter in self._waiters.pop(channel, []):
            if not waiter.done():
                waiter.set_result(None)

    async def until_subscribed(self, channel: str) -> None:
        """Return once some client listens on `channel`, so a test or scenario moves prices only after the
        client listens; pair it with a timeout."""
        if self.has_subscribers(channel):
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(waiter)
        await waiter

    def unsubscribe(self, channel: str, socket: SimSocket) -> None:
        self._channels.get(channel, set()).discard(socket)
        self._by_socket.get(socket, set()).discard(channel)

    def private_session(self, socket: SimSocket, api_key: str) -> Session:
        """Record that `socket` is now `api_key`'s authenticated private stream (the connection log)."""
        return self.sessions.opened(socket, api_key)

    def remove(self, socket: SimSocket) -> None:
        """Forget a socket everywhere (call when its connection ends); closes its private session, if any."""
        channels = self._by_socket.pop(socket, set())
        self.sessions.closed(socket, frozenset(channels))
        for channel in channels:
            subscribers = self._channels.get(channel)
            if subscribers is not None:
                subscribers.discard(socket)
                if not subscribers:
                    del self._channels[channel]

    def subscribers(self, channel: str) -> frozenset[SimSocket]:
        return frozenset(self._channels.get(channel, ()))

    def has_subscribers(self, channel: str) -> bool:
        return bool(self._channels.get(channel))

    def channels_of(self, socket: SimSocket) -> frozenset[str]:
        return frozenset(self._by_socket.get(socket, ()))

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(self._channels)

    def publish(self, channel: str, obj: Any) -> int:
        """Encode `obj` once and queue it on every subscriber of `channel`; returns how many."""
        subscribers = self._channels.get(channel)
        if not subscribers:
            return 0
        return self.publish_text(channel, encode(obj))

    def publish_text(self, channel: str, text: str) -> int:
        subscribers = self._channels.get(channel)
        if not subscribers:
            return 0
        for socket in list(subscribers):
            if socket.closed:
                self.remove(socket)
            else:
                socket.enqueue(text)
        return len(subscribers)
