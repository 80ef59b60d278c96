"""`marginguard sim`: run the exchange simulator on loopback until SIGINT/SIGTERM.

The first stdout line is one JSON object, `{"exchange": <ccxt id>, "ccxt_config": {...}}`, flushed at once,
so a script (or the daemon's end-to-end tests) can start the simulator and read how to reach it; human
help follows on the next lines, and with `--print-config toml` an `[[accounts]]` block to paste into a
configuration. Registration stays cheap: the simulator is imported inside the handler.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any, TextIO

EXCHANGES = ("binance", "bybit", "okx")
BLOCK_END = "# end of the [[accounts]] block"
# Named here so `--help` lists them without importing the simulator (a test holds it to the scenario files).
SCENARIOS = ("cross_winner_loser", "flash_crash", "replay", "short_squeeze", "slow_bleed")
OPEN_EXAMPLE = (
    '{"symbol":"BTCUSDT","side":"long","contracts":0.1,"action":"open","leverage":5,"margin_mode":"isolated"}'
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run the loopback exchange simulator (Binance USD-M, Bybit v5, OKX v5)",
        description=(
            "Serve one simulated exchange on 127.0.0.1 that an unmodified ccxt client can use. The first "
            "output line is JSON with the ccxt constructor config; the control API is under /_sim/."
        ),
    )
    parser.add_argument("--exchange", choices=EXCHANGES, default="binance", help="dialect (default binance)")
    parser.add_argument(
        "--scenario",
        default=None,
        metavar="NAME",
        help=f"play a scenario from the start: {', '.join(SCENARIOS)} (without one the account starts empty)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="scenario speed factor (default 1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--print-config",
        choices=("toml",),
        default=None,
        help="also print an [[accounts]] block for this simulator, ready to paste into marginguard.toml",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(serve(args, sys.stdout))
    except (ValueError, OSError) as error:
        print(f"marginguard sim: {error}", file=sys.stderr)
        return 2


async def serve(args: argparse.Namespace, out: TextIO) -> int:
    from daemon.sim.scenario import load_scenario, scenario_names
    from daemon.sim.server import SimServer

    if args.scenario is not None:
        load_scenario(args.scenario)  # fail before binding, with the list of known names
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with SimServer(
        args.exchange, scenario=args.scenario, port=args.port, host=args.host, scenario_speed=args.speed
    ) as sim:
        out.write(json.dumps({"exchange": sim.ccxt_id, "ccxt_config": sim.ccxt_config()}) + "\n")
        out.flush()
        out.write(_help_text(sim.http_base, sim.ccxt_id, scenario_names(), args.scenario))
        if args.print_config == "toml":
            out.write(_account_block(sim.ccxt_id, sim.ccxt_config(), args.exchange))
        out.flush()
        await stop.wait()
    return 0


def _account_block(ccxt_id: str, ccxt_config: dict[str, Any], exchange: str) -> str:
    """A paste-ready `[[accounts]]` entry: the simulator's keys as the account's credentials, its URLs in
    `ccxt_config` (valid while this simulator runs on this port)."""
    import io

    from daemon.app.check_config_command import write_toml
    from daemon.app.demo_command import sim_account

    text = io.StringIO()
    write_toml({"accounts": [sim_account(f"sim-{exchange}", ccxt_id, ccxt_config)]}, text)
    block = text.getvalue().strip("\n")
    return f"# paste into marginguard.toml (this simulator's account; its URLs hold while it runs):\n{block}\n{BLOCK_END}\n"


def _help_text(http_base: str, ccxt_id: str, scenarios: list[str], playing: str | None) -> str:
    return "\n".join(
        [
            f"marginguard simulator ({ccxt_id}) listening on {http_base}",
            f"  client:     ccxt.pro.{ccxt_id}(<ccxt_config above>)",
            f'  marks:      curl -X POST {http_base}/_sim/mark -d \'{{"symbol":"BTCUSDT","price":60000}}\'',
            f"  positions:  curl -X POST {http_base}/_sim/position -d '{OPEN_EXAMPLE}'"
            + ("" if playing else "   (the account starts empty)"),
            f"  state:      curl {http_base}/_sim/state",
            f'  faults:     curl -X POST {http_base}/_sim/fault -d \'{{"kind":"drop"}}\''
            "   (drop, stall, delay, malformed, http_status, http_timeout, listen_key_expired, clock_skew)",
            f"  scenarios:  {', '.join(scenarios)}" + (f"   (playing: {playing})" if playing else ""),
            "  stop with Ctrl-C",
            "",
        ]
    )
