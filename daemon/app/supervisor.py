"""The daemon: one runner per account under one TaskGroup, the outbox, the HTTP face, systemd's watchdog.

Only the supervisor creates long-lived tasks, and every one belongs to its TaskGroup. A runner that fails is
restarted with capped, jittered backoff (its policy memory and ledger are kept; its connector is rebuilt). Stop
is bounded: on SIGTERM/SIGINT every task but the outbox is cancelled at once; the outbox finishes the requests it
has in flight, then whatever it still holds is flushed, all within `shutdown_timeout_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections import Counter
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import structlog

from daemon.app import systemd
from daemon.app.account_silences import keep_silences_read
from daemon.app.collector import Collector
from daemon.app.http import Metrics
from daemon.app.http_face import Face, Served
from daemon.app.incident_charts import ChartRenderer
from daemon.app.redaction import Redactor
from daemon.app.runner import AccountRunner, RunnerConfig
from daemon.app.settings import Settings
from daemon.app.settings_models import SinkSettings
from daemon.app.settings_view import secret_values
from daemon.app.status_view import status_document
from daemon.app.wiring import feed_settings, hub_settings, rule_set, topup_limits
from daemon.core.backoff import Backoff
from daemon.core.shards import shard_of
from daemon.exchanges.client import Environment, environment
from daemon.exchanges.marketdata import MarketHub, hub_for
from daemon.exchanges.quirks import quirks_for
from daemon.notify import build_sink
from daemon.notify.outbox import Outbox
from daemon.notify.routing import Router
from daemon.notify.sink import Sink, close_all
from daemon.store import JournalPort, JournalUnavailable
from daemon.store.opening import open_journal

if TYPE_CHECKING:
    from daemon.app.cluster import ShardKeeper
    from daemon.store.leases import LeaseStore

log = structlog.get_logger("marginguard.supervisor")

# A runner that failed because the journal did not answer starts again after at most this.
_JOURNAL_RETRY_S = 3.0
# A runner that ran this long before failing starts its backoff afresh.
_HEALTHY_RUN_S = 60.0


# The transport's own settings; `*_env` / `*_file` were resolved into the values when the settings loaded.
_SINK_FIELDS = ("url", "base_url", "bot_token", "chat_id", "hmac_secret")


def sink_from_settings(sink: SinkSettings, page_url: str | None = None) -> Sink:
    """`page_url`: `daemon.status_page_url`, where Slack and webhook messages link to their incident charts."""
    given = {name: getattr(sink, name) for name in _SINK_FIELDS if getattr(sink, name) is not None}
    return build_sink(sink.type, name=sink.name, page_url=page_url, **given)


def _describe(exc: BaseException) -> str:
    """An error as one line; a task group's errors (a dead feed surfaces as one) by their leaves."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


