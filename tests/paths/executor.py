"""Plays a `MarketPath` against the simulator and the real daemon, checking the invariants at every quiet step.

Each step acts on the simulator's engine and fault switchboard directly (the control API's own calls), so it
is played at once and in order. A step the exchange refuses (not enough balance, leverage too high, no such
position) is skipped and counted: refusals are part of a real market too. Figures depending on the state
(a liquidation price, a size) are resolved here, from the oracle, when the step is played.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.core.types import MarginMode, Side
from daemon.sim.engine import Engine, EngineError, SimPosition
from daemon.sim.faults import KINDS as FAULT_KINDS
from daemon.sim.faults import Faults
from tests.paths.generator import ADD_MARGIN_PATHS, MarketPath, Step, count_faults, count_kills
from tests.paths.invariants import RATE_LIMIT_RETRY_AFTER_S, Checker
from tests.paths.report import PathResult, Violation
from tests.paths.world import Settings, World

RESTART_DOWN_S = 1.0
SETTLE_S = 0.3  # a pause after most steps, so the daemon sees each state at least once


# Steps that may cut a stream just before a stall, so that its silence began with them (the malformed frame's
# reconnect, say, is still under way when the stall starts).


@dataclass
class Executor:
    path: MarketPath
    world: World
    skipped: list[str] = field(default_factory=list)

    @property
    def engine(self) -> Engine:
        return self.world.engine

    @property
    def key(self) -> str:
        return self.world.api_key

    async def setup(self) -> None:
        engine, key = self.engine, self.key
        engine.set_hedge_mode(key, self.path.hedge_mode)
        engine.set_wallet(key, "USDT", self.path.wallet)
        account = engine.account(key)
        for symbol, mode in self.path.modes:
            account.margin_mode[symbol] = MarginMode(mode)

    async def play(self, checker: Checker) -> None:
        for index, step in enumerate(self.path.steps):
            checker.step_index = index
            self.world.recorder.timeline.append((time.time(), index, step.describe()))
            if step.op == "quiet":
                await checker.quiet(float(step.arg("seconds")))
                continue
            try:
                await self.step(step)
            except EngineError as exc:
                self.skipped.append(f"{step.op}: {exc.kind}")
            self.world.recorder.sample()

    # ---- one step ----

    async def step(self, step: Step) -> None:
        op = step.op
        handler = getattr(self, f"_do_{op}")
        await handler(step)

    def _tick(self, symbol: str, price: float) -> float:
        tick = self.engine.markets[symbol].price_tick
        return max(tick, round(round(price / tick) * tick, 10))

    def _set_mark(self, symbol: str, price: float) -> None:
        self.engine.set_mark(symbol, self._tick(symbol, price))
        self.world.recorder.sample()  # every mark the daemon may decide on is on record, however brief

    def _leg(self, step: Step) -> SimPosition:
        """The step's leg; failing that the symbol's other leg, or any open leg (a path's sides are drawn
        blind, and a step on a leg that is not there would only be refused)."""
        symbol, side = step.arg("symbol"), Side(step.arg("side"))
        pos = self.engine.find_position(self.key, symbol, side) or self.engine.find_position(self.key, symbol)
        legs = self.engine.account(self.key).positions
        if pos is None and legs:
            pos = legs[0]
        if pos is None:
            raise EngineError("no_position", "no open leg")
        return pos

    def _contracts(self, symbol: str, contracts: float) -> float:
        market = self.engine.markets[symbol]
        step = market.qty_step
        rounded = math.floor(contracts / step + 1e-9) * step
        if rounded < market.min_qty:
            raise EngineError("invalid", "below the minimum size")
        return round(rounded, 10)

    async def _do_walk(self, step: Step) -> None:
        symbol = step.arg("symbol")
        for move in step.arg("moves"):
            self._set_mark(symbol, self.engine.marks[symbol] * (1.0 + move))
            await asyncio.sleep(step.arg("pause_s"))

    async def _do_jump(self, step: Step) -> None:
        symbol = step.arg("symbol")
        self._set_mark(symbol, self.engine.marks[symbol] * (1.0 + step.arg("move")))
        await asyncio.sleep(SETTLE_S)

    def _liquidation(self, step: Step) -> tuple[str, Side, float]:
        pos = self._leg(step)
        price = self.engine.liquidation_price(self.key, pos.symbol, pos.side)
        if price is None or not price > 0:
            raise EngineError("no_liquidation_price", "the oracle has no liquidation price for this leg")
        return pos.symbol, pos.side, price

    async def _do_approach(self, step: Step) -> None:
        """Walk the mark, in four frames, to `distance` from the oracle's liquidation price."""
        symbol, side, liquidation = self._liquidation(step)
        distance = step.arg("distance")
        target = liquidation / (1.0 - distance) if side is Side.LONG else liquidation / (1.0 + distance)
        start = self.engine.marks[symbol]
        for i in range(1, 5):
            self._set_mark(symbol, start + (target - start) * i / 4)
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)

    async def _do_gap(self, step: Step) -> None:
        """One frame straight past the oracle's liquidation price: no time for anybody to react."""
        symbol, side, liquidation = self._liquidation(step)
        overshoot = step.arg("overshoot")
        self._set_mark(symbol, liquidation * (1.0 - overshoot if side is Side.LONG else 1.0 + overshoot))
        await asyncio.sleep(0.5)

    async def _do_funding(self, step: Step) -> None:
        self.engine.pay_funding(step.arg("symbol"), step.arg("rate"))
        await asyncio.sleep(SETTLE_S)

    async def _do_open(self, step: Step) -> None:
        symbol, side = step.arg("symbol"), Side(step.arg("side"))
        market = self.engine.markets[symbol]
        contracts = self._contracts(
            symbol, step.arg("notional") / (self.engine.marks[symbol] * market.contract_size)
        )
        self.engine.set_leverage(self.key, symbol, step.arg("leverage"))
        self.engine.open_position(self.key, symbol, side, contracts)
        await asyncio.sleep(SETTLE_S)

    async def _do_add(self, step: Step) -> None:
        pos = self._leg(step)
        contracts = self._contracts(pos.symbol, pos.contracts * step.arg("fraction"))
        self.engine.open_position(self.key, pos.symbol, pos.side, contracts)
        await asyncio.sleep(SETTLE_S)

    async def _do_reduce(self, step: Step) -> None:
        pos = self._leg(step)
        contracts = self._contracts(pos.symbol, pos.contracts * step.arg("fraction"))
        self.engine.reduce_position(self.key, pos.symbol, pos.side, contracts)
        await asyncio.sleep(SETTLE_S)

    async def _do_close(self, step: Step) -> None:
        pos = self._leg(step)
        self.engine.close_position(self.key, pos.symbol, pos.side)
        await asyncio.sleep(SETTLE_S)

    async def _do_flip(self, step: Step) -> None:
        pos = self._leg(step)
        contracts = self._contracts(pos.symbol, pos.contracts * step.arg("fraction"))
        other = Side.SHORT if pos.side is Side.LONG else Side.LONG
        self.engine.open_position(self.key, pos.symbol, other, contracts)
        await asyncio.sleep(SETTLE_S)

    async def _do_transfer(self, step: Step) -> None:
        self.engine.transfer(self.key, "USDT", step.arg("amount"))
        await asyncio.sleep(SETTLE_S)

    async def _do_leverage(self, step: Step) -> None:
        self.engine.set_leverage(self.key, step.arg("symbol"), step.arg("leverage"))
        await asyncio.sleep(SETTLE_S)

    # ---- faults ----

    @property
    def faults(self) -> Faults:
        return self.world.sim.faults

    async def _do_drop(self, step: Step) -> None:
        self.faults.set("drop")
        await asyncio.sleep(1.0)

    async def _do_stall(self, step: Step) -> None:
        seconds = float(step.arg("seconds"))
        start = time.time()
        # Marks are watched for held symbols only, and private streams push only on change: without a leg, a
        # stall silences nothing the daemon judges.
        watched = bool(self.engine.account(self.key).positions)
        stale_after = self.world.settings.stale_after_s
        cut = self.world.recorder.first_cut(start, stale_after)
        self.faults.set("stall", duration_s=seconds)
        await asyncio.sleep(seconds)
        end = time.time()
        if watched and seconds > stale_after:
            self.world.recorder.silences.append((start, end))
        if watched and cut is not None and end - cut > stale_after:
            self.world.recorder.possible_silences.append((cut, end))
        await asyncio.sleep(1.0)

    async def _do_malformed(self, step: Step) -> None:
        self.faults.set("malformed", count=int(step.arg("count")))
        await asyncio.sleep(1.5)

    async def _do_http_burst(self, step: Step) -> None:
        status = int(step.arg("status"))
        # A 429 asks for a short wait, as an exchange does when a burst of weight rolls out of its window within
        # seconds (the simulator's Binance says 60 s: one burst would blind the private streams for a minute).
        extra = {"retry_after_s": RATE_LIMIT_RETRY_AFTER_S} if status == 429 else {}
        self.faults.set("http_status", count=int(step.arg("count")), status=status, **extra)
        await asyncio.sleep(1.0)

    async def _do_slow(self, step: Step) -> None:
        self.faults.set("delay", duration_s=float(step.arg("seconds")), ms=int(step.arg("ms")))
        await asyncio.sleep(float(step.arg("seconds")))

    async def _do_late_answer(self, step: Step) -> None:
        """The next request (an add-margin, or anything) is served only after the client has given up on it."""
        path = ADD_MARGIN_PATHS[self.path.dialect] if step.arg("target") == "add_margin" else None
        params: dict[str, Any] = {"path": path} if path else {}
        self.faults.set("http_timeout", count=1, hold_s=float(step.arg("hold_s")), **params)
        await asyncio.sleep(SETTLE_S)

    async def _do_listen_key_expired(self, step: Step) -> None:
        self.faults.set("listen_key_expired", duration_s=float(step.arg("seconds")))
        await asyncio.sleep(float(step.arg("seconds")) + 0.5)

    async def _do_sim_restart(self, step: Step) -> None:
        """The exchange restarts: the simulator's own fault where it has one (sockets closed, requests refused
        for a second, what a restart forgets forgotten), else its server stopped and started on the same port."""
        if "restart" in FAULT_KINDS:
            self.faults.set("restart", down_s=RESTART_DOWN_S)
            await asyncio.sleep(RESTART_DOWN_S + 1.0)
        else:
            await self.world.restart_sim()
            await asyncio.sleep(1.0)

    async def _do_kill(self, step: Step) -> None:
        await self.world.kill_daemon(float(step.arg("down_s")))


