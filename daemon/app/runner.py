"""One account's loop: connector updates -> core policy -> journaled alerts and top-ups.

After every update (and on a one-second tick, so minimum durations and repeats are judged while nothing moves)
the runner asks the pure policy what to say and the pure top-up policy what to do. Every alert is journaled with
its deliveries, together with the memory that numbered it, before the outbox sends it (held in memory and sent
from there when the journal cannot be written). Top-ups go through the account's `TopUpExecutor`: journaled
before the exchange is called, settled from the exchange's own records when their answer is lost — and such an
unknown outcome is settled before anything else is decided for its position, on start-up included.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from daemon.app.account_metrics import AccountMetrics
from daemon.app.account_silences import AccountSilences
from daemon.app.distance_history import DistanceHistory
from daemon.app.executor import LEASE_HELD_BACK, PICTURE_STALE, TopUpExecutor
from daemon.app.http import Metrics
from daemon.app.incident_charts import ChartRenderer
from daemon.app.leg_endings import RESTART_LOOKBACK_S, LegEndings
from daemon.core.alerts import Alert
from daemon.core.incident import IncidentRecorder
from daemon.core.policy import decide, remembered_legs, risk_identity
from daemon.core.policy_memory import PolicyMemory
from daemon.core.policy_rules import RuleSet, Silence
from daemon.core.policy_stale import blind_streams
from daemon.core.policy_topup import TopUpOutcome, announce_topup
from daemon.core.state import AccountState, Change, ChangeKind
from daemon.core.topup import Refused, TopUp, TopUpDecision, TopUpLimits, decide_topup
from daemon.core.types import MarginMode, Side
from daemon.core.view import AccountView, LegView
from daemon.exchanges import mark_trace
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.connector import Connector, ConnectorUpdate
from daemon.exchanges.errors import ExchangeError, said
from daemon.exchanges.feeds import FeedSettings
from daemon.exchanges.gateway import ExchangeGateway, GatewaySettings
from daemon.exchanges.marketdata import MarketHub
from daemon.exchanges.records import AccountRecords
from daemon.store import JournalPort
from daemon.store.memory_codec import memory_from_json, memory_to_json

# A top-up's margin is read back by a snapshot this soon after it was sent (its push may be lost).
TOPUP_RECONCILE_S = 1.0

log = structlog.get_logger("marginguard.runner")

TICK_S = 1.0
# Refusals not worth a message: a cooldown follows marginguard's own top-up (the position's risk alerts go on).
_QUIET_REFUSALS = frozenset({"cooldown", PICTURE_STALE, LEASE_HELD_BACK})


@dataclass(frozen=True)
class RunnerConfig:
    account: ExchangeAccount
    rules: RuleSet
    limits: TopUpLimits | None  # None: automatic top-up off
    dry_run: bool
    feed: FeedSettings
    sinks_for: Callable[[Alert], list[str]]  # the routing table: alert -> sink names
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    chart_sinks: frozenset[str] = frozenset()  # sinks that show incident charts: their messages wait for one


class AccountRunner:
    def __init__(
        self,
        config: RunnerConfig,
        hub: MarketHub,
        journal: JournalPort,
        metrics: Metrics,
        wake_outbox: Callable[[], None],
        clock: Callable[[], float] = time.time,
        charts: ChartRenderer | None = None,
    ) -> None:
        self.config = config
        self.account_id = config.account.account_id
        self.hub = hub
        self.journal = journal
        self.metrics = metrics
        self._account_metrics = AccountMetrics(metrics, self.account_id)
        self.distance_history = DistanceHistory()  # each leg's last hour, for the status page
        self.incidents = IncidentRecorder()  # each leg's last minutes and alerts, for incident charts
        self.charts = charts
        self.wake_outbox = wake_outbox
        self.clock = clock
        self.connector: Connector | None = None
        # The account's one door to its exchange (its client, reads, actions, records), built for each run.
        self.gateway: ExchangeGateway | None = None
        # The exchange's own records of the account; None: the gateway's.
        self.records: AccountRecords | None = None
        self._changes: list[Change] = []
        self._woken = asyncio.Event()
        # Read from the journal by `load`, before the first step.
        self._memory = PolicyMemory()
        self._saved = _durable(self._memory)
        self._loaded = False
        self.silences = AccountSilences(journal, self.account_id, TICK_S)
        self.executor = TopUpExecutor(self.account_id, journal, metrics, config.limits, clock)
        # Legs that closed or vanished wait here until the exchange's records say whether it liquidated them.
        self.endings = LegEndings(clock)
        self._restart_checked = False  # legs gone while no run watched: looked for once per run

    # ---- state the supervisor reads ----

    def readiness(self) -> tuple[bool, str]:
        connector = self.connector
        if connector is None:
            return False, "waiting for the first snapshot"
        stopped = connector.stopped_because()
        if stopped is not None:  # a dead feed (restarting) or refused keys: the account is not watched
            return False, stopped
        if connector.state.last_snapshot_ms is None:
            return False, "waiting for the first snapshot"
        blind = blind_streams(connector.state.health, {symbol for symbol, _side in connector.state.legs})
        if blind:
            return False, "not fresh: " + ", ".join(blind)
        return True, "fresh"

    @property
    def view(self) -> AccountView | None:
        return None if self.connector is None else self.connector.view

    # ---- the loop ----

    async def load(self) -> None:
        """Read the account's memory and top-up records from the journal (once: a restarted run keeps both)."""
        if not self._loaded:
            self._memory = await self._load_memory()
            self._saved = _durable(self._memory)
            await self.executor.load()
            self._loaded = True

    async def run(self) -> None:
        await self.load()
        # Each run starts on a new picture: legs the memory knows that its first snapshot lacks went while no
        # run watched (a restarted runner as much as a restarted daemon), and are asked about like any leg that goes.
        self._restart_checked = False
        gateway = ExchangeGateway(
            self.config.account,
            dry_run=self.config.dry_run,
            settings=self.config.gateway,
            records_symbols=self._watched_symbols,
        )
        async with (
            gateway,
            Connector(
                self.config.account,
                self.hub,
                self.config.feed,
                client=gateway.client,
                on_update=self._on_update,
            ) as conn,
        ):
            self.gateway, self.connector = gateway, conn
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK_S):  # not wait_for: see tests/unit/test_cancellation.py
                        await self._woken.wait()
                self._woken.clear()
                await self.step(gateway)

    def _on_update(self, update: ConnectorUpdate) -> None:
        self._changes.extend(update.changes)
        self._woken.set()

    async def step(self, gateway: ExchangeGateway) -> None:
        assert self.connector is not None
        await self.load()
        state, view = self.connector.state, self.connector.view
        changes, self._changes = self.endings.hold(self._changes), []
        # Before deciding: a chart ends at the figures it was made on.
        self.incidents.record(self.clock(), view)
        if not self._restart_checked and state.last_snapshot_ms is not None:
            self._hold_legs_gone_while_down(view)
        if self.endings.asking:
            changes += await self.endings.ask(self._records(), state)
        silences = await self.silences.in_force(self.clock())
        before = self._memory
        if state.last_snapshot_ms is not None and self.executor.unsettled:
            # First: a top-up whose outcome is unknown is settled (and told) before anything else is decided,
            # so that a top-up made before a crash is told before the all-clear it brought.
            for record, outcome in await self.executor.settle_open(self._records(), state):
                await self._announce(view.leg(record.symbol, record.side), outcome, silences)
                self._refresh_picture()
        now = self.clock()
        self._memory, alerts = decide(
            view,
            # Health as it is now, judged at `now`: the awaits above (records, settlements) may take seconds,
            # and a drop read before them looks longer than it is once a reconnect has already ended it.
            self.connector.state.health,
            changes,
            self.config.rules,
            self._memory,
            silences,
            now,
            exchange=self.config.account.exchange,
            positions_known=state.last_snapshot_ms is not None,
            asking=self.endings.asking,
        )
        if mark_trace.TRACE is not None:  # benchmarks only (off by default)
            mark_trace.TRACE.decided(self.account_id, view.legs, self.hub.client)
        await self._emit(alerts, now)
        if self.config.limits is not None and state.last_snapshot_ms is not None:
            await self.executor.ensure_seeded(self._records(), state)
            for leg in view.legs:
                await self._consider_topup(gateway, (leg.key[0], leg.key[1]), silences)
        if self._memory is not before:
            await self._save_memory(self.clock())
        self._publish_metrics(state, view)

    def _hold_legs_gone_while_down(self, view: AccountView) -> None:
        """Legs the kept memory has alerts about but the first snapshot lacks went while marginguard was down:
        asked about like any leg that goes, over a longer past."""
        self._restart_checked = True
        live = {(leg.key[0], leg.key[1]) for leg in view.legs}
        gone = sorted(remembered_legs(self._memory, self.account_id) - live, key=lambda k: (k[0], k[1].value))
        vanished = [
            Change(ChangeKind.VANISHED, symbol, side, "absent after a restart") for symbol, side in gone
        ]
        self.endings.hold(vanished, RESTART_LOOKBACK_S)

    def _records(self) -> AccountRecords:
        if self.records is not None:
            return self.records
        assert self.gateway is not None
        return self.gateway.records

    def _watched_symbols(self) -> set[str]:
        """The symbols whose records are asked for where the venue wants one (Binance's margin history):
        those configured, those held, and those of top-ups still to be settled (their leg may be gone)."""
        held = (
            {symbol for symbol, _side in self.connector.state.legs} if self.connector is not None else set()
        )
        pending = {record.symbol for record in self.executor.unsettled if record.symbol != "*"}
        return set(self.config.account.symbols or ()) | held | pending

    # ---- alerts ----

    async def _emit(self, alerts: Sequence[Alert], now: float) -> None:
        """Journal each alert together with the memory that numbered it (one transaction: no crash can leave a
        sent message whose number a later one reuses), then wake the outbox."""
        if not alerts:
            return
        memory = (self.account_id, memory_to_json(self._memory))
        for alert in alerts:
            sinks = self.config.sinks_for(alert)
            chart = self.incidents.chart_for(alert, now)
            deadline, hold = now, {}
            if chart is not None and self.charts is not None and self.journal.write_failure is None:
                deadline = now + self.charts.hold_s  # chart-showing sinks wait this long for it, no longer
                hold = {sink: deadline for sink in sinks if sink in self.config.chart_sinks}
            stored = await self.journal.record_alert(alert, sinks, now, memory, hold)
            if stored is None:
                continue
            if deadline > now and chart is not None and self.charts is not None:
                self.charts.request(stored, chart, deadline)
            # Renumbered: its number was taken (the journal said so, loudly).
            if stored.sequence != alert.sequence:
                self._memory = self._memory.numbered_at_least({stored.identity.key: stored.sequence})
            state = "resolved" if alert.resolved else "firing"
            self.metrics.alerts.labels(self.account_id, alert.kind.value, alert.severity.value, state).inc()
            log.info(
                "alert",
                account=self.account_id,
                kind=alert.kind.value,
                severity=alert.severity.value,
                state=state,
                summary=alert.summary,
                sinks=sinks,
            )
        if self.journal.write_failure is None:
            self._saved = _durable(self._memory)
        self.wake_outbox()

    async def _save_memory(self, now: float) -> None:
        """Persist the memory when what a restart needs has changed: message counters, episodes, what receivers
        were told. Figures and threshold timers move with every mark; writing them each tick would cost an
        fsync per update per account, and after a restart they are rebuilt within one tick anyway."""
        durable = _durable(self._memory)
        if durable != self._saved and await self.journal.save_memory(
            self.account_id, memory_to_json(self._memory), now
        ):
            self._saved = durable

    async def _load_memory(self) -> PolicyMemory:
        """The saved memory, its message counters raised to what the journal holds (a memory saved before its
        last messages, or lost with a journal, must not number a new message like an old one)."""
        text = await self.journal.load_memory(self.account_id)
        memory = PolicyMemory() if text is None else memory_from_json(text)
        return memory.numbered_at_least(await self.journal.max_sequences(self.account_id))

    # ---- top-ups ----

    async def _consider_topup(
        self, gateway: ExchangeGateway, key: tuple[str, Side], silences: list[Silence]
    ) -> None:
        """Decide a top-up for one leg on the picture as it is at the moment of deciding: the step's awaits
        (records, settlements, the balance read) may take seconds under retries, and a picture read before them
        may show a leg that has since been liquidated, reopened or resized (money moved on a leg the exchange
        had far from liquidation)."""
        assert self.config.limits is not None and self.connector is not None
        connector = self.connector
        symbol, side = key
        episode = self._memory.episode(risk_identity(self.account_id, symbol, side))
        limits = self.config.limits

        def decide_with(available: float | None) -> tuple[LegView | None, TopUpDecision | None]:
            state, view = connector.state, connector.view
            leg = view.leg(symbol, side.value)
            if leg is None or key in self.endings.asking:
                return None, None  # gone meanwhile: the policy tells how it ended
            decision = decide_topup(
                leg,
                view,
                limits,
                self.executor.ledger,
                self.clock(),
                state=state,
                available_balance=available,
                episode=episode,
            )
            return leg, decision

        leg, decision = decide_with(None)
        if leg is not None and isinstance(decision, Refused) and decision.code == "balance_unknown":
            # Every other rule passed: only now is the balance worth a REST call; then decide again on the
            # picture as it is after that read.
            leg, decision = decide_with(await self._available_balance(gateway, leg))
        if leg is None or decision is None:
            return
        state = connector.state
        if isinstance(decision, TopUp):
            settle = self.connector.quirks.settle if self.connector else "USDT"
            outcome = await self.executor.execute(gateway, self._records(), decision, state, settle)
            await self._announce(leg, outcome, silences)
            self._refresh_picture()
        elif isinstance(decision, Refused) and decision.code not in _QUIET_REFUSALS:
            await self._announce(leg, decision, silences)

    def _refresh_picture(self) -> None:
        """After margin moved (or may have): a snapshot soon, rather than waiting for the push that says so. A
        push lost to a stall or a reconnect would leave the leg's margin and liquidation price wrong, and the
        leg held from new decisions, until the periodic reconciliation."""
        if self.connector is not None:
            self.connector.feed.request_reconcile(after_s=TOPUP_RECONCILE_S)

    async def _available_balance(self, gateway: ExchangeGateway, leg: LegView) -> float | None:
        """The settle currency free to top up from (the transfer's source wallet for a cross leg); None when
        it cannot be read, which refuses the top-up until the next tick asks again."""
        wallet = None
        if (
            leg.facts.margin_mode is MarginMode.CROSS
            and self.config.limits
            and self.config.limits.cross_transfer_from
        ):
            wallet = self.config.limits.cross_transfer_from
        try:
            return await gateway.free_balance(gateway.quirks.settle, wallet)
        except ExchangeError as exc:
            log.warning(
                "balance unavailable", account=self.account_id, error=type(exc).__name__, detail=said(exc)
            )
            return None

    async def _announce(
        self, leg: LegView | None, outcome: TopUpOutcome | None, silences: list[Silence]
    ) -> None:
        if outcome is None or leg is None:  # a gone leg: its liquidation or close is told by the policy
            return
        if isinstance(outcome, Refused) and outcome.code in _QUIET_REFUSALS:
            log.info("top-up not sent", account=self.account_id, symbol=leg.key[0], reason=outcome.reason)
            return
        now = self.clock()
        self._memory, alert = announce_topup(
            self._memory,
            leg,
            outcome,
            self.config.rules,
            silences,
            now,
            account=self.account_id,
            exchange=self.config.account.exchange,
            currency=self.connector.quirks.settle if self.connector else "USDT",
        )
        if alert is not None:
            await self._emit([alert], now)

    def _publish_metrics(self, state: AccountState, view: AccountView) -> None:
        now = time.monotonic()
        ages = self.connector.feed.stream_ages(now) if self.connector is not None else {}
        self._account_metrics.publish(state, view, ages, lambda symbol: self.hub.stream_age(symbol, now))
        self.distance_history.record(self.clock(), view)


def _durable(memory: PolicyMemory) -> tuple[object, ...]:
    """The part of the policy's memory a restart must not lose."""
    told = {key: (track.notified, track.last_sent, track.episode) for key, track in memory.tracks.items()}
    return (memory.sequences, memory.episodes, memory.notices, told)
