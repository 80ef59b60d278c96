"""A chat platform that rate-limits (429 with its retry hint) and a webhook that fails (500) for a while: the
alerts reach both later, complete and in the order they were decided."""

from __future__ import annotations

import contextlib
import itertools
import signal
import sqlite3
from pathlib import Path

from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from daemon.store import Journal
from tests.e2e.support import (
    SYMBOL,
    Bleed,
    DaemonProcess,
    account_for,
    all_sinks,
    config_document,
    eventually,
    free_port,
    visible_text,
    write_config,
)

RETRY_AFTER_S = 1.0


def journaled(journal_path: Path) -> list[tuple[str, str, int]]:
    """(kind, severity, sequence) of every alert the daemon decided, read-only, in the order decided."""
    with contextlib.closing(sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)) as db:
        return list(db.execute("SELECT kind, severity, sequence FROM alerts ORDER BY id"))


async def test_alerts_held_up_by_429s_and_500s_arrive_later_complete_and_in_order(tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(SimServer("binance"))
        receiver = await stack.enter_async_context(Receiver())
        Bleed(sim, 1.0).setup()  # the position only: the marks are moved by hand below
        receiver.fail(429, times=2, retry_after=RETRY_AFTER_S, platform="telegram")
        receiver.fail(500, times=3, platform="webhook")

        port = free_port()
        sinks = [s for s in all_sinks(receiver.url) if s["type"] in ("telegram", "webhook")]
        document = config_document(tmp_path, port, [account_for("main", sim)], sinks, topup=False)
        daemon = await stack.enter_async_context(
            DaemonProcess(write_config(tmp_path / "marginguard.toml", document), port)
        )
        await daemon.wait_ready()
        journal = tmp_path / "journal.sqlite"

        def decided(severity: str) -> bool:
            return any(s == severity for _, s, _ in journaled(journal))

        # Warning (3.2 % from liquidation), critical (1.7 %), then clear again.
        sim.engine.set_marks({SYMBOL: 66000.0})
        await eventually(lambda: decided("warning"), 10, "the warning", daemon)
        sim.engine.set_marks({SYMBOL: 65000.0})
        await eventually(lambda: decided("critical"), 10, "the critical alert", daemon)
        sim.engine.set_marks({SYMBOL: 67000.0})
        await eventually(lambda: decided("info"), 10, "the all-clear", daemon)

        expected = journaled(journal)
        assert [(k, s) for k, s, _ in expected] == [
            ("liquidation_risk", "warning"),
            ("liquidation_risk", "critical"),
            ("liquidation_risk", "info"),
        ]
        await eventually(
            lambda: len(receiver.received("webhook")) == len(receiver.received("telegram")) == len(expected),
            30,
            "every alert on both platforms",
            daemon,
        )

        # The webhook: three 500s first, then every alert once, in the order decided.
        webhook = [r for r in receiver.requests if r.platform == "webhook"]
        assert [r.status for r in webhook[:3]] == [500, 500, 500]
        accepted = [r.json for r in receiver.received("webhook")]
        assert [(a["kind"], a["severity"], a["sequence"]) for a in accepted] == expected

        # Telegram: two 429s, each retried no sooner than it asked, then every alert in order.
        telegram = [r for r in receiver.requests if r.platform == "telegram"]
        assert [r.status for r in telegram[:3]] == [429, 429, 200]
        for refused, retry in itertools.pairwise(telegram[:3]):
            assert retry.at - refused.at >= RETRY_AFTER_S * 0.95, "retried before the platform's retry_after"
        texts = [visible_text(r) for r in receiver.received("telegram")]
        for text, alert in zip(texts, accepted, strict=True):
            assert alert["summary"] in text

        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(10) == 0, daemon.tail()
        with Journal(journal) as done:
            assert done.pending_deliveries() == 0
