"""`marginguard run --config FILE`: the daemon, until SIGTERM or SIGINT.

A bad configuration prints one line naming the field and exits 2, before anything connects; so does a journal
(`daemon.storage_path`, or the PostgreSQL database of `daemon.journal_url`) that another daemon holds. Every
secret in the settings is registered with the log redactor before the first log line is written.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
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
    except Exception as error:
        # Only a cluster imports the lease store (and asyncpg with it: ~0.1 s): its error can only come from there.
        leases = sys.modules.get("daemon.store.leases")
        if leases is None or not isinstance(error, leases.ClusterMismatch):
            raise
        print(f"marginguard run: {error}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        lock.release()
    return EXIT_OK


async def serve(settings: Any) -> None:
    """Run the daemon in this event loop until SIGTERM/SIGINT.

    The HTTP listener comes first (`daemon.app.http_face`): /healthz answers and /readyz says "starting" while
    ccxt is imported, the journal opened and the accounts' clients built behind it."""
    from daemon.app.collector import Collector
    from daemon.app.http import Metrics
    from daemon.app.http_face import Face

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    face = Face(Metrics())
    collector = Collector(loop)
    collector.install()
    try:
        await face.open(settings.daemon.http_bind)
        # ccxt and the runtime (about a second), imported behind the listener on a worker thread, so that the
        # event loop goes on answering /healthz meanwhile.
        supervisor = await asyncio.to_thread(importlib.import_module, "daemon.app.supervisor")
        daemon = await supervisor.Daemon.open(settings, metrics=face.metrics)
        await daemon.run(stop, face, collector)  # closes the listener when it stops
    finally:
        collector.uninstall()
        await face.close()  # when the daemon could not be built (closing twice is harmless)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
