"""One account's loop: connector updates -> core policy -> journaled alerts and top-ups.

After every update the runner asks the pure policy what to say and the pure top-up policy what to do. It decides
only what changed: after marks alone, the legs whose figures moved (the connector's live view keeps the others'
very objects); after anything else, everything. Marks alone that leave nothing to journal or send are decided at
once, in the connector's delivery (`_decide_marks`), and those within the last decision's quiet band without
the model or the policy at all (`runner_quiet.py`); the rest wakes the runner's task for its full step.
Time-based transitions (minimum durations, repeats, streams turning blind, silences ending) wake it through one
scheduler shared by every runner (`deadlines.py`) at the time the pure `policy_deadline.clock_plan` names,
rather than a timer per account; while a top-up, a settlement or a leg's ending is in play it looks again every
`TICK_S`. Before deciding it folds in the newest
mark ccxt holds for each held symbol, so no decision is made on a superseded mark. Every alert is journaled with
its deliveries, together with the memory that numbered it, before the outbox sends it (held in memory and sent
from there when the journal cannot be written). Top-ups go through the account's `TopUpExecutor`: journaled
before the exchange is called, settled from the exchange's own records when their answer is lost — and such an
unknown outcome is settled before anything else is decided for its position, on start-up included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from daemon.app.account_metrics import AccountMetrics
from daemon.app.account_silences import AccountSilences
from daemon.app.deadlines import Deadlines, shared_deadlines
from daemon.app.distance_history import DistanceHistory
from daemon.app.executor import TopUpExecutor
from daemon.app.http import Metrics
from daemon.app.incident_charts import ChartRenderer
from daemon.app.leg_endings import RESTART_LOOKBACK_S, LegEndings
from daemon.app.runner_journal import durable
from daemon.app.runner_quiet import QuietSteps
from daemon.core.alerts import Alert
from daemon.core.events import MarkPrice
from daemon.core.incident import IncidentRecorder
from daemon.core.policy import decide, remembered_legs
from daemon.core.policy_deadline import clock_plan
from daemon.core.policy_memory import PolicyMemory
from daemon.core.policy_rules import RuleSet, Silence
from daemon.core.policy_stale import KindsMemo, blind_streams
from daemon.core.state import AccountState, Change, ChangeKind, LegKey
from daemon.core.topup import TopUpLimits
from daemon.core.view import AccountView, LegView
from daemon.exchanges.client import built_off_the_loop
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.connector import Connector, ConnectorUpdate
from daemon.exchanges.feeds import FeedSettings
from daemon.exchanges.gateway import ExchangeGateway, GatewaySettings
from daemon.exchanges.marketdata import MarketHub
from daemon.exchanges.records import AccountRecords
from daemon.store import JournalPort

log = structlog.get_logger("marginguard.runner")

TICK_S = 1.0  # how often a runner looks while a top-up, a settlement or a leg's ending is in play
# A deadline is acted on this much after it, so the policy's own comparison (now - since >= duration) holds.
DEADLINE_SLACK_S = 0.002


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


class AccountRunner(QuietSteps):
    def __init__(
        self,
        config: RunnerConfig,
        hub: MarketHub,
        journal: JournalPort,
        metrics: Metrics,
        wake_outbox: Callable[[], None],
        clock: Callable[[], float] = time.time,
        charts: ChartRenderer | None = None,
        deadlines: Deadlines | None = None,
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
        self._saved = durable(self._memory)
        self._unsaved = False  # the last save of the memory failed
        self._loaded = False
        self.silences = AccountSilences(journal, self.account_id, TICK_S)
        self.executor = TopUpExecutor(self.account_id, journal, metrics, config.limits, clock)
        # Legs that closed or vanished wait here until the exchange's records say whether it liquidated them.
        self.endings = LegEndings(clock)
        self._restart_checked = False  # legs gone while no run watched: looked for once per run
        self._deadlines = deadlines  # None: the event loop's shared one, taken at the first step
        # What the last decision saw: the next one judges only what differs (see `step`).
        self._full = True  # something besides marks came in (or a deadline passed): judge everything
        self._decided: dict[LegKey, LegView] = {}
        self._silences_seen: list[Silence] | None = None
        self._scheduled_for: float | None = None
        self._seen: tuple[object, object] | None = None  # the legs and health mappings last decided on
        self._kinds = KindsMemo()  # the streams' health by kind, for the next deadline (same inputs: reused)
        self._held_for: object = None  # the legs mapping `_held` was gathered from
        self._held: frozenset[str] = frozenset()
        # The task waits for a wake: marks alone may be decided at once (`_decide_marks`).
        self._waiting = False
        self._deciding = False  # within `_decide_marks`: updates its catch-up folds in are decided by it
        self._quick_failed = False  # `_decide_marks` raised: only the task's steps decide, for this run
        # Marks within this band change no decision (built after each decision; None: every mark is judged).
        self._band = None
        self._marks_moved = set()  # symbols whose marks came in since the last decision
        self.quiet_decisions = 0  # marks decided within a band (the status page and tests read it)
        self._point_due = False  # a chart point is to be taken after this pass of the event loop

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
            self._saved = durable(self._memory)
            await self.executor.load()
            self._loaded = True

    async def run(self) -> None:
        await self.load()
        # Each run starts on a new picture: legs the memory knows that its first snapshot lacks went while no
        # run watched (a restarted runner as much as a restarted daemon), and are asked about like any leg that goes.
        self._restart_checked = False
        self._quick_failed = False
        gateway = await built_off_the_loop(
            lambda: ExchangeGateway(
                self.config.account,
                dry_run=self.config.dry_run,
                settings=self.config.gateway,
                records_symbols=self._watched_symbols,
            )
        )
        async with (
            gateway,
            Connector(
                self.config.account,
                self.hub,
                self.config.feed,
                client=gateway.client,
                on_update=self._on_update,
                defer_model=True,
            ) as conn,
        ):
            self.gateway, self.connector = gateway, conn
            self._full = True  # a new picture: everything is judged on it
            self._woken.set()  # the first step at once (journal state, memory), as the tick used to give
            try:
                while True:
                    self._waiting = True
                    try:
                        await self._woken.wait()
                    finally:
                        self._waiting = False
                    self._woken.clear()
                    await self.step(gateway)
            finally:
                self._schedule(None)

    def _on_update(self, update: ConnectorUpdate) -> None:
        if update.changes:
            self._changes.extend(update.changes)
        for event in update.folded or (update.event,):
            if type(event) is MarkPrice:
                self._marks_moved.add(event.symbol)
            else:
                self._full = True
        if self._deciding:
            return  # folded in by the catch-up of `_decide_marks`: decided there, or it wakes the task
        if self._waiting and not self._woken.is_set() and not self._quick_failed:
            try:
                if self._decide_marks():
                    return
            except Exception:
                # The task's steps decide from now on (and meet the same failure where the supervisor sees it);
                # raised here, it would fail the connector that delivered the marks. Told once, not per mark.
                self._quick_failed = True
                log.exception(
                    "deciding on marks at once failed; the runner's steps decide", account=self.account_id
                )
        self._woken.set()

    def _decide_marks(self) -> bool:
        """The step for marks alone, run where the connector delivers them: no wake of this runner's task, so no
        event-loop pass between the frame and the decision. Only when nothing in the step would wait: no top-up
        policy, no leg ending or settlement in play, the silences known without a read, no deadline passed,
        nothing to journal or send. False, with nothing committed: the task's step decides (it judges the
        same picture and memory, so it decides as this would have)."""
        connector = self.connector
        if (
            connector is None
            or self._full
            or self._changes
            or not self._loaded
            or not self._restart_checked
            or self.config.limits is not None
            or self.endings.any_asking
            or self.executor.any_unsettled
        ):
            return False
        now = self.clock()
        silences = self.silences.known(now)
        if silences is None or silences != self._silences_seen:
            return False
        if self._scheduled_for is not None and now >= self._scheduled_for:
            return False
        self._deciding = True
        try:
            connector.catch_up()  # as the step: the newest mark ccxt holds for every held symbol
        finally:
            self._deciding = False
        state = connector.state
        if self._full or self._changes or self._seen != (state.legs, state.health):
            return False
        if self._quiet(state, now):
            return True
        view = connector.view
        memory, alerts = self._judge(state, view, (), silences, now, self._moved_legs(view))
        if alerts or (memory is not self._memory and durable(memory) != self._saved):
            return False  # something to journal: the step's work
        self.incidents.record(now, view)
        self._memory = memory
        self._decided_on(view)
        self._publish_metrics(state, view, False)
        self._plan_next(now, silences)
        return True

    def _wake_at_deadline(self) -> None:
        self._scheduled_for = None  # fired: the same time again must be scheduled again
        self._full = True
        self._woken.set()

    def _schedule(self, when: float | None) -> None:
        """Wake at unix time `when` (None: no deadline), through the scheduler every runner shares."""
        if when == self._scheduled_for:
            return
        self._scheduled_for = when
        if self._deadlines is None:
            if when is None:
                return
            self._deadlines = shared_deadlines()
        if when is None:
            self._deadlines.at(self, None, self._wake_at_deadline)
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - self.clock()) + DEADLINE_SLACK_S
        self._deadlines.at(self, loop.time() + delay, self._wake_at_deadline)

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
        # The newest mark ccxt holds for every held symbol, folded in now: the awaits above let frames in, and
        # a watch wakes only once per batch of frames read together.
        self._catch_up()
        state, view = self.connector.state, self.connector.view
        # Everything is judged unless only marks came in since the last decision: then only the legs whose
        # figures moved (the live view keeps the others' objects), which decides exactly as judging all would.
        full = self._full or bool(changes) or bool(self.endings.asking) or silences != self._silences_seen
        full = full or self._memory is not before or self._seen != (state.legs, state.health)
        now = self.clock()
        # A deadline passed, its wake not yet run (a mark came first): judged now, or the wake is lost below.
        full = full or (self._scheduled_for is not None and now >= self._scheduled_for)
        self._full, self._silences_seen, self._seen = False, silences, (state.legs, state.health)
        only = None if full else self._moved_legs(view)
        # Health as it is now, judged at `now`: the awaits above (records, settlements) may take seconds, and a
        # drop read before them looks longer than it is once a reconnect has already ended it.
        self._memory, alerts = self._judge(state, view, changes, silences, now, only)
        self._decided_on(view)
        await self._emit(alerts, now)
        if self.config.limits is not None and state.last_snapshot_ms is not None:
            await self.executor.ensure_seeded(self._records(), state)
            for leg in view.legs:
                if only is None or leg.key in only:
                    await self._consider_topup(gateway, (leg.key[0], leg.key[1]), silences)
        if self._memory is not before:
            await self._save_memory(self.clock())
        self._publish_metrics(self.connector.state, self.connector.view, only is None)
        self._plan_next(now, silences)

    def _moved_legs(self, view: AccountView) -> set[LegKey]:
        """The legs whose view the live view replaced since the last decision (it keeps the others' objects)."""
        return {leg.key for leg in view.legs if self._decided.get(leg.key) is not leg}

    def _judge(
        self,
        state: AccountState,
        view: AccountView,
        changes: Sequence[Change],
        silences: list[Silence],
        now: float,
        only: set[LegKey] | None,
    ) -> tuple[PolicyMemory, tuple[Alert, ...]]:
        """The pure policy on this account's picture: the memory to keep and the alerts to send."""
        return decide(
            view,
            state.health,
            changes,
            self.config.rules,
            self._memory,
            silences,
            now,
            exchange=self.config.account.exchange,
            positions_known=state.last_snapshot_ms is not None,
            asking=self.endings.asking,
            only=only,
        )

    def _catch_up(self) -> None:
        """Fold in the marks ccxt took since the hub last delivered (see `Connector.catch_up`) without waking
        this runner again for them: they are decided on in this very step."""
        assert self.connector is not None
        woken, changes = self._woken.is_set(), len(self._changes)
        self.connector.catch_up()
        if not woken and len(self._changes) == changes:
            self._woken.clear()

    def _plan_next(self, now: float, silences: list[Silence]) -> None:
        """When to look again with nothing new coming in: the policy's next deadline, or `TICK_S` while a
        top-up, a settlement, a leg's ending or a muted alert (whose silence may be lifted) is in play."""
        assert self.connector is not None
        state = self.connector.state
        when, muted = clock_plan(
            self._memory,
            state.health,
            self.config.rules,
            silences,
            now,
            account=self.account_id,
            held_symbols=self._held_symbols(state),
            kinds_of=self._kinds,
        )
        if self.config.limits is not None or self.executor.unsettled or self.endings.asking or muted:
            when = min(when, now + TICK_S) if when is not None else now + TICK_S
        self._schedule(when)

    def _held_symbols(self, state: AccountState) -> frozenset[str]:
        """The symbols of the account's legs, gathered again only when the legs mapping is a new one (a state's
        mappings are replaced, never changed in place, and marks alone keep it)."""
        if self._held_for is not state.legs:
            self._held_for, self._held = state.legs, frozenset(symbol for symbol, _side in state.legs)
        return self._held

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
