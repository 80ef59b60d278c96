"""`marginguard silence`: mute an account's (or one symbol's) alerts for a while, list the silences in force, and
lift one early.

    marginguard silence --config FILE --account main [--symbol BTC/USDT:USDT] --for 2h [--reason ...]
    marginguard silence list --config FILE [--json]
    marginguard silence remove ID --config FILE

Silences live in the journal, so these work whether or not the daemon runs; a running daemon reads them again
every second. Times are printed in UTC, with the zone written.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from daemon.app.timefmt import utc

if TYPE_CHECKING:
    from daemon.store import JournalPort

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
ACTIONS = ("add", "list", "remove")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    silence = subparsers.add_parser(
        "silence",
        help="mute an account's (or one symbol's) alerts for a while; `silence list`, `silence remove ID`",
        description="Mute alerts for a while (the default action), list the silences in force, or lift one.",
    )
    silence.add_argument("action", nargs="?", choices=ACTIONS, default="add", help="default: add")
    silence.add_argument("silence_id", nargs="?", type=int, metavar="ID", help="the silence to remove")
    silence.add_argument("--config", type=Path, required=True, metavar="FILE", help="the TOML configuration")
    silence.add_argument("--json", action="store_true", help="JSON output even in a terminal")
    silence.add_argument("--account", help="add: the account to mute")
    silence.add_argument(
        "--symbol", default=None, help="add: unified symbol, e.g. BTC/USDT:USDT (default: all)"
    )
    silence.add_argument("--for", dest="duration", help="add: how long, e.g. 30m, 2h, 1d")
    silence.add_argument("--reason", default="")
    silence.set_defaults(handler=run_silence)


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"--for: {text!r} is not a duration like 30m, 2h or 1d")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"--for: {text!r} would silence nothing: give a duration longer than zero")
    return seconds


def run_silence(args: argparse.Namespace) -> int:
    if args.action != "remove" and args.silence_id is not None:
        return _refuse(f"an ID is only taken by `silence remove`, not by `silence {args.action}`")
    if args.action == "add":
        return _add(args)
    settings = _settings(args)
    if settings is None:
        return EXIT_INVALID
    if args.action == "list":
        return _list(args, settings)
    if args.silence_id is None:
        return _refuse("remove: which silence? give its ID (see `marginguard silence list`)")
    return _remove(args, settings)


def _add(args: argparse.Namespace) -> int:
    if not args.account:
        return _refuse("--account: which account to silence?")
    if not args.duration:
        return _refuse("--for: how long? e.g. 30m, 2h or 1d")
    try:
        seconds = parse_duration(args.duration)
    except ValueError as error:
        return _refuse(str(error))
    settings = _settings(args)
    if settings is None:
        return EXIT_INVALID
    if args.account not in {account.id for account in settings.accounts}:
        return _refuse(f"--account: no account {args.account!r} in {args.config}")
    now = time.time()
    silence_id = _journal(
        settings,
        lambda journal: journal.add_silence(args.account, args.symbol, now + seconds, args.reason, now),
    )
    print(f"silence {silence_id}: {args.account} {args.symbol or '(all symbols)'} until {utc(now + seconds)}")
    return EXIT_OK


def _list(args: argparse.Namespace, settings: Any) -> int:
    silences = _journal(settings, lambda journal: journal.active_silences(time.time()))
    if args.json or not sys.stdout.isatty():
        rows = [
            {"id": s.id, "account": s.account, "symbol": s.symbol, "until": s.until, "reason": s.reason}
            for s in silences
        ]
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if not silences:
        print("no silence in force")
        return EXIT_OK
    table = [("id", "account", "symbol", "until", "reason")]
    table += [(str(s.id), s.account, s.symbol or "(all)", utc(s.until), s.reason) for s in silences]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def silences_in_force(settings: Any) -> list[str]:
    """Each silence in force, one line each (for `status`), or [] when the journal cannot be read."""
    try:
        silences = _journal(settings, lambda journal: journal.active_silences(time.time()))
    except Exception:  # the table stands on its own; a journal locked or missing only hides this footnote
        return []
    return [
        f"#{s.id} {s.account} {s.symbol or '(all symbols)'} until {utc(s.until)}"
        + (f" ({s.reason})" if s.reason else "")
        for s in silences
    ]


def _remove(args: argparse.Namespace, settings: Any) -> int:
    ended = _journal(settings, lambda journal: journal.end_silence(args.silence_id, time.time()))
    if ended is None:
        print(
            f"marginguard silence: remove: no silence {args.silence_id} in force (see `marginguard silence list`)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"silence {ended.id} removed: {ended.account} {ended.symbol or '(all symbols)'} alerts resume")
    return EXIT_OK


def _settings(args: argparse.Namespace) -> Any:
    from daemon.app.settings import load_or_report

    return load_or_report(args.config)


def _refuse(message: str) -> int:
    print(f"marginguard silence: {message}", file=sys.stderr)
    return EXIT_INVALID


def _journal(settings: Any, use: Callable[[JournalPort], Awaitable[T]]) -> T:
    """Open the configured journal for one operation (the daemon may be running: SQLite's own locking, or
    PostgreSQL's, keeps this short transaction apart from its own)."""
    from daemon.store.opening import use_journal

    return use_journal(
        settings.daemon.storage_path,
        settings.daemon.journal_url_value(),
        use,
        shared=settings.cluster.enabled,
    )
