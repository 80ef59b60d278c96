"""Connector + margin model against a bare ccxt watch loop, on the same simulated mark-price feed.

The simulator (Binance USD-M, its own process) moves every one of `--symbols` marks `--ticks` times a second.
In this process, side by side and at the same time:
- bare: one ccxt.pro client, one `watch_mark_price` task per symbol, counting what reaches user code;
- connector: one `MarketHub` and one `Connector` per account (each holding `--legs` of the symbols, half
  cross, half isolated), counting every mark folded into an account's state with its model view computed.

Printed per symbol count: updates/s of each, their ratio (goal >= 0.8), and latency p50/p99 from the moment
the simulator published the tick to the moment the update reached user code (bare) or the model state
(connector). Both sides share this process's CPU, as they would in the daemon.

    .venv/bin/python bench/connector_throughput.py                 # 100 and 500 symbols, ~30 s in all
    .venv/bin/python bench/connector_throughput.py --symbols 500 --seconds 20 --ticks 4
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ccxt.pro

from bench.connector_sim import SimulatorProcess, account_of, client_config, pin_to, symbol_names, tick_of
from daemon.core.events import MarkPrice
from daemon.exchanges.connector import Connector, ConnectorUpdate
from daemon.exchanges.feeds import FeedSettings
from daemon.exchanges.marketdata import HubSettings, hub_for


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, nargs="+", default=[100, 500], help="symbol counts (100 500)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of ticks before measuring (2)")
    parser.add_argument("--frames", type=float, default=1000.0, help="frames/s offered per side (1000)")
    parser.add_argument("--ticks", type=float, default=0.0, help="ticks/s (overrides --frames)")
    parser.add_argument("--legs", type=int, default=4, help="positions per account (default 4)")
    parser.add_argument(
        "--profile", action="store_true", help="print this process's top functions (cProfile)"
    )
    return parser.parse_args()


@dataclass
class Side:
    name: str
    counting: bool = False
    updates: int = 0
    seen: list[tuple[int, float]] = field(default_factory=list)  # (tick, wall time received)

    def record(self, price: float) -> None:
        if self.counting:
            self.updates += 1
            self.seen.append((tick_of(price), time.time()))


async def bare_loop(client: Any, symbol: str, side: Side) -> None:
    while True:
        ticker = await client.watch_mark_price(symbol)
        side.record(float(ticker["markPrice"]))


async def run(symbols: int, args: argparse.Namespace) -> dict[str, Any]:
    accounts = max(1, symbols // args.legs)
    sim = SimulatorProcess(symbols, accounts, args.legs, cpu=0)
    ticks = args.ticks or args.frames / symbols
    bare, connected = Side("bare"), Side("connector")
    try:
        unified = [f"{name[:-4]}/USDT:USDT" for name in symbol_names(symbols)]
        client = ccxt.pro.binanceusdm(client_config(sim.config))
        await client.load_markets()

        def on_update(update: ConnectorUpdate) -> None:
            for event in update.folded:
                if isinstance(event, MarkPrice):
                    connected.record(event.price)

        settings = FeedSettings(reconcile_every_s=3600.0)
        first = account_of(sim.config, sim.api_keys[0], 0)
        async with (
            hub_for(first, HubSettings(stale_after_s=30.0)) as hub,
            contextlib.AsyncExitStack() as stack,
        ):
            for number, key in enumerate(sim.api_keys):
                account = account_of(sim.config, key, number)
                await stack.enter_async_context(Connector(account, hub, settings, on_update=on_update))
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(bare_loop(client, symbol, bare)) for symbol in unified]
                await _until(
                    lambda: len(hub.subscriptions) == symbols and sum(sim.channels().values()) >= 2 * symbols
                )
                gc.collect()
                gc.freeze()
                sent_warm = await asyncio.to_thread(sim.go, ticks, args.warmup, 1)
                bare.counting = connected.counting = True
                cpu_before = time.process_time()
                started = time.monotonic()
                sent = await asyncio.to_thread(sim.go, ticks, args.seconds, max(sent_warm) + 1)
                await asyncio.sleep(0.5)  # the last tick's frames are in flight
                elapsed = time.monotonic() - started
                cpu = time.process_time() - cpu_before
                bare.counting = connected.counting = False
                for task in tasks:
                    task.cancel()
        await client.close()
    finally:
        sim.stop()
    return {
        "symbols": symbols,
        "accounts": accounts,
        "ticks_per_s": ticks,
        "frames_per_s": ticks * symbols,
        "elapsed": elapsed,
        "client_cpu_share": cpu / elapsed,
        "bare": summary(bare, sent, args.seconds),
        "connector": summary(connected, sent, args.seconds),
        "pinned": sim.pinned,
    }


async def _until(condition: Any, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise TimeoutError("subscriptions never completed")
        await asyncio.sleep(0.2)


def summary(side: Side, sent: dict[int, float], seconds: float) -> dict[str, float]:
    latencies = sorted((received - sent[tick]) * 1000.0 for tick, received in side.seen if tick in sent)
    counted = sum(1 for tick, _ in side.seen if tick in sent)
    return {
        "updates_per_s": counted / seconds,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
    }


def main() -> None:
    args = parse_args()
    print(f"client process {pin_to(1)}; simulator in its own process")
    for symbols in args.symbols:
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        result = asyncio.run(run(symbols, args))
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        bare, connector = result["bare"], result["connector"]
        ratio = connector["updates_per_s"] / bare["updates_per_s"] if bare["updates_per_s"] else float("nan")
        print(
            f"\n{symbols} symbols, {result['accounts']} accounts x {args.legs} legs, "
            f"{result['frames_per_s']:.0f} frames/s offered per side ({result['ticks_per_s']:.1f} ticks/s), "
            f"simulator {result['pinned']}"
        )
        print(f"  {'':10} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for name, figures in (("bare ccxt", bare), ("connector", connector)):
            print(
                f"  {name:10} {figures['updates_per_s']:10.0f} {figures['p50_ms']:8.2f} {figures['p99_ms']:8.2f}"
            )
        print(
            f"  ratio connector/bare: {ratio:.2f} (goal >= 0.8); client CPU share {result['client_cpu_share']:.2f}"
        )


if __name__ == "__main__":
    main()
