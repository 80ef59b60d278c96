"""Simulator load: 500 symbols' mark prices every second and 1,000 accounts' private streams, one core.

The simulator (Binance USD-M dialect) runs in this process, pinned to one CPU where the OS allows it. Raw
aiohttp websocket clients run in a child process (pinned to another CPU when there is one) so the figures
below are the simulator's own: `--market-clients` connections each subscribe to every symbol's
`<symbol>@markPrice@1s` stream (one frame per symbol per tick, encoded once and fanned out), and one
connection per account listens to its user-data stream (listen key from POST /fapi/v1/listenKey). Every
tick moves all marks at once (which also runs the liquidation engine over every account holding a position)
and, spread over the second in `--slices` batches, gives `--private-share` of the accounts a wallet change,
which Binance announces as ACCOUNT_UPDATE.

Printed: pushes/s delivered, lag from the frame's event time "E" to receipt (p50/p99/max, ms; "E" is whole
milliseconds, so lags read up to 1 ms high), the tick's own work time, and the simulator's CPU share
(process time / wall time while ticking; 1.0 = one core busy).

    .venv/bin/python bench/sim_load.py --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import multiprocessing
import os
import pstats
import random
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from daemon.core.types import MarginMode, Side
from daemon.sim.markets import load_markets, synthetic_markets
from daemon.sim.server import SimServer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to tick (default 20)")
    parser.add_argument("--symbols", type=int, default=500, help="markets pushing marks (default 500)")
    parser.add_argument("--accounts", type=int, default=1000, help="accounts with a private stream (1000)")
    parser.add_argument("--market-clients", type=int, default=4, help="connections subscribed to all marks")
    parser.add_argument("--private-share", type=float, default=1.0, help="accounts changed per tick (0..1)")
    parser.add_argument("--slices", type=int, default=10, help="account changes spread over N slices/s")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile", action="store_true", help="print the simulator's top functions (cProfile)"
    )
    return parser.parse_args()


def pin_to(cpu: int) -> str:
    """Pin this process to one CPU if possible; returns a note for the report."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpus = sorted(os.sched_getaffinity(0))
    chosen = cpus[cpu % len(cpus)]
    os.sched_setaffinity(0, {chosen})
    return f"cpu {chosen} of {len(cpus)}"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ---- the client process ----


def run_clients(
    http_base: str, ws_base: str, symbols: list[str], keys: list[str], market_clients: int, pipe: Connection
) -> None:
    note = pin_to(1)
    asyncio.run(_clients(http_base, ws_base, symbols, keys, market_clients, pipe, note))


async def _clients(
    http_base: str,
    ws_base: str,
    symbols: list[str],
    keys: list[str],
    market_clients: int,
    pipe: Connection,
    note: str,
) -> None:
    lags: dict[str, list[float]] = {"mark": [], "private": []}
    counts = {"mark": 0, "private": 0}
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def read(ws: aiohttp.ClientWebSocketResponse, kind: str) -> None:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                received_ms = time.time() * 1000.0
                frame = json.loads(message.data)
                event_ms = frame.get("E") if isinstance(frame, dict) else None
                if event_ms is None:
                    continue  # subscription answers
                counts[kind] += 1
                if not stop.is_set():
                    lags[kind].append(received_ms - float(event_ms))

        sockets: list[aiohttp.ClientWebSocketResponse] = []
        streams = [f"{s.lower()}@markPrice@1s" for s in symbols]
        for number in range(market_clients):
            ws = await session.ws_connect(f"{ws_base}/market/ws/{number}", max_msg_size=0)
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}))
            sockets.append(ws)
        for key in keys:
            async with session.post(
                f"{http_base}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": key}
            ) as answer:
                listen_key = (await answer.json())["listenKey"]
            sockets.append(await session.ws_connect(f"{ws_base}/private/ws?listenKey={listen_key}"))
        readers = [
            asyncio.create_task(read(ws, "mark" if i < market_clients else "private"))
            for i, ws in enumerate(sockets)
        ]
        pipe.send({"ready": True, "connections": len(sockets), "pinned": note})
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "stop"
        stop.set()
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*readers, return_exceptions=True)
    pipe.send({"lags": lags, "counts": counts})


