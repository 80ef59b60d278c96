"""The cluster's shared state in PostgreSQL: instances and their heartbeats, one lease per shard, each account's
shard, and the fence (`FENCE`) that action-leading writes run in their own transaction.

Every time here is the database's clock (`clock_timestamp()`): instances on different hosts never compare their
own clocks. A lease is `(shard, owner, epoch, expires_at)`; the epoch grows by one at every claim and never goes
back, so a write fenced on an old epoch is refused even by the same owner. A claim succeeds only on a shard
nobody holds (never leased, released, or expired), a renewal only on a lease still held at its epoch and not yet
expired: a lease that ran out is gone for good, whatever its owner believes. A release sets `expires_at` to now,
so the next owner's wait for what the previous one may still have in flight counts from that moment.

Answers carry durations (seconds left, seconds since), never timestamps, so an instance turns them into
deadlines on its own monotonic clock at once (`daemon.app.cluster`).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

# The SQLSTATE `marginguard_fence` raises (see postgres_schema.py): the writer does not hold the shard.
FENCE_SQLSTATE = "MGL01"
FENCE = "SELECT marginguard_fence($1, $2, $3)"


class LeaseLost(Exception):
    """A write was refused because this instance no longer holds the account's shard at its epoch: it must stop
    acting on the account (another instance has it, or will)."""


class ClusterMismatch(Exception):
    """This instance's cluster settings disagree with what the journal records (exit 2)."""


class Fencer(Protocol):
    """What the journal asks a cluster instance (`daemon.app.cluster.ShardKeeper`) before a write."""

    def fence(self, account: str) -> tuple[str, Sequence[Any]] | None:
        """The fence statement for a write about `account`; None for a message about no configured account;
        raises `LeaseLost` when the account's shard is not held here."""
        ...

    def held_shards(self) -> list[int]: ...

    def refused(self) -> None:
        """The database refused a fenced write (counted; the keeper checks its leases at once)."""
        ...


@dataclass(frozen=True, slots=True)
class Claim:
    shard: int
    epoch: int
    left_s: float  # seconds until the new lease expires (database clock)
    previous_owner: str | None
    # Seconds since the previous lease ended (expired or released); None: never leased before.
    since_previous_s: float | None


@dataclass(frozen=True, slots=True)
class Beat:
    live: tuple[str, ...]  # instances with a heartbeat within the TTL, this one included
    free: tuple[int, ...]  # shards nobody holds


@dataclass(frozen=True, slots=True)
class LeaseRow:
    shard: int
    owner: str | None
    epoch: int
    left_s: float  # negative: expired this long ago
    held_for_s: float | None  # since the current owner acquired it


@dataclass(frozen=True, slots=True)
class InstanceRow:
    name: str
    host: str
    pid: int
    heartbeat_age_s: float
    stopped: bool


