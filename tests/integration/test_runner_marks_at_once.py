"""Marks decided at once, where the connector delivers them, decide exactly as the runner's full step does.

A runner whose task waits for a wake decides a marks-only update in the connector's own callback
(`AccountRunner._decide_marks`) and leaves everything else (alerts to journal, silences to read, deadlines,
health changes) to its task's full step. The oracle is a second runner given the same updates with every one
going through the full step: over generated market paths (marks into and out of the warning and critical zones,
time passing past minimum durations and repeats, a stream dropping and coming back), both journal the same
alerts in the same order and end with the same memory. Most marks must take the quick way, or it saves nothing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from daemon.app.account_silences import AccountSilences
from daemon.app.http import Metrics
from daemon.app.runner import TICK_S, AccountRunner, RunnerConfig
from daemon.core.events import (
    BalanceUpdate,
    Event,
    Freshness,
    MarketRules,
    MarkPrice,
    PositionFacts,
    PositionSnapshot,
    StreamHealth,
)
from daemon.core.live_view import LiveView
from daemon.core.margin.leeway import LegLeeway
from daemon.core.policy_rules import RuleSet, Thresholds
from daemon.core.state import AccountState, LegKey, apply
from daemon.core.tiers import derive_maintenance_amounts
from daemon.core.types import ContractType, MarginMode, Side, Tier
from daemon.core.view import AccountView
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.connector import ConnectorUpdate
from daemon.exchanges.feeds import FeedSettings
from daemon.store import SqliteJournal
from tests.integration.runner_support import T0, Clock, Feed, Quirks

ACCOUNT = "acct"
SYMBOLS = ("AAA/USDT:USDT", "BBB/USDT:USDT", "CCC/USDT:USDT")
TIERS = derive_maintenance_amounts([Tier(0.0, 0.004), Tier(50_000.0, 0.005), Tier(250_000.0, 0.01)])
RULES = RuleSet(Thresholds(min_duration_s=3.0, repeat_interval_s=20.0, stale_after_s=10.0))


class Hub:
    """What the runner reads of its market hub here: the mark streams' ages, for its gauges."""

    client = None

    def stream_age(self, symbol: str, now: float) -> float | None:
        return 0.0


class Connector:
    """The account's picture as the real connector keeps it (state folded by `apply`, the live view moved by
    marks alone or rebuilt), telling its runner of each update the way the real one does."""

    def __init__(self, runner: AccountRunner, events: list[Event]) -> None:
        self.runner = runner
        self.feed = Feed()
        self.quirks = Quirks()
        state = AccountState(ACCOUNT, "binance")
        for event in events:
            state, _ = apply(state, event)
        self.state = state
        self._live = LiveView(state)

    @property
    def view(self) -> AccountView:
        return self._live.view

    def catch_up(self) -> None:
        """No market data here: nothing newer to fold in before a decision."""

    def leeways(self) -> dict[LegKey, LegLeeway] | None:
        return self._live.leeways()

    def cross_balance(self) -> tuple[float, float, float] | None:
        return self._live.cross_balance()

    def fold(self, event: Event) -> None:
        self.state, changes = apply(self.state, event)
        if isinstance(event, MarkPrice):
            self._live.marks(self.state, (event.symbol,))
        else:
            self._live.refresh(self.state)
        self.runner._on_update(ConnectorUpdate(self.state, self.view, changes, event, (event,)))


def opening(clock: Clock) -> list[Event]:
    at = int(clock.now * 1000)
    legs = [
        PositionFacts(
            symbol,
            Side.LONG,
            1.0,
            entry_price=100.0,
            margin_mode=MarginMode.CROSS if index % 2 else MarginMode.ISOLATED,
            leverage=10.0,
            isolated_margin=20.0,
        )
        for index, symbol in enumerate(SYMBOLS)
    ]
    events: list[Event] = [MarketRules(symbol, 1.0, ContractType.LINEAR, TIERS) for symbol in SYMBOLS]
    events += [PositionSnapshot(tuple(legs), at), BalanceUpdate(30.0, at)]
    events += [MarkPrice(symbol, 100.0, at) for symbol in SYMBOLS]
    events += [StreamHealth(f"mark:{symbol}", Freshness.FRESH, at) for symbol in SYMBOLS]
    events += [StreamHealth(name, Freshness.FRESH, at) for name in ("positions", "balance")]
    return events


