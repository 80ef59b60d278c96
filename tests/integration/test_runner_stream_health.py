"""The runner judges a stream's health as it is when it decides, not as it was before its own awaits.

Found by the market-path harness (binance seeds 2 and 3 of `bench/market_paths.py --first-seed 2`): a private
stream dropped and reconnected within 3 s, but the runner had read the account's health (DOWN) at the start of
a step, then waited seconds for the exchange's liquidation records (ccxt paces Binance's forceOrders at 2.5 s a
call), and judged that old DOWN at the clock after the wait: "positions stream is down for 5 s", a critical
stale-data alert for a reconnect that had recovered long before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path

from daemon.app.http import Metrics
from daemon.app.runner import AccountRunner, RunnerConfig
from daemon.core.events import Freshness, StreamHealth
from daemon.core.policy_rules import RuleSet, Thresholds
from daemon.core.state import AccountState, Change, ChangeKind
from daemon.core.types import Side
from daemon.core.view import AccountView, view
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.feeds import FeedSettings
from daemon.exchanges.records import LegMargin, LiquidationRecord, MarginChange
from daemon.store import SqliteJournal
from tests.integration.runner_support import T0, Clock, Feed, Quirks

ACCOUNT = "acct"
STALE_AFTER_S = 5.0
ETH = "ETH/USDT:USDT"


class Connector:
    """What the runner reads of its connector: the account's state and view, as the feed leaves them."""

    def __init__(self, state: AccountState) -> None:
        self.state = state
        self.feed = Feed()
        self.quirks = Quirks()

    @property
    def view(self) -> AccountView:
        return view(self.state)

    def catch_up(self) -> None:
        """No market data here: nothing newer to fold in before a decision."""

    def leeways(self) -> None:
        """No model kept here: no quiet band, every mark is judged."""

    def cross_balance(self) -> None:
        return None


class SlowRecords:
    """Liquidation records that take a while to read; meanwhile the stream reconnects and time passes."""

    def __init__(self, while_reading: list[Callable[[], None]]) -> None:
        self.while_reading = while_reading

    async def leg_margin(self, symbol: str, side: Side) -> LegMargin | None:
        return None

    async def margin_changes(self, since_ms: int) -> Sequence[MarginChange] | None:
        return None

    async def liquidations(
        self, since_ms: int, symbols: Collection[str] = ()
    ) -> Sequence[LiquidationRecord] | None:
        for action in self.while_reading:
            action()
        return []


def health(freshness: Freshness, at: float, detail: str = "") -> StreamHealth:
    return StreamHealth("positions", freshness, int(at * 1000), detail)


def stale_alerts(journal_path: Path) -> list[str]:
    with sqlite3.connect(journal_path) as db:
        rows = db.execute("SELECT kind FROM alerts").fetchall()
    return [kind for (kind,) in rows if kind == "stale_data"]


async def test_a_reconnect_that_recovered_while_the_runner_waited_on_records_raises_nothing(
    tmp_path: Path,
) -> None:
    clock = Clock()
    rules = RuleSet(Thresholds(stale_after_s=STALE_AFTER_S))
    config = RunnerConfig(
        account=ExchangeAccount(ACCOUNT, "binanceusdm"),
        rules=rules,
        limits=None,
        dry_run=True,
        feed=FeedSettings(),
        sinks_for=lambda _alert: ["hook"],
    )
    journal_path = tmp_path / "journal.sqlite"
    async with await SqliteJournal.open(journal_path) as journal:
        runner = AccountRunner(config, None, journal, Metrics(), lambda: None, clock)  # type: ignore[arg-type]
        dropped = health(
            Freshness.DOWN, T0, "NetworkError: Connection closed by remote server, closing code 1006"
        )
        state = AccountState(
            ACCOUNT, "binance", last_snapshot_ms=int(T0 * 1000), health={"positions": dropped}
        )
        connector = Connector(state)
        runner.connector = connector  # type: ignore[assignment]

        def reconnect() -> None:  # 3 s after the drop: fresh again
            connector.state = replace(
                connector.state, health={"positions": health(Freshness.FRESH, T0 + 3.0)}
            )

        def wait() -> None:  # the records read ends 5.5 s after the drop
            clock.now = T0 + 5.5

        runner.records = SlowRecords([reconnect, wait])
        gone = Change(ChangeKind.CLOSED, ETH, Side.LONG, "closed")
        runner.endings.hold([gone])  # a leg went: the runner asks the records about it

        await runner.step(None)  # type: ignore[arg-type]
        assert stale_alerts(journal_path) == []

        # A stream that really stays down past the threshold is still told.
        connector.state = replace(connector.state, health={"positions": dropped})
        clock.now = T0 + 6.0
        runner.records = SlowRecords([])
        await runner.step(None)  # type: ignore[arg-type]
        assert stale_alerts(journal_path) == ["stale_data"]
