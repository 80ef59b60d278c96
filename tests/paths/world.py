"""The world a path is played in: one simulator (its engine is the oracle), the alert receiver, and the real
daemon as a child process that may be killed and started again; plus the record of what happened.

`Recorder` watches the simulator's engine synchronously (its events are delivered in order, after the state
changed) and samples the oracle's distance to liquidation of every leg, so the invariants can ask "what did
the oracle say just before this top-up landed?" afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from daemon.core.types import MarginMode
from daemon.notify.receiver import Receiver
from daemon.sim.engine import Engine, Event, PositionChanged
from daemon.sim.server import SimServer
from tests.e2e.support import DaemonProcess, account_for, free_port, webhook_sink, write_config
from tests.paths.generator import STALE_AFTER_S

ACCOUNT = "paths"
SAMPLE_S = 0.1


@dataclass(frozen=True, slots=True)
class Settings:
    """The daemon's rules and top-up limits for every path (short intervals so a path stays short)."""

    stale_after_s: float = STALE_AFTER_S
    min_duration_s: float = 0.5
    trigger_distance: float = 0.015
    target_distance: float = 0.08
    max_per_action: float = 400.0
    max_per_position_per_day: float = 900.0
    max_per_account_per_day: float = 1_500.0
    min_free_balance: float = 50.0
    cooldown_s: float = 5.0
    max_attempts: int = 2

    def rules(self) -> dict[str, Any]:
        return {
            "warning_distance": 0.035,
            "critical_distance": 0.02,
            "hysteresis": 0.005,
            "min_duration_s": self.min_duration_s,
            "repeat_interval_s": 300,
            "stale_after_s": self.stale_after_s,
        }

    def topup(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "trigger_distance": self.trigger_distance,
            "target_distance": self.target_distance,
            "max_per_action": self.max_per_action,
            "max_per_position_per_day": self.max_per_position_per_day,
            "max_per_account_per_day": self.max_per_account_per_day,
            "min_free_balance": self.min_free_balance,
            "cooldown_s": self.cooldown_s,
            "max_attempts": self.max_attempts,
        }


@dataclass(frozen=True, slots=True)
class MarginMove:
    """Margin the exchange moved into an isolated leg (only the daemon ever asks for that in a path)."""

    ts: float
    symbol: str
    side: str
    amount: float


# Steps after which a stream is down until it reconnects.
CUTTING_STEPS = frozenset({"drop", "malformed", "sim_restart", "listen_key_expired", "http_burst", "slow"})


@dataclass
class Recorder:
    """What happened to the simulated account, in wall-clock time (the alerts' `ts` is wall-clock too)."""

    engine: Engine
    api_key: str
    margin_moves: list[MarginMove] = field(default_factory=list)
    distances: dict[tuple[str, str], list[tuple[float, float | None]]] = field(default_factory=dict)
    silences: list[tuple[float, float]] = field(default_factory=list)  # stalls beyond stale_after_s
    # Silences that may have begun before a stall, at a drop, garbled frame or restart just before it (the
    # daemon counts a silence from its last data): they explain an alert, but need not raise one.
    possible_silences: list[tuple[float, float]] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # wall-clock
    kill_times: list[float] = field(default_factory=list)  # monotonic, as the receiver stamps arrivals
    events: int = 0
    timeline: list[tuple[float, int, str]] = field(default_factory=list)  # (wall clock, step index, step)
    _margins: dict[tuple[str, str], float] = field(default_factory=dict)

    def on_event(self, event: Event) -> None:
        self.events += 1
        if not isinstance(event, PositionChanged) or event.api_key != self.api_key:
            return
        key = (event.symbol, event.side.value)
        pos = event.position
        margin = pos.isolated_margin if pos is not None and pos.margin_mode is MarginMode.ISOLATED else 0.0
        if event.reason == "margin":
            self.margin_moves.append(
                MarginMove(time.time(), event.symbol, event.side.value, margin - self._margins.get(key, 0.0))
            )
        self._margins[key] = margin

    def first_cut(self, before: float, within_s: float) -> float | None:
        """When the earliest step that cuts a stream (a drop, a garbled frame, a restart...) started within
        `within_s` before `before`: a silence that ends later may have begun there."""
        cuts = [
            ts
            for ts, _index, text in self.timeline
            if before - within_s <= ts < before and text.split("(", 1)[0] in CUTTING_STEPS
        ]
        return min(cuts, default=None)

    def steps_between(self, since: float, until: float) -> list[str]:
        """The steps started in [since, until], as "index op(args)"."""
        return [f"{i} {text}" for ts, i, text in self.timeline if since <= ts <= until]

    def sample(self) -> None:
        """The oracle's distance to liquidation of every open leg, now."""
        account = self.engine.account(self.api_key)
        if not account.positions:
            return
        now = time.time()
        for pos, leg in zip(account.positions, self.engine.risk(self.api_key).positions, strict=True):
            self.distances.setdefault((pos.symbol, pos.side.value), []).append(
                (now, leg.distance_to_liquidation)
            )

    def min_distance(self, symbol: str, side: str, since: float, until: float) -> float | None:
        """The smallest known distance of the leg in [since, until] (None: never known there)."""
        values = [
            d for ts, d in self.distances.get((symbol, side), []) if since <= ts <= until and d is not None
        ]
        return min(values, default=None)

    async def sample_forever(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_S)


