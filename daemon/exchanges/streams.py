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
from collections.abc import Iterator, Mapping
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


def tolerate_bad_frames(exchange: Any) -> None:
    """Make every websocket `exchange` opens fail (and so reconnect) on a frame it cannot handle, instead of
    going deaf (see the module docstring). Installed once per ccxt client, before its first watch."""
    if getattr(exchange, "_marginguard_frames_guarded", False):
        return
    make_client = exchange.client  # ccxt's factory of per-URL websocket clients

    def client(url: str) -> Any:
        ws = make_client(url)
        if not getattr(ws, "_marginguard_frames_guarded", False):
            _guard_frames(exchange, ws)
        return ws

    exchange.client = client
    exchange._marginguard_frames_guarded = True


def _guard_frames(exchange: Any, ws: Any) -> None:
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
                "stream session ended; reconnecting", exchange=getattr(exchange, "id", None), event=event
            )
            client.on_error(NetworkError(f"marginguard: stream session ended ({event})"))

    ws.handle_text_or_binary_message = guarded
    ws.on_message_callback = delivered
    ws._marginguard_frames_guarded = True


@dataclass(slots=True)
class StreamClock:
    """Freshness of one named stream: when it last carried data and what it was last declared."""

    name: str
    stale_after_s: float | None  # None: silence alone says nothing (pushes come only on change)
    last_data: float  # monotonic seconds; moved on by `rearm`, so a new socket gets a full threshold
    state: Freshness | None = None
    # When data really last arrived (monotonic; None: the clock's start). A forced reconnect does not move it,
    # so a stream that drops after a long silence is reported silent since then, not since the drop.
    data_seen: float | None = None

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
        return StreamHealth(self.name, Freshness.STALE, now_ms(), f"no data for {silent:.1f} s"), True

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
        silent_s = time.monotonic() - (self.data_seen if self.data_seen is not None else self.last_data)
        wall_ms = now_ms()
        since_ms = wall_ms - int(silent_s * 1000)
        return StreamHealth(self.name, Freshness.DOWN, wall_ms, detail, silent_since_ms=since_ms)


class Retry:
    """A stream's retry schedule: `Backoff` delays, restarted after every success."""

    def __init__(self, schedule: Any, draws: Any) -> None:
        self._schedule = schedule
        self._draws = draws
        self._delays: Iterator[float] | None = None

    def next_delay(self, at_least: float | None = None) -> float:
        if self._delays is None:
            self._delays = self._schedule.delays(self._draws)
        delay = next(self._delays)
        return max(delay, at_least) if at_least is not None else delay

    def succeeded(self) -> None:
        self._delays = None
