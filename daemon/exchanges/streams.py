"""Helpers shared by the watch loops: freshness bookkeeping, forced reconnects and cancellation hygiene.

ccxt's websockets fail quietly: a stalled socket keeps answering pings while no data arrives, and ccxt
never reconnects by itself (the next `watch_*` call does). The loops here therefore judge a stream by the
age of its last data message, and force a reconnect by failing the ccxt socket themselves.

One frame ccxt cannot read kills its socket's receive loop for good: the JSON decoding (and the exchange's
handler) run inside an asyncio done-callback, so the exception is only logged by asyncio, the next read is never
scheduled, and the socket stays open and silent (its pings unanswered only after minutes) until a freshness
threshold notices. `tolerate_bad_frames` turns such a frame into a failed socket at once: the pending watches
raise, the next watch reconnects and resubscribes, and one bad frame costs one reconnect.

A private stream whose session ends says so once and then goes silent (Binance: `listenKeyExpired`; the socket
stays open and nothing more comes). ccxt ignores the event, and a position stream that pushes only on change
cannot be judged by silence, so it would stay deaf until a reconciliation noticed. The same guard fails such a
socket at once: the feed opens a new session and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from ccxt.base.errors import NetworkError

from daemon.core.events import Freshness, StreamHealth

log = structlog.get_logger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


def cancelled_by_us() -> bool:
    """True when the running task itself is being cancelled (not merely a ccxt future it awaited).

    ccxt cancels its pending futures when a socket is closed; that surfaces as CancelledError in the watch
    loop although nobody asked the loop to stop. Such a cancellation is a dropped stream, not a shutdown.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def force_reconnect(exchange: Any, reason: str) -> int:
    """Fail every websocket of a ccxt client so its pending watches raise and the next watch reconnects.

    `Client.on_error` rejects the pending futures with a NetworkError (not a cancellation), forgets the
    client in `exchange.clients` and closes the socket. Returns how many sockets were failed.
    """
    clients = list(getattr(exchange, "clients", {}).values())
    for client in clients:
        with contextlib.suppress(Exception):
            client.on_error(NetworkError(reason))
    return len(clients)


def socket_up(client: Any) -> bool:
    """Some websocket of the client is connected and healthy (a failed one may linger until forgotten)."""
    return any(
        getattr(ws, "isConnected", False) and not getattr(ws, "error", None) and not ws.closed()
        for ws in list(getattr(client, "clients", {}).values())
    )


def forget_dial_backoff(exchange: Any) -> None:
    """Clear ccxt's own hold on websocket dials before the caller's retry dials again.

    ccxt delays a dial to a URL whose last dials were refused on an exponential schedule of its own (0.2 s
    doubling up to 30 s, cleared only by a successful connection). Stacked on the watch loops' backoff it
    would keep a stream down for up to 30 s after the exchange is back (a restart refuses every dial for a
    while): the loops' capped, jittered schedule alone decides when to dial.
    """
    backoff = getattr(exchange, "ws_dial_backoff", None)
    if isinstance(backoff, dict):
        backoff.clear()


def reset_stream_session(exchange: Any, session_options: Mapping[str, Mapping[str, Any]]) -> None:
    """Make ccxt open a new private-stream session on the next watch (see `Quirks.stream_session_options`)."""
    for bucket, values in session_options.items():
        current = exchange.options.get(bucket)
        exchange.options[bucket] = {**(current if isinstance(current, dict) else {}), **values}


# Events after which a socket carries nothing more (see the module docstring), by their "e" field.
SESSION_ENDED_EVENTS = frozenset({"listenKeyExpired"})


def tolerate_bad_frames(exchange: Any, sessions: bool = True) -> None:
    """Make every websocket `exchange` opens fail (and so reconnect) on a frame it cannot handle, instead of
    going deaf, and, with `sessions` (a client with credentials: private streams), on a frame that ends its
    session (see the module docstring). Installed once per ccxt client, before its first watch."""
    if getattr(exchange, "_marginguard_frames_guarded", False):
        return
    make_client = exchange.client  # ccxt's factory of per-URL websocket clients

    def client(url: str) -> Any:
        ws = make_client(url)
        if not getattr(ws, "_marginguard_frames_guarded", False):
            _guard_frames(exchange, ws, sessions)
        return ws

    exchange.client = client
    exchange._marginguard_frames_guarded = True


