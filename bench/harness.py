"""What `bench/marks.py` and `bench/scale.py` share: the simulator in a process of its own, the processes under
test (the daemon as `marginguard run`, or the bare ccxt loop of `bench/bare_ccxt.py`) with the mark trace on
(`daemon/exchanges/mark_trace.py`), their CPU and memory read from /proc, and the daemon's configuration.
`bench/figures.py` sets the trace against what the simulator sent.

Every time is `time.monotonic()`: CLOCK_MONOTONIC, one clock for every process on the machine. Prices encode
the order of sends: each symbol's normal marks climb from `BASE` by `STEP`, and the alert marks (below the
benches' warning threshold) climb from `ALERT_BASE`, so a (symbol, price) pair names one send.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.figures import Send  # noqa: E402 — after the path: bench/ runs as scripts

BASE = 1000.0
ALERT_BASE = 880.0
STEP = 0.01
# ccxt spaces a Binance client's subscriptions 250 ms apart (the exchange's limit of 5 a second): 500 symbols
# would take two minutes to subscribe. The simulator has no such limit, so the benches lift it in the client
# config of both sides alike; a daemon on a real venue pays it once, at start-up.
UNTHROTTLED = {"ws": {"cost": 0}}
BARE = "-"  # the bare loop's "account" in the trace


def symbol_names(count: int) -> list[str]:
    return [f"SYN{index:04d}USDT" for index in range(count)]


def unified(market: str) -> str:
    return f"{market[:-4]}/USDT:USDT"


# ---- the simulator, in its own process ----


class Simulator:
    """A Binance USD-M simulator with `symbols` synthetic markets at `BASE` and `accounts` accounts holding `legs`
    long positions each (leverage 2, alternately cross and isolated), pinned to `cpu`."""

    def __init__(self, symbols: int, accounts: int, legs: int, cpu: int = 0) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_sim_main, args=(symbols, accounts, legs, cpu, child), daemon=True
        )
        self._process.start()
        hello = self._pipe.recv()
        self.config: dict[str, Any] = hello["config"]
        self.holdings: dict[str, list[str]] = hello["holdings"]  # account id -> market ids held
        self.secrets: dict[str, tuple[str, str]] = hello["secrets"]  # account id -> (api key, secret)
        self.pid = self._process.pid or 0
        self.setup_s: float = hello["setup_s"]

    def _ask(self, command: dict[str, Any]) -> Any:
        self._pipe.send(command)
        return self._pipe.recv()

    def spread(self, rate: float, seconds: float) -> list[Send]:
        """`rate` marks a second, spread evenly (in 1 ms batches) round-robin over every symbol."""
        sends: list[Send] = self._ask({"spread": (rate, seconds)})
        return sends

    def bursts(self, kinds: Sequence[str], period: float) -> list[Send]:
        """One burst every `period` s moving every symbol at once: "up" (its next normal mark) or "alert"."""
        sends: list[Send] = self._ask({"bursts": (list(kinds), period)})
        return sends

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # the simulator may be gone already
            self._pipe.send({"stop": True})
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def _sim_main(symbols: int, accounts: int, legs: int, cpu: int, pipe: Connection) -> None:
    pin(0, cpu)
    asyncio.run(_sim_serve(symbols, accounts, legs, pipe))


async def _sim_serve(symbols: int, accounts: int, legs: int, pipe: Connection) -> None:
    from daemon.core.types import MarginMode, Side
    from daemon.sim.markets import load_markets, synthetic_markets
    from daemon.sim.server import SimServer

    started = time.monotonic()
    template = dataclasses.replace(load_markets("binance")["BTCUSDT"], price_tick=0.01)
    markets = {
        name: dataclasses.replace(market, mark=BASE)
        for name, market in synthetic_markets(symbols, template, "binance").items()
    }
    names = symbol_names(symbols)
    async with SimServer("binance", markets=markets, mark_interval_s=None) as sim:
        engine = sim.engine
        holdings: dict[str, list[str]] = {}
        secrets: dict[str, tuple[str, str]] = {}
        for n in range(accounts):
            key, secret = f"bench-key-{n}", f"bench-secret-{n}"
            engine.add_account(key, secret, wallet={"USDT": 1_000_000.0})
            held = [names[(n * legs + i) % symbols] for i in range(legs)]
            for i, name in enumerate(held):
                mode = MarginMode.ISOLATED if i % 2 else MarginMode.CROSS
                engine.set_position(key, name, Side.LONG, 1.0, entry_price=BASE, margin_mode=mode, leverage=2)
            holdings[f"bench-{n}"] = held
            secrets[f"bench-{n}"] = (key, secret)
        pipe.send(
            {
                "config": sim.ccxt_config(),
                "holdings": holdings,
                "secrets": secrets,
                "setup_s": time.monotonic() - started,
            }
        )
        feed = _Feed(engine, names)
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if "stop" in command:
                return
            if "spread" in command:
                pipe.send(await feed.spread(*command["spread"]))
            elif "bursts" in command:
                pipe.send(await feed.bursts(*command["bursts"]))


class _Feed:
    def __init__(self, engine: Any, names: list[str]) -> None:
        self.engine = engine
        self.names = names
        self.ticks = dict.fromkeys(names, 0)
        self.alerts = 0
        self.turn = 0  # the round-robin position, kept across calls so every symbol moves as often

    def _next(self, name: str) -> float:
        self.ticks[name] += 1
        return round(BASE + self.ticks[name] * STEP, 2)

    def _publish(self, marks: dict[str, float], sends: list[Send]) -> None:
        self.engine.set_marks(marks)
        now = time.monotonic()  # frames are queued; their writers run as soon as this step yields
        sends.extend((name, price, now) for name, price in marks.items())

    async def spread(self, rate: float, seconds: float) -> list[Send]:
        sends: list[Send] = []
        total, done, start = int(rate * seconds), 0, time.monotonic()
        while done < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            while done < due:
                batch: dict[str, float] = {}
                while done < due and len(batch) < len(self.names):
                    name = self.names[self.turn % len(self.names)]
                    self.turn += 1
                    batch[name] = self._next(name)
                    done += 1
                self._publish(batch, sends)
            await asyncio.sleep(0.001)
        return sends

    async def bursts(self, kinds: list[str], period: float) -> list[Send]:
        sends: list[Send] = []
        start = time.monotonic()
        for number, kind in enumerate(kinds):
            await asyncio.sleep(max(0.0, start + number * period - time.monotonic()))
            if kind == "alert":
                self.alerts += 1
                price = round(ALERT_BASE + self.alerts * STEP, 2)
                self._publish(dict.fromkeys(self.names, price), sends)
            else:
                self._publish({name: self._next(name) for name in self.names}, sends)
        return sends


# ---- processes ----


def pin(pid: int, cpu: int) -> str:
    """Pin `pid` (0: this process) to one CPU where the OS allows it; returns a note for the report."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cpus = list(range(os.cpu_count() or 1))  # not the inherited affinity: the parent may be pinned already
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    chosen = cpus[cpu % len(cpus)]
    os.sched_setaffinity(pid, {chosen})
    return f"cpu {chosen}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def start(argv: list[str], log: Path, trace: Path, cpu: int) -> subprocess.Popen[bytes]:
    """Start a process under test with the mark trace on, pinned to `cpu`."""
    env = {**os.environ, "MARGINGUARD_MARK_TRACE": str(trace), "PYTHONPATH": str(REPO)}
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    pin(process.pid, cpu)
    return process


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def ready_daemon(session: Any, port: int) -> bool:
    """Whether the daemon's /readyz answers 200 (`session`: an aiohttp ClientSession)."""
    ready, _accounts = await readiness(session, port)
    return ready