@dataclass(frozen=True)
class Step:
    seconds: float  # how long after the previous step
    symbol: int  # whose mark moves, or -1: the positions stream drops (or comes back)
    price: float


steps = st.lists(
    st.builds(
        Step,
        st.sampled_from([0.0, 0.0, 0.05, 0.5, 1.5, 4.0, 12.0]),
        st.sampled_from([0, 1, 2, 0, 1, 2, -1]),
        st.floats(81.0, 103.0).map(lambda price: round(price, 2)),
    ),
    min_size=1,
    max_size=40,
)


async def play(
    path: list[Step],
    journal_path: Path,
    at_once: bool,
    silences_every_s: float = TICK_S,
    broken: bool = False,
    refused_saves: list[float] | None = None,
) -> tuple[list[tuple[object, ...]], object, int, int]:
    """The path through one runner: its journaled alerts, its memory at the end, its full steps and its marks
    decided within a quiet band.
    `silences_every_s`: how often it reads the silences (a read is the full step's work). `broken`: the quick
    way fails (a fault only it meets). `refused_saves`: the journal refuses to save the memory (a full disk),
    and each attempt's time is noted there."""
    clock = Clock()
    config = RunnerConfig(
        account=ExchangeAccount(ACCOUNT, "binanceusdm"),
        rules=RULES,
        limits=None,
        dry_run=True,
        feed=FeedSettings(),
        sinks_for=lambda _alert: ["hook"],
    )
    async with await SqliteJournal.open(journal_path) as journal:
        runner = AccountRunner(config, Hub(), journal, Metrics(), lambda: None, clock)  # type: ignore[arg-type]
        runner.silences = AccountSilences(journal, ACCOUNT, silences_every_s)
        if broken:

            def fails(now: float) -> None:
                raise RuntimeError("a fault only the quick way meets")

            runner.silences.known = fails  # type: ignore[method-assign,assignment]
        if refused_saves is not None:

            async def refuse(account: str, text: str, now: float) -> bool:
                refused_saves.append(now)
                return False

            journal.save_memory = refuse  # type: ignore[method-assign]
        connector = Connector(runner, opening(clock))
        runner.connector = connector  # type: ignore[assignment]
        await runner.step(None)  # type: ignore[arg-type]
        full_steps, down = 0, False
        for step in path:
            clock.now += step.seconds
            at = int(clock.now * 1000)
            runner._waiting = (
                at_once  # the task waits for a wake (the oracle's never does: every update wakes it)
            )
            if step.symbol < 0:
                down = not down
                connector.fold(StreamHealth("positions", Freshness.DOWN if down else Freshness.FRESH, at))
            else:
                connector.fold(MarkPrice(SYMBOLS[step.symbol], step.price, at))
            runner._waiting = False
            if runner._woken.is_set():
                runner._woken.clear()
                full_steps += 1
                await runner.step(None)  # type: ignore[arg-type]
        # Marks decided within a quiet band leave their figures to the next decision that runs: one more
        # (a full step, as a deadline or any other event brings) carries them.
        runner._full = True
        await runner.step(None)  # type: ignore[arg-type]
        runner._schedule(None)
    with sqlite3.connect(journal_path) as db:
        rows = db.execute(
            "SELECT key, sequence, ts, kind, severity, resolved, payload FROM alerts"
        ).fetchall()
    # Each journal names itself in its messages (`origin`): the rest must match.
    alerts = [(*row[:6], {k: v for k, v in json.loads(row[6]).items() if k != "origin"}) for row in rows]
    return alerts, runner._memory, full_steps, runner.quiet_decisions


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
@example([Step(0.0, 0, 85.0), Step(4.0, 2, 100.0)])  # a deadline passed on a leg the mark does not move
def test_marks_decided_at_once_journal_and_remember_what_the_full_step_does(path: list[Step]) -> None:
    # Silences read once a minute: the path's gaps (up to 12 s) would otherwise send most marks after one to the
    # full step, and what passes meanwhile (deadlines) would never meet the quick way.
    with tempfile.TemporaryDirectory() as work:
        quick = asyncio.run(play(path, Path(work) / "quick.sqlite", at_once=True, silences_every_s=60.0))
        full = asyncio.run(play(path, Path(work) / "full.sqlite", at_once=False, silences_every_s=60.0))
    assert quick[0] == full[0]
    assert quick[1] == full[1]
    assert full[2] == len(path)  # the oracle stepped at every update


