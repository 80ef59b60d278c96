"""`marginguard test-alert`: send one clearly labelled test message through the configured sinks, as the daemon
would (same transports, same formatting, same secrets), and say for each whether it was delivered.

    marginguard test-alert --config FILE [--sink NAME ...]

Nothing is journaled and no running daemon is needed. Exit code 0 when every chosen sink delivered, 1 when
one did not (its reason is printed), 2 for a bad configuration or an unknown sink name.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "test-alert", help="send a labelled test message through every sink (or the named ones)"
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="the TOML configuration")
    parser.add_argument(
        "--sink", action="append", metavar="NAME", help="only this sink (repeatable; default: all of them)"
    )
    parser.set_defaults(handler=run_test_alert)


def run_test_alert(args: argparse.Namespace) -> int:
    from daemon.app.settings import load_or_report

    settings = load_or_report(args.config)
    if settings is None:
        return EXIT_INVALID
    configured = {sink.name: sink for sink in settings.sinks}
    if not configured:
        print(f"marginguard test-alert: no [[sinks]] in {args.config}: nothing to test", file=sys.stderr)
        return EXIT_INVALID
    chosen = args.sink or list(configured)
    for name in chosen:
        if name not in configured:
            near = difflib.get_close_matches(name, list(configured), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(configured)})"
            print(f"marginguard test-alert: --sink: no sink {name!r}{hint}", file=sys.stderr)
            return EXIT_INVALID
    results = asyncio.run(_send([configured[name] for name in chosen]))
    for name, problem in results:
        print(f"{name}: delivered" if problem is None else f"{name}: NOT delivered: {problem}")
    return EXIT_OK if all(problem is None for _, problem in results) else EXIT_FAILED


async def _send(sinks: list[Any]) -> list[tuple[str, str | None]]:
    """Each sink's test message, sent at once; (name, None when delivered, else why not)."""
    from daemon.app.supervisor import sink_from_settings
    from daemon.core.alerts import sink_check_alert
    from daemon.notify import Sent, close_all

    built = [sink_from_settings(sink) for sink in sinks]
    try:
        outcomes = await asyncio.gather(
            *(sink.send(sink_check_alert(sink.name, time.time())) for sink in built)
        )
    finally:
        await close_all(built)
    return [
        (sink.name, None if isinstance(outcome, Sent) else str(getattr(outcome, "reason", outcome)))
        for sink, outcome in zip(built, outcomes, strict=True)
    ]
