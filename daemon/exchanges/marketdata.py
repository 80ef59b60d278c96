"""`MarketHub`: one exchange's public data, shared by every account that trades on it.

One hub per environment (exchange, mode and server: `client.environment`) holds one public ccxt client, built
without credentials (`hub_for`). Market metadata and maintenance tiers are loaded once and shared
(`rules(symbol)`); each symbol's mark is watched once whatever the number of accounts holding it:
`subscribe(symbol, listener)` / `unsubscribe` count references, and every mark reaches every listener as a
core `MarkPrice`.

One `watch_mark_price` task per symbol, because ccxt resolves a waiting watch once per batch of frames read
together (a single multi-symbol watch hands user code only a fraction of the updates under load). A watch
resolves with the first of those frames and only caches the rest, so after each wake-up the hub takes the
newest mark ccxt holds (`client.tickers`), and `refresh(symbols)` lets a reader about to decide fold in any
mark ccxt has taken since: no decision is made on a superseded mark. A hub that follows many symbols
(`HubSettings.all_markets`, where the venue has it: `Quirks.all_markets_marks`) reads instead ONE stream of
every market's marks (Binance's `!markPrice@arr@1s`, ccxt's `watch_mark_prices()`) with one task, and after
each frame delivers, for every symbol it follows, the mark ccxt now holds.

Each symbol's stream is judged by the age of its last mark, by each listener on its own `stale_after_s` (an
account's, or a symbol's within it): past it that listener hears `StreamHealth(STALE)`; past the shortest, the
hub's sockets are failed so the next watch reconnects and resubscribes. FRESH again only on a new mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any

import structlog

from daemon.core.events import MarketRules, MarkPrice, StreamHealth
from daemon.exchanges import mark_trace
from daemon.exchanges.client import Environment, build_client, environment, public_account, share_markets
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.errors import InvalidRequest
from daemon.exchanges.hub_settings import HubSettings
from daemon.exchanges.parse import mark_from_ticker, market_rules
from daemon.exchanges.quirks import Quirks, quirks_for
from daemon.exchanges.retry import Retry, read, translated
from daemon.exchanges.streams import (
    SharedStream,
    cancelled_by_us,
    force_reconnect,
    forget_dial_backoff,
    now_ms,
)

log = structlog.get_logger(__name__)

# ccxt option keys holding exchange-wide tables that ccxt loads lazily per client (read-only once loaded).
SHARED_OPTION_CACHES = ("leverageBrackets",)
CLIENT_CLOSE_S = 5.0  # the public client's sockets closed at stop, at most this long

MarkEvent = MarkPrice | StreamHealth
MarkListener = Callable[[MarkEvent], None]


ALL_MARKETS = "*"  # the task key of the stream of every market's marks


def mark_stream_name(symbol: str) -> str:
    return f"mark:{symbol}"


class MarketHub:
    """Public market data of one exchange. Use as `async with hub:`; see the module docstring."""

    def __init__(self, client: Any, quirks: Quirks, settings: HubSettings | None = None) -> None:
        self.client = client
        # Without permessage-deflate: aiohttp keeps a ~110 KB zlib context per message sent (a subscription
        # each), and the exchanges' mark frames are small.
        client.options.setdefault("ws", {}).setdefault("compress", 0)
        if mark_trace.TRACE is not None:  # benchmarks only (off by default)
            mark_trace.TRACE.watch_frames(client)
        self.quirks = quirks
        self.settings = settings or HubSettings()
        # Which server the public client talks to (set by `hub_for`); None: not checked.
        self.environment: Environment | None = None
        self._streams: dict[str, SharedStream] = {}  # symbol -> its listeners and freshness
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._latest: dict[str, MarkPrice] = {}
        self._delivered: dict[
            str, Mapping[str, Any]
        ] = {}  # symbol -> the ccxt ticker its latest mark came from
        # Above 0 while `refresh` delivers many marks at once: listeners defer their models to after the batch.
        self.batching = 0
        self._markets_lock = asyncio.Lock()
        self._tiers_locks: dict[str, asyncio.Lock] = {}
        self._all_tiers: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
        self._tiers: dict[str, Sequence[Mapping[str, Any]] | None] = {}
        self._rules: dict[str, MarketRules] = {}
        self._group: asyncio.TaskGroup | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._caches: dict[str, Any] = {}
        self._caches_lock = asyncio.Lock()
        self._caches_learned = False
        self._starting = asyncio.Semaphore(self.settings.startup_concurrency)
        self.markets_loads = 0  # how many times markets were fetched (one, once warmed)
        self.forced_reconnects = 0

    @property
    def exchange_id(self) -> str:
        return self.quirks.exchange_id

    # ---- life cycle ----

    async def __aenter__(self) -> MarketHub:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._watchdog = self._group.create_task(
            self._watch_freshness(), name=f"hub-{self.exchange_id}-watchdog"
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        group, self._group = self._group, None
        for task in [*self._tasks.values(), self._watchdog]:
            if task is not None:
                task.cancel()
        self._tasks.clear()
        try:
            if group is not None:
                await group.__aexit__(
                    exc_type, exc, tb
                )  # raises the body's error (grouped) when there is one
        finally:  # so the client is closed whichever way the hub is left
            with contextlib.suppress(Exception):  # a close that hangs must not hold the daemon's stop
                async with asyncio.timeout(CLIENT_CLOSE_S):
                    await self.client.close()

    # ---- market metadata, loaded once ----

    async def load_markets(self) -> Mapping[str, Any]:
        """The exchange's markets, fetched on first use only (concurrent callers share the one load)."""
        async with self._markets_lock:
            if not self.client.markets:
                await read(self.client.load_markets, client=self.client, attempts=1)
                self.markets_loads += 1
            markets: Mapping[str, Any] = self.client.markets
            return markets

    async def rules(self, symbol: str, via: Any = None) -> MarketRules:
        """Contract size and maintenance tiers of `symbol`, fetched once per exchange.

        `via` is a client with credentials, for exchanges whose tier endpoint is private (Binance's
        leverage brackets are signed); the public client is used when it is None.
        """
        known = self._rules.get(symbol)
        if known is not None:
            return known
        markets = await self.load_markets()
        if symbol not in markets:
            raise InvalidRequest(f"{symbol} is not listed on {self.exchange_id}")
        tiers = await self._tiers_of(symbol, via if via is not None else self.client)
        rules = market_rules(markets[symbol], tiers, self.quirks.family)
        self._rules[symbol] = rules
        return rules

    async def _tiers_of(self, symbol: str, client: Any) -> Sequence[Mapping[str, Any]] | None:
        lock_key = "*" if self.quirks.tiers_call == "fetch_leverage_tiers" else symbol
        lock = self._tiers_locks.setdefault(lock_key, asyncio.Lock())
        async with lock:
            if self.quirks.tiers_call == "fetch_leverage_tiers":
                if self._all_tiers is None:
                    self._all_tiers = await _call(client.fetch_leverage_tiers)
                return self._all_tiers.get(symbol)
            if symbol not in self._tiers:
                self._tiers[symbol] = await _call(client.fetch_market_leverage_tiers, symbol)
            return self._tiers[symbol]

    # ---- what account clients share ----

    @contextlib.asynccontextmanager
    async def adopted(self, client: Any) -> AsyncIterator[None]:
        """Around an account client's first requests: give it the hub's markets, TLS context and ccxt's
        lazily loaded exchange-wide tables, and learn those tables from the first client that loads them.

        ccxt keeps such tables per client (Binance's leverage brackets: every symbol's brackets, fetched by
        the first fetch_positions); loaded once and shared, they cost one request and one copy per exchange.
        The first client of the exchange holds the others back until it has loaded them; after it, at most
        `HubSettings.startup_concurrency` clients are inside at once.
        """
        async with self._starting, self._adopting(client):
            yield

    @contextlib.asynccontextmanager
    async def _adopting(self, client: Any) -> AsyncIterator[None]:
        await self.load_markets()
        if not client.markets:
            share_markets(self.client, client)
        if (
            getattr(self.client, "ssl_context", None) is not None
            and getattr(client, "ssl_context", None) is None
        ):
            client.ssl_context = self.client.ssl_context  # one CA store per exchange, not one per account
        learning = False
        if not self._caches_learned:
            await self._caches_lock.acquire()
            # Those that queued behind the first client find the tables learned once it is done: they go on
            # at once, side by side. Holding the lock through their requests too made every account's snapshot
            # wait for the one before it (start-up grew linearly: 250 accounts took 38 s, 1,000 over 400 s).
            learning = not self._caches_learned
            if not learning:
                self._caches_lock.release()
        try:
            self._share_caches(client)
            yield
            if learning:
                for key in SHARED_OPTION_CACHES:
                    if client.options.get(key) is not None and key not in self._caches:
                        self._caches[key] = client.options[key]
                self._caches_learned = True
        finally:
            if learning:
                self._caches_lock.release()

    def _share_caches(self, client: Any) -> None:
        for key, table in self._caches.items():
            if client.options.get(key) is None:  # ccxt declares some of them as None until loaded
                client.options[key] = table

    # ---- mark prices, one stream per symbol ----

    def subscribe(self, symbol: str, listener: MarkListener, stale_after_s: float | None = None) -> None:
        """Add a listener to `symbol`'s marks, judging their silence on its own `stale_after_s` (None: the
        hub's); the first one starts the symbol's single watch task."""
        threshold = self.settings.stale_after_s if stale_after_s is None else stale_after_s
        stream = self._streams.get(symbol)
        if stream is not None:
            stream.add(listener, threshold)
            latest = self._latest.get(symbol)
            if latest is not None:
                _deliver(listener, latest)  # a late subscriber need not wait for the next frame
            return
        if self._group is None:
            raise RuntimeError("MarketHub.subscribe outside `async with hub:`")
        stream = self._streams[symbol] = SharedStream(mark_stream_name(symbol), time.monotonic())
        stream.add(listener, threshold)
        if self.all_markets:
            if ALL_MARKETS not in self._tasks:
                self._tasks[ALL_MARKETS] = self._group.create_task(
                    self._watch_all_marks(), name=f"hub-{self.exchange_id}-marks-all-markets"
                )
            self.refresh((symbol,))  # ccxt may hold its mark already: no need to wait for the next frame
            return
        self._tasks[symbol] = self._group.create_task(
            self._watch_marks(symbol, stream), name=f"hub-{self.exchange_id}-mark-{symbol}"
        )

    def unsubscribe(self, symbol: str, listener: MarkListener) -> None:
        """Remove one listener; the last one stops the symbol's watch task."""
        stream = self._streams.get(symbol)
        if stream is None or not stream.remove(listener) or stream.listeners:
            return
        del self._streams[symbol]
        task = self._tasks.pop(symbol, None)
        if task is not None:
            task.cancel()
        self._latest.pop(symbol, None)
        self._delivered.pop(symbol, None)

    @property
    def subscriptions(self) -> dict[str, int]:
        """Symbol -> number of listeners, for every symbol with a running mark stream."""
        return {symbol: len(stream.listeners) for symbol, stream in self._streams.items()}

    def stream_age(self, symbol: str, now: float) -> float | None:
        """Seconds since `symbol`'s mark stream last carried data (monotonic `now`); None when not watched."""
        stream = self._streams.get(symbol)
        return None if stream is None else max(0.0, now - stream.clock.seen_at)

    def latest(self, symbol: str) -> MarkPrice | None:
        return self._latest.get(symbol)

    @property
    def all_markets(self) -> bool:
        """Whether this hub reads one stream of every market's marks (see the module's docstring)."""
        return self.settings.all_markets and self.quirks.all_markets_marks

    async def _watch_marks(self, symbol: str, stream: SharedStream) -> None:
        # Partials of ccxt's own watch and of `_on_ticker`, not lambdas or a coroutine around the watch: this
        # runs at every mark, and each layer is a Python frame entered once per frame the exchange sends.
        await self._watch(
            self._ticker_source(symbol), partial(self._on_ticker, symbol, stream), lambda: (stream,)
        )

    async def _watch_all_marks(self) -> None:
        await self._watch(
            self.client.watch_mark_prices,
            lambda _tickers: self.refresh(tuple(self._streams)),
            lambda: tuple(self._streams.values()),
        )

    async def _watch(
        self,
        take: Callable[[], Awaitable[Any]],
        deliver: Callable[[Any], None],
        fed: Callable[[], Iterable[SharedStream]],
    ) -> None:
        """Take from a mark watch and `deliver` what it gives, for ever; on its failure, the streams it feeds
        are down until it gives again (retried with the capped backoff)."""
        retry = Retry(self.settings.backoff)
        while True:
            try:
                taken = await take()
            except asyncio.CancelledError:
                if cancelled_by_us():
                    raise
                error = translated(ConnectionError("mark stream closed"))
            except Exception as exc:
                error = translated(exc, self.client)
            else:
                if retry.failures:  # a call saved at every mark while nothing fails
                    retry.reset()
                deliver(taken)
                continue
            for stream in fed():
                stream.down(str(error), _deliver)
            await retry.pause(error)
            forget_dial_backoff(self.client)

    def refresh(self, symbols: Iterable[str]) -> None:
        """Deliver the newest mark ccxt holds for each of `symbols` if the hub has not delivered it yet: frames
        ccxt took since the symbol's watch last woke (it wakes once per batch read together, and a reader may
        decide before it runs again). A dictionary look-up per symbol when nothing is new."""
        tickers = getattr(self.client, "tickers", None)
        if not tickers:
            return
        self.batching += 1  # many marks at once: listeners fold them now and run their models after the batch
        try:
            for symbol in symbols:
                ticker = tickers.get(symbol)
                if ticker is None or ticker is self._delivered.get(symbol):
                    continue
                stream = self._streams.get(symbol)
                if stream is not None:
                    self._on_ticker(symbol, stream, ticker)
        finally:
            self.batching -= 1

    def _on_ticker(self, symbol: str, stream: SharedStream, ticker: Mapping[str, Any]) -> None:
        """Deliver the newest mark ccxt holds for `symbol`: `ticker` (what its watch woke with, or ccxt's cached
        one) or the cached one where that is newer."""
        tickers = self.client.tickers
        cached = tickers.get(symbol) if tickers else None
        if cached is not None and cached is not ticker:
            ticker = _newer(ticker, cached)
        if ticker is self._delivered.get(symbol):
            # Already delivered (by `refresh`): only the stream's freshness moves.
            stream.seen(time.monotonic(), _deliver)
            return
        self._delivered[symbol] = ticker
        price = mark_from_ticker(ticker)
        if price is None:
            return
        timestamp = ticker.get("timestamp")
        mark = MarkPrice(symbol, price, int(timestamp) if timestamp else now_ms())
        self._latest[symbol] = mark
        for listener in stream.listeners:  # replaced, never changed in place: a listener may leave meanwhile
            _deliver(listener.deliver, mark)
        stream.seen(time.monotonic(), _deliver)

    def _ticker_source(self, symbol: str) -> Callable[[], Awaitable[Mapping[str, Any]]]:
        """What gives `symbol`'s next ticker: the venue's mark watch, else its ticker watch, else a poll."""
        stream = self.quirks.mark_stream
        if stream == "watch_mark_price":
            return partial(self.client.watch_mark_price, symbol)
        if stream == "watch_ticker":
            return partial(self.client.watch_ticker, symbol)
        return partial(self._poll_ticker, symbol)

    async def _poll_ticker(self, symbol: str) -> Mapping[str, Any]:
        if symbol in self._latest:
            await asyncio.sleep(self.settings.poll_every_s)
        ticker: Mapping[str, Any] = await self.client.fetch_ticker(symbol)
        return ticker

    async def _watch_freshness(self) -> None:
        """Tell each listener STALE past its own threshold, and fail the hub's sockets once a symbol is silent
        past its shortest one, so the watches reconnect."""
        while True:
            await asyncio.sleep(self.settings.check_every_s)
            now = time.monotonic()
            silent = [stream for stream in list(self._streams.values()) if stream.check(now, _deliver)]
            if silent:
                # ccxt multiplexes symbols over shared sockets, so the sockets are failed as a whole; every
                # symbol on them resubscribes, and each is judged again a full threshold later.
                self.forced_reconnects += 1
                log.warning(
                    "mark streams silent; reconnecting", exchange=self.exchange_id, symbols=len(silent)
                )
                force_reconnect(self.client, f"marginguard: no mark for {len(silent)} symbol(s)")
                for stream in silent:
                    stream.clock.rearm(now)


