"""`AccountFeed`: one account's picture from ccxt, as core events, that never goes silently blind.

The feed first takes a REST snapshot (positions, balance, the rules of every held symbol), then runs:
- websocket loops for positions and balance (`watch_positions` / `watch_balance`);
- mark prices through the shared `MarketHub` for every held symbol (subscribed as legs open, dropped as
  they close);
- a reconciliation snapshot on a timer, after every reconnect, and shortly after a thin push (Binance's
  position pushes carry neither margins nor leverage);
- freshness: every stream is judged by the age of its last data where silence means something, and the
  reconciliation itself is a check: a snapshot that finds changes the position stream never pushed means
  that stream went deaf, so it is declared STALE and reconnected.

Errors are translated and retried through the one retry path (`daemon.exchanges.retry`: capped, jittered
waits, rate limits waiting at least what the exchange asked). Refused keys stop the feed (`stopped_because`),
with a DOWN event saying why, and `run()` returns. A private stream that stays down past `give_up_after_s`
raises `FeedStalled`; besides that, only `CancelledError` leaves `run()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from daemon.core.events import (
    BalanceUpdate,
    Event,
    Freshness,
    MarketRules,
    PositionSnapshot,
    PositionUpdate,
    StreamHealth,
    StreamLeft,
)
from daemon.exchanges.account_terms import AccountTerms
from daemon.exchanges.errors import (
    AuthenticationFailed,
    ExchangeError,
    PermissionDenied,
    RateLimited,
    TransientError,
)
from daemon.exchanges.feed_settings import FeedSettings, FeedStalled
from daemon.exchanges.marketdata import MarketHub, MarkEvent, mark_stream_name
from daemon.exchanges.parse import facts_from_positions, wallet_balance
from daemon.exchanges.quirks import Quirks
from daemon.exchanges.reconcile import PositionLedger, Verdict
from daemon.exchanges.retry import Retry, translated, wait_after
from daemon.exchanges.streams import (
    StreamClock,
    cancelled_by_us,
    force_reconnect,
    forget_dial_backoff,
    now_ms,
    reset_stream_session,
    socket_up,
)

log = structlog.get_logger(__name__)

Emit = Callable[[Event], None]

POSITIONS, BALANCE, ACCOUNT = "positions", "balance", "account"


class _Stopped(Exception):
    """Raised inside the feed's tasks when the account cannot go on (refused keys)."""

    def __init__(self, error: ExchangeError) -> None:
        super().__init__(str(error))
        self.error = error


