"""A cluster instance's leases: `ShardKeeper` claims a fair share of the account shards, renews them, gives them
up when others need them (or at stop), and tells the daemon which accounts to run.

Exactly one instance may act on an account at a time:
- A lease's deadline is kept on this machine's boot clock, counted from the moment the renewal was asked (so it
  is never later than the database's): a frozen or partitioned instance knows its lease is gone the moment it
  runs again, before any database or exchange says so.
- Every action-leading write is fenced in the database on the lease at its epoch (`fence`, the journal's
  `Fencer`); a write after the lease passed on is refused there (`LeaseLost`), whatever this instance believes.
- A request to an exchange is sent only while the lease has more time left than the venue's signed validity
  window plus a round trip (`may_send`): a request signed in time lands, or is refused by the exchange, before
  the lease can pass to another instance.
- A new owner waits out the previous lease's end plus that window before it sends anything, and its runners
  settle the previous owner's unknown top-ups against the exchange before they decide anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from daemon.app.http import Metrics
from daemon.app.settings_cluster import ROUND_TRIP_BUDGET_S, ClusterSettings
from daemon.core.alerts import Alert
from daemon.core.shards import plan
from daemon.store import JournalUnavailable
from daemon.store.leases import Beat, LeaseLost, LeaseStore, fence_params

log = structlog.get_logger("marginguard.cluster")

# What a lease-table call that fails looks like: the database is away or slow. The lease then runs out on its
# deadline here, and the instance steps down.
_UNREACHABLE = (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def boot_clock() -> float:
    """Seconds on a clock that keeps counting while the process is stopped or the machine sleeps (a lease's
    deadline must not stand still while its holder cannot see it pass)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


@dataclass(slots=True)
class HeldLease:
    epoch: int
    deadline: float  # boot clock: the lease is gone from this moment on, whatever happens
    act_after: float  # boot clock: the previous owner's requests cannot land after this
    # The lease ran out while the database could not be asked: its accounts are still watched and alerted on
    # (from memory) but nothing is sent to an exchange and nothing is journaled, until the database answers and
    # says who holds the shard now. Blind is worse than told twice.
    orphaned: bool = False


StartRunners = Callable[[int], Awaitable[None]]  # run the accounts of a shard
# Stop (and await, briefly) the accounts of these shards: all at once, so that giving up many shards costs one
# bounded wait, never one per shard while the leases kept wait for their renewal.
StopRunners = Callable[[Collection[int]], Awaitable[None]]


