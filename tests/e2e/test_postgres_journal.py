"""`marginguard run` with its journal in PostgreSQL (`daemon.journal_url`), end to end against the simulator: the
slow bleed is warned, topped up once and resolved, every alert journaled in the database and delivered; a
second daemon on the same database (another machine's storage_path) exits 2 with one line naming the database,
its password masked, and the holder; the password never appears in any output."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from tests.e2e.support import (
    Bleed,
    DaemonProcess,
    account_for,
    config_document,
    eventually,
    first,
    free_port,
    webhook_alerts,
    webhook_sink,
    write_config,
)
from tests.pg_server import create_schema

PASSWORD = "pgE2ePassword-0c7a55"  # trust auth ignores it


@pytest.fixture
def journal_url(postgres_url: str) -> Iterator[str]:
    url = create_schema(postgres_url, f"e{os.getpid()}_{time.monotonic_ns()}")
    yield url.replace("://postgres@", f"://postgres:{PASSWORD}@", 1)


async def _journaled(url: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT a.kind, d.status FROM alerts a JOIN deliveries d ON d.alert_id = a.id ORDER BY a.id, d.id"
        )
    finally:
        await conn.close()
    return [(str(row["kind"]), str(row["status"])) for row in rows]


async def test_the_daemon_journals_in_postgresql_and_a_second_one_on_it_exits_2(
    tmp_path: Path, journal_url: str
) -> None:
    account = "binance-main"
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(SimServer("binance"))
        receiver = await stack.enter_async_context(Receiver())
        bleed = Bleed(sim, 3.0)
        bleed.setup()
        stack.push_async_callback(bleed.stop)
        sinks = [webhook_sink(receiver.url)]

        def document(state: Path, port: int) -> Path:
            state.mkdir(exist_ok=True)
            doc = config_document(state, port, [account_for(account, sim)], sinks, topup=True)
            doc["daemon"]["journal_url"] = journal_url
            return write_config(state / "marginguard.toml", doc)

        port = free_port()
        daemon = await stack.enter_async_context(DaemonProcess(document(tmp_path / "first", port), port))
        await daemon.wait_ready()
        bleed.play()

        def resolved() -> object:
            return first(webhook_alerts(receiver, account), "liquidation_risk", resolved=True)

        await eventually(resolved, 40, "the liquidation risk to resolve", daemon)
        alerts = webhook_alerts(receiver, account)
        assert first(alerts, "topup_done"), [a["summary"] for a in alerts]
        assert len(bleed.add_margin_requests()) == 1

        # A second daemon on the same database, with its own storage_path (its lock file does not stop it).
        second_port = free_port()
        second = await stack.enter_async_context(
            DaemonProcess(document(tmp_path / "second", second_port), second_port)
        )
        assert await second.wait(20) == 2, second.tail()
        lines = [line for line in second.output.splitlines() if line.strip()]
        assert len(lines) == 1, second.output
        assert "postgres:***@" in lines[0] and journal_url.split("@", 1)[1] in lines[0], lines[0]
        assert f"marginguard pid {daemon.process.pid}" in lines[0], lines[0]  # type: ignore[union-attr]

        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(15) == 0, daemon.tail()
        journaled = await _journaled(journal_url)
        kinds = {kind for kind, _status in journaled}
        assert {"liquidation_risk", "topup_done"} <= kinds, journaled
        assert {status for _kind, status in journaled} == {"sent"}, journaled
        assert PASSWORD not in daemon.output and PASSWORD not in second.output
