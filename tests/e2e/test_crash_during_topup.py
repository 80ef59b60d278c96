"""`kill -9` while an add-margin request is in flight, then a restart on the same configuration and journal.

The simulator holds the add-margin request unanswered; the daemon is killed while it waits; the request is then
let through (it lands, but nobody hears the answer: the worst case for a retry). After the restart the daemon
must find the margin already added instead of adding it again, and every alert must reach the receiver exactly
once.
"""

from __future__ import annotations

import contextlib
import signal
from collections import Counter
from pathlib import Path

from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from daemon.store import Journal
from tests.e2e.support import (
    ADD_MARGIN_PATHS,
    MARGIN_STEPS,
    Bleed,
    DaemonProcess,
    account_for,
    config_document,
    eventually,
    first,
    free_port,
    stated_amount,
    webhook_alerts,
    webhook_sink,
    write_config,
)

SPEED = 3.0


async def test_a_restart_after_kill_9_mid_top_up_neither_repeats_it_nor_loses_or_repeats_an_alert(
    tmp_path: Path,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(SimServer("binance"))
        receiver = await stack.enter_async_context(Receiver())
        bleed = Bleed(sim, SPEED)
        bleed.setup()
        stack.push_async_callback(bleed.stop)
        margin_before = bleed.isolated_margin()
        assert margin_before is not None
        # The exchange takes the add-margin request but keeps it unanswered until released.
        sim.faults.set("http_timeout", path=ADD_MARGIN_PATHS["binance"], method="POST", hold_s=60, count=1)

        port = free_port()
        document = config_document(
            tmp_path, port, [account_for("main", sim)], [webhook_sink(receiver.url)], topup=True
        )
        config = write_config(tmp_path / "marginguard.toml", document)

        first_run = await stack.enter_async_context(DaemonProcess(config, port))
        await first_run.wait_ready()
        bleed.play()
        await eventually(bleed.add_margin_requests, 30, "the add-margin request", first_run)
        first_run.signal(signal.SIGKILL)
        assert await first_run.wait(10) == -signal.SIGKILL
        with Journal(tmp_path / "journal.sqlite") as journal:
            in_flight = journal.unsettled_intents("main")
        assert len(in_flight) == 1, "the intent was journaled before the request was sent"

        # The request lands after all, but its answer has nobody to go to.
        sim.faults.clear("http_timeout")
        await eventually(lambda: bleed.add_margin_requests()[0]["status"] == 200, 10, "the held request")
        added = bleed.isolated_margin()
        assert added is not None and added > margin_before

        second_run = await stack.enter_async_context(DaemonProcess(config, port))
        await second_run.wait_ready()

        def resolved() -> object:
            return first(webhook_alerts(receiver), "liquidation_risk", resolved=True)

        await eventually(resolved, 30, "the all-clear after the restart", second_run)
        await eventually(lambda: bleed.task is not None and bleed.task.done(), 20, "the price path to end")
        second_run.signal(signal.SIGTERM)
        assert await second_run.wait(10) == 0, second_run.tail()

        # One top-up in all, and the position lived through the bleed.
        assert len(bleed.add_margin_requests()) == 1
        assert bleed.isolated_margin() == added
        assert sim.engine.liquidations == []

        # Every alert arrived once: no idempotency key twice, no gap in any conversation's sequence.
        alerts = webhook_alerts(receiver)
        keys = Counter(a["idempotency_key"] for a in alerts)
        assert [k for k, n in keys.items() if n > 1] == []
        by_conversation: dict[str, list[int]] = {}
        for alert in alerts:
            by_conversation.setdefault(alert["key"], []).append(alert["sequence"])
        for key, sequences in by_conversation.items():
            assert sequences == list(range(1, len(sequences) + 1)), (key, sequences)
        warning = first(alerts, "liquidation_risk", "warning")
        critical = first(alerts, "liquidation_risk", "critical")
        done, all_clear = first(alerts, "topup_done"), resolved()
        assert warning and critical and done and all_clear, [a["summary"] for a in alerts]
        assert [warning, critical, done, all_clear] == alerts
        # The top-up the first run made is told by the second, for the amount that landed.
        sent, stated = added - margin_before, stated_amount(done["action"])
        assert 0 < sent <= stated * (1 + 1e-7) and stated - sent < MARGIN_STEPS["binance"], done["action"]
        with Journal(tmp_path / "journal.sqlite") as journal:
            assert journal.pending_deliveries() == 0
            assert [intent.status for intent in journal.intents("main")] == ["done"]
            assert len(journal.history(limit=1000)) == len(alerts), "an alert journaled was never delivered"
