"""`marginguard status` and `history`: what the daemon sees and what it said (`silence` has its own module).

`status` asks the running daemon (its /status endpoint on `http_bind`); `history` uses the journal file
directly, so it works whether or not the daemon runs. Tables in a terminal, JSON otherwise or with --json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daemon.app.timefmt import utc

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = subparsers.add_parser(
        "status", help="each account's positions with liquidation price and distance"
    )
    _common(status)
    status.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        default=None,
        metavar="SECONDS",
        help="a live view: redraw every SECONDS (default 2) until Ctrl-C",
    )
    status.set_defaults(handler=run_status)

    history = subparsers.add_parser("history", help="the latest alerts and their deliveries")
    _common(history)
    history.add_argument("--limit", type=int, default=30, help="how many alerts (default 30)")
    history.set_defaults(handler=run_history)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="the TOML configuration")
    parser.add_argument("--json", action="store_true", help="JSON output even in a terminal")


def _settings(args: argparse.Namespace) -> Any:
    from daemon.app.settings import load_or_report

    return load_or_report(args.config)


def _as_table(args: argparse.Namespace) -> bool:
    return not args.json and sys.stdout.isatty()


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "unknown"
    if percent:
        return f"{value * 100:.2f}%"
    return f"{value:,.6g}" if isinstance(value, float) else str(value)


def run_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_INVALID
    url = f"http://{settings.daemon.http_bind}/status"
    if args.watch is not None:
        if args.watch <= 0:
            print("marginguard status: --watch: give a period longer than zero seconds", file=sys.stderr)
            return EXIT_INVALID
        return _watch(url, settings, args.watch)
    status, problem = _fetch(url)
    if status is None:
        print(f"marginguard status: {problem}", file=sys.stderr)
        return EXIT_FAILED
    if not _as_table(args):
        from daemon.app.silence_command import silences_in_force

        json.dump({**status, "silences": silences_in_force(settings)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    print("\n".join(_status_lines(status, settings)))
    return EXIT_OK


_CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen


def _watch(url: str, settings: Any, period_s: float) -> int:
    """Redraw the table every `period_s` until Ctrl-C; a daemon that does not answer is said, and asked again
    (it may be restarting)."""
    try:
        while True:
            status, problem = _fetch(url)
            lines = _status_lines(status, settings) if status is not None else [problem]
            heading = f"marginguard status · {utc(time.time())} · every {period_s:g} s · Ctrl-C to stop"
            sys.stdout.write(_CLEAR + heading + "\n\n" + "\n".join(lines) + "\n")
            sys.stdout.flush()
            time.sleep(period_s)
    except KeyboardInterrupt:
        return EXIT_OK


def _fetch(url: str) -> tuple[dict[str, Any] | None, str]:
    """The daemon's /status, or None and why not."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status: dict[str, Any] = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, f"the daemon does not answer at {url} ({error})"
    return status, ""


def _status_lines(status: dict[str, Any], settings: Any) -> list[str]:
    header = (
        "account",
        "symbol",
        "side",
        "size",
        "notional",
        "lev.",
        "mode",
        "mark",
        "liq. price",
        "distance",
        "margin ratio",
        "uPnL",
    )
    rows: list[tuple[str, ...]] = [header]
    for account, info in status["accounts"].items():
        if not info["legs"]:
            rows.append((account, "-", "-", "-", "-", "-", "-", "-", "-", "-", info["state"], "-"))
        for leg in info["legs"]:
            leverage = leg.get("leverage")
            rows.append(
                (
                    account,
                    leg["symbol"],
                    leg["side"],
                    _fmt(leg.get("quantity")),
                    _fmt(leg.get("notional")),
                    "unknown" if leverage is None else f"{leverage:g}x",
                    leg.get("margin_mode") or "unknown",
                    _fmt(leg["mark_price"]),
                    _fmt(leg["liquidation_price"]),
                    _fmt(leg["distance_to_liquidation"], percent=True),
                    _fmt(leg["margin_ratio"], percent=True),
                    _fmt(leg.get("unrealized_pnl")),
                )
            )
    from daemon.app.silence_command import silences_in_force

    return table_lines(rows) + [f"silenced: {silence}" for silence in silences_in_force(settings)]


def run_history(args: argparse.Namespace) -> int:
    from daemon.app.redaction import Redactor
    from daemon.app.settings_view import secret_values
    from daemon.store.opening import use_journal

    settings = _settings(args)
    if settings is None:
        return EXIT_INVALID
    entries = use_journal(
        settings.daemon.storage_path,
        settings.daemon.journal_url_value(),
        lambda journal: journal.history(args.limit),
        shared=settings.cluster.enabled,
    )
    # Redacted on the way out too: entries written before a secret was configured (or rotated) may hold it.
    history = Redactor(secret_values(settings)).value(entries)
    if not _as_table(args):
        json.dump(history, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    rows = [("time", "severity", "state", "summary", "deliveries")]
    for entry in history:
        when = utc(entry["ts"])
        deliveries = ", ".join(f"{d['sink']}:{d['status']}" for d in entry["deliveries"]) or "-"
        state = "resolved" if entry["resolved"] else "firing"
        rows.append((when, entry["severity"], state, entry["summary"], deliveries))
    _print_table(rows)
    return EXIT_OK


def table_lines(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    print("\n".join(table_lines(rows)))