async def run_path(
    path: MarketPath,
    state_dir: Path,
    settings: Settings | None = None,
    inspect: Callable[[World], None] | None = None,
) -> PathResult:
    """Play one path from a fresh simulator, receiver and journal; the violations found on the way.
    `inspect` sees the world at the end, before it is torn down (to dig into a finding)."""
    chosen = settings or Settings()
    started = time.monotonic()
    violations: list[Violation] = []
    async with World(path.dialect, state_dir, chosen) as world:
        executor = Executor(path, world)
        await executor.setup()
        await world.start_daemon()
        checker = Checker(path, world, violations)
        async with asyncio.TaskGroup() as group:
            sampler = group.create_task(world.recorder.sample_forever(), name="paths-sampler")
            try:
                await executor.play(checker)
                await checker.final()
            finally:
                sampler.cancel()
        if inspect is not None:
            inspect(world)
        output = world.output() if violations else ""
        return PathResult(
            seed=path.seed,
            dialect=path.dialect,
            steps=len(path.steps),
            events=world.recorder.events,
            faults=count_faults(path),
            kills=count_kills(path),
            skipped=len(executor.skipped),
            topups=len(world.recorder.margin_moves),
            liquidations=len(world.engine.liquidations),
            alerts=len(world.receiver.received("webhook")),
            seconds=time.monotonic() - started,
            violations=violations,
            daemon_output=output,
            refusals=dict(Counter(executor.skipped)),
        )
