"""The simulated exchange for the connector benchmarks, in its own process so its CPU is not the client's.

`start_simulator(...)` spawns a Binance USD-M simulator with `symbols` synthetic markets and `accounts`
accounts holding `legs` positions each, and returns a handle: `.config` (the ccxt config of the default
account), `.api_keys`, `.go(ticks_per_s, seconds)` which moves every mark once per tick and returns the send
time of every tick, and `.channels()` (mark channels -> subscribed sockets) and `.stop()`.

Every tick moves every mark to `BASE + tick * STEP`, so a receiver recovers the tick from the price alone and
the latency is measured from the moment the simulator published that tick's frames (wall clock, sub-ms) to
the moment the receiver saw it, without relying on the frame's whole-millisecond "E" field.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from typing import Any

BASE = 1000.0
STEP = 0.01


def price_of(tick: int) -> float:
    return round(BASE + tick * STEP, 2)


def tick_of(price: float) -> int:
    return round((price - BASE) / STEP)


# ccxt spaces a Binance client's subscription messages 250 ms apart (5 per second, the exchange's limit): 500
# per-symbol subscriptions take two minutes to send. The simulator has no such limit, and the benchmarks
# measure the steady state, so they lift it; a daemon pays it once, at start-up.
UNTHROTTLED_SUBSCRIPTIONS = {"ws": {"cost": 0}}


def client_config(config: dict[str, Any]) -> dict[str, Any]:
    """The simulator's ccxt config without credentials, with subscriptions unthrottled."""
    public = {k: v for k, v in config.items() if k not in ("apiKey", "secret")}
    public["options"] = {**public.get("options", {}), **UNTHROTTLED_SUBSCRIPTIONS}
    public["timeout_on_exit"] = 0  # ccxt sleeps this long in every close() for TLS; loopback has none
    return public


def account_of(config: dict[str, Any], api_key: str, number: int) -> Any:
    """Account `number` of the simulator (0 is its default account) as marginguard configures it."""
    from daemon.exchanges.config import ExchangeAccount

    secret = config["secret"] if number == 0 else f"bench-secret-{number}"
    return ExchangeAccount(
        f"bench-{number}", "binanceusdm", "demo", api_key, secret, ccxt_config=client_config(config)
    )


def symbol_names(count: int) -> list[str]:
    return [f"SYN{index:04d}USDT" for index in range(count)]


class SimulatorProcess:
    def __init__(self, symbols: int, accounts: int, legs: int, cpu: int | None = 0) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_main, args=(symbols, accounts, legs, cpu, child), daemon=True)
        self._process.start()
        hello = self._pipe.recv()
        self.config: dict[str, Any] = hello["config"]
        self.api_keys: list[str] = hello["api_keys"]
        self.holdings: dict[str, list[str]] = hello["holdings"]
        self.pinned: str = hello["pinned"]

    def go(self, ticks_per_s: float, seconds: float, first_tick: int = 1) -> dict[int, float]:
        self._pipe.send({"go": (ticks_per_s, seconds, first_tick)})
        answer: dict[int, float] = self._pipe.recv()["sent"]
        return answer

    def channels(self) -> dict[str, int]:
        self._pipe.send({"channels": True})
        answer: dict[str, int] = self._pipe.recv()["channels"]
        return answer

    def cpu_seconds(self) -> float:
        self._pipe.send({"cpu": True})
        answer: float = self._pipe.recv()["cpu"]
        return answer

    def stop(self) -> None:
        self._pipe.send({"stop": True})
        self._process.join(10)


def pin_to(cpu: int | None) -> str:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cpus = list(range(os.cpu_count() or 1))  # not the inherited affinity: the parent may be pinned already
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    chosen = cpus[cpu % len(cpus)]
    os.sched_setaffinity(0, {chosen})
    return f"cpu {chosen} of {len(cpus)}"


def _main(symbols: int, accounts: int, legs: int, cpu: int | None, pipe: Connection) -> None:
    note = pin_to(cpu)
    asyncio.run(_serve(symbols, accounts, legs, note, pipe))


async def _serve(symbols: int, accounts: int, legs: int, note: str, pipe: Connection) -> None:
    from daemon.core.types import MarginMode, Side
    from daemon.sim.markets import load_markets, synthetic_markets
    from daemon.sim.server import SimServer

    template = dataclasses.replace(load_markets("binance")["BTCUSDT"], price_tick=0.01)
    markets = {
        name: dataclasses.replace(market, mark=BASE)
        for name, market in synthetic_markets(symbols, template, "binance").items()
    }
    names = symbol_names(symbols)
    async with SimServer("binance", markets=markets, mark_interval_s=None) as sim:
        engine = sim.engine
        keys = [sim.account.api_key] + [
            engine.add_account(f"bench-key-{n}", f"bench-secret-{n}").api_key for n in range(1, accounts)
        ]
        holdings: dict[str, list[str]] = {}
        for n, key in enumerate(keys):
            engine.set_wallet(key, "USDT", 1_000_000.0)
            held = [names[(n * legs + i) % symbols] for i in range(legs)]
            holdings[key] = held
            for i, name in enumerate(held):
                mode = MarginMode.ISOLATED if i % 2 else MarginMode.CROSS
                engine.set_position(key, name, Side.LONG, 1.0, entry_price=BASE, margin_mode=mode, leverage=2)
        configs = sim.ccxt_config()
        pipe.send({"config": configs, "api_keys": keys, "holdings": holdings, "pinned": note})
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if "stop" in command:
                return
            if "channels" in command:
                pipe.send(
                    {"channels": {c: len(sim.hub.subscribers(c)) for c in sim.hub.channels if "@mark" in c}}
                )
            elif "cpu" in command:
                pipe.send({"cpu": time.process_time()})
            elif "go" in command:
                ticks_per_s, seconds, first_tick = command["go"]
                pipe.send({"sent": await _tick(engine, names, ticks_per_s, seconds, first_tick)})


async def _tick(
    engine: Any, names: list[str], ticks_per_s: float, seconds: float, first_tick: int
) -> dict[int, float]:
    sent: dict[int, float] = {}
    period = 1.0 / ticks_per_s
    start = time.monotonic()
    tick = first_tick
    while time.monotonic() - start < seconds:
        price = price_of(tick)
        engine.set_marks(dict.fromkeys(names, price))
        sent[tick] = time.time()  # frames are queued; their writers run as soon as this step yields
        tick += 1
        delay = start + (tick - first_tick) * period - time.monotonic()
        await asyncio.sleep(max(0.0, delay))
    return sent