class ShardKeeper:
    def __init__(
        self,
        store: LeaseStore,
        settings: ClusterSettings,
        shard_of: Mapping[str, int],
        windows: Mapping[str, float],
        metrics: Metrics,
        *,
        start: StartRunners,
        stop: StopRunners,
        clock: Callable[[], float] = boot_clock,
    ) -> None:
        """`shard_of`: each configured account's shard; `windows`: each account's venue's signed validity window
        in seconds; `start` / `stop`: run / stop (and await) the accounts of a shard."""
        self.store = store
        self.name = store.name
        self.settings = settings
        self.shard_of = dict(shard_of)
        self.windows = dict(windows)
        self.metrics = metrics
        self._start, self._stop = start, stop
        self.clock = clock
        self.held: dict[int, HeldLease] = {}
        self.live: tuple[str, ...] = ()
        self.registered = False  # one full round with the database done: this instance holds its share
        self.refusals = 0
        self.handovers: dict[str, int] = {"gained": 0, "released": 0, "lost": 0}
        self._wake = asyncio.Event()
        self._stopping = False
        self.unwatched: list[str] = []  # accounts of held shards this configuration lacks
        self.origin = ""  # the journal instance's origin: messages about this instance itself carry it

    # ---- the journal's Fencer ----

    def fence(self, account: str) -> tuple[str, Sequence[Any]] | None:
        shard = self.shard_of.get(account)
        if shard is None:
            return None  # a message about no configured account (the journal's own trouble)
        lease = self.held.get(shard)
        if lease is not None and lease.orphaned:
            raise JournalUnavailable("the database cannot be reached: who holds this account now is unknown")
        if lease is None or self.clock() >= lease.deadline:
            raise LeaseLost(f"this instance does not hold shard {shard} (account {account}) now")
        return fence_params(shard, self.name, lease.epoch)

    def held_shards(self) -> list[int]:
        now = self.clock()
        return sorted(
            shard for shard, lease in self.held.items() if now < lease.deadline and not lease.orphaned
        )

    def refused(self) -> None:
        self.refusals += 1
        self.metrics.fencing_refusals.inc()
        self._wake.set()  # look at the leases now, not at the next renewal

    # ---- what runners and the outbox ask ----

    def may_send(self, account: str) -> str | None:
        """Why a request to the exchange may not be sent for `account` now (None: it may)."""
        shard = self.shard_of.get(account)
        lease = None if shard is None else self.held.get(shard)
        if lease is None:
            return f"this instance does not hold the account's shard ({shard})"
        if lease.orphaned:
            return "the database cannot be reached: another instance may hold the account's shard by now"
        now = self.clock()
        if now < lease.act_after:
            return (
                f"shard {shard} was taken over from another instance: nothing is sent for "
                f"{lease.act_after - now:.1f} s more, until whatever it sent can no longer land"
            )
        needed = self.windows.get(account, 0.0) + ROUND_TRIP_BUDGET_S
        left = lease.deadline - now
        if left < needed:
            return f"the lease of shard {shard} has {left:.1f} s left, less than a request may take to land ({needed:g} s)"
        return None

    def may_deliver(self, alert: Alert) -> bool:
        """Whether this instance delivers `alert` now: its account's shard is held here (by the lease's
        deadline), or, for a message about no account, shard 0 is."""
        shard = self.shard_of.get(alert.account)
        if shard is None:  # about this instance itself (its journal's trouble): it tells it
            return alert.origin == self.origin
        lease = self.held.get(shard)
        return lease is not None and (lease.orphaned or self.clock() < lease.deadline)

    def holds(self, account: str) -> bool:
        shard = self.shard_of.get(account)
        return shard is not None and shard in self.held_shards()

    # ---- the loop ----

    async def run(self) -> None:
        """Renew, take and give up leases every `renew_interval_s` (at once when a write was refused), until
        cancelled; then `stop` hands everything over."""
        interval = self.settings.renew_interval_s
        registered = False
        while True:
            self._wake.clear()
            registered = registered or await self._registered_accounts()
            if registered:
                await self._round()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):  # not wait_for: see tests/unit/test_cancellation.py
                    await self._wake.wait()

    async def _registered_accounts(self) -> bool:
        try:
            await self.store.register_accounts(self.shard_of)
        except _UNREACHABLE as exc:
            log.warning("cluster registration failed; trying again", error=f"{type(exc).__name__}: {exc}")
            return False
        return True

    async def _round(self) -> None:
        await self._renew()
        if self._stopping:
            return
        try:
            beat = await self.store.beat()
        except _UNREACHABLE as exc:
            log.warning("cluster heartbeat failed", error=f"{type(exc).__name__}: {exc}")
            return
        await self._rebalance(beat)
        await self._check_configurations()
        self.registered = True
        self.metrics.shards_held.set(len(self.held))

    async def _renew(self) -> None:
        asked = self.clock()
        try:
            renewed = await self.store.renew({shard: lease.epoch for shard, lease in self.held.items()})
        except _UNREACHABLE as exc:
            log.warning("lease renewal failed", error=f"{type(exc).__name__}: {exc}", held=len(self.held))
            renewed = None
        now = self.clock()
        refused = []
        for shard, lease in list(self.held.items()):
            if renewed is not None and shard in renewed:
                # Still ours (a lease that ran out here only by this instance's cautious count is not lost).
                lease.deadline, lease.orphaned = asked + renewed[shard], False
            elif renewed is not None:
                # Refused by the database (it expired, or another instance has it): its accounts stop at once.
                refused.append(shard)
            elif now >= lease.deadline and not lease.orphaned:
                lease.orphaned = True
                log.error(
                    "lease ran out while the database cannot be reached: its accounts are watched and alerted "
                    "on from memory, nothing is sent to the exchange, until the database answers",
                    shard=shard,
                )
        if refused:
            await self._lose(refused, "the database refused their renewal")

    async def _rebalance(self, beat: Beat) -> None:
        self.live = beat.live
        wanted = plan(self.name, self.settings.shards, self.held, beat.free, beat.live)
        if wanted.release:
            await self._release(wanted.release)
        for shard in wanted.claim:
            asked = self.clock()
            try:
                claim = await self.store.claim(shard)
            except _UNREACHABLE as exc:
                log.warning("lease claim failed", shard=shard, error=f"{type(exc).__name__}: {exc}")
                return
            if claim is None:
                continue  # another instance was faster
            wait = 0.0
            if claim.since_previous_s is not None:
                window = max(
                    (w for account, w in self.windows.items() if self.shard_of.get(account) == shard),
                    default=0.0,
                )
                wait = max(0.0, window + ROUND_TRIP_BUDGET_S - claim.since_previous_s)
            self.held[shard] = HeldLease(claim.epoch, asked + claim.left_s, self.clock() + wait)
            self.handovers["gained"] += 1
            self.metrics.handovers.labels("gained").inc()
            log.info(
                "shard taken",
                shard=shard,
                epoch=claim.epoch,
                previous_owner=claim.previous_owner,
                sends_after_s=round(wait, 2),
            )
            await self._start(shard)

    async def _check_configurations(self) -> None:
        """Accounts another instance registered in shards held here that this instance's configuration lacks
        (instances configured differently, as during a rollout that adds accounts): nobody watches them while
        this instance holds their shard. Said loudly, and in /status."""
        try:
            registered = await self.store.accounts_in(self.held_shards())
        except _UNREACHABLE:
            return
        unknown = sorted(set(registered) - set(self.shard_of))
        if unknown != self.unwatched:
            if unknown:
                log.error(
                    "accounts in this instance's shards are missing from its configuration: not watched until "
                    "every instance has the same configuration",
                    accounts=unknown,
                )
            self.unwatched = unknown

    async def _lose(self, shards: Sequence[int], why: str) -> None:
        for shard in shards:
            self.held.pop(shard, None)
        self.handovers["lost"] += len(shards)
        self.metrics.handovers.labels("lost").inc(len(shards))
        log.error("shard leases lost: their accounts stop here", shards=sorted(shards), reason=why)
        await self._stop(shards)

    async def _release(self, shards: Sequence[int]) -> None:
        """Stop the shards' accounts here first, then give their leases up in one statement. Whatever a runner
        still had in flight is harmless: its writes are fenced, its requests were sent only with a lease that
        outlasts them, and the next owner waits out the venue's window before it sends."""
        leases = {shard: self.held[shard].epoch for shard in shards if shard in self.held}
        if not leases:
            return
        await self._stop(list(leases))
        for shard in leases:
            self.held.pop(shard, None)
        try:
            await self.store.release(leases)
        except _UNREACHABLE as exc:  # they run out on their own then
            log.warning("lease release failed", shards=sorted(leases), error=f"{type(exc).__name__}: {exc}")
        self.handovers["released"] += len(leases)
        self.metrics.handovers.labels("released").inc(len(leases))
        log.info("shards given up", shards=sorted(leases))

    async def stop(self) -> None:
        """At SIGTERM: stop every account here, give every lease up and leave the live set, so the other
        instances take the shards at their next round."""
        self._stopping = True
        # Out of the live set first: the others then count one instance fewer and take the freed shards at
        # their next round, rather than leaving them free until a round after that.
        with contextlib.suppress(*_UNREACHABLE):
            await self.store.leave()
        await self._release(sorted(self.held))
        self.metrics.shards_held.set(0)

    def status(self) -> dict[str, Any]:
        """This instance's part of /status."""
        now = self.clock()
        return {
            "instance": self.settings.name(),
            "lease_owner": self.name,
            "live_instances": list(self.live),
            "shards": self.settings.shards,
            "registered": self.registered,
            "held": [
                {
                    "shard": shard,
                    "epoch": lease.epoch,
                    "lease_left_s": round(lease.deadline - now, 2),
                    "sends_in_s": round(max(0.0, lease.act_after - now), 2),
                    "orphaned": lease.orphaned,
                    "accounts": sorted(a for a, s in self.shard_of.items() if s == shard),
                }
                for shard, lease in sorted(self.held.items())
            ],
            "handovers": dict(self.handovers),
            "fencing_refusals": self.refusals,
            "unwatched_accounts": list(self.unwatched),
        }
