"""A stop while a chat platform holds its answer to a message: the message was taken, so marginguard waits for the
answer and journals it as sent. Cut off, it would stay pending, and the stop's flush (or the next start) would post
it a second time: a duplicate in the user's channel. The daemon itself, real ccxt, the simulator, a receiver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.app.settings import load_settings
from daemon.app.supervisor import Daemon
from daemon.core.types import Side
from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from daemon.store import SqliteJournal
from tests.e2e.support import account_for, free_port, webhook_alerts, webhook_sink, write_config
from tests.integration.daemon_support import WAIT_S, eventually

pytestmark = pytest.mark.integration


async def test_a_message_in_flight_at_the_stop_is_answered_and_sent_once(tmp_path: Path) -> None:
    async with SimServer("bybit", mark_interval_s=0.25) as sim, Receiver() as receiver:
        sim.engine.set_position(
            sim.account.api_key, "BTCUSDT", Side.LONG, 0.1, entry_price=sim.engine.marks["BTCUSDT"]
        )
        journal_path = tmp_path / "journal.sqlite"
        document = {
            "daemon": {
                "storage_path": str(journal_path),
                "http_bind": f"127.0.0.1:{free_port()}",
                "log_level": "warning",
                "shutdown_timeout_s": 5,
            },
            "rules": {"stale_after_s": 1},
            "accounts": [account_for("main", sim)],
            "sinks": [webhook_sink(receiver.url)],
        }
        daemon = await Daemon.open(
            load_settings(write_config(tmp_path / "marginguard.toml", document), env={})
        )
        stop = asyncio.Event()
        with capture_logs() as logs:
            async with asyncio.timeout(4 * WAIT_S), asyncio.TaskGroup() as group:
                run = group.create_task(daemon.run(stop))
                await eventually(lambda: daemon.readiness()[0])

                receiver.hold_answers()
                sim.faults.set("stall")  # the marks go silent: a stale-data alert, whose answer is held
                await eventually(
                    lambda: len(webhook_alerts(receiver)) == 1, what="the stale-data alert taken"
                )

                stop.set()
                await eventually(lambda: any(entry["event"] == "stopping" for entry in logs), what="the stop")
                receiver.release_answers()  # the platform answers only once the daemon is stopping
                await run

        [alert] = webhook_alerts(receiver)
        assert alert["kind"] == "stale_data"
        assert not [
            entry
            for entry in logs
            if entry["event"] == "outbox stopped mid-request: that message may be sent again"
        ]
        # Nothing left for the next start to post again.
        async with await SqliteJournal.open(journal_path) as journal:
            assert await journal.pending_deliveries() == 0
        assert webhook_alerts(receiver) == [alert]