class LeaseStore:
    """One instance's view of the lease tables, on a small pool of its own (renewals never queue behind journal
    writes). Every call is bounded by `timeout_s`; a TimeoutError or a connection error propagates."""

    def __init__(self, pool: Any, name: str, ttl_s: float, shards: int, timeout_s: float) -> None:
        """Use `open`."""
        self._pool = pool
        self.name = name
        self.ttl_s = ttl_s
        self.shards = shards
        self._timeout_s = timeout_s

    @classmethod
    async def open(
        cls, url: str, name: str, ttl_s: float, shards: int, timeout_s: float, connect_timeout_s: float
    ) -> LeaseStore:
        """Connect, make sure every shard has its lease row, and check the journal's shard count is ours
        (`ClusterMismatch` otherwise). The journal's migrations must have run (PostgresJournal.open)."""
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=2, timeout=connect_timeout_s, command_timeout=timeout_s
        )
        store = cls(pool, name, ttl_s, shards, timeout_s)
        try:
            await store._prepare()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _prepare(self) -> None:
        async with asyncio.timeout(self._timeout_s), self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('cluster_shards', $1) ON CONFLICT DO NOTHING",
                str(self.shards),
            )
            recorded = int(await conn.fetchval("SELECT value FROM meta WHERE key = 'cluster_shards'"))
            if recorded != self.shards:
                raise ClusterMismatch(
                    f"cluster.shards is {self.shards} here but the journal's cluster runs {recorded} shards:"
                    f" every instance must use the same number (set cluster.shards = {recorded})"
                )
            await conn.execute(
                "INSERT INTO leases (shard) SELECT generate_series(0, $1 - 1) ON CONFLICT DO NOTHING",
                self.shards,
            )
            # Each start is a new owner: the rows of those gone for an hour are history nobody reads.
            await conn.execute(
                "DELETE FROM cluster_instances WHERE heartbeat_at < clock_timestamp() - interval '1 hour'"
            )
            await conn.execute(
                "INSERT INTO cluster_instances (name, host, pid, started_at, heartbeat_at)"
                " VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp())"
                " ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
                " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
                self.name,
                socket.gethostname(),
                os.getpid(),
            )

    async def close(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._pool.close()
        except TimeoutError:
            self._pool.terminate()

    async def register_accounts(self, shard_of: Mapping[str, int]) -> None:
        """Record each configured account's shard (what the outbox and `marginguard cluster` join on)."""
        async with asyncio.timeout(self._timeout_s * 3), self._pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO account_shards (account, shard) VALUES ($1, $2)"
                " ON CONFLICT (account) DO UPDATE SET shard = excluded.shard",
                sorted(shard_of.items()),
            )

    async def accounts_in(self, shards: Sequence[int]) -> list[str]:
        """The accounts any instance registered in these shards."""
        async with asyncio.timeout(self._timeout_s), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT account FROM account_shards WHERE shard = ANY($1::int[]) ORDER BY account",
                list(shards),
            )
        return [str(r["account"]) for r in rows]

    async def beat(self) -> Beat:
        """Heartbeat; the live instances and the free shards as the database sees them now."""
        async with asyncio.timeout(self._timeout_s), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "WITH me AS (UPDATE cluster_instances SET heartbeat_at = clock_timestamp(), stopped_at = NULL"
                " WHERE name = $1 RETURNING name)"
                " SELECT name FROM cluster_instances WHERE stopped_at IS NULL"
                " AND heartbeat_at > clock_timestamp() - make_interval(secs => $2) AND name <> $1"
                " UNION SELECT name FROM me",
                self.name,
                self.ttl_s,
            )
            free = await conn.fetch(
                "SELECT shard FROM leases WHERE owner IS NULL OR expires_at <= clock_timestamp() ORDER BY shard"
            )
        return Beat(tuple(sorted(str(r["name"]) for r in rows)), tuple(int(r["shard"]) for r in free))

    async def renew(self, held: Mapping[int, int]) -> dict[int, float]:
        """Extend the leases held (shard -> epoch) by the TTL; the seconds left of each one renewed. A shard
        missing from the answer is lost."""
        if not held:
            return {}
        shards, epochs = zip(*sorted(held.items()), strict=True)
        async with asyncio.timeout(self._timeout_s), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "UPDATE leases l SET expires_at = clock_timestamp() + make_interval(secs => $2)"
                " FROM unnest($3::int[], $4::bigint[]) AS h(shard, epoch)"
                " WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1"
                " AND l.expires_at > clock_timestamp()"
                " RETURNING l.shard, EXTRACT(EPOCH FROM l.expires_at - clock_timestamp())::float8 AS left_s",
                self.name,
                self.ttl_s,
                list(shards),
                list(epochs),
            )
        return {int(r["shard"]): float(r["left_s"]) for r in rows}

    async def claim(self, shard: int) -> Claim | None:
        """Take a shard nobody holds, at the next epoch; None when someone does (another instance was faster)."""
        async with asyncio.timeout(self._timeout_s), self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "WITH prev AS (SELECT shard, owner, epoch, expires_at, acquired_at FROM leases"
                " WHERE shard = $2 FOR UPDATE)"
                " UPDATE leases l SET owner = $1, epoch = prev.epoch + 1,"
                " expires_at = clock_timestamp() + make_interval(secs => $3), acquired_at = clock_timestamp()"
                " FROM prev WHERE l.shard = prev.shard"
                " AND (prev.owner IS NULL OR prev.expires_at <= clock_timestamp())"
                " RETURNING l.epoch, prev.owner AS previous_owner,"
                " EXTRACT(EPOCH FROM l.expires_at - clock_timestamp())::float8 AS left_s,"
                " CASE WHEN prev.acquired_at IS NULL THEN NULL"
                " ELSE EXTRACT(EPOCH FROM clock_timestamp() - prev.expires_at)::float8 END AS since_s",
                self.name,
                shard,
                self.ttl_s,
            )
        if row is None:
            return None
        since = row["since_s"]
        return Claim(
            shard,
            int(row["epoch"]),
            float(row["left_s"]),
            None if row["previous_owner"] is None else str(row["previous_owner"]),
            None if since is None else float(since),
        )

    async def release(self, held: Mapping[int, int]) -> None:
        """Give leases up now (their accounts already stopped here): the next owner may claim at once."""
        if not held:
            return
        shards, epochs = zip(*sorted(held.items()), strict=True)
        async with asyncio.timeout(self._timeout_s), self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE leases l SET expires_at = LEAST(l.expires_at, clock_timestamp())"
                " FROM unnest($2::int[], $3::bigint[]) AS h(shard, epoch)"
                " WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1",
                self.name,
                list(shards),
                list(epochs),
            )

    async def leave(self) -> None:
        """This instance stops: it no longer counts among the live ones (its share goes to the others)."""
        async with asyncio.timeout(self._timeout_s), self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE cluster_instances SET stopped_at = clock_timestamp() WHERE name = $1", self.name
            )


