"""Many accounts in one process: 1,000 accounts, each with its own private stream and a few positions, over
500 symbols whose marks move once a second (Binance USD-M simulator in its own process).

Printed: the time to bring every account up, resident memory per account beyond the first, this process's
CPU share while marks tick (1.0 = one core busy), p50/p99 latency from the simulator publishing a tick to the
account's model state being updated, and the number of mark subscriptions (goal: one per symbol, whatever the
number of accounts). Markets are loaded once by the hub and shared; `gc.freeze()` after start-up moves the
long-lived objects out of the collector's way.

    .venv/bin/python bench/connector_scale.py                     # 1000 accounts, 500 symbols, 20 s
    .venv/bin/python bench/connector_scale.py --accounts 200 --seconds 10 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.connector_sim import SimulatorProcess, account_of, pin_to, tick_of
from daemon.core.events import MarkPrice
from daemon.exchanges.connector import Connector, ConnectorUpdate
from daemon.exchanges.feeds import FeedSettings
from daemon.exchanges.marketdata import HubSettings, hub_for


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=1000, help="accounts (default 1000)")
    parser.add_argument("--symbols", type=int, default=500, help="symbols (default 500)")
    parser.add_argument("--legs", type=int, default=3, help="positions per account (default 3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of 1 Hz ticks measured (20)")
    parser.add_argument("--batch", type=int, default=50, help="accounts started together (default 50)")
    parser.add_argument(
        "--profile", action="store_true", help="print this process's top functions while ticking"
    )
    return parser.parse_args()


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


async def until(condition: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace, sim: SimulatorProcess) -> dict[str, Any]:
    seen: list[tuple[int, float]] = []
    counting = False

    def on_update(update: ConnectorUpdate) -> None:
        if counting:
            now = time.time()
            seen.extend((tick_of(e.price), now) for e in update.folded if isinstance(e, MarkPrice))

    settings = FeedSettings(reconcile_every_s=600.0)
    first = account_of(sim.config, sim.api_keys[0], 0)
    figures: dict[str, Any] = {}
    async with hub_for(first, HubSettings(stale_after_s=120.0)) as hub, contextlib.AsyncExitStack() as stack:
        await hub.load_markets()
        started = time.monotonic()
        first_connector = await stack.enter_async_context(
            Connector(first, hub, settings, on_update=on_update)
        )
        await until(lambda: first_connector.feed.snapshots >= 2, 60, "first account")
        gc.collect()
        rss_one = rss_mb()
        connectors = [first_connector]
        for begin in range(1, len(sim.api_keys), args.batch):
            batch = [
                await stack.enter_async_context(
                    Connector(account_of(sim.config, key, n), hub, settings, on_update=on_update)
                )
                for n, key in enumerate(sim.api_keys[begin : begin + args.batch], start=begin)
            ]
            connectors.extend(batch)
            await until(lambda b=batch: all(c.feed.snapshots >= 2 for c in b), 120, "accounts")
        figures["startup_s"] = time.monotonic() - started
        gc.collect()
        gc.freeze()
        figures["rss_one_mb"] = rss_one
        figures["rss_all_mb"] = rss_mb()
        figures["legs"] = sum(len(c.state.legs) for c in connectors)
        figures["priced_legs"] = sum(1 for c in connectors for leg in c.view.legs if leg.risk is not None)

        profiler = cProfile.Profile() if args.profile else None
        sent_warm = await asyncio.to_thread(sim.go, 1.0, 2.0, 1)
        counting = True
        cpu_before, sim_cpu_before, wall_before = time.process_time(), sim.cpu_seconds(), time.monotonic()
        if profiler is not None:
            profiler.enable()
        sent = await asyncio.to_thread(sim.go, 1.0, args.seconds, max(sent_warm) + 1)
        await asyncio.sleep(0.5)
        if profiler is not None:
            profiler.disable()
        wall = time.monotonic() - wall_before
        figures["cpu_share"] = (time.process_time() - cpu_before) / wall
        figures["sim_cpu_share"] = (sim.cpu_seconds() - sim_cpu_before) / wall
        counting = False
        latencies = sorted((received - sent[tick]) * 1000.0 for tick, received in seen if tick in sent)
        figures["updates"] = len(latencies)
        figures["updates_per_s"] = len(latencies) / args.seconds
        figures["p50_ms"] = statistics.median(latencies) if latencies else float("nan")
        figures["p99_ms"] = latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan")
        figures["hub_symbols"] = len(hub.subscriptions)
        figures["hub_listeners"] = sum(hub.subscriptions.values())
        figures["markets_loads"] = hub.markets_loads
        channels = sim.channels()
        figures["mark_channels"] = len(channels)
        figures["mark_sockets_max"] = max(channels.values(), default=0)
        figures["mark_subscriptions"] = sum(channels.values())
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return figures


def main() -> None:
    args = parse_args()
    sim = SimulatorProcess(args.symbols, args.accounts, args.legs, cpu=0)
    note = pin_to(1)
    try:
        figures = asyncio.run(run(args, sim))
    finally:
        sim.stop()
    per_account = (figures["rss_all_mb"] - figures["rss_one_mb"]) / max(1, args.accounts - 1)
    print(f"{args.accounts} accounts x {args.legs} legs over {args.symbols} symbols at 1 Hz")
    print(f"  client process {note}; simulator {sim.pinned}")
    print(
        f"  start-up: {figures['startup_s']:.1f} s for all accounts (snapshot, subscription, reconciliation)"
    )
    print(f"  legs held: {figures['legs']}, priced by the model: {figures['priced_legs']}")
    print(
        f"  memory: {figures['rss_one_mb']:.0f} MB with one account, {figures['rss_all_mb']:.0f} MB with all; "
        f"{per_account:.3f} MB per account beyond the first (goal <= 1 MB)"
    )
    print(
        f"  CPU share while ticking: {figures['cpu_share']:.2f} of a core "
        f"(simulator process: {figures['sim_cpu_share']:.2f})"
    )
    print(
        f"  marks folded into account states: {figures['updates_per_s']:.0f}/s; frame-to-model latency "
        f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms"
    )
    print(
        f"  mark subscriptions at the exchange: {figures['mark_subscriptions']} over {figures['mark_channels']} "
        f"symbol channels (at most {figures['mark_sockets_max']} socket per channel; goal: one per symbol); "
        f"hub: {figures['hub_symbols']} symbols, {figures['hub_listeners']} account listeners; "
        f"markets loaded {figures['markets_loads']} time(s)"
    )


if __name__ == "__main__":
    main()
