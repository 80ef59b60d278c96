"""Cluster mode under kill cycles: 3 `marginguard run` instances on one PostgreSQL database share M simulated
accounts; N times, with top-ups and alerts under way, one instance is SIGKILLed, the others take its accounts
over, and a fresh instance joins in its place.

Each cycle moves a few accounts into top-up territory and a few into warning (the victim's first) just before
the kill: each top-up account must get exactly one top-up (one margin change at the simulator per intent) and its
`topup_done` alert, each warning account its `liquidation_risk` alert and no top-up.
The simulator, the webhook receiver and the bench share one event loop (tests/e2e/cluster_support.py); who
watches an account comes from the simulator's connection log.

  handover   seconds from the SIGKILL until every account the victim watched is watched by a running instance
             again (its new private stream opened): min / median / p90 / max over the cycles;
  CPU        each instance's /proc utime+stime over its life, as a share of one core (and in a quiet window
             once all accounts are watched at the start);
  DB q/s     committed + rolled-back transactions of the bench's own database (pg_stat_database) per second,
             per 1,000 accounts, over the whole run;
  invariants double top-ups (an account moved once with more than one margin change), duplicate deliveries
             (one idempotency key received twice at the receiver), lost alerts (a moved account without its
             expected alert at the end).

    .venv/bin/python bench/cluster.py --cycles 3 --accounts 60        # about 3 minutes
    .venv/bin/python bench/cluster.py                                 # 20 cycles over 300 accounts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import command_line, json_safe, percentile
from bench.harness import cpu_seconds, load_average
from daemon.notify.receiver import Receiver
from tests.e2e.cluster_checks import overlaps
from tests.e2e.cluster_support import Cluster, ClusterAccount, cluster_sim, move_to_distance
from tests.e2e.support import first, webhook_alerts
from tests.pg_server import test_database

TOPUP_DISTANCE = 0.01  # below the top-up trigger (1.5 %) of tests/e2e/support.topup_section
WARNING_DISTANCE = 0.025  # between the warning (3.5 %) and critical (2 %) distances: an alert, no top-up
# What each kind of move must bring to the receiver. A jump straight into top-up territory is topped up before an
# alert's minimum duration passes, so it brings `topup_done` (not `liquidation_risk`), as with one daemon.
EXPECTED = {"topup": "topup_done", "alert": "liquidation_risk"}


def _lines(cluster: Cluster, event: str) -> int:
    """How many log lines of every instance, dead or alive, name `event`."""
    return sum(i.daemon.output.count(event) for i in cluster.instances.values())


def _changes_by_account(sim: Any, accounts: list[ClusterAccount]) -> list[dict[str, Any]]:
    """The simulator's margin changes, each with its account id."""
    by_key = {a.api_key: a.id for a in accounts}
    return [{**c, "account": by_key.get(c["api_key"], "?")} for c in sim.engine.margin_changes]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=20, help="kill cycles (20)")
    parser.add_argument("--accounts", type=int, default=300, help="simulated accounts (300)")
    parser.add_argument("--instances", type=int, default=3, help="instances (3)")
    parser.add_argument(
        "--moves", type=int, default=2, help="accounts moved per cycle into top-up and into warning, each (2)"
    )
    parser.add_argument("--lease-ttl", type=float, default=10.0, help="cluster.lease_ttl_s (10)")
    parser.add_argument("--renew", type=float, default=2.5, help="cluster.renew_interval_s (2.5)")
    parser.add_argument(
        "--settle-timeout", type=float, default=180.0, help="seconds to wait for a settled cluster (180)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args()


async def transactions(url: str) -> int:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        value = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return int(value or 0)


class Lives:
    """CPU seconds and wall time of every instance process, read while it lives."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    def born(self, name: str) -> None:
        self.started[name] = time.monotonic()

    def sample(self, cluster: Cluster, name: str) -> None:
        instance = cluster.instances[name]
        try:
            self.cpu[name] = cpu_seconds(instance.pid)
        except OSError:
            return  # gone: keep the last sample
        self.wall[name] = time.monotonic() - self.started[name]

    def shares(self) -> list[float]:
        return [self.cpu[n] / self.wall[n] for n in self.cpu if self.wall.get(n)]


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    figures: dict[str, Any] = {"accounts": args.accounts, "instances": args.instances}
    sim, accounts = cluster_sim(args.accounts)
    work = Path(tempfile.mkdtemp(prefix="mg-cluster-"))
    lives = Lives()
    moved: dict[str, str] = {}  # account id -> what it was moved into: "topup" or "alert" (each moved once)
    victims_of: dict[
        str, str
    ] = {}  # moved account -> the instance killed right after it was moved, if its own
    handovers: list[float] = []
    rejoins: list[float] = []  # seconds from a fresh instance's start until the cluster is settled again
    tx0, t0 = await transactions(url), time.monotonic()
    async with (
        sim,
        Receiver() as receiver,
        Cluster(
            sim,
            accounts,
            receiver,
            url,
            work,
            args.instances,
            lease_ttl_s=args.lease_ttl,
            renew_interval_s=args.renew,
        ) as cluster,
    ):
        for name in cluster.instances:
            lives.born(name)
        figures["first_all_watched_s"] = await cluster.wait_all_watched(300)
        before = {name: cpu_seconds(i.pid) for name, i in cluster.instances.items()}
        quiet_s = 10.0
        await asyncio.sleep(quiet_s)  # a measuring window, not a wait for a condition
        figures["quiet_cpu_share"] = [
            (cpu_seconds(i.pid) - before[name]) / quiet_s for name, i in cluster.instances.items()
        ]
        born = len(cluster.instances)
        for cycle in range(args.cycles):
            running = [n for n, i in cluster.instances.items() if i.running]
            victim = running[cycle % len(running)]
            held = set(cluster.held_by(victim))
            untouched = [a for a in accounts if a.id not in moved]
            theirs = [a for a in untouched if a.id in held][: args.moves]
            others = [a for a in untouched if a.id not in held][: 2 * args.moves - len(theirs)]
            for number, account in enumerate([*theirs, *others]):
                # alternately into top-up territory and into warning only, the victim's and the others' alike
                kind = "topup" if number % 2 == 0 else "alert"
                move_to_distance(sim, account, TOPUP_DISTANCE if kind == "topup" else WARNING_DISTANCE)
                moved[account.id] = kind
            victims_of.update({a.id: victim for a in theirs})
            lives.sample(cluster, victim)
            try:
                takeover = await cluster.kill(victim, within_s=args.settle_timeout)
            except AssertionError as failure:  # the cluster did not take the accounts over: stop here
                handovers.append(float("inf"))
                print(f"cycle {cycle + 1}: {str(failure).splitlines()[0]}", file=sys.stderr)
                print(cluster.describe(), file=sys.stderr)
                break
            handovers.append(takeover.seconds)
            print(
                f"cycle {cycle + 1}/{args.cycles}: killed {victim} ({len(takeover.accounts)} accounts), "
                f"watched again after {takeover.seconds:.2f} s",
                file=sys.stderr,
            )
            born += 1
            name = f"mg-{born}"
            await cluster.start_instance(name)
            lives.born(name)
            try:
                rejoins.append(await cluster.wait_all_watched(args.settle_timeout))
            except AssertionError as failure:
                rejoins.append(float("inf"))
                print(f"cycle {cycle + 1}: {str(failure).splitlines()[0]}", file=sys.stderr)
                print(cluster.describe(), file=sys.stderr)

        def delivered(account_id: str) -> bool:
            return bool(first(webhook_alerts(receiver, account_id), EXPECTED[moved[account_id]]))

        try:
            await cluster.until(lambda: all(delivered(a) for a in moved), 90, "every moved account's alert")
        except AssertionError as failure:
            print(str(failure).splitlines()[0], file=sys.stderr)
        for name, instance in cluster.instances.items():
            if instance.running:
                lives.sample(cluster, name)
        elapsed = time.monotonic() - t0
        tx1 = await transactions(url)
        changes = Counter(c["account"] for c in _changes_by_account(sim, accounts))
        keys = Counter(doc["idempotency_key"] for doc in webhook_alerts(receiver))
        wanted = {a for a, kind in moved.items() if kind == "topup"}

        def broken(account_id: str) -> bool:
            return changes[account_id] != (1 if account_id in wanted else 0) or not delivered(account_id)

        figures.update(
            cycles=args.cycles,
            handover_s=handovers,
            cpu_share=lives.shares(),
            tx_per_s=(tx1 - tx0) / elapsed,
            db_tx_per_s_per_1000=(tx1 - tx0) / elapsed / (args.accounts / 1000.0),
            elapsed_s=elapsed,
            topups_asked=len(wanted),
            alerts_asked=len(moved),
            double_topups=sum(1 for a in wanted if changes[a] > 1),
            missing_topups=sum(1 for a in wanted if changes[a] == 0),
            unasked_topups=sum(n for a, n in changes.items() if a not in wanted),
            duplicate_deliveries=sum(n - 1 for n in keys.values() if n > 1),
            lost_alerts=sum(1 for a in moved if not delivered(a)),
            overlapping_streams=len(overlaps(cluster)),
            rejoin_s=rejoins,
            leases_lost=_lines(cluster, "shard lease lost"),
            runner_restarts=_lines(cluster, "account runner failed"),
            problems=[
                {
                    "account": a,
                    "asked": moved[a],
                    "victims": victims_of.get(a, "-"),
                    "margin_changes": changes[a],
                    "alerts": [
                        f"{d['kind']}/{d['severity']}{'/resolved' if d['resolved'] else ''}"
                        for d in webhook_alerts(receiver, a)
                    ],
                }
                for a in moved
                if broken(a)
            ],
        )
    return figures


def report(args: argparse.Namespace, figures: dict[str, Any], notes: dict[str, str]) -> None:
    print(f"command: {command_line()}")
    print(
        f"{args.instances} instances, {args.accounts} accounts, {args.cycles} SIGKILL cycles, {args.moves} accounts "
        f"moved into top-up and {args.moves} into warning per cycle; lease TTL {args.lease_ttl:g} s, renewal {args.renew:g} s"
    )
    print(f"load average before: {notes['load_before']}, after: {notes['load_after']}")
    print(f"all accounts watched once {figures['first_all_watched_s']:.1f} s after the first start")
    hand = [h for h in figures["handover_s"] if h != float("inf")]
    if len(hand) < len(figures["handover_s"]):
        print(
            f"a killed instance's accounts were never all watched again (cycle {len(figures['handover_s'])})"
        )
    print(f"{'':24s} {'min':>7s} {'median':>7s} {'p90':>7s} {'max':>7s}")
    if hand:
        print(
            f"{'handover s':24s} {min(hand):>7.2f} {statistics.median(hand):>7.2f} "
            f"{percentile(hand, 0.9):>7.2f} {max(hand):>7.2f}"
        )
    rejoin = [r for r in figures["rejoin_s"] if r != float("inf")]
    if rejoin:
        print(
            f"{'rejoin settled s':24s} {min(rejoin):>7.2f} {statistics.median(rejoin):>7.2f} "
            f"{percentile(rejoin, 0.9):>7.2f} {max(rejoin):>7.2f}"
        )
    never = len(figures["rejoin_s"]) - len(rejoin)
    for label, values in (
        ("CPU core, lifetime", figures["cpu_share"]),
        ("CPU core, quiet window", figures["quiet_cpu_share"]),
    ):
        print(
            f"{label:24s} {min(values):>7.3f} {statistics.median(values):>7.3f} "
            f"{percentile(values, 0.9):>7.3f} {max(values):>7.3f}"
        )
    print(
        f"DB transactions/s: {figures['tx_per_s']:.1f}, per 1,000 accounts: {figures['db_tx_per_s_per_1000']:.1f}"
    )
    print(
        f"invariants over {figures['topups_asked']} top-ups and {figures['alerts_asked']} alerts asked: double top-ups {figures['double_topups']}, "
        f"missing top-ups {figures['missing_topups']}, top-ups nobody asked for {figures['unasked_topups']}, "
        f"duplicate deliveries {figures['duplicate_deliveries']}, lost alerts {figures['lost_alerts']}, "
        f"streams open in two instances at once {figures['overlapping_streams']}"
    )
    print(
        f"cluster health: rejoins never settled {never}, shard leases lost {figures['leases_lost']}, "
        f"account runner restarts {figures['runner_restarts']}"
    )
    for problem in figures["problems"]:
        print(
            f"  {problem['account']} (asked: {problem['asked']}; moved before killing its owner: "
            f"{problem['victims']}): "
            f"{problem['margin_changes']} margin changes, alerts {problem['alerts']}"
        )


def main() -> None:
    args = parse_args()
    load_before = load_average()
    with test_database() as url:  # a database of its own: its transaction counts are the instances' alone
        figures = asyncio.run(run(args, url))
    notes = {"load_before": load_before, "load_after": load_average()}
    if args.json:
        print(
            json.dumps(
                json_safe({"command": command_line(), "args": vars(args), **notes, **figures}), indent=1
            )
        )
    else:
        report(args, figures, notes)


if __name__ == "__main__":
    main()