async def cluster_rows(conn: Any) -> tuple[list[InstanceRow], list[LeaseRow], dict[int, int]]:
    """What `marginguard cluster` and /status show: instances, leases, and how many accounts each shard has."""
    instances = [
        InstanceRow(
            str(r["name"]), str(r["host"]), int(r["pid"]), float(r["age"]), r["stopped_at"] is not None
        )
        for r in await conn.fetch(
            "SELECT name, host, pid, stopped_at,"
            " EXTRACT(EPOCH FROM clock_timestamp() - heartbeat_at)::float8 AS age"
            " FROM cluster_instances ORDER BY name"
        )
    ]
    leases = [
        LeaseRow(
            int(r["shard"]),
            None if r["owner"] is None else str(r["owner"]),
            int(r["epoch"]),
            float(r["left_s"]),
            None if r["held_s"] is None else float(r["held_s"]),
        )
        for r in await conn.fetch(
            "SELECT shard, owner, epoch,"
            " EXTRACT(EPOCH FROM expires_at - clock_timestamp())::float8 AS left_s,"
            " EXTRACT(EPOCH FROM clock_timestamp() - acquired_at)::float8 AS held_s"
            " FROM leases ORDER BY shard"
        )
    ]
    counts = {
        int(r["shard"]): int(r["n"])
        for r in await conn.fetch("SELECT shard, COUNT(*) AS n FROM account_shards GROUP BY shard")
    }
    return instances, leases, counts


def fence_params(shard: int, owner: str, epoch: int) -> tuple[str, Sequence[Any]]:
    """The fence statement for a write's transaction (raises `MGL01` there when the lease is not held)."""
    return FENCE, (shard, owner, epoch)


def is_fence_refusal(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and getattr(exc, "sqlstate", None) == FENCE_SQLSTATE