# ---- the simulator process ----


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    real = load_markets("binance")
    markets = {**real, **synthetic_markets(max(0, args.symbols - len(real)))}
    markets = dict(list(markets.items())[: args.symbols])
    symbols = list(markets)
    async with SimServer("binance", markets=markets, mark_interval_s=None) as sim:
        engine = sim.engine
        keys = [f"bench-key-{i:05d}" for i in range(args.accounts)]
        for key in keys:
            engine.add_account(key, "bench-secret", wallet={"USDT": 50_000.0})
            symbol = rng.choice(symbols)
            mode = MarginMode.ISOLATED if rng.random() < 0.5 else MarginMode.CROSS
            contracts = round(2_000.0 / engine.marks[symbol], 6)
            engine.set_position(
                key, symbol, rng.choice([Side.LONG, Side.SHORT]), contracts, margin_mode=mode, leverage=10
            )

        parent_end, child_end = multiprocessing.Pipe()
        child = multiprocessing.get_context("spawn").Process(
            target=run_clients,
            args=(sim.http_base, sim.ws_base, symbols, keys, args.market_clients, child_end),
            daemon=True,
        )
        child.start()
        server_pin = pin_to(0)  # after the spawn, so the child does not inherit it
        loop = asyncio.get_running_loop()
        hello = await loop.run_in_executor(None, parent_end.recv)
        print(
            f"connected: {hello['connections']} websockets (clients {hello['pinned']}; simulator {server_pin})"
        )

        mark_work: list[float] = []
        private_work: list[float] = []
        changed_per_tick = int(args.accounts * args.private_share)
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        ticks = int(args.seconds)
        slices = max(1, args.slices)
        for tick in range(ticks):
            started = time.perf_counter()
            engine.set_marks({s: engine.marks[s] * (1 + rng.gauss(0, 0.0005)) for s in symbols})
            mark_work.append(time.perf_counter() - started)
            changed = rng.sample(keys, changed_per_tick)
            for part in range(slices):  # account activity is spread over the second, not one burst
                await asyncio.sleep(max(0.0, wall0 + tick + (part + 0.5) / slices - time.perf_counter()))
                started = time.perf_counter()
                for key in changed[part::slices]:
                    engine.transfer(key, "USDT", 1.0 if tick % 2 == 0 else -1.0)
                private_work.append(time.perf_counter() - started)
            await asyncio.sleep(max(0.0, wall0 + tick + 1 - time.perf_counter()))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        await asyncio.sleep(0.5)  # let the last tick's frames arrive
        parent_end.send("stop")
        result: dict[str, Any] = await loop.run_in_executor(None, parent_end.recv)
        child.join(timeout=10)

    report(args, ticks, wall, cpu, mark_work, private_work, result)


def report(
    args: argparse.Namespace,
    ticks: int,
    wall: float,
    cpu: float,
    mark_work: list[float],
    private_work: list[float],
    result: dict[str, Any],
) -> None:
    counts, lags = result["counts"], result["lags"]
    expected_marks = ticks * args.symbols * args.market_clients
    print(
        f"ran {ticks} ticks in {wall:.1f} s: {args.symbols} symbols x {args.market_clients} mark clients, "
        f"{args.accounts} private streams, {int(args.accounts * args.private_share)} account changes/tick"
    )
    print(
        f"pushes delivered: {counts['mark'] + counts['private']:,} "
        f"({(counts['mark'] + counts['private']) / wall:,.0f}/s) — marks {counts['mark']:,} of "
        f"{expected_marks:,} expected, private {counts['private']:,}"
    )
    for kind in ("mark", "private"):
        values = lags[kind]
        if values:
            print(
                f"lag {kind:8s} p50 {statistics.median(values):7.2f} ms   p99 {percentile(values, 0.99):7.2f} ms"
                f"   max {max(values):7.2f} ms   (n={len(values):,})"
            )
    for name, work in (("mark tick", mark_work), ("acct slice", private_work)):
        print(
            f"{name:14s} p50 {1000 * statistics.median(work):7.2f} ms   p99 {1000 * percentile(work, 0.99):7.2f} ms"
            f"   max {1000 * max(work):7.2f} ms   (engine work, before any frame is sent)"
        )
    print(f"simulator CPU share: {cpu / wall:.2f} of one core ({cpu:.1f} s CPU over {wall:.1f} s)")


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
