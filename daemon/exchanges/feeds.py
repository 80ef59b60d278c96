"""`AccountFeed`: one account's picture from ccxt, as core events, that never goes silently blind.

The feed first takes a REST snapshot (positions, balance, the rules of every held symbol), then runs:
- websocket loops for positions and balance (`watch_positions` / `watch_balance`, each a `PrivateStream`:
  see `daemon.exchanges.stream_loop` for how a failing stream backs off, reconnects and is given up);
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
import random
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
from daemon.exchanges.feed_settings import FeedSettings, FeedStalled, reconcile_after_s
from daemon.exchanges.marketdata import MarketHub, mark_stream_name
from daemon.exchanges.parse import facts_from_positions, wallet_balance
from daemon.exchanges.quirks import Quirks
from daemon.exchanges.reconcile import PositionLedger, Verdict
from daemon.exchanges.retry import Retry, translated, wait_after
from daemon.exchanges.stream_loop import PrivateStream, Recovery, StreamHooks
from daemon.exchanges.streams import (
    StreamClock,
    cancelled_by_us,
    force_reconnect,
    now_ms,
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
        self._fee_unread: dict[str, MarketRules] = {}  # rules sent with ccxt's guessed fee, by symbol
        self._buffer: list[Event] | None = None  # private events held back while a snapshot is taken
        self._reconcile_due: float | None = None
        self._not_before = 0.0  # monotonic: no reconciliation before (a rate limit's wait)
        self._recovery = Recovery()  # told when a failing call answers again
        self._wake = asyncio.Event()
        self.snapshots = 0
        self.stopped_because: ExchangeError | None = None

    # ---- life cycle ----

    async def run(self) -> None:
        # The feed takes its own snapshots; ccxt's hidden REST snapshot inside the first watch_positions
        # would only repeat one (a second request per account) and outlive a closed client. Set, not defaulted:
        # ccxt's own default is on (Binance, Bybit), so a default left its snapshot running at every connect,
        # and its rows, cached, then read as a thin push that asked for one more reconciliation.
        watch_options = self.client.options.setdefault("watchPositions", {})
        watch_options["fetchPositionsSnapshot"] = False
        # Private streams carry little traffic, and a permessage-deflate context costs ~300 KB per socket:
        # with hundreds of accounts that is most of their memory.
        ws_options = self.client.options.setdefault("ws", {})
        ws_options.setdefault("compress", 0)
        try:
            await self._first_snapshot()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._private_stream(POSITIONS, self._next_positions).run())
                if self.settings.watch_balance:
                    group.create_task(self._private_stream(BALANCE, self._next_balance).run())
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
                self.hub.unsubscribe(symbol, self.emit)
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
            facts = await self._terms.with_leverage(await self._terms.with_margin_mode(facts))
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
        if self._clocks[POSITIONS].state is Freshness.DOWN:
            # The stream is known down and reconnecting (its outage is told on its own clock): what changed
            # meanwhile says nothing of deafness; its resubscription takes the next baseline.
            self._ledger.rebaseline()
            return
        verdict = self._ledger.judge()
        if verdict is Verdict.SUSPECT:
            self.request_reconcile(after_s=self.settings.confirm_after_s)
        elif verdict is Verdict.DEAF:
            detail = f"stream missed changes to {self._ledger.missed}"
            self._clocks[POSITIONS].state = Freshness.STALE
            self._emit(StreamHealth(POSITIONS, Freshness.STALE, now_ms(), detail))
            force_reconnect(self.client, f"marginguard: {detail}")

    async def _send_rules(self, symbols: set[str]) -> None:
        asked: set[str] = set()
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
            # Until the account's own fee is read, ccxt's guess stands in: the base tier's rate, no less than what
            # the account pays, so the requirement is no lower than the exchange's.
            self._emit(await self._with_own_fee(symbol, rules) or rules)
            asked.add(symbol)
        for symbol in sorted((symbols & self._fee_unread.keys()) - asked):
            ruled = await self._with_own_fee(symbol, self._fee_unread[symbol])
            if ruled is not None:
                self._emit(ruled)

    async def _with_own_fee(self, symbol: str, rules: MarketRules) -> MarketRules | None:
        """The rules with the account's own taker fee; None while it cannot be read (asked again soon: a guess
        kept for the runner's life made every liquidation price of a Bybit symbol a few 1e-4 off)."""
        try:
            ruled = await self._terms.with_fee(rules)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = translated(exc, self.client)
            log.warning("account fee rate unavailable", symbol=symbol, error=str(error))
            self._fee_unread[symbol] = rules
            self.request_reconcile(after_s=wait_after(error, self.settings.backoff.initial * 4))
            return None
        self._fee_unread.pop(symbol, None)
        return ruled

    async def _reconcile_loop(self) -> None:
        retry = Retry(self.settings.backoff)
        every_s = self.settings.reconcile_every_s
        self.request_reconcile(after_s=reconcile_after_s(every_s, True, random.random()))
        while True:
            due = self._reconcile_due if self._reconcile_due is not None else time.monotonic()
            # After a rate limit nobody's request comes before the exchange's Retry-After (or the retry's wait).
            wait = max(due, self._not_before) - time.monotonic()
            if wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):  # not wait_for: see tests/unit/test_cancellation.py
                        await self._wake.wait()
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
                    self._recovery.announce()
                retry.reset()
                self.request_reconcile(after_s=reconcile_after_s(every_s, False, random.random()))
                continue
            self._give_up_if_fatal(error)
            log.warning("reconciliation failed", exchange=self.quirks.exchange_id, error=str(error))
            wait = retry.next_wait(error)
            if isinstance(error, RateLimited):
                self._not_before = time.monotonic() + wait
            self.request_reconcile(after_s=wait)

    # ---- websocket streams ----

    def _private_stream(self, name: str, next_events: Callable[[], Awaitable[list[Event]]]) -> PrivateStream:
        hooks = StreamHooks(
            publish=self._publish,
            emit=self._emit,
            subscribed=self._resubscribed,
            check_fatal=self._give_up_if_fatal,
        )
        return PrivateStream(
            self._clocks[name],
            next_events,
            self.client,
            self.settings,
            self.quirks.stream_session_options,
            hooks,
            self._recovery,
        )

    def _resubscribed(self) -> None:
        """A (new) socket had time to subscribe: what it missed meanwhile is expected, and reconciled now."""
        self._ledger.rebaseline()
        self.request_reconcile()

    async def _next_positions(self) -> list[Event]:
        # A message ccxt read after the one that answered the last watch, while nobody was waiting, reached only
        # its cache (a one-way flip comes as a close, then the new side): it is handed over before waiting for
        # the next message, which may be the next push of anything, minutes later.
        rows = self._ledger.with_coalesced(self.client, [])
        if not rows:
            rows = self._ledger.with_coalesced(self.client, await self.client.watch_positions())
        facts = self._terms.fill_leverage(
            self._terms.fill_margin_mode(
                tuple(f for f in facts_from_positions(rows) if self._wanted(f.symbol))
            )
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

    def _follow_marks(self) -> None:
        """Mark subscriptions follow the held symbols."""
        held = self._ledger.symbols
        for symbol in sorted(held - self._subscribed):
            self._subscribed.add(symbol)
            threshold = self.settings.mark_stale_after_s_by_symbol.get(
                symbol, self.settings.mark_stale_after_s
            )
            # The hub hands marks straight to `emit`, isolating a failing listener itself (`_deliver`): no
            # layer of the feed's own in between, at every mark.
            self.hub.subscribe(symbol, self.emit, threshold)
        for symbol in sorted(self._subscribed - held):
            self._subscribed.discard(symbol)
            self.hub.unsubscribe(symbol, self.emit)
            self._emit(StreamLeft(mark_stream_name(symbol)))

    def _wanted(self, symbol: str) -> bool:
        return self.symbols is None or symbol in self.symbols

    def _give_up_if_fatal(self, error: ExchangeError) -> None:
        if isinstance(error, AuthenticationFailed | PermissionDenied):
            raise _Stopped(error)


__all__ = ["ACCOUNT", "BALANCE", "POSITIONS", "AccountFeed", "FeedSettings", "FeedStalled"]