def _guard_frames(exchange: Any, ws: Any, sessions: bool) -> None:
    handle = ws.handle_text_or_binary_message

    def guarded(data: Any) -> None:
        try:
            handle(data)
        except Exception as exc:
            # Neither the frame nor the URL is logged: a private stream's URL carries its listen key.
            log.warning(
                "unreadable websocket frame; reconnecting",
                exchange=getattr(exchange, "id", None),
                error=type(exc).__name__,
            )
            ws.on_error(NetworkError(f"marginguard: unreadable frame ({type(exc).__name__})"))

    deliver = ws.on_message_callback

    def delivered(client: Any, message: Any) -> None:
        deliver(client, message)
        event = message.get("e") if isinstance(message, dict) else None
        if event in SESSION_ENDED_EVENTS:
            log.warning(
                "stream session ended; reconnecting", exchange=getattr(exchange, "id", None), said=event
            )
            client.on_error(NetworkError(f"marginguard: stream session ended ({event})"))

    ws.handle_text_or_binary_message = guarded
    if sessions:  # a public client's frames (every mark) skip the look for a session's end
        ws.on_message_callback = delivered
    ws._marginguard_frames_guarded = True


@dataclass(slots=True)
class StreamClock:
    """Freshness of one named stream: when it last carried data and what it was last declared."""

    name: str
    stale_after_s: float | None  # None: silence alone says nothing (pushes come only on change)
    last_data: float  # monotonic seconds; moved on by `rearm`, so a new socket gets a full threshold
    state: Freshness | None = None
    # When data really last arrived, or the clock started if none has (monotonic). A forced reconnect does not
    # move it, so a stream that drops after a long silence, or that never carried anything, is reported silent
    # since then, not since the drop.
    data_seen: float | None = None

    def __post_init__(self) -> None:
        if self.data_seen is None:
            self.data_seen = self.last_data

    def seen(self, now: float) -> StreamHealth | None:
        """Data arrived: returns FRESH if the stream was anything else before (first data included)."""
        self.last_data = now
        self.data_seen = now
        if self.state is Freshness.FRESH:
            return None
        self.state = Freshness.FRESH
        return StreamHealth(self.name, Freshness.FRESH, now_ms())

    def check(self, now: float) -> tuple[StreamHealth | None, bool]:
        """Judge the silence: (STALE the first time it passes the threshold, whether to reconnect now).

        A stream that is already STALE or DOWN and stays silent a further threshold asks for another
        reconnect without another STALE event.
        """
        if self.stale_after_s is None:
            return None, False
        silent = now - self.last_data
        if silent <= self.stale_after_s:
            return None, False
        if self.state in (Freshness.STALE, Freshness.DOWN):
            return None, True
        self.state = Freshness.STALE
        since = self.silent_since_ms(now)
        return StreamHealth(
            self.name, Freshness.STALE, now_ms(), f"no data for {silent:.1f} s", silent_since_ms=since
        ), True

    def silent_since_ms(self, now: float) -> int | None:
        """Wall-clock ms of the last data, where silence judges this stream (None otherwise: a stream that
        pushes only on change says nothing by its silence), so the stale-data policy can apply the account's
        own threshold to the true silence."""
        if self.stale_after_s is None:
            return None
        return now_ms() - int((now - self.seen_at) * 1000)

    @property
    def seen_at(self) -> float:
        """Monotonic time data really last arrived, or the clock started (a forced reconnect moves neither)."""
        return self.data_seen if self.data_seen is not None else self.last_data

    def rearm(self, now: float) -> None:
        """After a forced reconnect: give the new socket a full threshold before judging it again."""
        self.last_data = now

    def down(self, detail: str) -> StreamHealth | None:
        """The stream failed and will be retried: DOWN (once per outage)."""
        if self.state is Freshness.DOWN:
            return None
        self.state = Freshness.DOWN
        if self.stale_after_s is None:  # silence says nothing on such a stream: it is blind from the drop on
            return StreamHealth(self.name, Freshness.DOWN, now_ms(), detail)
        silent_s = time.monotonic() - self.seen_at
        wall_ms = now_ms()
        since_ms = wall_ms - int(silent_s * 1000)
        return StreamHealth(self.name, Freshness.DOWN, wall_ms, detail, silent_since_ms=since_ms)


