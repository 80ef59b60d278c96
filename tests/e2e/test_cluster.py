"""Cluster mode end to end: several `marginguard run` instances on one PostgreSQL journal share the accounts of one
simulator. Who watches an account is read from the simulator's connection log (each private stream's client
port, named by psutil), never from the daemons' own word.

- 2 instances, 12 accounts (in `make test`): SIGKILL one; its accounts are watched again within the lease TTL +
  a renewal + a snapshot, and an alert for one of them still reaches the receiver.
- 1 instance holding all 120 accounts, then 2 more join: the shares move without an account ever streamed by two
  instances at once, and without the first instance losing a lease.
- slow: 3 instances, 300 accounts: every account's private stream opened by exactly one instance (no two at
  once, ever); SIGKILL one: taken over in < 20 s with a 10 s TTL, and an alert still flows.
- slow: SIGTERM one: its shards are handed over within 5 s and nothing is lost (the alerts raised as it stops
  are delivered, none twice).
- slow: SIGSTOP the owner of an account past its lease, move the account into top-up territory, SIGCONT: exactly
  one top-up, by the new owner; the frozen instance sends nothing for the accounts it lost, writes nothing about
  them to the journal, and steps down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from daemon.notify.receiver import Receiver
from tests.e2e.cluster_checks import JournalAudit, overlaps, requests_from
from tests.e2e.cluster_support import Cluster, ClusterAccount, cluster_sim, move_to_distance
from tests.e2e.support import ADD_MARGIN_PATHS, first, webhook_alerts
from tests.pg_server import create_schema

LEASE_TTL_S = 10.0
RENEW_S = 2.5
TAKEOVER_LIMIT_S = 20.0  # lease TTL + a renewal + one snapshot, with room: asserted with a 10 s TTL
HANDOVER_LIMIT_S = 5.0  # SIGTERM
WARNING = 0.025  # between the warning (3.5 %) and critical (2 %) distances of tests/e2e/support.thresholds
TOPUP = 0.01  # below the top-up trigger (1.5 %)


@pytest.fixture
def journal_url(postgres_url: str) -> Iterator[str]:
    yield create_schema(postgres_url, f"c{os.getpid()}_{time.monotonic_ns()}")


@contextlib.asynccontextmanager
async def running_cluster(
    tmp_path: Path, journal_url: str, accounts: int, instances: int
) -> AsyncIterator[Cluster]:
    sim, specs = cluster_sim(accounts)
    async with (
        sim,
        Receiver() as receiver,
        Cluster(
            sim,
            specs,
            receiver,
            journal_url,
            tmp_path,
            instances,
            lease_ttl_s=LEASE_TTL_S,
            renew_interval_s=RENEW_S,
        ) as cluster,
    ):
        yield cluster


def alert_for(cluster: Cluster, account: ClusterAccount) -> object:
    return first(webhook_alerts(cluster.receiver, account.id), "liquidation_risk")


def duplicate_keys(cluster: Cluster) -> list[str]:
    counts = Counter(alert["idempotency_key"] for alert in webhook_alerts(cluster.receiver))
    return [key for key, count in counts.items() if count > 1]


async def kill_one_and_see_an_alert(cluster: Cluster, victim: str) -> float:
    """SIGKILL `victim`; its accounts are watched again in time, and one of them still alerts. The takeover's
    seconds."""
    takeover = await cluster.kill(victim, within_s=60)
    assert takeover.seconds < TAKEOVER_LIMIT_S, (takeover.seconds, cluster.describe())
    assert set(takeover.new_owners.values()) <= {n for n, i in cluster.instances.items() if i.running}
    orphan = cluster.by_id[sorted(takeover.accounts)[0]]
    move_to_distance(cluster.sim, orphan, WARNING)
    await cluster.until(
        lambda: alert_for(cluster, orphan), 30, f"an alert for {orphan.id} after the takeover"
    )
    await cluster.until(cluster.all_watched_once, 30, "every account watched once after the takeover")
    return takeover.seconds


async def test_two_instances_share_the_accounts_and_one_takes_over_when_the_other_is_killed(
    tmp_path: Path, journal_url: str
) -> None:
    async with running_cluster(tmp_path, journal_url, accounts=12, instances=2) as cluster:
        await cluster.wait_all_watched(60)
        shares = Counter(cluster.holders().values())
        assert set(shares) == {"mg-1", "mg-2"}, shares  # both hold a share
        assert overlaps(cluster) == []
        await kill_one_and_see_an_alert(cluster, "mg-1")
        assert set(cluster.holders().values()) == {"mg-2"}


async def test_instances_that_join_late_get_their_share_and_no_account_is_watched_twice(
    tmp_path: Path, journal_url: str
) -> None:
    # The first instance gives up two thirds of its shards at once: it must keep renewing the rest meanwhile
    # (it once stopped them one by one inside its lease round, lost the rest, and two instances streamed).
    async with running_cluster(tmp_path, journal_url, accounts=120, instances=1) as cluster:
        await cluster.wait_all_watched(60)  # the first instance alone holds every shard
        assert len(cluster.held_by("mg-1")) == 120
        await cluster.start_instance("mg-2")
        await cluster.start_instance("mg-3")
        await cluster.wait_all_watched(90)
        lost = [line for line in cluster.instances["mg-1"].daemon.output.splitlines() if "lease lost" in line]
        assert overlaps(cluster) == [] and lost == [], (overlaps(cluster)[:3], lost[:3])


@pytest.mark.slow
async def test_three_instances_watch_each_of_300_accounts_once_and_take_over_a_killed_one(
    tmp_path: Path, journal_url: str
) -> None:
    async with running_cluster(tmp_path, journal_url, accounts=300, instances=3) as cluster:
        await cluster.wait_all_watched(180)
        shares = Counter(cluster.holders().values())
        assert set(shares) == {"mg-1", "mg-2", "mg-3"} and min(shares.values()) >= 50, shares
        # From the connection log: no account's private stream was ever open in two instances at once, and
        # each account has one open stream now.
        assert overlaps(cluster) == [], overlaps(cluster)[:5]
        open_streams = Counter(s.api_key for s in cluster.sim.sessions.open_sessions() if s.channels)
        assert set(open_streams.values()) == {1} and len(open_streams) == 300
        victim = max(shares, key=lambda name: shares[name])
        await kill_one_and_see_an_alert(cluster, victim)
        assert overlaps(cluster) == [], overlaps(cluster)[:5]
        assert duplicate_keys(cluster) == []


@pytest.mark.slow
async def test_a_terminated_instance_hands_its_shards_over_within_5_s_and_nothing_is_lost(
    tmp_path: Path, journal_url: str
) -> None:
    async with running_cluster(tmp_path, journal_url, accounts=300, instances=3) as cluster:
        await cluster.wait_all_watched(180)
        leaving = "mg-2"
        moved = [cluster.by_id[a] for a in sorted(cluster.held_by(leaving))[:5]]
        for account in moved:  # alerts under way as it stops
            move_to_distance(cluster.sim, account, WARNING)
        await cluster.until(
            lambda: all(alert_for(cluster, a) for a in moved), 30, "the alerts before the stop"
        )
        more = [cluster.by_id[a] for a in sorted(cluster.held_by(leaving))[5:10]]
        for account in more:  # and alerts raised in the very moment it is told to stop
            move_to_distance(cluster.sim, account, WARNING)
        takeover = await cluster.terminate(leaving, within_s=30)
        assert cluster.instances[leaving].daemon.returncode == 0, cluster.instances[leaving].daemon.tail()
        assert takeover.seconds < HANDOVER_LIMIT_S, (takeover.seconds, cluster.describe())
        await cluster.until(cluster.all_watched_once, 30, "every account watched once after the handover")
        await cluster.until(
            lambda: all(alert_for(cluster, a) for a in more), 30, "every alert of the handover"
        )
        assert overlaps(cluster) == [], overlaps(cluster)[:5]
        assert duplicate_keys(cluster) == []


@pytest.mark.slow
async def test_a_frozen_owner_past_its_lease_sends_and_writes_nothing_when_it_resumes(
    tmp_path: Path, journal_url: str
) -> None:
    async with running_cluster(tmp_path, journal_url, accounts=60, instances=3) as cluster:
        await cluster.wait_all_watched(120)
        audit = JournalAudit(cluster, journal_url)
        assert "topup_intents" in await audit.install()

        async def renewing() -> bool:  # every instance's lease round runs (not busy handing shards over)
            renewed = {row["instance"] for row in await audit.rows() if row["tbl"] == "leases"}
            return set(cluster.instances) <= renewed

        await cluster.until(renewing, 30, "every instance to renew its leases")
        frozen = "mg-1"
        target = cluster.by_id[sorted(cluster.held_by(frozen))[0]]
        lost = {cluster.by_id[a].api_key for a in cluster.held_by(frozen)}

        takeover = await cluster.freeze(frozen, within_s=60)  # its leases lapse; the others take its accounts
        new_owner = takeover.new_owners[target.id]
        # Its leases ran out while it was stopped (not before: it was renewing them).
        assert takeover.seconds > LEASE_TTL_S - 2 * RENEW_S, takeover.seconds
        move_to_distance(cluster.sim, target, TOPUP)
        changes = [c for c in cluster.sim.engine.margin_changes if c["api_key"] == target.api_key]

        def topped_up() -> bool:
            changes[:] = [c for c in cluster.sim.engine.margin_changes if c["api_key"] == target.api_key]
            return bool(changes)

        await cluster.until(topped_up, 40, f"{new_owner} to top {target.id} up")
        resumed_at = cluster.signal(frozen, signal.SIGCONT)
        resumed_wall = cluster.instances[frozen].signalled_wall
        assert resumed_wall is not None

        def stepped_down() -> bool:
            # Its streams of before the freeze are closed, and the cluster is whole again (which takes it
            # renewing and claiming its share anew: seconds of its life after the resume).
            old = [
                s
                for s in cluster.sim.sessions.sessions
                if cluster.owner_of(s) == frozen and s.opened_mono < resumed_at and s.open
            ]
            return not old and cluster.all_watched_once()

        async def stepped_down_and_polled() -> bool:
            await audit.poll()
            return stepped_down()

        await cluster.until(stepped_down_and_polled, 60, f"{frozen} to step down after the resume")

        # Exactly one top-up of the account, by the new owner.
        changes = [c for c in cluster.sim.engine.margin_changes if c["api_key"] == target.api_key]
        assert len(changes) == 1, changes
        path = ADD_MARGIN_PATHS[cluster.sim.exchange]
        adds = [
            (n, e)
            for n, e in enumerate(cluster.sim.engine.request_log)
            if e["path"] == path and e["api_key"] == target.api_key
        ]
        assert [cluster.sender_of(n) for n, _e in adds] == [new_owner], adds

        # Nothing sent for the accounts it lost but those it was given back after the resume.
        regained: dict[str, float] = {}  # api key -> when it first opened that account's stream again
        for session in cluster.sim.sessions.since(resumed_at):
            if cluster.owner_of(session) == frozen:
                regained.setdefault(session.api_key, session.opened_at)
        sent = [
            e
            for e in requests_from(cluster, frozen, resumed_wall, lost)
            if e["ts"] < regained.get(str(e["api_key"]), float("inf"))
        ]
        assert sent == [], sent[:5]

        # Nothing written about them to the journal after the resume (the leases are the cluster's own).
        lost_ids = {cluster.by_key[key].id: key for key in lost}
        written = [
            row
            for row in await audit.rows()
            if row["instance"] == frozen
            and row["at"] >= resumed_wall
            and row["account"] in lost_ids
            and row["at"] < regained.get(lost_ids[row["account"]], float("inf"))
        ]
        assert written == [], written[:5]
        unnamed = [row for row in await audit.rows() if row["instance"] == "?" and row["at"] >= resumed_wall]
        assert not unnamed, unnamed[:5]
        # Not vacuous: the frozen instance was seen writing (its renewals) and sending before the freeze.
        assert any(r["instance"] == frozen and r["at"] < resumed_wall for r in await audit.rows())
        assert requests_from(cluster, frozen, 0.0), "no request of the frozen instance was ever named"

        assert duplicate_keys(cluster) == []
