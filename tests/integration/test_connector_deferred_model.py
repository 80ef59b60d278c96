"""A connector that defers its model (`defer_model`, as every account's runner uses it) runs it only when its view
is read, and what it then shows is exactly the full solve of the account as it stands; a reader of `updates()`
still gets every update's view at once; a model that cannot take the marks fails the connector, as before."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from daemon.core.types import MarginMode, Side
from daemon.core.view import view as full_solve
from daemon.exchanges.connector import Connector, ConnectorUpdate
from daemon.exchanges.marketdata import hub_for
from daemon.sim.server import SimServer
from tests.integration.connector_support import (
    FAST_FEED,
    FAST_HUB,
    WAIT_S,
    account_for,
    open_leg,
    simulator,
    unified,
)

pytestmark = pytest.mark.integration


class Hook:
    """The connector's `on_update`, as a runner would be: every update, and a way to wait for one."""

    def __init__(self) -> None:
        self.updates: list[ConnectorUpdate] = []
        self._changed = asyncio.Event()

    def __call__(self, update: ConnectorUpdate) -> None:
        self.updates.append(update)
        self._changed.set()

    async def until(self, done: Callable[[], bool]) -> None:
        async def wait() -> None:
            while not done():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), WAIT_S)


@asynccontextmanager
async def deferring(sim: SimServer, hook: Hook) -> AsyncIterator[Connector]:
    """A connector deferring its model on the simulator's account, told to `hook`, once its picture holds
    every leg and a mark for each."""
    account = account_for(sim)
    async with (
        hub_for(account, FAST_HUB) as hub,
        Connector(account, hub, FAST_FEED, on_update=hook, defer_model=True) as connector,
    ):
        await hook.until(
            lambda: (
                connector.feed.snapshots >= 2
                and len(connector.state.marks) == len({symbol for symbol, _side in connector.state.legs})
            )
        )
        yield connector


def _figures(connector: Connector) -> list[object]:
    return [(leg.key, leg.risk, leg.unknown_because) for leg in connector.view.legs]


async def test_a_deferred_view_is_the_full_solve_of_the_account_as_it_stands() -> None:
    async with simulator("binance", mark_interval_s=0.25) as sim:
        open_leg(sim, "BTCUSDT", Side.LONG, 0.1, MarginMode.CROSS)
        open_leg(sim, "ETHUSDT", Side.SHORT, 1.0, MarginMode.ISOLATED)
        hook = Hook()
        async with deferring(sim, hook) as connector:
            for step in range(1, 6):
                market = ("BTCUSDT", "ETHUSDT")[step % 2]
                sim.engine.set_mark(market, sim.engine.marks[market] * (1.0 + 0.01 * step))
                symbol = unified(sim, market)
                await hook.until(
                    lambda s=symbol, m=market: math.isclose(
                        connector.state.marks[s].price, sim.engine.marks[m]
                    )
                )
                marks_update = next(u for u in reversed(hook.updates) if u.event.symbol == symbol)  # type: ignore[union-attr]
                assert callable(marks_update.figures)  # the model had not run for it
                assert connector.view == full_solve(connector.state)
                assert marks_update.view == connector.view


async def test_a_reader_of_updates_gets_each_view_at_once_from_a_deferring_connector() -> None:
    async with simulator("binance", mark_interval_s=0.25) as sim:
        open_leg(sim, "BTCUSDT", Side.LONG, 0.1, MarginMode.CROSS)
        async with deferring(sim, Hook()) as connector:
            updates = connector.updates()
            sim.engine.set_mark("BTCUSDT", sim.engine.marks["BTCUSDT"] * 1.02)
            symbol = unified(sim, "BTCUSDT")

            async def moved() -> ConnectorUpdate:
                async for update in updates:
                    if getattr(update.event, "symbol", None) == symbol:
                        return update
                raise AssertionError("connector closed")

            update = await asyncio.wait_for(moved(), WAIT_S)
            assert not callable(update.figures)
            assert update.view == full_solve(update.state)


async def test_a_model_that_cannot_take_deferred_marks_fails_the_connector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with simulator("binance", mark_interval_s=0.25) as sim:
        open_leg(sim, "BTCUSDT", Side.LONG, 0.1, MarginMode.CROSS)
        hook = Hook()
        broken = RuntimeError("the model cannot take this mark")
        with pytest.raises(BaseException) as raised:
            async with deferring(sim, hook) as connector:
                before = _figures(connector)

                def fails(*_args: object) -> None:
                    raise broken

                monkeypatch.setattr(connector._live, "marks", fails)
                sim.engine.set_mark("BTCUSDT", sim.engine.marks["BTCUSDT"] * 1.02)
                symbol = unified(sim, "BTCUSDT")
                await hook.until(
                    lambda: math.isclose(connector.state.marks[symbol].price, sim.engine.marks["BTCUSDT"])
                )
                assert _figures(connector) == before  # the last view it could make, and never a guess
                assert connector.failure is broken
                await asyncio.wait_for(asyncio.Event().wait(), WAIT_S)  # the failed connector cancels this
        assert broken in _leaves(raised.value)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]