Send = Callable[[Callable[[Any], None], StreamHealth], None]


@dataclass(slots=True)
class Listener:
    """One listener of a shared stream, with its own silence threshold and what it was last told."""

    deliver: Callable[[Any], None]
    stale_after_s: float
    told: Freshness | None = None


class SharedStream:
    """One stream (a symbol's marks) heard by several listeners (accounts), each judging its silence on its
    own threshold: an account with a short `stale_after_s` hears STALE when its threshold passes, another
    with a longer one only when its own does. The stream is reconnected on the shortest threshold.

    `send(deliver, health)` hands a health event to one listener (the caller isolates listener failures).
    """

    def __init__(self, name: str, now: float) -> None:
        self.clock = StreamClock(name, None, now)
        self.listeners: list[Listener] = []  # replaced on a change, never changed in place
        # Every listener has been told FRESH since the last change of anyone's state (a listener added, a
        # STALE or DOWN told): then data only moves the clock's times (`seen` runs at every mark).
        self._fresh_told = False

    @property
    def name(self) -> str:
        return self.clock.name

    def add(self, deliver: Callable[[Any], None], stale_after_s: float) -> None:
        # `listeners` is replaced, never changed in place, so a walk over it (every mark) needs no copy.
        self.listeners = [*self.listeners, Listener(deliver, stale_after_s)]
        self._fresh_told = False
        self._rethreshold()

    def remove(self, deliver: Callable[[Any], None]) -> bool:
        """Forget one listener; True if it was there."""
        for index, listener in enumerate(self.listeners):
            if listener.deliver == deliver:
                self.listeners = self.listeners[:index] + self.listeners[index + 1 :]
                self._rethreshold()
                return True
        return False

    def _rethreshold(self) -> None:
        self.clock.stale_after_s = min((lst.stale_after_s for lst in self.listeners), default=None)

    def seen(self, now: float, send: Send) -> None:
        """Data arrived (and was delivered): FRESH to every listener told anything else before."""
        clock = self.clock
        if self._fresh_told and clock.state is Freshness.FRESH:
            clock.last_data = clock.data_seen = now
            return
        clock.seen(now)
        # Set before telling: a listener added by a delivery below (it clears the flag) is told on the next data.
        self._fresh_told = True
        fresh = None
        for listener in self.listeners:
            if listener.told is not Freshness.FRESH:
                listener.told = Freshness.FRESH
                fresh = fresh or StreamHealth(self.name, Freshness.FRESH, now_ms())
                send(listener.deliver, fresh)

    def down(self, detail: str, send: Send) -> None:
        """The stream failed and will be retried: DOWN, once per outage, to each listener."""
        self.clock.state = Freshness.DOWN
        self._fresh_told = False
        health = None
        for listener in self.listeners:
            if listener.told is not Freshness.DOWN:
                listener.told = Freshness.DOWN
                since = self.clock.silent_since_ms(time.monotonic())
                health = health or StreamHealth(
                    self.name, Freshness.DOWN, now_ms(), detail, silent_since_ms=since
                )
                send(listener.deliver, health)

    def check(self, now: float, send: Send) -> bool:
        """STALE to each listener whose own threshold the silence has passed; whether to reconnect now."""
        silent = now - self.clock.seen_at
        for listener in self.listeners:
            if silent > listener.stale_after_s and listener.told not in (Freshness.STALE, Freshness.DOWN):
                listener.told = Freshness.STALE
                self._fresh_told = False
                since = self.clock.silent_since_ms(now)
                detail = f"no data for {silent:.1f} s"
                send(
                    listener.deliver,
                    StreamHealth(self.name, Freshness.STALE, now_ms(), detail, silent_since_ms=since),
                )
        _, reconnect = self.clock.check(now)
        return reconnect