def test_most_marks_on_a_calm_path_are_decided_at_once() -> None:
    path = [Step(0.05, index % 3, 100.0 + (index % 5) * 0.1) for index in range(60)]
    with tempfile.TemporaryDirectory() as work:
        alerts, _memory, full_steps, quiet = asyncio.run(
            play(path, Path(work) / "quick.sqlite", at_once=True)
        )
    assert alerts == []
    # The silences are read once a tick (1 s): about one mark in twenty waits for the task's step.
    assert full_steps <= len(path) // 10
    # Far from every threshold, most marks need neither the model nor the policy.
    assert quiet >= len(path) // 2


def test_a_quick_way_that_fails_leaves_every_decision_to_the_full_step_and_says_so_once() -> None:
    # Into the warning zone past the minimum duration, and back out: a message each way.
    path = [Step(0.5, 0, 85.0 - index * 0.1) for index in range(10)] + [Step(0.5, 0, 100.0)] * 4
    with tempfile.TemporaryDirectory() as work, capture_logs() as logs:
        broken = asyncio.run(play(path, Path(work) / "broken.sqlite", at_once=True, broken=True))
        full = asyncio.run(play(path, Path(work) / "full.sqlite", at_once=False))
    assert broken[0] == full[0] and broken[0]  # the same alerts, and there were some
    assert broken[1] == full[1]
    assert broken[2] == len(path)  # the connector was never failed: every update reached a step
    failures = [entry for entry in logs if entry["event"].startswith("deciding on marks at once failed")]
    assert len(failures) == 1


def test_while_the_memory_cannot_be_saved_every_mark_takes_a_step_that_tries_again() -> None:
    # Into the warning zone and out again before its minimum duration: no alert, but a new episode, which the
    # memory must keep across a restart; then calm marks, far inside any quiet band. With the journal refusing
    # every save (a full disk), none of those marks may be decided quietly: each takes the full step, which
    # tries the save again.
    excursion = [Step(0.5, 0, 85.0), Step(0.5, 0, 85.0), Step(0.5, 0, 100.0)]
    calm = [Step(0.05, index % 3, 100.0 + (index % 5) * 0.1) for index in range(30)]
    with tempfile.TemporaryDirectory() as work:
        refused: list[float] = []
        alerts, _memory, _steps, quiet_refused = asyncio.run(
            play(excursion + calm, Path(work) / "refused.sqlite", at_once=True, refused_saves=refused)
        )
        _alerts, _memory, _steps, quiet_saved = asyncio.run(
            play(excursion + calm, Path(work) / "saved.sqlite", at_once=True)
        )
    calm_from = T0 + sum(step.seconds for step in excursion)
    assert alerts == []
    assert len([at for at in refused if at > calm_from]) >= len(calm)  # every calm mark tried the save again
    assert quiet_refused == 0
    assert quiet_saved >= len(calm) // 2  # the same marks, saved: mostly quiet
