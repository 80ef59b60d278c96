"""`marginguard status` and `history`: what the daemon sees and what it said (`silence` has its own module).

`status` asks the running daemon (its /status endpoint on `http_bind`); `history` uses the journal file
directly, so it works whether or not the daemon runs. Tables in a terminal, JSON otherwise or with --json.
"""

from __future__ import annotations

import argparse
import json
import sys
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
    status.set_defaults(handler=run_status)

    history = subparsers.add_parser("history", help="the latest alerts and their deliveries")
    _common(history)
    history.add_argument("--limit", type=int, default=30, help="how many alerts (default 30)")
    history.set_defaults(handler=run_history)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="the TOML configuration")
    parser.add_argument("--json", action="store_true", help="JSON output even in a terminal")


def _settings(args: argparse.Namespace) -> Any:
    from daemon.app.settings import SettingsError, load_settings

    try:
        return load_settings(args.config)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return None


def _as_table(args: argparse.Namespace) -> bool:
    return not args.json and sys.stdout.isatty()


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "unknown"
    if percent:
        return f"{value * 100:.2f}%"
    return f"{value:,.6g}" if isinstance(value, float) else str(value)


def run_status(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    settings = _settings(args)
    if settings is None:
        return EXIT_INVALID
    url = f"http://{settings.daemon.http_bind}/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status = json.load(response)
    except (urllib.error.URLError, OSError) as error:
        print(f"marginguard status: the daemon does not answer at {url} ({error})", file=sys.stderr)
        return EXIT_FAILED
    if not _as_table(args):
        from daemon.app.silence_command import silences_in_force

        json.dump({**status, "silences": silences_in_force(settings)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
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
    rows = [header]
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
    _print_table(rows)
    _print_silences(settings)
    return EXIT_OK


def _print_silences(settings: Any) -> None:
    """The silences in force under the table: a muted position must not look like a quiet one."""
    from daemon.app.silence_command import silences_in_force

    silences = silences_in_force(settings)
    for silence in silences:
        print(f"silenced: {silence}")


def run_history(args: argparse.Namespace) -> int:
    from daemon.app.redaction import Redactor
    from daemon.app.settings_view import secret_values
    from daemon.store import Journal

    settings = _settings(args)
    if settings is None:
        return EXIT_INVALID
    with Journal(settings.daemon.storage_path) as journal:
        # Redacted on the way out too: entries written before a secret was configured (or rotated) may hold it.
        history = Redactor(secret_values(settings)).value(journal.history(args.limit))
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


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
