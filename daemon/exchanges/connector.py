"""`Connector`: one account's feed folded into the core's picture, published after every event.

    async with MarketHub(public_client, quirks) as hub, Connector(account, hub) as connector:
        async for update in connector.updates():
            update.view.leg("BTC/USDT:USDT", "long").risk.liquidation_price

Each feed event goes through `core.state.apply`; the new `AccountView` (`core.view.view`: the model's figures
or the reason they are unknown) is published with the state, the changes to the set of legs and the event.
Marks delivered in one event-loop pass (a tick moves every symbol at once) are folded one by one and published
as one update: 1,000 accounts holding a few symbols each would otherwise publish once per symbol per tick views
superseded microseconds later. The view is kept by `core.live_view.LiveView`: a mark moves only what depends on
its symbol (the same figures as the full solve, bit for bit); anything else rebuilds it.
`connector.state` and `connector.view` always hold the latest. Accounts on one exchange share one hub, so
markets and mark streams are loaded and watched once whatever the number of accounts.

The feed runs in a task group entered by `async with connector:`, in the caller's task. If it dies (or the
picture cannot take an event), the body of the `async with` is cancelled and leaving it raises the error: a
dead feed fails whoever runs it (the account's runner, which the supervisor restarts), never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import structlog

from daemon.core.events import Event, MarkPrice, StreamHealth, StreamLeft
from daemon.core.live_view import LiveView
from daemon.core.margin.leeway import LegLeeway
from daemon.core.state import AccountState, Change, LegKey, apply, marked
from daemon.core.values import value
from daemon.core.view import AccountView
from daemon.exchanges.client import build_client, environment
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.feeds import AccountFeed, FeedSettings
from daemon.exchanges.marketdata import MarketHub
from daemon.exchanges.quirks import quirks_for

log = structlog.get_logger(__name__)

STOP_DEADLINE_S = 5.0


@value
class ConnectorUpdate:
    """The account after `event`: its state, the model's view of it, and the changes to the set of legs.

    `folded` lists every event this update accounts for (`event` is the last): marks that arrive together
    are folded one by one but published once, with the model run once over all of them. `figures` is the view,
    or, from a connector deferring its model (`defer_model`), how to get it: read `view`.
    """

    state: AccountState
    figures: AccountView | Callable[[], AccountView]
    changes: tuple[Change, ...]
    event: Event
    folded: tuple[Event, ...] = ()

    @property
    def view(self) -> AccountView:
        figures = self.figures
        return figures if isinstance(figures, AccountView) else figures()


class _Subscriber:
    """One reader of `updates()`: a bounded buffer (a reader that falls far behind loses the oldest)."""

    def __init__(self, limit: int) -> None:
        self.pending: deque[ConnectorUpdate] = deque(maxlen=limit)
        self.ready = asyncio.Event()
        self.dropped = 0

    def put(self, update: ConnectorUpdate) -> None:
        if len(self.pending) == self.pending.maxlen:
            self.dropped += 1
        self.pending.append(update)
        self.ready.set()


class Connector:
    def __init__(
        self,
        account: ExchangeAccount,
        hub: MarketHub,
        settings: FeedSettings | None = None,
        client: Any = None,
        on_update: Callable[[ConnectorUpdate], None] | None = None,
        pending_limit: int = 10_000,
        coalesce_marks: bool = True,
        defer_model: bool = False,
    ) -> None:
        """`client` defaults to `build_client(account)`; `on_update` is called synchronously after each event
        (cheaper than `updates()` when one consumer needs every update in order). With `coalesce_marks`
        (default) marks delivered in the same event-loop pass are published as one update; without it every
        mark runs the model and is published on its own. With `defer_model`, marks move the model only when
        the view is read (while nobody reads `updates()`): a runner that proves a mark changes no decision
        (`core.quiet_band`) never pays for its figures."""
        if hub.exchange_id != account.exchange:
            raise ValueError(
                f"account {account.account_id!r} is on {account.exchange}, the hub on {hub.exchange_id}"
            )
        if hub.environment is not None and hub.environment != environment(account):
            # A live account judged on demo marks (or one host's on another's) is wrong without a sound.
            raise ValueError(
                f"account {account.account_id!r} ({account.exchange}, {account.mode}) is not in the "
                "environment of the market hub it was given"
            )
        self.account = account
        self.hub = hub
        self.quirks = quirks_for(account.exchange)
        self.client = client if client is not None else build_client(account, self.quirks)
        self._state = AccountState(account.account_id, self.quirks.family, settle_currency=self.quirks.settle)
        self._live = LiveView(self._state)
        self._view = self._live.view
        self._on_update = on_update
        self._pending_limit = pending_limit
        self._subscribers: list[_Subscriber] = []
        self._coalesce_marks = coalesce_marks
        self._defer_model = defer_model
        self._unviewed: set[str] = set()  # symbols whose folded marks the view has not taken yet
        self._pending: list[MarkPrice] = []
        self._flush_scheduled = False
        # The held symbols of one legs mapping (`catch_up`, at every decision): the mapping changes only when a
        # leg does, so they are worked out again only then.
        self._held_of: object = None
        self._held: frozenset[str] = frozenset()
        self.feed = AccountFeed(self.client, self.quirks, hub, self._fold, settings, account.symbols)
        self._group: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.failure: BaseException | None = None  # what killed the feed, if it died
        self.events = 0

    @property
    def state(self) -> AccountState:
        return self._state

    @property
    def view(self) -> AccountView:
        if self._unviewed:
            self._take_marks(set())
        return self._view

    def leeways(self) -> dict[LegKey, LegLeeway] | None:
        """How the legs' gaps move with the marks, at the view's marks (see `LiveView.leeways`)."""
        return self._live.leeways()

    def cross_balance(self) -> tuple[float, float, float] | None:
        return self._live.cross_balance()

    # ---- life cycle ----

    async def __aenter__(self) -> Connector:
        """Start the feed in a task group of the caller's task: the feed is awaited, never spawned. A feed
        that dies cancels the `async with` body, and leaving it raises the feed's error, so whoever runs the
        connector (the account's runner, under the supervisor) fails with it and is restarted."""
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._task = self._group.create_task(self._run_feed(), name=f"feed-{self.account.account_id}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        group, self._group = self._group, None
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        try:
            if group is not None:
                await group.__aexit__(exc_type, exc, tb)
        finally:
            await self.close()

    async def _run_feed(self) -> None:
        try:
            await self.feed.run()  # returns only when the account's keys are refused (told as DOWN)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.failure = exc
            log.error("account feed died", account=self.account.account_id, error=repr(exc))
            raise

    async def close(self) -> None:
        """Stop the feed (if it still runs) and close the account's client; readers of `updates()` end."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
                await asyncio.wait_for(task, STOP_DEADLINE_S)
        self._closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.close(), STOP_DEADLINE_S)
        for subscriber in self._subscribers:
            subscriber.ready.set()  # wake readers so they see the end

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def stopped_because(self) -> str | None:
        """Why the feed no longer runs (None while it does): refused keys, its own failure, or closed."""
        if self.running:
            return None
        if self.feed.stopped_because is not None:
            return f"stopped: {self.feed.stopped_because}"
        if self.failure is not None:
            return f"feed failed: {self.failure!r}"
        return "feed stopped" if self._closed or self._task is not None else "feed not started"

    # ---- updates ----

    def updates(self) -> AsyncIterator[ConnectorUpdate]:
        """Every update from the moment of this call on, in order, until the connector closes."""
        subscriber = _Subscriber(self._pending_limit)
        self._subscribers.append(subscriber)
        return self._drain(subscriber)

    async def _drain(self, subscriber: _Subscriber) -> AsyncIterator[ConnectorUpdate]:
        try:
            while True:
                while subscriber.pending:
                    yield subscriber.pending.popleft()
                if not self.running:
                    return
                subscriber.ready.clear()
                await subscriber.ready.wait()
        finally:
            self._subscribers.remove(subscriber)

    def _fold(self, event: Event) -> None:
        try:
            if type(event) is MarkPrice and self._coalesce_marks:
                self._fold_mark(event)  # the common case, one call deep: this runs at every mark
            else:
                self._fold_one(event)
        except Exception as exc:
            # The picture has lost an event: it can no longer be trusted, so the connector fails (and is
            # rebuilt from a fresh snapshot by whoever runs it) rather than go on publishing a wrong one.
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            log.error("account picture failed", account=self.account.account_id, error=repr(exc))
        if self._group is not None:
            with contextlib.suppress(RuntimeError):  # the group is already shutting down
                self._group.create_task(_raise(exc), name=f"feed-{self.account.account_id}-failed")

    def _fold_mark(self, mark: MarkPrice) -> None:
        """A burst of marks (one tick moves every symbol at once) is folded into the state at once, and the model
        runs once for the burst, as soon as the event loop is done delivering it. A mark that comes alone (a
        symbol's watch woke) runs it now: a reader deciding on it folds in the newest marks of its other symbols
        first (`catch_up`), so marks read together are still decided together."""
        self.events += 1
        self._state = marked(self._state, mark)
        if self.hub.batching:
            self._pending.append(mark)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush_marks)
        elif self._pending:  # marks of a burst not flushed yet: this one joins them
            self._pending.append(mark)
            self._flush_marks()
        else:
            self._publish_marks((mark,), {mark.symbol})

    def _fold_one(self, event: Event) -> None:
        self.events += 1
        self._state, changes = apply(self._state, event)
        if isinstance(event, MarkPrice):  # not coalescing: the model moves this mark alone
            self._view = self._live.marks(self._state, (event.symbol,))
            self._publish((event,), changes)
            return
        if isinstance(event, StreamHealth | StreamLeft):  # health changes no figure: keep the view
            self._publish((event,), changes)
            return
        folded, self._pending = (*self._pending, event), []
        # Marks the view had not taken are in the state: the refresh, which compares every leg's mark, takes them.
        self._unviewed = set()
        self._view = self._live.refresh(self._state)
        self._publish(folded, changes)

    def catch_up(self) -> None:
        """Fold in, and bring the view up to date with, the newest mark ccxt holds for every held symbol that
        the hub has not delivered yet: for a reader about to decide (no decision on a superseded mark)."""
        legs = self._state.legs
        if legs is not self._held_of:
            self._held_of, self._held = legs, frozenset(symbol for symbol, _side in legs)
        self.hub.refresh(self._held)
        if self._pending:
            self._flush_marks()

    def _flush_marks(self) -> None:
        self._flush_scheduled = False
        if not self._pending:
            return  # a later event already ran the model over these marks and published them
        folded, self._pending = tuple(self._pending), []
        self._publish_marks(folded, {mark.symbol for mark in folded})

    def _publish_marks(self, folded: tuple[MarkPrice, ...], symbols: set[str]) -> None:
        if self._defer_model and not self._subscribers:
            self._unviewed |= symbols  # the model runs when the view is read
        elif not self._take_marks(symbols):
            return
        self._publish(folded, ())

    def _take_marks(self, symbols: set[str]) -> bool:
        """Move the view by the marks of `symbols` and of those not taken yet; False (the connector failing)
        when the model cannot take them, the view left as it was."""
        try:
            self._view = self._live.marks(self._state, symbols | self._unviewed)
        except Exception as exc:
            if self.failure is None:  # told (and raised into the group) once, however often the view is read
                self._fail(exc)
            return False
        self._unviewed = set()
        return True

    def _current_view(self) -> AccountView:
        return self.view

    def _publish(self, folded: tuple[Event, ...], changes: tuple[Change, ...]) -> None:
        if self._on_update is None and not self._subscribers:
            return
        figures: AccountView | Callable[[], AccountView] = (
            self._current_view if self._unviewed and not self._subscribers else self.view
        )
        update = ConnectorUpdate(self._state, figures, changes, folded[-1], folded)
        for subscriber in self._subscribers:
            subscriber.put(update)
        # Last: a runner may decide here at once, and its catch-up publish newer updates before this returns.
        if self._on_update is not None:
            self._on_update(update)


async def _raise(exc: BaseException) -> None:
    """A task that fails with `exc`: how a failure seen in a callback reaches the connector's task group."""
    raise exc