async def healthy(session: Any, port: int) -> bool:
    """Whether the daemon's /healthz answers 200 (its listener is up and nothing is broken)."""
    import aiohttp

    try:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as answer:
            return bool(answer.status == 200)
    except aiohttp.ClientError:
        return False


async def readiness(session: Any, port: int) -> tuple[bool, dict[str, Any]]:
    """/readyz: whether it answers 200, and its per-account reasons (empty while it does not answer)."""
    import aiohttp

    try:
        async with session.get(f"http://127.0.0.1:{port}/readyz") as answer:
            body = await answer.json(content_type=None)
            accounts = body.get("accounts", {}) if isinstance(body, dict) else {}
            return answer.status == 200, accounts if isinstance(accounts, dict) else {}
    except (aiohttp.ClientError, ValueError):
        return False, {}


def stop(process: subprocess.Popen[bytes], within_s: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(within_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- the daemon's configuration ----


def daemon_config(
    sim: Simulator, state_dir: Path, http_port: int, webhook_url: str, accounts: int | None = None
) -> Path:
    """A configuration for `marginguard run`: the simulator's accounts, a webhook sink to the bench's receiver,
    and thresholds that only the alert bursts cross (an isolated long at leverage 2 from `BASE` is about 50 %
    from liquidation; at an `ALERT_BASE` mark, about 43 %). Top-ups off."""
    from daemon.app.check_config_command import write_toml

    public = {k: v for k, v in sim.config.items() if k not in ("apiKey", "secret")}
    public["options"] = {**public.get("options", {}), **UNTHROTTLED}
    entries = []
    for account_id, (key, secret) in list(sim.secrets.items())[:accounts]:
        entries.append(
            {
                "id": account_id,
                "exchange": "binanceusdm",
                "mode": "demo",
                "api_key": key,
                "secret": secret,
                "ccxt_config": public,
            }
        )
    document = {
        "daemon": {
            "storage_path": str(state_dir / "journal.sqlite"),
            "http_bind": f"127.0.0.1:{http_port}",
            "log_format": "json",
            "log_level": "info",
        },
        "rules": {
            "warning_distance": 0.45,
            "critical_distance": 0.40,
            "hysteresis": 0.01,
            "min_duration_s": 0,
            "repeat_interval_s": 3600,
        },
        "accounts": entries,
        "sinks": [{"name": "bench-hook", "type": "webhook", "url": f"{webhook_url}/hooks/bench"}],
    }
    text = io.StringIO()
    write_toml(document, text)
    path = state_dir / "marginguard.toml"
    path.write_text(text.getvalue(), encoding="utf-8")
    return path
