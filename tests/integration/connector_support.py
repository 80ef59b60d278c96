"""Shared set-up for the connector tests: a simulator, accounts configured the way a user would, waiting for
the connector to reach a state (with a timeout, never a sleep), and comparing its picture with the simulator's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from daemon.core.backoff import Backoff
from daemon.core.events import Freshness
from daemon.core.types import MarginMode, Side
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.connector import Connector, ConnectorUpdate
from daemon.exchanges.feeds import FeedSettings
from daemon.exchanges.hub_settings import HubSettings
from daemon.exchanges.marketdata import MarketHub, hub_for
from daemon.sim.server import SimServer

EXCHANGES = ("binance", "bybit", "okx")
WAIT_S = 10.0


def unified(sim: SimServer, market_id: str) -> str:
    market = sim.engine.markets[market_id]
    return f"{market.base}/{market.quote}:{market.settle}"


def simulator(exchange: str, **options: Any) -> SimServer:
    return SimServer(exchange, **options)


def account_for(sim: SimServer, account_id: str = "acct-1", api_key: str | None = None) -> ExchangeAccount:
    """An account as a user would configure it: keys, and the simulator's URLs as a ccxt_config override."""
    sim_account = sim.engine.account(api_key) if api_key else sim.account
    config = dict(sim.ccxt_config(sim_account))
    return ExchangeAccount(
        account_id=account_id,
        exchange=sim.ccxt_id,
        mode="demo",
        api_key=config.pop("apiKey"),
        secret=config.pop("secret"),
        password=config.pop("password", None),
        # ccxt sleeps this long in every close() so TLS transports can finish; loopback has none.
        ccxt_config={**config, "timeout_on_exit": 0},
    )


def contracts_for(sim: SimServer, market_id: str, base_amount: float) -> float:
    return base_amount / sim.engine.markets[market_id].contract_size


def open_leg(
    sim: SimServer,
    market_id: str,
    side: Side,
    base_amount: float,
    mode: MarginMode,
    leverage: float = 10.0,
    api_key: str | None = None,
) -> None:
    sim.engine.set_position(
        api_key or sim.account.api_key,
        market_id,
        side,
        contracts_for(sim, market_id, base_amount),
        entry_price=sim.engine.marks[market_id],
        margin_mode=mode,
        leverage=leverage,
    )


FAST_FEED = FeedSettings(
    reconcile_every_s=30.0,
    confirm_after_s=0.3,
    resubscribe_grace_s=0.2,
    backoff=Backoff(initial=0.1, cap=1.0),
)
FAST_HUB = HubSettings(stale_after_s=2.0, check_every_s=0.1)


@asynccontextmanager
async def connected(
    sim: SimServer,
    feed: FeedSettings = FAST_FEED,
    hub_settings: HubSettings = FAST_HUB,
    account: ExchangeAccount | None = None,
) -> AsyncIterator[tuple[MarketHub, Connector]]:
    account = account or account_for(sim)
    async with hub_for(account, hub_settings) as hub, Connector(account, hub, feed) as connector:
        # Subscribed and reconciled: the snapshot after the streams' first subscription has been taken.
        await until(connector, lambda c: c.feed.snapshots >= 2)
        yield hub, connector


async def until(connector: Connector, done: Callable[[Connector], bool], within_s: float = WAIT_S) -> None:
    """Wait until `done(connector)` holds after some update (checked at once too), failing after `within_s`."""
    if done(connector):
        return
    updates = connector.updates()

    async def watch() -> None:
        async for _update in updates:
            if done(connector):
                return

    await asyncio.wait_for(watch(), within_s)


def next_update(
    connector: Connector, matches: Callable[[ConnectorUpdate], bool], within_s: float = WAIT_S
) -> Awaitable[ConnectorUpdate]:
    """The first update from now on that `matches` (call before causing it, await after)."""
    updates = connector.updates()

    async def watch() -> ConnectorUpdate:
        async for update in updates:
            if matches(update):
                return update
        raise AssertionError("connector closed")

    return asyncio.wait_for(watch(), within_s)


def health(connector: Connector, stream: str) -> Freshness | None:
    known = connector.state.health.get(stream)
    return known.freshness if known is not None else None


def picture_differences(sim: SimServer, connector: Connector, api_key: str | None = None) -> list[str]:
    """Where the connector's picture differs from the simulator's: legs, sizes, entries, wallet, marks."""
    engine = sim.engine
    account = engine.account(api_key or sim.account.api_key)
    state = connector.state
    found = []
    theirs = {(unified(sim, p.symbol), p.side): p for p in account.positions}
    if set(theirs) != set(state.legs):
        found.append(f"legs {sorted(map(str, theirs))} != {sorted(map(str, state.legs))}")
    for key, position in theirs.items():
        ours = state.legs.get(key)
        if ours is None:
            continue
        if abs(ours.contracts - position.contracts) > 1e-9:
            found.append(f"{key} contracts {ours.contracts} != {position.contracts}")
        if (
            ours.entry_price is None
            or abs(ours.entry_price - position.entry_price) > 1e-6 * position.entry_price
        ):
            found.append(f"{key} entry {ours.entry_price} != {position.entry_price}")
        mark = state.marks.get(key[0])
        if mark is None or abs(mark.price - engine.marks[position.symbol]) > 1e-9:
            found.append(f"{key[0]} mark {mark} != {engine.marks[position.symbol]}")
    # The cross wallet, without isolated margins, as the core means it. Bybit unified accounts are isolated
    # account-wide and report the isolated margins inside the wallet; there the model needs no wallet.
    wallet = account.wallet["USDT"]
    only_isolated = account.positions and all(p.margin_mode is MarginMode.ISOLATED for p in account.positions)
    if only_isolated and sim.exchange == "bybit":
        wallet = engine.summary(account.api_key).wallet_balance
    if state.wallet_balance is None or abs(state.wallet_balance - wallet) > 1e-6:
        found.append(f"wallet {state.wallet_balance} != {wallet}")
    return found


async def until_in_step(
    sim: SimServer, connector: Connector, within_s: float = WAIT_S, api_key: str | None = None
) -> None:
    try:
        await until(connector, lambda c: not picture_differences(sim, c, api_key), within_s)
    except TimeoutError:
        differences = picture_differences(sim, connector, api_key)
        raise AssertionError(f"connector never matched the simulator: {differences}") from None


async def eventually(condition: Callable[[], bool], within_s: float = WAIT_S) -> None:
    """For conditions outside the connector (the simulator's sockets): checked every 20 ms until a deadline."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - the simulator's request log has no event to wait on
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), within_s)
