"""What a top-up really did, told right and never done twice, when the exchange is slow or its answer is lost.

Both tests run `marginguard run` against the Binance simulator on the slow bleed, with a one-second cooldown so
that nothing but the daemon's own rules stands between one top-up and the next:

- the add-margin request is applied by the exchange, but its answer never comes back before the client's
  timeout: the daemon must find out from the exchange's own records that it landed, tell it as done (never as
  failed) and not send it again;
- the exchange applies the request and answers, but its pushes (and every other answer) lag by more than the
  cooldown: the daemon must not decide again for that position until its picture shows the new margin.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from daemon.core.types import Side
from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from daemon.store import Journal
from tests.e2e.support import (
    ADD_MARGIN_PATHS,
    SYMBOL,
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
CLIENT_TIMEOUT_MS = 2_500  # ccxt's request timeout for the account (its default is 10 s)
BINANCE_STEP = 1e-3  # Binance's add-margin amount is truncated to the market's amount precision


def _config(tmp_path: Path, sim: SimServer, receiver: Receiver, port: int) -> Path:
    account = account_for("main", sim)
    account["ccxt_config"]["timeout"] = CLIENT_TIMEOUT_MS
    document = config_document(tmp_path, port, [account], [webhook_sink(receiver.url)], topup=True)
    document["topup"]["cooldown_s"] = 1
    return write_config(tmp_path / "marginguard.toml", document)


def _kinds(alerts: list[dict[str, Any]]) -> list[str]:
    return [a["kind"] for a in alerts]


async def test_an_add_margin_applied_but_answered_after_the_timeout_is_told_done_and_never_repeated(
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
        # The request is held far beyond the client's timeout; by the time it is let go, its signature has
        # expired (recvWindow) and the exchange refuses it. Meanwhile the test applies it, as an exchange that
        # executed it and lost the answer would have.
        sim.faults.set("http_timeout", path=ADD_MARGIN_PATHS["binance"], method="POST", hold_s=40, count=1)
        port = free_port()
        daemon = await stack.enter_async_context(DaemonProcess(_config(tmp_path, sim, receiver, port), port))
        await daemon.wait_ready()
        bleed.play()

        await eventually(bleed.add_margin_requests, 30, "the add-margin request", daemon)
        with Journal(tmp_path / "journal.sqlite") as journal:
            (intent,) = journal.unsettled_intents("main")
        applied = math.floor(intent.amount / BINANCE_STEP) * BINANCE_STEP
        sim.engine.adjust_isolated_margin(bleed.api_key, SYMBOL, Side.LONG, applied)

        def told() -> dict[str, Any] | None:
            alerts = webhook_alerts(receiver)
            return first(alerts, "topup_done") or first(alerts, "topup_failed")

        outcome = await eventually(told, 30, "the top-up's outcome to be told", daemon)
        assert outcome["kind"] == "topup_done", outcome["summary"]
        # The amount decided, which is what was sent once truncated to the exchange's step.
        assert 0 <= stated_amount(outcome["action"]) - applied < BINANCE_STEP * (1 + 1e-6), outcome["action"]
        await eventually(lambda: bleed.task is not None and bleed.task.done(), 30, "the price path to end")

        alerts = webhook_alerts(receiver)
        assert "topup_failed" not in _kinds(alerts), [a["summary"] for a in alerts]
        assert len(bleed.add_margin_requests()) == 1, "the add-margin request was sent again"
        margin_after = bleed.isolated_margin()
        assert margin_after is not None and math.isclose(margin_after, margin_before + applied, abs_tol=1e-9)
        assert sim.engine.liquidations == []
        with Journal(tmp_path / "journal.sqlite") as journal:
            assert [i.status for i in journal.intents("main")] == ["done"]


async def test_a_slow_exchange_whose_picture_lags_past_the_cooldown_gets_one_top_up(tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(SimServer("binance"))
        receiver = await stack.enter_async_context(Receiver())
        bleed = Bleed(sim, speed=1.0)  # in real time: the lagging daemon still reacts before liquidation
        bleed.setup()
        stack.push_async_callback(bleed.stop)
        port = free_port()
        daemon = await stack.enter_async_context(DaemonProcess(_config(tmp_path, sim, receiver, port), port))
        await daemon.wait_ready()
        # Every answer and every pushed frame arrives 1.5 s late: longer than the cooldown, shorter than the
        # client's timeout and the stale-data threshold.
        sim.faults.set("delay", ms=1_500)
        bleed.play()

        await eventually(bleed.add_margin_requests, 40, "the add-margin request", daemon)
        await eventually(lambda: first(webhook_alerts(receiver), "topup_done"), 20, "the top-up told", daemon)
        await eventually(lambda: bleed.task is not None and bleed.task.done(), 40, "the price path to end")
        # Two more seconds of lagging pictures: time enough for a second decision, were one to be taken.
        await eventually(
            lambda: first(webhook_alerts(receiver), "liquidation_risk", resolved=True),
            20,
            "the all-clear",
            daemon,
        )

        requests = bleed.add_margin_requests()
        assert len(requests) == 1, f"{len(requests)} add-margin requests for one decision"
        alerts = webhook_alerts(receiver)
        assert _kinds(alerts).count("topup_done") == 1, [a["summary"] for a in alerts]
        assert sim.engine.liquidations == []
