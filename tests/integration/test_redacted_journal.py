"""A receiver whose error page echoes the webhook path must not bring the token into the journal or into
`marginguard history`: the daemon's outbox (as the daemon wires it) against a real loopback receiver that
answers every request with such a page, then the `history` command as an operator runs it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from daemon.app.settings import load_settings
from daemon.app.supervisor import Daemon
from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.store import SqliteJournal

REPO = Path(__file__).resolve().parents[2]
TOKEN = "webhookPathToken-c29d41"
SLACK_TOKEN = "T0E2ETEST/B0E2ETEST/slackPathToken5f3a9c"
WAIT_S = 10.0


@pytest.fixture
async def echoing_receiver() -> AsyncIterator[str]:
    """Every request answered 404 (given up at once) or 500 (retried), the page quoting the request path."""

    async def answer(request: web.Request) -> web.Response:
        status = 404 if "hooks" in request.path else 500
        return web.Response(status=status, text=f"<h1>No route</h1><p>POST {request.path} is unknown</p>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def alert() -> Alert:
    return Alert(
        identity=AlertIdentity("main", "BTC/USDT:USDT", "long", "liquidation_risk"),
        kind=AlertKind.LIQUIDATION_RISK,
        severity=Severity.CRITICAL,
        resolved=False,
        ts=1_795_000_000.0,
        account="main",
        exchange="binanceusdm",
        symbol="BTC/USDT:USDT",
        side="long",
        contracts=1.0,
        mark_price=60_000.0,
        liquidation_price=57_000.0,
        distance=0.05,
        margin_ratio=None,
        action=None,
        summary="main BTC/USDT:USDT long critical",
        sequence=1,
    )


async def test_delivery_errors_that_echo_the_webhook_path_are_journaled_and_shown_without_the_token(
    tmp_path: Path, echoing_receiver: str
) -> None:
    config = tmp_path / "marginguard.toml"
    config.write_text(
        f"""
[daemon]
storage_path = "{tmp_path / "journal.sqlite"}"

[[sinks]]
name = "audit"
type = "webhook"
url = "{echoing_receiver}/hooks/{TOKEN}"

[[sinks]]
name = "ops"
type = "slack"
url = "{echoing_receiver}/services/{SLACK_TOKEN}"
"""
    )
    daemon = await Daemon.open(load_settings(config, env={}))
    try:
        await daemon.journal.record_alert(alert(), ["audit", "ops"], now=1_795_000_000.0)
        async with asyncio.timeout(WAIT_S):
            while True:
                await daemon.outbox.send_due()
                rows = (await daemon.journal.history(5))[0]["deliveries"]
                if all(row["last_error"] for row in rows):
                    break
                await asyncio.sleep(0.05)
    finally:
        for sink in daemon.sinks.values():
            await sink.close()
        await daemon.journal.close()

    async with await SqliteJournal.open(tmp_path / "journal.sqlite") as journal:
        errors = {row["sink"]: row["last_error"] for row in (await journal.history(5))[0]["deliveries"]}
    # Before: "HTTP 404: ... POST /hooks/webhookPathToken-c29d41 is unknown" was journaled as it came.
    assert errors["audit"].startswith("HTTP 404") and "POST *** is unknown" in errors["audit"], errors
    assert errors["ops"].startswith("HTTP 500") and "POST *** is unknown" in errors["ops"], errors
    for text in errors.values():
        assert TOKEN not in text and "slackPathToken5f3a9c" not in text and "B0E2ETEST" not in text

    for args in (("--json",), ()):
        shown = await asyncio.to_thread(history, config, *args)
        assert "main BTC/USDT:USDT long critical" in shown
        assert TOKEN not in shown and "slackPathToken5f3a9c" not in shown


def history(config: Path, *args: str) -> str:
    """`marginguard history` as an operator runs it; its standard output."""
    shown = subprocess.run(
        [sys.executable, "-m", "daemon", "history", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


async def test_history_masks_a_token_journaled_before_redaction_existed(tmp_path: Path) -> None:
    config = tmp_path / "marginguard.toml"
    config.write_text(
        f'[daemon]\nstorage_path = "{tmp_path / "journal.sqlite"}"\n\n'
        f'[[sinks]]\nname = "audit"\ntype = "webhook"\nurl = "http://127.0.0.1:9/hooks/{TOKEN}"\n'
    )
    async with await SqliteJournal.open(tmp_path / "journal.sqlite") as journal:
        await journal.record_alert(alert(), ["audit"], now=1_795_000_000.0)
        (delivery,) = await journal.due_deliveries(1_795_000_001.0)
        # What an older marginguard journaled, as the receiver said it.
        await journal.mark_failed(delivery.id, f"HTTP 404: no route for /hooks/{TOKEN}")

    (entry,) = json.loads(history(config, "--json"))
    assert entry["deliveries"][0]["last_error"] == "HTTP 404: no route for ***"
