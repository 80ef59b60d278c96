"""Leases and fencing on a real PostgreSQL: two instances of one cluster, each with its lease tables and its
journal, played round by round (`ShardKeeper._round`) on clocks the test moves.

What a user relies on: one holder per shard; a holder whose lease ran out — frozen, partitioned, slow — can write
nothing about its accounts (the database refuses, whatever the instance believes) and sends nothing to an
exchange; the new holder waits out what the old one may still have in flight before it sends; a stopping
instance hands its shards over at the others' next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Collection, Iterator
from dataclasses import replace
from pathlib import Path

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

    async def stop(shards: Collection[int]) -> None:
        running.difference_update(shards)

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


async def test_cut_off_from_the_database_an_instance_keeps_watching_and_alerting_but_sends_nothing(
    journal_url: str,
) -> None:
    from tests.unit.test_postgres_failures import Partition

    shard = shard_of("acct", SHARDS)
    async with Partition(journal_url) as partition, member(partition.url, "a", ["acct"]) as a:
        await a.keeper._round()
        assert shard in a.running
        partition.cut()
        a.clock.now += TTL_S + 1  # the lease runs out while the database cannot be asked
        await a.keeper._round()  # each call waits out its bound: renewal, then heartbeat
        # Blind would be worse than told twice: the account is still watched, its alerts go out from memory...
        assert shard in a.running and a.keeper.status()["held"][0]["orphaned"]
        alert = await a.journal.record_alert(_alert(1), ["hook"], 1.0)
        assert alert is not None and a.keeper.may_deliver(alert)
        assert [d.alert.sequence for d in await a.journal.due_deliveries(2.0)] == [1]
        # ...but nothing goes to the exchange: another instance may hold the account by now.
        assert "cannot be reached" in (a.keeper.may_send("acct") or "")

        async with member(journal_url, "b", ["acct"]) as b:
            await _expire(journal_url, shard)
            await b.keeper._round()
            assert shard in b.running
            partition.heal()
            await a.keeper._round()  # the database answers: the lease is b's now
            assert shard not in a.running
            assert not a.keeper.may_deliver(alert)


async def test_marginguard_cluster_shows_instances_shards_owners_and_epochs(
    journal_url: str, tmp_path: Path
) -> None:
    accounts = [f"acct{n}" for n in range(8)]
    config = tmp_path / "marginguard.toml"
    config.write_text(
        f'[daemon]\njournal_url = "{journal_url}"\nstorage_path = "{tmp_path / "j.sqlite"}"\n'
        f"[cluster]\nenabled = true\nshards = {SHARDS}\n"
    )
    async with member(journal_url, "a", accounts) as a, member(journal_url, "b", accounts) as b:
        await b.keeper.store.leave()
        await a.keeper._round()
        await b.keeper._round()
        await a.keeper._round()
        await b.keeper._round()
        answer = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "daemon", "cluster", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert answer.returncode == 0, answer.stderr
        document = json.loads(answer.stdout)  # piped: JSON
        live = {i["name"]: i for i in document["instances"] if not i["stopped"]}
        assert set(live) == {"a", "b"}
        owners = {s["shard"]: s["owner"] for s in document["shards"]}
        assert owners == {
            **dict.fromkeys(sorted(a.running), "a"),
            **dict.fromkeys(sorted(b.running), "b"),
        }
        assert live["a"]["shards_held"] == len(a.running) and live["b"]["shards_held"] == len(b.running)
        assert all(s["epoch"] >= 1 and s["lease_left_s"] > 0 for s in document["shards"])
        assert sum(s["accounts"] for s in document["shards"]) == len(accounts)
        assert journal_url not in answer.stdout + answer.stderr


async def test_marginguard_cluster_refuses_a_single_daemon_configuration(tmp_path: Path) -> None:
    config = tmp_path / "marginguard.toml"
    config.write_text(f'[daemon]\nstorage_path = "{tmp_path / "j.sqlite"}"\n')
    answer = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "daemon", "cluster", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode == 2
    assert "cluster.enabled" in answer.stderr and answer.stdout == ""


async def test_accounts_another_configuration_added_are_reported_by_the_instance_that_lacks_them(
    journal_url: str,
) -> None:
    newer = ["old", "added-in-a-rollout"]
    async with member(journal_url, "a", ["old"]) as a, member(journal_url, "b", newer) as b:
        await b.keeper.store.leave()  # b is the new configuration, registered but not yet running
        await a.keeper._round()  # a holds every shard, "added-in-a-rollout"'s included
        assert a.keeper.unwatched == ["added-in-a-rollout"]
        assert a.keeper.status()["unwatched_accounts"] == ["added-in-a-rollout"]
