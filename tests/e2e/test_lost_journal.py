"""A journal lost between two runs (a container without a volume, a deleted file) resets nothing that matters.

The first run tops the bleeding position up; it is killed and its journal deleted. The second run starts on an
empty journal while the position is back under its trigger: the daily limit must still hold (what the first run
added is counted from the exchange before any top-up), and none of its messages may reuse an idempotency key the
receiver already saw from the first run.
"""

from __future__ import annotations

import contextlib
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from tests.e2e.support import (
    SYMBOL,
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

SPEED = 3.0
DAILY_LIMIT = 500.0


async def test_a_lost_journal_keeps_the_daily_limit_and_never_reuses_an_idempotency_key(
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
        port = free_port()
        document = config_document(
            tmp_path, port, [account_for("main", sim)], [webhook_sink(receiver.url)], topup=True
        )
        document["topup"].update(
            max_per_action=DAILY_LIMIT,
            max_per_position_per_day=DAILY_LIMIT,
            max_per_account_per_day=DAILY_LIMIT,
        )
        config = write_config(tmp_path / "marginguard.toml", document)

        first_run = await stack.enter_async_context(DaemonProcess(config, port))
        await first_run.wait_ready()
        bleed.play()
        await eventually(
            lambda: first(webhook_alerts(receiver), "topup_done"), 40, "the first top-up", first_run
        )
        await eventually(lambda: bleed.task is not None and bleed.task.done(), 30, "the price path to end")
        first_run.signal(signal.SIGKILL)
        assert await first_run.wait(10) == -signal.SIGKILL
        added_first = (bleed.isolated_margin() or 0.0) - margin_before
        assert 0 < added_first <= DAILY_LIMIT
        seen_first = len(webhook_alerts(receiver))
        for name in ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"):
            (tmp_path / name).unlink(missing_ok=True)

        # The market falls back under the trigger: 1 % from the new liquidation price.
        liquidation = bleed.liquidation_price()
        assert liquidation is not None
        sim.engine.set_mark(SYMBOL, liquidation / 0.99)
        sim.engine.publish_marks()

        second_run = await stack.enter_async_context(DaemonProcess(config, port))
        await second_run.wait_ready()

        def second_outcome() -> dict[str, Any] | None:
            later = webhook_alerts(receiver)[seen_first:]
            return first(later, "topup_refused") or first(later, "topup_done")

        outcome = await eventually(second_outcome, 30, "the second run's top-up decision", second_run)
        added = (bleed.isolated_margin() or 0.0) - margin_before
        assert added <= DAILY_LIMIT * (1 + 1e-9), f"{added} added against a daily limit of {DAILY_LIMIT}"
        # The daily cap speaks: what is left of it was added (counted exactly from the exchange's margin
        # history, where the venue keeps one), or nothing was left.
        assert outcome["kind"] in ("topup_refused", "topup_done"), outcome["summary"]
        assert "max_per_" in outcome["summary"], outcome["summary"]

        second_run.signal(signal.SIGTERM)
        assert await second_run.wait(15) == 0, second_run.tail()
        # A key names one message: a message sent again (at least once: a retry after a lost answer) carries
        # the same key and the same content; a different message under a key already used is the failure.
        messages: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
        for alert in webhook_alerts(receiver):
            messages[alert["idempotency_key"]].add(
                (alert["kind"], alert["sequence"], alert["ts"], alert["summary"])
            )
        reused = {key: sorted(map(str, seen)) for key, seen in messages.items() if len(seen) > 1}
        assert reused == {}, f"a new message reused an idempotency key: {reused}"
        first_keys = {alert["idempotency_key"] for alert in webhook_alerts(receiver)[:seen_first]}
        second_keys = {alert["idempotency_key"] for alert in webhook_alerts(receiver)[seen_first:]}
        assert first_keys.isdisjoint(second_keys), "the second run sent a key the first run had used"