class Daemon:
    @classmethod
    async def open(
        cls, settings: Settings, clock: Callable[[], float] = time.time, metrics: Metrics | None = None
    ) -> Daemon:
        """Open the configured journal (off the event loop) and build the daemon on it; in a cluster, join it
        (`daemon.app.cluster`): the accounts then run as this instance's leases say. `metrics`: the registry
        an HTTP listener opened before the daemon already serves (`daemon.app.http_face`)."""
        redactor = Redactor(secret_values(settings))
        url = settings.daemon.journal_url_value()
        cluster = settings.cluster.enabled
        journal = await open_journal(settings.daemon.storage_path, url, redact=redactor.text, shared=cluster)
        if not cluster or url is None:
            return cls(settings, journal, clock, metrics=metrics)
        from daemon.store.leases import LeaseStore  # only a cluster loads it

        try:
            store = await LeaseStore.open(
                url,
                settings.cluster.lease_owner(),
                settings.cluster.lease_ttl_s,
                settings.cluster.shards,
                timeout_s=settings.cluster.renew_interval_s,
                connect_timeout_s=settings.cluster.renew_interval_s,
            )
        except BaseException:
            await journal.close()
            raise
        daemon = cls(settings, journal, clock, leases=store, metrics=metrics)
        assert daemon.cluster is not None
        await store.listen(url, daemon.cluster.changed)
        return daemon

    def __init__(
        self,
        settings: Settings,
        journal: JournalPort,
        clock: Callable[[], float] = time.time,
        leases: LeaseStore | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """Use `open`; `journal` is the port the runners, outbox and charts share (the daemon closes it);
        `leases`: this instance's lease tables in a cluster (None: one daemon runs every account)."""
        self.settings = settings
        self.clock = clock
        self._redactor = Redactor(secret_values(settings))
        self.journal = journal
        self.metrics = metrics or Metrics()
        page_url = settings.daemon.status_page_url
        self.sinks = {sink.name: sink_from_settings(sink, page_url) for sink in settings.sinks}
        self.outbox = Outbox(
            self.journal,
            self.sinks,
            clock=clock,
            attempted=lambda sink, outcome: self.metrics.deliveries.labels(sink, outcome).inc(),
        )
        # Incident charts of critical and liquidated alerts: drawn off the event loop, kept in the journal.
        self.charts = ChartRenderer(self.journal, self.outbox.notify, clock=clock)
        chart_sinks = frozenset(name for name, sink in self.sinks.items() if sink.shows_charts)
        rules = rule_set(settings)
        # One router for every account: it remembers which sinks heard each alarm, so the all-clear follows it.
        router = Router(settings.routes, [sink.name for sink in settings.sinks])
        # One hub per environment, on a client without keys: accounts share marks only with accounts that
        # talk to the same server (a live account never sees a demo price).
        self.hubs: dict[Environment, MarketHub] = {}
        self.runners: list[AccountRunner] = []
        self.restarts: dict[str, int] = {}  # account -> how many times its runner failed and was restarted
        self._configs: dict[str, RunnerConfig] = {}
        self._hub_of: dict[str, MarketHub] = {}
        self._wake_outbox = self.outbox.notify
        sharing = Counter(environment(account) for account in settings.account_configs())
        for account in settings.account_configs():
            where = environment(account)
            if where not in self.hubs:
                self.hubs[where] = hub_for(account, hub_settings(settings, sharing[where]))
            topup = settings.topup_for(account.account_id)
            config = RunnerConfig(
                account=account,
                rules=rules,
                limits=topup_limits(settings, account.account_id),
                dry_run=topup.dry_run,
                feed=feed_settings(settings, account.account_id),
                sinks_for=router.sinks_for,
                chart_sinks=chart_sinks,
            )
            self._configs[account.account_id] = config
            self._hub_of[account.account_id] = self.hubs[where]
        self.cluster: ShardKeeper | None = None
        self._group: asyncio.TaskGroup | None = None
        self._runner_tasks: dict[str, asyncio.Task[None]] = {}
        if leases is None:
            self.runners = [self._new_runner(account_id) for account_id in self._configs]
        else:
            self.cluster = self._keeper(leases)
            journal.fence_with(self.cluster)  # type: ignore[attr-defined]  # a cluster's journal is PostgreSQL
            self.outbox.may_deliver = self.cluster.may_deliver
            self.cluster.origin = journal.instance

    def _new_runner(self, account_id: str) -> AccountRunner:
        runner = AccountRunner(
            self._configs[account_id],
            self._hub_of[account_id],
            self.journal,
            self.metrics,
            self._wake_outbox,
            self.clock,
            self.charts,
        )
        if self.cluster is not None:
            runner.executor.may_send = functools.partial(self.cluster.may_send, account_id)
        return runner

    def _keeper(self, leases: LeaseStore) -> ShardKeeper:
        from daemon.app.cluster import ShardKeeper

        shards = self.settings.cluster.shards
        accounts = {account.account_id: account for account in self.settings.account_configs()}
        return ShardKeeper(
            leases,
            self.settings.cluster,
            {account_id: shard_of(account_id, shards) for account_id in accounts},
            {a: quirks_for(account.exchange).signed_window_s for a, account in accounts.items()},
            self.metrics,
            start=self._start_shard,
            stop=self._stop_shards,
        )

    async def _start_shard(self, shard: int) -> None:
        """Run the accounts of a shard this instance now holds, each on a runner of its own that reads the
        account's memory and open top-ups from the journal afresh (the previous owner's)."""
        assert self.cluster is not None and self._group is not None
        for account_id, account_shard in sorted(self.cluster.shard_of.items()):
            if account_shard != shard or account_id in self._runner_tasks:
                continue
            runner = self._new_runner(account_id)
            self.runners.append(runner)
            self._runner_tasks[account_id] = self._group.create_task(
                self._supervise(runner), name=f"runner-{account_id}"
            )

    async def _stop_shards(self, shards: Collection[int]) -> None:
        """Stop the shards' runners and wait for them, briefly (see below)."""
        assert self.cluster is not None
        gone = {a for a, s in self.cluster.shard_of.items() if s in shards}
        tasks = [task for account_id, task in self._runner_tasks.items() if account_id in gone]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded well inside a renewal interval: the keeper waits here, and its other leases must not run
            # out meanwhile. A runner still finishing is harmless: its writes are fenced, its requests gated,
            # and the next owner waits out the venue's window before it sends.
            bound = min(self.settings.daemon.shutdown_timeout_s, self.settings.cluster.renew_interval_s / 2)
            await asyncio.wait(tasks, timeout=bound)
        for account_id in gone:
            self._runner_tasks.pop(account_id, None)
        self.runners = [runner for runner in self.runners if runner.account_id not in gone]

    def readiness(self) -> tuple[bool, dict[str, str]]:
        states = {runner.account_id: runner.readiness() for runner in self.runners}
        reasons = {k: reason for k, (_, reason) in states.items()}
        ready = all(ready for ready, _ in states.values())
        if self.cluster is not None:
            held = self.cluster.held_shards()
            reasons["cluster"] = (
                f"{len(held)} of {self.settings.cluster.shards} shards held"
                if self.cluster.registered
                else "joining the cluster"
            )
            if self.cluster.unwatched:  # another instance's configuration has them: said, not hidden
                reasons["cluster"] += "; not in this configuration: " + ", ".join(self.cluster.unwatched)
            ready = ready and self.cluster.registered
        return ready, reasons

    async def status(self) -> dict[str, Any]:
        """Each account's legs with the model's figures, and what the status page shows (see `status_view`)."""
        document = await status_document(self.runners, self.journal, self._redactor.value, self.clock())
        if self.cluster is not None:
            document["cluster"] = self.cluster.status()
        return document

    async def run(
        self, stop: asyncio.Event, face: Face | None = None, collector: Collector | None = None
    ) -> None:
        """Until `stop` is set. `face`: the HTTP listener `marginguard run` opened before building the daemon
        (it is closed here as the daemon's own would be); None: the daemon opens its own. `collector`: the
        garbage collector's settings `marginguard run` installed, whose hourly full pass runs here."""
        if face is None:
            face = Face(self.metrics)
            await face.open(self.settings.daemon.http_bind)
        face.serve(Served(self.readiness, self.status, self._refresh_gauges, self.health, self.journal.chart))
        tasks: list[asyncio.Task[None]] = []
        stopped_at = time.monotonic()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for hub in self.hubs.values():
                    await stack.enter_async_context(hub)
                async with asyncio.TaskGroup() as group:
                    self._group = group
                    outbox = group.create_task(self.outbox.run(), name="outbox")
                    tasks.append(outbox)
                    tasks.append(group.create_task(self.charts.run(), name="incident-charts"))
                    for runner in self.runners:
                        tasks.append(
                            group.create_task(self._supervise(runner), name=f"runner-{runner.account_id}")
                        )
                    keeper = None
                    if self.cluster is not None:
                        keeper = group.create_task(self.cluster.run(), name="cluster-leases")
                        tasks.append(keeper)
                    tasks.append(group.create_task(self._watchdog(), name="watchdog"))
                    tasks.append(group.create_task(keep_silences_read(self.journal), name="silences"))
                    if collector is not None:
                        tasks.append(group.create_task(collector.run(), name="collector"))
                    systemd.notify("READY=1")
                    log.info("marginguard running", accounts=[r.account_id for r in self.runners])
                    await stop.wait()
                    stopped_at = time.monotonic()
                    systemd.notify("STOPPING=1")
                    log.info("stopping")
                    if self.cluster is not None and keeper is not None:
                        # Hand over first: no more rounds, then the accounts stop (bounded) and the leases go
                        # to the other instances now, not after the runners' and the outbox's shutdown.
                        keeper.cancel()
                        await asyncio.wait([keeper], timeout=1.0)
                        with contextlib.suppress(Exception):
                            await self.cluster.stop()
                    for task in [*tasks, *self._runner_tasks.values()]:
                        if task is not outbox:
                            task.cancel()
                    # The outbox is not cut off mid-request (a message the sink took but whose answer was lost
                    # would be sent again by the flush): it ends after its pass under way, within the budget.
                    self.outbox.stop()
                    left = self.settings.daemon.shutdown_timeout_s - (time.monotonic() - stopped_at) - 1.0
                    if not (await asyncio.wait([outbox], timeout=max(0.5, left)))[0]:
                        log.warning("outbox stopped mid-request: that message may be sent again")
                        outbox.cancel()
        finally:
            if self.cluster is not None:
                # Whatever is still held (a stop that did not get as far as the handover above) goes now.
                with contextlib.suppress(Exception):
                    await self.cluster.stop()
                await self.cluster.store.close()
            # Whatever the runners' shutdown left of the budget goes to the outbox (a margin kept for the rest).
            left = self.settings.daemon.shutdown_timeout_s - (time.monotonic() - stopped_at) - 1.0
            with contextlib.suppress(Exception):
                await self.outbox.flush(timeout=max(0.5, left))
            await face.close()
            await close_all(self.sinks.values())
            await self.journal.close()
            log.info("stopped")

    async def _supervise(self, runner: AccountRunner) -> None:
        """Run an account forever: a failure is logged and the runner restarted after a jittered delay."""
        delays = Backoff(initial=1.0, cap=60.0).delays(random.random)
        while True:
            started = time.monotonic()
            try:
                await runner.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.restarts[runner.account_id] = self.restarts.get(runner.account_id, 0) + 1
                if time.monotonic() - started > _HEALTHY_RUN_S:
                    delays = Backoff(initial=1.0, cap=60.0).delays(random.random)
                delay = next(delays)
                if isinstance(exc, JournalUnavailable):
                    # The database's trouble, not the account's: back as soon as it may answer (an account
                    # whose runner waits a minute is a blind minute).
                    delay = min(delay, _JOURNAL_RETRY_S)
                log.error(
                    "account runner failed; restarting",
                    account=runner.account_id,
                    error=_describe(exc),
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)

    async def _watchdog(self) -> None:
        """WATCHDOG=1 at half systemd's WatchdogSec while the event loop turns (a stuck loop stops petting)."""
        interval = systemd.watchdog_interval()
        if interval is None:
            return
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def health(self) -> list[str]:
        """What keeps the daemon from keeping its promises (for /healthz)."""
        failure = self.journal.write_failure
        return [] if failure is None else [f"journal {self.journal.where} cannot be written: {failure}"]

    async def _refresh_gauges(self) -> None:
        for runner in self.runners:
            runner.refresh_gauges()
        self.metrics.outbox_pending.set(await self.journal.pending_deliveries())
        self.metrics.journal_writable.set(0 if self.journal.write_failure else 1)
