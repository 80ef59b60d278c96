"""The `marginguard` command line: one argparse parser, one subcommand per module.

Each subcommand lives in its own module exposing `register(subparsers)`, which adds its parser and sets
`handler` (a function `Namespace -> exit code`). Registration must stay cheap: a module imports its heavy
dependencies (ccxt, aiohttp, the daemon) inside its handler, so `marginguard calc` never pays for them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# One line per subcommand module; each exposes `register(subparsers)`.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "daemon.app.calc_command",
    "daemon.app.sim_command",
    "daemon.app.check_config_command",
    "daemon.app.run_command",
    "daemon.app.ops_commands",
    "daemon.app.silence_command",
    "daemon.app.test_alert_command",
    "daemon.app.demo_command",
    "daemon.app.receiver_command",
    "daemon.app.cluster_command",
)

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marginguard",
        description="Watch crypto-derivatives positions, model their margin and act before liquidation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        exit_code: int = handler(args)
    except BrokenPipeError:
        # The reader went away (`marginguard check-config | head`): stop quietly, as other command-line tools
        # do, instead of a traceback; stdout is pointed at /dev/null so the interpreter's final flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return exit_code


if __name__ == "__main__":
    raise SystemExit(main())
