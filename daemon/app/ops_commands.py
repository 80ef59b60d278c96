"""`marginguard status`, `history` and `silence`: what the daemon sees, what it said, and quiet hours.

`status` asks the running daemon (its /status endpoint on `http_bind`); `history` and `silence` use the journal
file directly, so they work whether or not the daemon runs. Tables in a terminal, JSON otherwise or with --json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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

    silence = subparsers.add_parser("silence", help="mute an account's (or one symbol's) alerts for a while")
    _common(silence)
    silence.add_argument("--account", required=True)
    silence.add_argument("--symbol", default=None, help="unified symbol, e.g. BTC/USDT:USDT (default: all)")
    silence.add_argument("--for", dest="duration", required=True, help="e.g. 30m, 2h, 1d")
    silence.add_argument("--reason", default="")
    silence.set_defaults(handler=run_silence)


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
        json.dump(status, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    header = ("account", "symbol", "side", "size", "mark", "liq. price", "distance", "margin ratio")
    rows = [header]
    for account, info in status["accounts"].items():
        if not info["legs"]:
            rows.append((account, "-", "-", "-", "-", "-", "-", info["state"]))
        for leg in info["legs"]:
            rows.append(
                (
                    account,
                    leg["symbol"],
                    leg["side"],
                    _fmt(leg["contracts"]),
                    _fmt(leg["mark_price"]),
                    _fmt(leg["liquidation_price"]),
                    _fmt(leg["distance_to_liquidation"], percent=True),
                    _fmt(leg["margin_ratio"], percent=True),
                )
            )
    _print_table(rows)
    return EXIT_OK


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
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["ts"]))
        deliveries = ", ".join(f"{d['sink']}:{d['status']}" for d in entry["deliveries"]) or "-"
        state = "resolved" if entry["resolved"] else "firing"
        rows.append((when, entry["severity"], state, entry["summary"], deliveries))
    _print_table(rows)
    return EXIT_OK


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"--for: {text!r} is not a duration like 30m, 2h or 1d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def run_silence(args: argparse.Namespace) -> int:
    from daemon.store import Journal

    try:
        seconds = parse_duration(args.duration)
    except ValueError as error:
        print(f"marginguard silence: {error}", file=sys.stderr)
        return EXIT_INVALID
    settings = _settings(args)
    if settings is None:
        return EXIT_INVALID
    if args.account not in {account.id for account in settings.accounts}:
        print(
            f"marginguard silence: --account: no account {args.account!r} in {args.config}", file=sys.stderr
        )
        return EXIT_INVALID
    now = time.time()
    with Journal(settings.daemon.storage_path) as journal:
        journal.add_silence(args.account, args.symbol, now + seconds, args.reason, now)
    until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now + seconds))
    print(f"silenced {args.account} {args.symbol or '(all symbols)'} until {until}")
    return EXIT_OK


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