class World:
    """The simulator, the receiver and the daemon for one path; `async with World(...) as world:`."""

    def __init__(self, dialect: str, state_dir: Path, settings: Settings) -> None:
        self.dialect = dialect
        self.state_dir = state_dir
        self.settings = settings
        self.sim = SimServer(dialect)
        self.receiver = Receiver()
        self.recorder = Recorder(self.sim.engine, self.sim.account.api_key)
        self.http_port = free_port()
        self.daemons: list[DaemonProcess] = []  # every incarnation, the live one last
        self.config: Path | None = None
        self._stack = contextlib.AsyncExitStack()
        self._session: aiohttp.ClientSession | None = None

    @property
    def engine(self) -> Engine:
        return self.sim.engine

    @property
    def api_key(self) -> str:
        return self.sim.account.api_key

    @property
    def daemon(self) -> DaemonProcess:
        return self.daemons[-1]

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.sqlite"

    async def __aenter__(self) -> World:
        await self._stack.__aenter__()
        await self._stack.enter_async_context(self.sim)
        await self._stack.enter_async_context(self.receiver)
        self._session = await self._stack.enter_async_context(aiohttp.ClientSession())
        self._stack.push_async_callback(self._close_daemons)
        self.engine.subscribe(self.recorder.on_event)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    async def start_daemon(self) -> None:
        if self.config is None:
            document = {
                "daemon": {
                    "storage_path": str(self.journal_path),
                    "http_bind": f"127.0.0.1:{self.http_port}",
                    "log_format": "json",
                    "log_level": "info",
                    "shutdown_timeout_s": 5,
                },
                "rules": self.settings.rules(),
                "topup": self.settings.topup(),
                "accounts": [account_for(ACCOUNT, self.sim)],
                "sinks": [webhook_sink(self.receiver.url)],
            }
            self.config = write_config(self.state_dir / "marginguard.toml", document)
        daemon = DaemonProcess(self.config, self.http_port)
        self.daemons.append(daemon)
        await daemon.start()
        await daemon.wait_ready(60)

    async def kill_daemon(self, down_s: float) -> None:
        """SIGKILL, as an OOM killer or a power cut would; then the same configuration starts again."""
        self.recorder.kills.append(time.time())
        self.recorder.kill_times.append(time.monotonic())
        self.daemon.signal(signal.SIGKILL)
        await self.daemon.wait(10)
        await asyncio.sleep(down_s)
        await self.start_daemon()

    async def restart_sim(self) -> None:
        """The exchange's gateway goes away and comes back on the same port with the same books: every socket
        is closed, requests in between are refused."""
        self.sim.requested_port = self.sim.port
        await self.sim.stop()
        await asyncio.sleep(0.3)
        await self.sim.start()

    async def status(self) -> dict[str, Any] | None:
        """The daemon's /status, or None when it does not answer."""
        assert self._session is not None
        try:
            async with self._session.get(
                f"http://127.0.0.1:{self.http_port}/status", timeout=aiohttp.ClientTimeout(total=3)
            ) as response:
                return dict(await response.json()) if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def _close_daemons(self) -> None:
        for daemon in self.daemons:
            await daemon.close()

    def output(self) -> str:
        """Every incarnation's output, tail first-to-last, for a violation's report."""
        return "\n".join(f"--- daemon #{i} ---\n{d.tail(25)}" for i, d in enumerate(self.daemons))
