"""A mark that gaps from far away straight through a position's liquidation price: the exchange liquidates the
position, and marginguard tells the user it was liquidated — from the exchange's own records, since its last
judged distance was far from any threshold — and never that it closed or is clear. A position its owner closes
is still told as closed. The real daemon, real ccxt, each simulated venue, a local webhook receiver.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import pytest

from daemon.core.types import MarginMode, Side
from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from tests.e2e.support import (
    DaemonProcess,
    account_for,
    all_sinks,
    config_document,
    decoded_png,
    eventually,
    free_port,
    visible_text,
    webhook_alerts,
    webhook_sink,
    write_config,
)

BTC, ETH = "BTCUSDT", "ETHUSDT"


def _unified(sim: SimServer, market_id: str) -> str:
    market = sim.engine.markets[market_id]
    return f"{market.base}/{market.quote}:{market.settle}"


def _open(sim: SimServer, market_id: str, base_amount: float, leverage: float) -> float:
    """An isolated long at the mark; returns its liquidation price on the simulated exchange."""
    key = sim.account.api_key
    contracts = base_amount / sim.engine.markets[market_id].contract_size
    entry = sim.engine.marks[market_id]
    sim.engine.set_position(
        key,
        market_id,
        Side.LONG,
        contracts,
        entry_price=entry,
        margin_mode=MarginMode.ISOLATED,
        leverage=leverage,
    )
    price = sim.engine.liquidation_price(key, market_id, Side.LONG)
    assert price is not None and price < entry
    return price


def _about(alerts: list[dict[str, object]], symbol: str) -> list[dict[str, object]]:
    return [a for a in alerts if a["symbol"] == symbol]


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_a_gap_through_liquidation_is_told_as_a_liquidation_and_an_owners_close_as_closed(
    tmp_path: Path, exchange: str
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(SimServer(exchange))
        receiver = await stack.enter_async_context(Receiver())
        key = sim.account.api_key
        sim.engine.set_wallet(key, "USDT", 10_000.0)
        btc_liquidation = _open(sim, BTC, 0.1, leverage=10)  # about 10 % away: far from every threshold
        eth_liquidation = _open(sim, ETH, 1.0, leverage=10)
        btc, eth = _unified(sim, BTC), _unified(sim, ETH)

        port = free_port()
        discord = next(sink for sink in all_sinks(receiver.url) if sink["type"] == "discord")
        document = config_document(
            tmp_path, port, [account_for("main", sim)], [webhook_sink(receiver.url), discord], topup=False
        )
        daemon = await stack.enter_async_context(
            DaemonProcess(write_config(tmp_path / "marginguard.toml", document), port)
        )
        await daemon.wait_ready()

        # ETH comes within the warning threshold (3.5 %), then its owner closes it.
        sim.engine.set_mark(ETH, round(eth_liquidation / 0.97, 2))
        await eventually(
            lambda: any(a["kind"] == "liquidation_risk" for a in _about(webhook_alerts(receiver), eth)),
            20,
            "the ETH warning",
            daemon,
        )
        sim.engine.close_position(key, ETH, Side.LONG)
        closed = await eventually(
            lambda: [a for a in _about(webhook_alerts(receiver), eth) if a["resolved"]],
            20,
            "the ETH close",
            daemon,
        )

        # BTC, never alerted, gaps 5 % beyond its liquidation price in one move.
        assert _about(webhook_alerts(receiver), btc) == []
        sim.engine.set_mark(BTC, round(btc_liquidation * 0.95, 1))
        [record] = sim.engine.liquidations
        assert record["symbol"] == BTC
        liquidated = await eventually(
            lambda: [a for a in _about(webhook_alerts(receiver), btc) if a["kind"] == "liquidated"],
            20,
            "the BTC liquidation alert",
            daemon,
        )
        # Discord waits a few seconds at most for the message's chart (a stop meanwhile sends it as text).
        await eventually(
            lambda: len(receiver.received("discord")) == len(webhook_alerts(receiver)),
            10,
            "the liquidation on Discord",
            daemon,
        )
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(15) == 0, daemon.tail()

        [alert] = liquidated
        assert alert["severity"] == "critical" and alert["resolved"] is False
        assert (alert["account"], alert["side"]) == ("main", "long")
        assert "liquidated by the exchange at" in str(alert["summary"]), alert["summary"]
        # Nothing else about BTC: no all-clear, no "closed".
        assert _about(webhook_alerts(receiver), btc) == [alert]

        [eth_close] = closed
        assert eth_close["kind"] == "liquidation_risk" and "closed" in str(eth_close["summary"])
        assert not [a for a in _about(webhook_alerts(receiver), eth) if a["kind"] == "liquidated"]

        # The liquidation came to Discord with the chart of the position's last minutes (drawn after the leg
        # was gone); ETH's warning and close came as text.
        # (Sinks deliver independently: at the stop one may hold a message the other has sent, kept for the next
        # start, so their counts are not compared.)
        pictured = [(visible_text(m), m.images) for m in receiver.received("discord")]
        [(text, [png])] = [(text, images) for text, images in pictured if images]
        assert alert["summary"] in text and decoded_png(png)[0] >= 400


async def test_a_liquidation_while_marginguard_was_down_is_told_as_a_liquidation_after_the_restart(
    tmp_path: Path,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(SimServer("bybit"))
        receiver = await stack.enter_async_context(Receiver())
        key = sim.account.api_key
        sim.engine.set_wallet(key, "USDT", 10_000.0)
        btc_liquidation = _open(sim, BTC, 0.1, leverage=10)
        btc = _unified(sim, BTC)
        port = free_port()
        document = config_document(
            tmp_path, port, [account_for("main", sim)], [webhook_sink(receiver.url)], topup=False
        )
        config = write_config(tmp_path / "marginguard.toml", document)

        first_run = await stack.enter_async_context(DaemonProcess(config, port))
        await first_run.wait_ready()
        sim.engine.set_mark(BTC, round(btc_liquidation / 0.97, 1))  # a warning, so the leg is remembered
        await eventually(lambda: _about(webhook_alerts(receiver), btc), 20, "the BTC warning", first_run)
        first_run.signal(signal.SIGKILL)
        assert await first_run.wait(10) == -signal.SIGKILL

        sim.engine.set_mark(BTC, round(btc_liquidation * 0.95, 1))  # liquidated while nobody watches
        assert [r["symbol"] for r in sim.engine.liquidations] == [BTC]
        told_before = len(webhook_alerts(receiver))

        second_run = await stack.enter_async_context(DaemonProcess(config, port))
        await second_run.wait_ready()
        later = await eventually(
            lambda: [a for a in webhook_alerts(receiver)[told_before:] if a["symbol"] == btc],
            20,
            "what the second run says about BTC",
            second_run,
        )
        second_run.signal(signal.SIGTERM)
        assert await second_run.wait(15) == 0, second_run.tail()
        assert [(a["kind"], a["severity"], a["resolved"]) for a in later] == [
            ("liquidated", "critical", False)
        ]
        assert "liquidated by the exchange at" in str(later[0]["summary"])
        assert [a for a in webhook_alerts(receiver)[told_before:] if a["symbol"] == btc] == later
