"""`marginguard demo`: the whole daemon against the loopback simulator, in under a minute.

It starts the Binance USD-M simulator playing the `slow_bleed` scenario (an isolated 20x BTC long bleeding
towards liquidation), a local webhook receiver that prints every alert it receives, and the real daemon — real
ccxt, real journal, real outbox — configured to warn, then raise a critical alert, then top the margin up and
resolve. It ends by itself with a summary; Ctrl-C ends it cleanly at any point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typed, yet imported only when the demo runs (registration stays cheap)
    from daemon.app.supervisor import Daemon
    from daemon.sim.server import SimServer

EXIT_OK = 0
EXIT_FAILED = 1
DEMO_SCENARIO = "slow_bleed"
DEMO_ACCOUNT = "demo"
DEADLINE_S = 55.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="watch marginguard warn, alert, top up and resolve a position on the built-in simulator",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--speed", type=float, default=1.0, help="play the price path this many times faster")
    parser.set_defaults(handler=run)


def sim_account(account_id: str, ccxt_id: str, ccxt_config: dict[str, Any]) -> dict[str, Any]:
    """A configuration `[[accounts]]` entry for a simulator's printed ccxt config (credentials moved out of
    `ccxt_config`, where marginguard refuses them because they would escape log masking)."""
    config = dict(ccxt_config)
    entry: dict[str, Any] = {"id": account_id, "exchange": ccxt_id, "mode": "demo"}
    for ccxt_key, key in (("apiKey", "api_key"), ("secret", "secret"), ("password", "password")):
        if ccxt_key in config:
            entry[key] = config.pop(ccxt_key)
    entry["ccxt_config"] = config
    return entry


def demo_document(
    ccxt_id: str, ccxt_config: dict[str, Any], webhook_url: str, state_dir: Path
) -> dict[str, Any]:
    """The demo's configuration. The scenario's position starts 4.6 % from liquidation, so the thresholds sit
    below that: warning at 3.5 %, critical at 2 %, a top-up at 1.5 % back to 6 % (beyond warning + hysteresis,
    which resolves the alert)."""
    return {
        "daemon": {
            "storage_path": str(state_dir / "demo.sqlite"),
            "http_bind": "127.0.0.1:0",
            "log_level": "warning",
        },
        "rules": {
            "warning_distance": 0.035,
            "critical_distance": 0.02,
            "hysteresis": 0.005,
            "min_duration_s": 1,
            "repeat_interval_s": 300,
            "stale_after_s": 10,
        },
        "topup": {
            "enabled": True,
            "trigger_distance": 0.015,
            "target_distance": 0.06,
            "max_per_action": 500.0,
            "max_per_position_per_day": 1000.0,
            "max_per_account_per_day": 1000.0,
            "min_free_balance": 50.0,
            "cooldown_s": 10,
            "max_attempts": 2,
        },
        "accounts": [sim_account(DEMO_ACCOUNT, ccxt_id, ccxt_config)],
        "sinks": [{"name": "local-webhook", "type": "webhook", "url": webhook_url}],
    }


def run(args: argparse.Namespace) -> int:
    from daemon.app.logging import configure_logging

    configure_logging("console", "warning", stream=sys.stderr)
    return asyncio.run(play(speed=args.speed))


def _say(started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:5.1f}s] {text}", flush=True)


def _leg_line(status: dict[str, Any]) -> str | None:
    legs = status["accounts"].get(DEMO_ACCOUNT, {}).get("legs", [])
    if not legs:
        return None
    leg = legs[0]

    def number(value: float | None, percent: bool = False) -> str:
        if value is None:
            return "unknown"
        return f"{value * 100:.2f}%" if percent else f"{value:,.1f}"

    return (
        f"{leg['symbol']} {leg['side']} {leg['contracts']:g}: mark {number(leg['mark_price'])}, "
        f"liquidation {number(leg['liquidation_price'])}, distance {number(leg['distance_to_liquidation'], True)}"
    )


async def play(speed: float = 1.0) -> int:
    from daemon.app.settings import settings_from_document
    from daemon.app.supervisor import Daemon
    from daemon.notify.receiver import Received, Receiver
    from daemon.sim.server import SimServer

    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    received: list[Received] = []

    def on_alert(alert: Received) -> None:
        received.append(alert)
        _say(started, "webhook received: " + alert.describe())

    print("marginguard demo: the Binance USD-M simulator, a local webhook and the daemon, all on 127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="marginguard-demo-") as state:
        async with SimServer("binance") as sim, Receiver(on_accept=on_alert) as receiver:
            document = demo_document(sim.ccxt_id, sim.ccxt_config(), f"{receiver.url}/alerts", Path(state))
            settings = settings_from_document(document, env={}, base_dir=Path(state))
            daemon = await Daemon.open(settings)
            daemon_stop = asyncio.Event()
            runner = asyncio.create_task(daemon.run(daemon_stop), name="demo-daemon")
            outcome = await _watch(daemon, sim, received, stop, started, speed)
            daemon_stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(runner, 15)
            liquidations = len(sim.engine.liquidations)
            wallet = None
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)
    _summary(received, outcome, liquidations, wallet, started)
    return EXIT_OK if outcome in ("resolved", "interrupted") else EXIT_FAILED


async def _watch(
    daemon: Daemon, sim: SimServer, received: list[Any], stop: asyncio.Event, started: float, speed: float
) -> str:
    """Play the scenario once the daemon sees the account; return how the demo ended."""
    deadline = started + DEADLINE_S
    while not daemon.readiness()[0]:
        if stop.is_set():
            return "interrupted"
        if time.monotonic() > deadline:
            return "the daemon never became ready"
        await asyncio.sleep(0.2)
    _say(started, "daemon ready: snapshot taken, streams fresh; playing the slow bleed")
    sim.start_scenario(DEMO_SCENARIO, speed)
    last_line = 0.0
    while time.monotonic() < deadline:
        if stop.is_set():
            return "interrupted"
        if any(r.json.get("resolved") and r.json.get("kind") == "liquidation_risk" for r in received):
            await asyncio.sleep(1.0)  # let the last deliveries land
            return "resolved"
        if sim.engine.liquidations:
            return "liquidated"
        if time.monotonic() - last_line >= 2.0:
            line = _leg_line(await daemon.status())
            if line:
                _say(started, line)
            last_line = time.monotonic()
        await asyncio.sleep(0.2)
    return "timed out"


def _summary(received: list[Any], outcome: str, liquidations: int, wallet: Any, started: float) -> None:
    print()
    print(f"demo over after {time.monotonic() - started:.0f} s: {outcome}")
    print(f"  alerts received by the webhook: {len(received)}")
    for item in received:
        body = item.json
        state = "resolved" if body.get("resolved") else "firing"
        print(f"    - {body.get('severity')} {body.get('kind')} ({state}): {body.get('summary')}")
    print(f"  liquidations on the simulated exchange: {liquidations}")
    if outcome == "resolved":
        print("  marginguard warned, escalated, added margin within its limits and saw the position recover.")
