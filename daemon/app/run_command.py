"""`marginguard run --config FILE`: the daemon, until SIGTERM or SIGINT.

A bad configuration prints one line naming the field and exits 2, before anything connects; so does a journal
(`daemon.storage_path`, or the PostgreSQL database of `daemon.journal_url`) that another daemon holds. Every
secret in the settings is registered with the log redactor before the first log line is written.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the daemon: watch the configured accounts, alert and top up",
        description="Watch every configured account until SIGTERM/SIGINT (graceful stop within shutdown_timeout_s).",
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="the TOML configuration")
    parser.add_argument(
        "--secrets-dir", type=Path, default=None, metavar="DIR", help="directory of secret files"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from daemon.app.logging import configure_logging, register_secrets
    from daemon.app.settings import SettingsError, load_settings
    from daemon.app.settings_view import secret_values
    from daemon.store.leases import ClusterMismatch
    from daemon.store.lock import JournalLock, JournalLocked, NoLock

    try:
        settings = load_settings(args.config, secrets_dir=args.secrets_dir)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return EXIT_INVALID
    register_secrets(secret_values(settings))
    configure_logging(settings.daemon.log_format, settings.daemon.log_level)
    # A PostgreSQL journal has its own lock (one daemon) or leases (a cluster); storage_path is not used then.
    lock = JournalLock(settings.daemon.storage_path) if settings.daemon.journal_url is None else NoLock()
    try:
        lock.acquire()
    except JournalLocked as error:
        print(f"marginguard run: {error}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as error:
        print(f"marginguard run: daemon.storage_path: cannot lock {lock.path}: {error}", file=sys.stderr)
        return EXIT_INVALID
    try:
        asyncio.run(serve(settings))
    except JournalLocked as error:  # the PostgreSQL journal's lock, taken when the journal opens
        print(f"marginguard run: {error}", file=sys.stderr)
        return EXIT_INVALID
    except ClusterMismatch as error:
        print(f"marginguard run: {error}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        lock.release()
    return EXIT_OK


async def serve(settings: Any) -> None:
    """Run the daemon in this event loop until SIGTERM/SIGINT."""
    from daemon.app.supervisor import Daemon

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        daemon = await Daemon.open(settings)
        await daemon.run(stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