async def _call(method: Callable[..., Any], *args: Any) -> Any:
    """One try, its error translated: metadata is asked for again by the feed's next reconciliation."""
    return await read(lambda: method(*args), client=getattr(method, "__self__", None), attempts=1)


def _newer(ticker: Mapping[str, Any], cached: Mapping[str, Any]) -> Mapping[str, Any]:
    """The newer of `ticker` (what a watch returned) and ccxt's cached one for the same symbol."""
    if mark_from_ticker(cached) is None:
        return ticker
    ours, theirs = ticker.get("timestamp"), cached.get("timestamp")
    if ours is not None and theirs is not None and theirs < ours:
        return ticker
    return cached


def _deliver(listener: MarkListener, event: MarkEvent) -> None:
    try:
        listener(event)
    except Exception:
        # A broken listener must not blind the others sharing the stream.
        log.exception("mark listener failed", stream=getattr(event, "symbol", None))


def hub_for(account: ExchangeAccount, settings: HubSettings | None = None) -> MarketHub:
    """A hub for `account`'s exchange and environment (`client.environment`), on a client without credentials
    (public data only; tier endpoints that need a signature are called through an account's client, see
    `rules`). Accounts may share it only when their environment equals `hub.environment`."""
    quirks = quirks_for(account.exchange)
    hub = MarketHub(build_client(public_account(account), quirks), quirks, settings)
    hub.environment = environment(account)
    return hub
