"""`marginguard receiver`: a local stand-in for Slack, Discord, Telegram and JSON webhooks that prints every
message it accepts, so a configuration can be tried end to end (`test-alert`, the simulator) before any real
chat is involved. A `webhook` sink with `url = "http://127.0.0.1:8787/alerts"` reaches it; so do the chat types
with their URLs (or Telegram's `base_url`) pointed at it. Registration stays cheap: aiohttp is imported inside
the handler."""

from __future__ import annotations

import argparse
import asyncio
import contextlib


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "receiver",
        help="print the alerts sent to a local webhook (try a configuration without a real chat)",
        description=(
            "Listen on 127.0.0.1 and print each message marginguard sends, answering the way Slack, Discord, "
            "Telegram or a JSON webhook would. Point a sink at it: "
            'url = "http://127.0.0.1:8787/alerts" for a webhook sink.'
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="TCP port (default 8787)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from daemon.notify.receiver import serve_and_print

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_and_print(args.host, args.port))
    except OSError as error:  # the port is taken, or the address is not this machine's
        print(f"marginguard receiver: {error}", flush=True)
        return 2
    return 0
