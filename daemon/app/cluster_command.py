"""`marginguard cluster`: the instances sharing a PostgreSQL journal, and who holds which shard.

Read straight from the database, so it works while any instance (or none) runs: instances with the age of their
heartbeat, each shard's owner, epoch, how long its lease has left (negative: expired that long ago), how long the
owner has held it, and how many accounts it has. JSON when piped or with --json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cluster", help="a cluster's instances, shards, owners, epochs and lease ages (PostgreSQL journal)"
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="the TOML configuration")
    parser.add_argument("--json", action="store_true", help="JSON output even in a terminal")
    parser.set_defaults(handler=run_cluster)


def run_cluster(args: argparse.Namespace) -> int:
    from daemon.app.settings import load_or_report

    settings = load_or_report(args.config)
    if settings is None:
        return EXIT_INVALID
    url = settings.daemon.journal_url_value()
    if url is None or not settings.cluster.enabled:
        print(
            "marginguard cluster: this configuration runs one daemon (set cluster.enabled and daemon.journal_url)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        document = asyncio.run(_read(url))
    except (OSError, TimeoutError) as error:
        print(f"marginguard cluster: the journal cannot be read: {type(error).__name__}", file=sys.stderr)
        return EXIT_FAILED
    if args.json or not sys.stdout.isatty():
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for line in _lines(document):
            print(line)
    return EXIT_OK


async def _read(url: str) -> dict[str, Any]:
    import asyncpg

    from daemon.store.leases import cluster_rows

    async with asyncio.timeout(10):
        conn = await asyncpg.connect(url, timeout=5)
        try:
            instances, leases, counts = await cluster_rows(conn)
        finally:
            await conn.close()
    return {
        "instances": [
            {
                "name": i.name,
                "host": i.host,
                "pid": i.pid,
                "heartbeat_age_s": round(i.heartbeat_age_s, 2),
                "stopped": i.stopped,
                "shards_held": sum(1 for lease in leases if lease.owner == i.name and lease.left_s > 0),
            }
            for i in instances
        ],
        "shards": [
            {
                "shard": lease.shard,
                "owner": lease.owner if lease.left_s > 0 else None,
                "last_owner": lease.owner,
                "epoch": lease.epoch,
                "lease_left_s": round(lease.left_s, 2),
                "held_for_s": None if lease.held_for_s is None else round(lease.held_for_s, 2),
                "accounts": counts.get(lease.shard, 0),
            }
            for lease in leases
        ],
    }


def _lines(document: dict[str, Any]) -> list[str]:
    from daemon.app.ops_commands import table_lines

    instances = [("instance", "host", "pid", "heartbeat", "shards", "state")]
    for i in document["instances"]:
        state = "stopped" if i["stopped"] else "live"
        instances.append(
            (
                i["name"],
                i["host"],
                str(i["pid"]),
                f"{i['heartbeat_age_s']:.1f} s ago",
                str(i["shards_held"]),
                state,
            )
        )
    shards = [("shard", "owner", "epoch", "lease left", "held for", "accounts")]
    for s in document["shards"]:
        if s["epoch"] == 0 and not s["accounts"]:
            continue  # never leased and empty: noise
        held = "-" if s["held_for_s"] is None else f"{s['held_for_s']:.0f} s"
        owner = s["owner"] or f"free (last {s['last_owner'] or 'none'})"
        shards.append(
            (str(s["shard"]), owner, str(s["epoch"]), f"{s['lease_left_s']:.1f} s", held, str(s["accounts"]))
        )
    return [*table_lines(instances), "", *table_lines(shards)]
