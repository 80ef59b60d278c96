"""`PrivateStream`: one private stream of an account (positions or balance), watched until cancelled.

Each failure is said once (a DOWN on the stream's clock), the stream's session is reset (an exchange restart
forgets Binance's listen keys) and the stream is dialled again after its capped, jittered backoff. The wait is
cut short when another call of the same account finds the exchange answering again (`Recovery`), and ends in
`FeedStalled` once the stream has been down for `give_up_after_s`. A reconnect counts as a success once its new
socket carries the subscription, data or not: a stream that pushes only on change may carry nothing for hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from daemon.core.events import Event
from daemon.exchanges.errors import ExchangeError, RateLimited, TransientError
from daemon.exchanges.feed_settings import FeedSettings, FeedStalled
from daemon.exchanges.retry import Retry, translated
from daemon.exchanges.streams import (
    StreamClock,
    cancelled_by_us,
    forget_dial_backoff,
    reset_stream_session,
    socket_up,
)


class Recovery:
    """Told when a failing call of one account answers again: the streams waiting out a backoff retry at once
    (after an outage the first retry to find the exchange up brings the others along)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def announce(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_at_most(self, seconds: float) -> None:
        """Until the next announcement, or `seconds`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: see tests/unit/test_cancellation.py
                await self._event.wait()


@dataclass(frozen=True, slots=True)
class StreamHooks:
    """What a private stream tells its feed."""

    publish: Callable[[Event], None]  # the stream's data
    emit: Callable[[Event], None]  # its health
    subscribed: Callable[[], None]  # a (new) socket had time to subscribe: reconcile what it may have missed
    check_fatal: Callable[[ExchangeError], None]  # raises where the account cannot go on (refused keys)


class PrivateStream:
    def __init__(
        self,
        clock: StreamClock,
        next_events: Callable[[], Awaitable[list[Event]]],
        client: Any,
        settings: FeedSettings,
        session_options: Mapping[str, Mapping[str, Any]],
        hooks: StreamHooks,
        recovery: Recovery,
    ) -> None:
        self.clock = clock
        self.next_events = next_events
        self.client = client
        self.settings = settings
        self.session_options = session_options
        self.hooks = hooks
        self.recovery = recovery
        self._retry = Retry(settings.backoff)
        self._down_since: float | None = None  # monotonic: when the stream last failed after working

    @property
    def name(self) -> str:
        return self.clock.name

    async def run(self) -> None:
        # The first watch subscribes: like a reconnect, it is followed by a reconciliation, so a change made
        # between the first snapshot and the subscription is not missed.
        recovering = True
        while True:
            answered = recovering
            try:
                if recovering:
                    events = await self._first_after_reconnect()
                    recovering = False
                else:
                    events = await self.next_events()
            except asyncio.CancelledError:
                if cancelled_by_us():
                    raise
                error: ExchangeError = TransientError(f"{self.name} stream closed")
            except Exception as exc:
                error = translated(exc, self.client)
            else:
                self._working()
                # An empty result is an acknowledgement, not data; but the first one after a (re)subscription is
                # the exchange's answer to it (OKX: the open positions, none on an empty account), and a stream
                # that pushes only on change may say nothing more for hours: it is alive.
                if not events and not answered:
                    continue
                health = self.clock.seen(time.monotonic())
                for event in events:
                    self.hooks.publish(event)
                if health is not None:
                    self.hooks.emit(health)
                continue
            await self._failed(error)
            recovering = True

    def _working(self) -> None:
        """The stream answered, or its new socket carries the subscription: its next failure starts afresh
        (neither this outage's backoff, grown to 30 s over a day of drops, nor its start, an instant give-up)."""
        self._retry.reset()
        if self._down_since is not None:  # back after failing: so is the exchange, for the others too
            self._down_since = None
            self.recovery.announce()

    async def _failed(self, error: ExchangeError) -> None:
        self.hooks.check_fatal(error)
        down_since = self._down_since = time.monotonic() if self._down_since is None else self._down_since
        down = self.clock.down(str(error))
        if down is not None:
            self.hooks.emit(down)
        # The session may be gone with the socket (an exchange restart forgets Binance's listen keys).
        reset_stream_session(self.client, self.session_options)
        await self._pause(error, down_since)
        forget_dial_backoff(self.client)

    async def _pause(self, error: ExchangeError, down_since: float) -> None:
        """The retry's wait, cut short by the account's `Recovery` (never after a rate limit), and at
        `give_up_after_s` from `down_since`, where the stream is given up: whatever state the client is in,
        failing the feed has its runner start again on a new client (new sockets, new session). Never during a
        rate limit's wait: a new client would ask again before the exchange allows it, which exchanges answer
        by banning the address; the stream stays down (and alerted) meanwhile."""
        wait = self._retry.next_wait(error)
        if isinstance(error, RateLimited):
            await asyncio.sleep(wait)
            return
        give_up = self.settings.give_up_after_s
        if give_up is not None:
            wait = max(0.0, min(wait, down_since + give_up - time.monotonic()))
        await self.recovery.wait_at_most(wait)
        if give_up is not None and time.monotonic() - down_since >= give_up:
            raise FeedStalled(f"{self.name} stream down for {time.monotonic() - down_since:.0f} s: {error}")

    async def _first_after_reconnect(self) -> list[Event]:
        """The first watch after a failure reconnects; reconcile once the new socket had time to subscribe.

        The socket may come up well after the watch starts (a dial refused while the exchange restarts, a
        slow handshake): the reconciliation and the evidence of life wait for it, so neither is taken from a
        socket that is not there yet."""
        settings = self.settings
        watch = asyncio.ensure_future(self.next_events())
        try:
            await asyncio.wait({watch}, timeout=settings.resubscribe_grace_s)
            if not watch.done() and not socket_up(self.client):
                while not watch.done() and not socket_up(self.client):
                    await asyncio.wait({watch}, timeout=settings.check_every_s)
                await asyncio.wait({watch}, timeout=settings.resubscribe_grace_s)
            self.hooks.subscribed()
            if not watch.done() and socket_up(self.client):
                self._working()
                if self.clock.stale_after_s is None:
                    # A stream not judged by silence (it pushes only on change) has no data to show it is
                    # alive: being connected and resubscribed is the evidence there is; the reconciliation
                    # covers the gap.
                    health = self.clock.seen(time.monotonic())
                    if health is not None:
                        self.hooks.emit(health)
            return await watch
        finally:
            watch.cancel()
