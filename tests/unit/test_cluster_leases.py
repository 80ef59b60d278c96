"""Leases and fencing on a real PostgreSQL: two instances of one cluster, each with its lease tables and its
journal, played round by round (`ShardKeeper._round`) on clocks the test moves.

What a user relies on: one holder per shard; a holder whose lease ran out — frozen, partitioned, slow — can write
nothing about its accounts (the database refuses, whatever the instance believes) and sends nothing to an
exchange; the new holder waits out what the old one may still have in flight before it sends; a stopping
instance hands its shards over at the others' next round.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import asyncpg
import pytest

from daemon.app.cluster import ShardKeeper
from daemon.app.http import Metrics
from daemon.app.settings_cluster import ROUND_TRIP_BUDGET_S, ClusterSettings
from daemon.core.shards import shard_of
from daemon.store.leases import LeaseLost, LeaseStore
from daemon.store.postgres import PostgresJournal
from tests.pg_server import create_schema
from tests.unit.test_postgres_failures import _alert, _intent

SHARDS = 4
TTL_S = 10.0
WINDOW_S = 5.0  # the accounts' venue's signed window (Binance's recvWindow)


@pytest.fixture
def journal_url(postgres_url: str) -> Iterator[str]:
    yield create_schema(postgres_url, f"c{os.getpid()}_{time.monotonic_ns()}")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Instance:
    """One cluster member: its journal, its lease tables, its keeper, and which shards it runs."""

    def __init__(self, journal: PostgresJournal, keeper: ShardKeeper, clock: Clock) -> None:
        self.journal, self.keeper, self.clock = journal, keeper, clock
        self.running: set[int] = set()


@contextlib.asynccontextmanager
async def member(url: str, name: str, accounts: list[str]) -> AsyncIterator[Instance]:
    settings = ClusterSettings(
        enabled=True, shards=SHARDS, lease_ttl_s=TTL_S, renew_interval_s=2.5, instance_name=name
    )
    journal = await PostgresJournal.open(url, shared=True)
    store = await LeaseStore.open(url, name, TTL_S, SHARDS, timeout_s=3.0, connect_timeout_s=3.0)
    clock = Clock()
    running: set[int] = set()

    async def start(shard: int) -> None:
        running.add(shard)

    async def stop(shard: int) -> None:
        running.discard(shard)

    keeper = ShardKeeper(
        store,
        settings,
        {a: shard_of(a, SHARDS) for a in accounts},
        dict.fromkeys(accounts, WINDOW_S),
        Metrics(),
        start=start,
        stop=stop,
        clock=clock,
    )
    journal.fence_with(keeper)
    await store.register_accounts(keeper.shard_of)
    instance = Instance(journal, keeper, clock)
    instance.running = running
    try:
        yield instance
    finally:
        await store.close()
        await journal.close()


async def _count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def _expire(url: str, shard: int) -> None:
    """The lease runs out on the database's clock (what a frozen holder's lease does while it is stopped)."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute("UPDATE leases SET expires_at = clock_timestamp() WHERE shard = $1", shard)
    finally:
        await conn.close()


async def test_a_holder_whose_lease_ran_out_writes_nothing_and_sends_nothing(journal_url: str) -> None:
    accounts = ["acct"]
    shard = shard_of("acct", SHARDS)
    async with member(journal_url, "a", accounts) as a:
        await a.keeper._round()
        assert shard in a.running and a.keeper.held_shards() == list(range(SHARDS))
        await _in_cluster_too(journal_url, accounts, a)


async def _in_cluster_too(journal_url: str, accounts: list[str], a: Instance) -> None:
    shard = shard_of("acct", SHARDS)
    async with member(journal_url, "b", accounts) as b:
        await b.keeper._round()
        assert b.running == set(), "b must wait while a's leases are alive"
        # a holds the shard: it writes and may send.
        assert await a.journal.record_alert(_alert(1), ["hook"], 1.0) is not None
        assert a.keeper.may_send("acct") is None

        # a is frozen past its lease: the database lets it run out and b takes the shard.
        await _expire(journal_url, shard)
        await b.keeper._round()
        assert shard in b.running
        # Nothing b sends before what a may have signed can no longer land.
        held_back = b.keeper.may_send("acct")
        assert held_back is not None and "taken over" in held_back
        b.clock.now += WINDOW_S + ROUND_TRIP_BUDGET_S
        assert "left" in (b.keeper.may_send("acct") or ""), "unrenewed, its lease is too short to send on"
        await b.keeper._round()  # renewed
        assert b.keeper.may_send("acct") is None

        # a resumes. Its own clock says the lease is still alive (a frozen process's view): the database refuses.
        with pytest.raises(LeaseLost):
            await a.journal.record_alert(replace(_alert(2), summary="from a, after its lease"), ["hook"], 2.0)
        with pytest.raises(LeaseLost):
            await a.journal.begin_intent(_intent("acct|BTC|long|1|1"))
        assert a.keeper.refusals == 2
        assert await _count(journal_url, "SELECT COUNT(*) FROM topup_intents") == 0
        assert await _count(journal_url, "SELECT COUNT(*) FROM alerts") == 1
        # Its next round finds the lease gone and stops the shard's accounts.
        await a.keeper._round()
        assert shard not in a.running and shard not in a.keeper.held_shards()
        # And by its own clock alone, without asking anyone, a lease past its deadline sends nothing.
        assert b.keeper.may_send("acct") is None
        b.clock.now += TTL_S
        assert b.keeper.may_send("acct") is not None
        with pytest.raises(LeaseLost):
            await b.journal.record_alert(_alert(3), ["hook"], 3.0)


async def test_the_outbox_of_each_instance_sees_only_its_shards(journal_url: str) -> None:
    accounts = [f"acct{n}" for n in range(12)]
    async with member(journal_url, "a", accounts) as a, member(journal_url, "b", accounts) as b:
        await b.keeper.store.leave()  # b joins later (below)
        await a.keeper._round()
        for n, account in enumerate(accounts):
            alert = replace(_alert(1), account=account, identity=replace(_alert(1).identity, account=account))
            assert await a.journal.record_alert(alert, ["hook"], float(n)) is not None
        # b joins: a gives up what is above its share, b takes it.
        await b.keeper._round()
        await a.keeper._round()
        await b.keeper._round()
        assert a.running and b.running and not (a.running & b.running)
        assert a.running | b.running == set(range(SHARDS))
        seen_a = {d.alert.account for d in await a.journal.due_deliveries(100.0)}
        seen_b = {d.alert.account for d in await b.journal.due_deliveries(100.0)}
        assert seen_a.isdisjoint(seen_b) and seen_a | seen_b == set(accounts)
        assert all(shard_of(account, SHARDS) in a.running for account in seen_a)


async def test_a_stopping_instance_hands_its_shards_over_at_the_next_round(journal_url: str) -> None:
    async with member(journal_url, "a", ["x"]) as a, member(journal_url, "b", ["x"]) as b:
        await b.keeper.store.leave()  # b joins after a took every shard
        await a.keeper._round()
        await b.keeper._round()
        assert b.running == set()
        await a.keeper.stop()
        assert a.running == set()
        await b.keeper._round()
        assert b.running == set(range(SHARDS))
        epochs = await _count(journal_url, "SELECT MIN(epoch) FROM leases")
        assert epochs == 2, "each shard's epoch grew at the handover"
