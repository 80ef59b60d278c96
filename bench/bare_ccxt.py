"""The bare ccxt side of the benches: one `watch_mark_price` loop per symbol on one ccxt.pro client, doing nothing
with a mark but noting the newest one ccxt holds after each wake-up. Started by `bench/marks.py` as a process of its own, with the same mark trace as the
daemon (`MARGINGUARD_MARK_TRACE`): each frame as ccxt takes it, and each mark a loop receives as its "decision",
with the mark ccxt's cache held at that moment. Touches `<trace>.ready` once every symbol has had a mark.

    .venv/bin/python bench/bare_ccxt.py --config '<ccxt config JSON>' --symbols 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import BARE, symbol_names, unified
from daemon.exchanges import mark_trace


async def main(config: dict[str, object], symbols: list[str]) -> None:
    import ccxt.pro

    trace = mark_trace.TRACE
    assert trace is not None, f"set {mark_trace.ENV}"
    client = ccxt.pro.binanceusdm(config)
    # The socket as the daemon's market hub opens it (without permessage-deflate): otherwise this side alone
    # pays for decompressing every frame (about 5 % of its CPU, measured), and the comparison is not like for like.
    client.options.setdefault("ws", {}).setdefault("compress", 0)
    trace.watch_frames(client)
    await client.load_markets()
    seen: set[str] = set()
    ready = Path(trace.path + ".ready")

    async def watch(symbol: str) -> None:
        while True:
            ticker = await client.watch_mark_price(symbol)
            # After each wake-up, the newest mark ccxt holds: under load ccxt resolves a waiting watch with the
            # first of the frames read together and only caches the rest, so the returned ticker alone would
            # leave a newer mark undecided until the next frame. Then the record the daemon's runner writes.
            latest = client.tickers.get(symbol) or ticker
            trace.decided(BARE, [(symbol, latest["markPrice"])], client)
            if len(seen) < len(symbols):
                seen.add(symbol)
                if len(seen) == len(symbols):
                    await asyncio.to_thread(ready.touch)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [asyncio.create_task(watch(symbol)) for symbol in symbols]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.close()
    trace.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="the ccxt constructor config, as JSON")
    parser.add_argument("--symbols", type=int, required=True, help="watch SYN0000USDT .. (count)")
    args = parser.parse_args()
    asyncio.run(main(json.loads(args.config), [unified(name) for name in symbol_names(args.symbols)]))
    os._exit(0)  # ccxt may leave aiohttp connectors to the collector; nothing is left to do