class AccountFeed:
    """One account's streams; `await feed.run()` until cancelled. See the module docstring."""

    def __init__(
        self,
        client: Any,
        quirks: Quirks,
        hub: MarketHub,
        emit: Emit,
        settings: FeedSettings | None = None,
        symbols: Sequence[str] | None = None,
    ) -> None:
        self.client = client
        self.quirks = quirks
        self.hub = hub
        self.emit = emit
        self.settings = settings or FeedSettings()
        self.symbols = frozenset(symbols) if symbols is not None else None
        private_threshold = None if quirks.positions_quiet_by_nature else self.settings.private_stale_after_s
        start = time.monotonic()
        self._clocks = {
            POSITIONS: StreamClock(POSITIONS, private_threshold, start),
            BALANCE: StreamClock(BALANCE, private_threshold, start),
        }
        # The REST snapshots: DOWN while the first one fails, FRESH from the first that succeeds.
        self._account = StreamClock(ACCOUNT, None, start)
        self._ledger = PositionLedger()
        self._terms = AccountTerms(client, quirks)
        self._subscribed: set[str] = set()
        self._rules_sent: set[str] = set()
        self._buffer: list[Event] | None = None  # private events held back while a snapshot is taken
        self._reconcile_due: float | None = None
        self._not_before = 0.0  # monotonic: no reconciliation before (a rate limit's wait)
        # Set (and replaced) when a failing call answers again: streams waiting out a backoff retry at once.
        self._back = asyncio.Event()
        self._wake = asyncio.Event()
        self.snapshots = 0
        self.stopped_because: ExchangeError | None = None

    # ---- life cycle ----

    async def run(self) -> None:
        # The feed takes its own snapshots; ccxt's hidden REST snapshot inside the first watch_positions
        # would only repeat one (a second request per account) and outlive a closed client.
        watch_options = self.client.options.setdefault("watchPositions", {})
        watch_options.setdefault("fetchPositionsSnapshot", False)
        # Private streams carry little traffic, and a permessage-deflate context costs ~300 KB per socket:
        # with hundreds of accounts that is most of their memory.
        ws_options = self.client.options.setdefault("ws", {})
        ws_options.setdefault("compress", 0)
        try:
            await self._first_snapshot()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._stream(POSITIONS, self._next_positions))
                if self.settings.watch_balance:
                    group.create_task(self._stream(BALANCE, self._next_balance))
                group.create_task(self._reconcile_loop())
                if any(clock.stale_after_s is not None for clock in self._clocks.values()):
                    group.create_task(self._watch_freshness())
        except* _Stopped as stopped:
            error = stopped.exceptions[0]
            assert isinstance(error, _Stopped)
            self.stopped_because = error.error
            log.error("account feed stopped", exchange=self.quirks.exchange_id, error=str(error.error))
            self.emit(
                StreamHealth(ACCOUNT, Freshness.DOWN, now_ms(), f"stopped: {error.error}", refused=True)
            )
        finally:
            for symbol in list(self._subscribed):
                self.hub.unsubscribe(symbol, self._on_mark)
            self._subscribed.clear()

    def stream_ages(self, now: float) -> dict[str, float]:
        """Seconds since each private stream last carried data (monotonic `now`), for the /metrics gauge."""
        return {clock.name: max(0.0, now - clock.seen_at) for clock in self._clocks.values()}

    def request_reconcile(self, after_s: float = 0.0) -> None:
        """Ask for a reconciliation snapshot within `after_s` seconds (earlier requests win)."""
        due = time.monotonic() + after_s
        if self._reconcile_due is None or due < self._reconcile_due:
            self._reconcile_due = due
        self._wake.set()

    # ---- snapshots ----

    async def _first_snapshot(self) -> None:
        retry = Retry(self.settings.backoff)
        while True:
            try:
                async with self.hub.adopted(self.client):
                    await self._snapshot()
                return
            except asyncio.CancelledError:
                if cancelled_by_us():
                    raise
                error: ExchangeError = TransientError("snapshot cancelled by a closing socket")
            except Exception as exc:
                error = translated(exc, self.client)
            self._give_up_if_fatal(error)
            down = self._account.down(f"snapshot failed: {error}")
            if down is not None:
                self._emit(down)
            await retry.pause(error)

    async def _snapshot(self) -> None:
        """Positions and balance by REST, emitted as one complete picture; pushes meanwhile come after it."""
        self._buffer = []
        try:
            rows = await self.client.fetch_positions()
            balance = await self.client.fetch_balance() if self.settings.watch_balance else None
            facts = tuple(
                f for f in facts_from_positions(rows) if f.contracts != 0.0 and self._wanted(f.symbol)
            )
            facts = await self._terms.with_margin_mode(facts)
            await self._send_rules({f.symbol for f in facts})
            if balance is not None:
                wallet = wallet_balance(balance, self.quirks.settle)
                if wallet is not None:
                    self._emit(BalanceUpdate(wallet, now_ms()))
            self._ledger.snapshot_taken(facts)
            self._emit(PositionSnapshot(facts, now_ms()))
            self.snapshots += 1
            account = self._account.seen(time.monotonic())  # the account is seen again (after a DOWN)
            if account is not None:
                self._emit(account)
        finally:
            held, self._buffer = self._buffer, None
            for event in held or ():
                self._publish(event)
        self._follow_marks()
        verdict = self._ledger.judge()
        if verdict is Verdict.SUSPECT:
            self.request_reconcile(after_s=self.settings.confirm_after_s)
        elif verdict is Verdict.DEAF:
            detail = f"stream missed changes to {self._ledger.missed}"
            self._clocks[POSITIONS].state = Freshness.STALE
            self._emit(StreamHealth(POSITIONS, Freshness.STALE, now_ms(), detail))
            force_reconnect(self.client, f"marginguard: {detail}")

    async def _send_rules(self, symbols: set[str]) -> None:
        for symbol in sorted(symbols - self._rules_sent):
            try:
                rules: MarketRules = await self.hub.rules(symbol, via=self.client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the leg stays "tiers unknown" until a later reconciliation
                error = translated(exc, self.client)
                log.warning("market rules unavailable", symbol=symbol, error=str(error))
                self.request_reconcile(after_s=wait_after(error, self.settings.backoff.initial * 4))
                continue
            self._rules_sent.add(symbol)
            self._emit(await self._terms.with_fee(rules))

    async def _reconcile_loop(self) -> None:
        retry = Retry(self.settings.backoff)
        self.request_reconcile(after_s=self.settings.reconcile_every_s)
        while True:
            due = self._reconcile_due if self._reconcile_due is not None else time.monotonic()
            # After a rate limit nobody's request comes before the exchange's Retry-After (or the retry's wait).
            wait = max(due, self._not_before) - time.monotonic()
            if wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                continue
            self._reconcile_due = None
            try:
                await self._snapshot()
            except asyncio.CancelledError:
                if cancelled_by_us():
                    raise
                error: ExchangeError = TransientError("reconciliation cancelled by a closing socket")
            except Exception as exc:
                error = translated(exc, self.client)
            else:
                if retry.failures:
                    self._exchange_back()
                retry.reset()
                self.request_reconcile(after_s=self.settings.reconcile_every_s)
                continue
            self._give_up_if_fatal(error)
            log.warning("reconciliation failed", exchange=self.quirks.exchange_id, error=str(error))
            wait = retry.next_wait(error)
            if isinstance(error, RateLimited):
                self._not_before = time.monotonic() + wait
            self.request_reconcile(after_s=wait)

    # ---- websocket streams ----

    async def _stream(self, name: str, next_events: Callable[[], Awaitable[list[Event]]]) -> None:
        clock = self._clocks[name]
        retry = Retry(self.settings.backoff)
        down_since: float | None = None  # monotonic: when the stream last failed after working
        # The first watch subscribes: like a reconnect, it is followed by a reconciliation, so a change made
        # between the first snapshot and the subscription is not missed.
        recovering = True

        def resubscribed() -> None:
            # A new socket that carries the subscription is the reconnect's success, data or not: a stream that
            # pushes only on change may carry nothing for hours, and its next failure must not inherit this
            # one's backoff (grown to 30 s over a day of drops) or its start (an instant give-up).
            nonlocal down_since
            retry.reset()
            if down_since is not None:
                down_since = None
                self._exchange_back()

        while True:
            answered = recovering
            try:
                if recovering:
                    events = await self._first_after_reconnect(clock, next_events, resubscribed)
                    recovering = False
                else:
                    events = await next_events()
            except asyncio.CancelledError:
                if cancelled_by_us():
                    raise
                error: ExchangeError = TransientError(f"{name} stream closed")
            except Exception as exc:
                error = translated(exc, self.client)
            else:
                retry.reset()
                if down_since is not None:  # back after failing: so is the exchange, for the others too
                    down_since = None
                    self._exchange_back()
                # An empty result is an acknowledgement, not data; but the first one after a (re)subscription is
                # the exchange's answer to it (OKX: the open positions, none on an empty account), and a stream
                # that pushes only on change may say nothing more for hours: it is alive.
                if not events and not answered:
                    continue
                health = clock.seen(time.monotonic())
                for event in events:
                    self._publish(event)
                if health is not None:
                    self._emit(health)
                continue
            self._give_up_if_fatal(error)
            down_since = time.monotonic() if down_since is None else down_since
            down = clock.down(str(error))
            if down is not None:
                self._emit(down)
            recovering = True
            # The session may be gone with the socket (an exchange restart forgets Binance's listen keys).
            reset_stream_session(self.client, self.quirks.stream_session_options)
            await self._pause(name, retry, error, down_since)
            forget_dial_backoff(self.client)

    async def _pause(self, name: str, retry: Retry, error: ExchangeError, down_since: float) -> None:
        """The retry's wait, cut short when another failing call of this account answers again (the exchange
        is back: after an outage the first of the feed's retries to find it up brings the others along; never
        after a rate limit), and at `give_up_after_s` from `down_since`, where the stream is given up: whatever
        state the client is in, failing the feed has its runner start again on a new client (new sockets, new
        session). Never during a rate limit's wait: a new client would ask again before the exchange allows
        it, which exchanges answer by banning the address; the stream stays down (and alerted) meanwhile."""
        wait = retry.next_wait(error)
        if isinstance(error, RateLimited):
            await asyncio.sleep(wait)
            return
        give_up = self.settings.give_up_after_s
        if give_up is not None:
            wait = max(0.0, min(wait, down_since + give_up - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._back.wait(), timeout=wait)
        if give_up is not None and time.monotonic() - down_since >= give_up:
            raise FeedStalled(f"{name} stream down for {time.monotonic() - down_since:.0f} s: {error}")

    def _exchange_back(self) -> None:
        """A call that was failing answers again: wake the streams waiting out their backoff."""
        self._back.set()
        self._back = asyncio.Event()

    async def _first_after_reconnect(
        self,
        clock: StreamClock,
        next_events: Callable[[], Awaitable[list[Event]]],
        resubscribed: Callable[[], None],
    ) -> list[Event]:
        """The first watch after a failure reconnects; reconcile once the new socket had time to subscribe.

        The socket may come up well after the watch starts (a dial refused while the exchange restarts, a
        slow handshake): the reconciliation and the evidence of life wait for it, so neither is taken from a
        socket that is not there yet."""
        watch = asyncio.ensure_future(next_events())
        try:
            await asyncio.wait({watch}, timeout=self.settings.resubscribe_grace_s)
            if not watch.done() and not socket_up(self.client):
                while not watch.done() and not socket_up(self.client):
                    await asyncio.wait({watch}, timeout=self.settings.check_every_s)
                await asyncio.wait({watch}, timeout=self.settings.resubscribe_grace_s)
            self._ledger.rebaseline()
            self.request_reconcile()
            if not watch.done() and socket_up(self.client):
                resubscribed()
                if clock.stale_after_s is None:
                    # A stream not judged by silence (it pushes only on change) has no data to show it is
                    # alive: being connected and resubscribed is the evidence there is; the reconciliation
                    # covers the gap.
                    health = clock.seen(time.monotonic())
                    if health is not None:
                        self._emit(health)
            return await watch
        finally:
            watch.cancel()

    async def _next_positions(self) -> list[Event]:
        # A message ccxt read after the one that answered the last watch, while nobody was waiting, reached only
        # its cache (a one-way flip comes as a close, then the new side): it is handed over before waiting for
        # the next message, which may be the next push of anything, minutes later.
        rows = self._ledger.with_coalesced(self.client, [])
        if not rows:
            rows = self._ledger.with_coalesced(self.client, await self.client.watch_positions())
        facts = self._terms.fill_margin_mode(
            tuple(f for f in facts_from_positions(rows) if self._wanted(f.symbol))
        )
        if not facts:
            return []
        if self.quirks.positions_push_is_thin:
            # Margins and leverage are not in the push: fetch them soon, once the burst has passed.
            self.request_reconcile(after_s=self.settings.reconcile_after_thin_push_s)
        stamps = [int(row["timestamp"]) for row in rows if row.get("timestamp")]
        return [PositionUpdate(facts, max(stamps) if stamps else now_ms())]

    async def _next_balance(self) -> list[Event]:
        balance = await self.client.watch_balance()
        wallet = wallet_balance(balance, self.quirks.settle)
        if wallet is None:
            return []
        return [BalanceUpdate(wallet, now_ms())]

    async def _watch_freshness(self) -> None:
        """Private streams silent past their threshold are declared STALE and reconnected."""
        while True:
            await asyncio.sleep(self.settings.check_every_s)
            now = time.monotonic()
            silent = []
            for clock in self._clocks.values():
                health, reconnect = clock.check(now)
                if health is not None:
                    self._emit(health)
                if reconnect:
                    silent.append(clock)
            if silent:
                force_reconnect(self.client, "marginguard: private stream silent")
                for clock in silent:
                    clock.rearm(now)

    # ---- events out ----

    def _publish(self, event: Event) -> None:
        """A private-stream event: held back during a snapshot, else tracked and emitted."""
        if self._buffer is not None:
            self._buffer.append(event)
            return
        if isinstance(event, PositionUpdate):
            self._ledger.pushed(event.positions)
        self._emit(event)
        if isinstance(event, PositionUpdate):
            self._follow_marks()
            if self._ledger.symbols - self._rules_sent:
                self.request_reconcile()  # a leg opened on a symbol whose tiers are not known yet

    def _emit(self, event: Event) -> None:
        try:
            self.emit(event)
        except Exception:
            log.exception("feed listener failed", event_type=type(event).__name__)

    def _on_mark(self, event: MarkEvent) -> None:
        self._emit(event)

    def _follow_marks(self) -> None:
        """Mark subscriptions follow the held symbols."""
        held = self._ledger.symbols
        for symbol in sorted(held - self._subscribed):
            self._subscribed.add(symbol)
            threshold = self.settings.mark_stale_after_s_by_symbol.get(
                symbol, self.settings.mark_stale_after_s
            )
            self.hub.subscribe(symbol, self._on_mark, threshold)
        for symbol in sorted(self._subscribed - held):
            self._subscribed.discard(symbol)
            self.hub.unsubscribe(symbol, self._on_mark)
            self._emit(StreamLeft(mark_stream_name(symbol)))

    def _wanted(self, symbol: str) -> bool:
        return self.symbols is None or symbol in self.symbols

    def _give_up_if_fatal(self, error: ExchangeError) -> None:
        if isinstance(error, AuthenticationFailed | PermissionDenied):
            raise _Stopped(error)


__all__ = ["ACCOUNT", "BALANCE", "POSITIONS", "AccountFeed", "FeedSettings", "FeedStalled"]
