"""`marginguard run` watching the slow bleed on Binance, Bybit and OKX, with top-up on and four sinks.

Each run goes the whole way: warning, critical, one add-margin, the all-clear, the position alive at the end of
the path. The same run is then stopped with SIGTERM: it must exit 0 within 10 s with nothing left in its outbox,
and its output must not contain any of the secrets in its configuration.
"""

from __future__ import annotations

import contextlib
import math
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.core.types import Side
from daemon.notify.receiver import PLATFORMS, Receiver
from daemon.notify.webhook import verify_signature
from daemon.sim.server import DEFAULT_PASSPHRASE, DEFAULT_SECRET, SimServer
from daemon.store import Journal
from tests.e2e.support import (
    DISCORD_TOKEN,
    HMAC_SECRET,
    MARGIN_STEPS,
    SLACK_TOKEN,
    SYMBOL,
    TELEGRAM_BOT_TOKEN,
    UNIFIED_SYMBOL,
    WEBHOOK_TOKEN,
    Bleed,
    DaemonProcess,
    account_for,
    all_sinks,
    config_document,
    decoded_png,
    eventually,
    first,
    free_port,
    index_of,
    stated_amount,
    visible_text,
    webhook_alerts,
    write_config,
)

SPEED = 3.0  # the 40 s bleed in about 13 s
LOWEST_MARK, HIGHEST_MARK = 63600.0, 67000.0
SECRETS = (
    DEFAULT_SECRET,  # the exchange API secret
    DEFAULT_PASSPHRASE,  # OKX's API passphrase
    SLACK_TOKEN,
    DISCORD_TOKEN,
    WEBHOOK_TOKEN,
    TELEGRAM_BOT_TOKEN,
    TELEGRAM_BOT_TOKEN.split(":")[1],
    HMAC_SECRET,
)


def check_figures(alert: dict[str, Any], liquidation_price: float) -> None:
    """The alert's liquidation price is the exchange's own, and its distance is the one its mark gives."""
    assert alert["symbol"] == UNIFIED_SYMBOL and alert["side"] == "long"
    lp, mark, distance = alert["liquidation_price"], alert["mark_price"], alert["distance"]
    assert isinstance(lp, float) and isinstance(mark, float) and isinstance(distance, float), alert
    assert math.isclose(lp, liquidation_price, rel_tol=1e-6), (alert["summary"], liquidation_price)
    assert LOWEST_MARK <= mark <= HIGHEST_MARK, alert["summary"]
    assert math.isclose(distance, (mark - lp) / mark, rel_tol=1e-6, abs_tol=1e-9), alert["summary"]


@pytest.mark.parametrize("dialect", ["binance", "bybit", "okx"])
async def test_a_bleeding_position_is_warned_escalated_topped_up_once_and_resolved(
    tmp_path: Path, dialect: str
) -> None:
    account = f"{dialect}-main"
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(SimServer(dialect))
        receiver = await stack.enter_async_context(Receiver())
        bleed = Bleed(sim, SPEED)
        bleed.setup()
        stack.push_async_callback(bleed.stop)
        lp_before, margin_before = bleed.liquidation_price(), bleed.isolated_margin()
        assert lp_before is not None and margin_before is not None

        port = free_port()
        # Debug logging: the most the daemon ever says, and so the likeliest place for a secret to slip out.
        document = config_document(
            tmp_path,
            port,
            [account_for(account, sim)],
            all_sinks(receiver.url),
            topup=True,
            log_level="debug",
        )
        # Where people reach the status page: Slack and the webhook link the critical alert's chart there.
        document["daemon"]["status_page_url"] = f"http://127.0.0.1:{port}/"
        daemon = await stack.enter_async_context(
            DaemonProcess(write_config(tmp_path / "marginguard.toml", document), port)
        )
        await daemon.wait_ready()
        bleed.play()

        def resolved_alert() -> dict[str, Any] | None:
            return first(webhook_alerts(receiver, account), "liquidation_risk", resolved=True)

        await eventually(resolved_alert, 40, "the liquidation risk to resolve", daemon)
        await eventually(lambda: bleed.task is not None and bleed.task.done(), 20, "the price path to end")

        alerts = webhook_alerts(receiver, account)
        warning = first(alerts, "liquidation_risk", "warning")
        critical = first(alerts, "liquidation_risk", "critical")
        done = first(alerts, "topup_done")
        resolved = resolved_alert()
        assert warning and critical and done and resolved, [a["summary"] for a in alerts]
        assert index_of(alerts, warning) < index_of(alerts, critical) < index_of(alerts, done)
        assert index_of(alerts, done) < index_of(alerts, resolved)

        # Before the top-up: the exchange's liquidation price, and the distance at the alert's mark.
        check_figures(warning, lp_before)
        check_figures(critical, lp_before)
        assert 0.02 < warning["distance"] <= 0.035
        assert critical["distance"] <= 0.02

        # Exactly the one planned add-margin reached the exchange, for the amount the alert told, rounded down.
        requests = bleed.add_margin_requests()
        assert len(requests) == 1, requests
        assert requests[0]["status"] == 200
        margin_after = bleed.isolated_margin()
        assert margin_after is not None, "the position is gone"
        sent, stated = margin_after - margin_before, stated_amount(done["action"])
        assert 0 < sent <= stated * (1 + 1e-7), (sent, done["action"])
        assert stated - sent < MARGIN_STEPS[dialect], (sent, done["action"])

        # The position survived the whole bleed; the all-clear carries the new liquidation price.
        assert sim.engine.liquidations == []
        assert first(alerts, "liquidated") is None
        # Nor did the model part from the exchange's own figures (before, during or after the top-up).
        assert first(alerts, "divergence") is None, first(alerts, "divergence")
        lp_after = bleed.liquidation_price()
        assert lp_after is not None and lp_after < lp_before
        check_figures(resolved, lp_after)
        assert resolved["distance"] > 0.035 + 0.005

        # Every platform showed every alert, in the order the webhook got them; the webhook's are signed.
        hook = receiver.received("webhook")
        for message in hook:
            signature = message.headers.get("X-Marginguard-Signature")
            assert verify_signature(HMAC_SECRET, message.body, signature), message.json["summary"]
            assert message.headers.get("Idempotency-Key") == message.json["idempotency_key"]
        for platform in PLATFORMS:
            texts = [visible_text(r) for r in receiver.received(platform)]
            assert len(texts) == len(hook), platform
            for text, message in zip(texts, hook, strict=True):
                assert message.json["summary"] in text, (platform, text)

        # The critical alert came to Telegram and Discord with its incident chart, a real PNG, in the same
        # message; Slack and the webhook got a link to the same picture on the status page. Nothing else did.
        critical_at = index_of(alerts, critical)
        charts = {}
        for platform in ("telegram", "discord"):
            messages = receiver.received(platform)
            assert [bool(m.images) for m in messages] == [i == critical_at for i in range(len(hook))], (
                platform
            )
            (png,) = messages[critical_at].images
            width, height = decoded_png(png)
            assert 400 <= width <= 2000 and 200 <= height <= 1500, (platform, width, height)
            charts[platform] = png
        assert charts["telegram"] == charts["discord"]
        assert receiver.received("telegram")[critical_at].path.endswith("/sendPhoto")
        chart_url = hook[critical_at].json["chart_url"]
        assert chart_url.startswith(f"http://127.0.0.1:{port}/incident/") and chart_url.endswith(".png")
        assert [("chart_url" in m.json) for m in hook] == [i == critical_at for i in range(len(hook))]
        assert chart_url in receiver.received("slack")[critical_at].body.decode()

        # What an operator scrapes and asks: the leg's figures, stream ages and alert counts.
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                metrics = await response.text()
            async with http.get(f"http://127.0.0.1:{port}/status") as response:
                status = await response.json()
            async with http.get(f"http://127.0.0.1:{port}/") as response:
                page, page_headers = await response.text(), response.headers
            async with http.get(f"http://127.0.0.1:{port}/static/status.js") as response:
                script = await response.text()
            async with http.get(chart_url) as response:
                served, served_type = await response.read(), response.headers["Content-Type"]
        # The status page: served by the daemon, nothing from elsewhere, no inline script.
        assert "<title>marginguard</title>" in page and 'src="/static/status.js"' in page
        assert "script-src 'self'" in page_headers["Content-Security-Policy"]
        assert "<script>" not in page and "://" not in page  # no inline script, no address elsewhere
        assert "textContent" in script and "innerHTML" not in script
        assert f'marginguard_positions{{account="{account}"}} 1.0' in metrics
        assert f'marginguard_min_distance_to_liquidation{{account="{account}"}}' in metrics
        assert (
            f'marginguard_stream_age_seconds{{account="{account}",stream="mark:{UNIFIED_SYMBOL}"}}' in metrics
        )
        assert f'marginguard_topups_total{{account="{account}",outcome="done"}} 1.0' in metrics
        leg_series = f'{{account="{account}",side="long",symbol="{UNIFIED_SYMBOL}"}}'
        [leg_lp] = [
            line
            for line in metrics.splitlines()
            if line.startswith(f"marginguard_leg_liquidation_price{leg_series}")
        ]
        assert lp_after is not None and math.isclose(float(leg_lp.split()[-1]), lp_after, rel_tol=1e-6), (
            leg_lp
        )
        assert f"marginguard_leg_distance_to_liquidation{leg_series}" in metrics
        assert 'marginguard_deliveries_total{outcome="sent",sink="audit-hook"}' in metrics
        leg = status["accounts"][account]["legs"][0]
        assert math.isclose(leg["liquidation_price"], lp_after, rel_tol=1e-6), leg
        # What the status page draws: the leg's last hour ending at the present figure, the account's thresholds
        # (its colours), its streams, and the latest alerts with what was done.
        assert leg["history"] and leg["history"][-1][1] == leg["distance_to_liquidation"], leg["history"]
        assert status["accounts"][account]["thresholds"]["critical_distance"] == 0.02
        assert status["accounts"][account]["streams"]["positions"] == "fresh"
        # The status page serves the very picture the chat platforms got, and its latest alerts point to it.
        assert served == charts["telegram"] and served_type == "image/png"
        page_charts = [a["chart"] for a in status["alerts"] if a["chart"]]
        assert page_charts == [chart_url.removeprefix(f"http://127.0.0.1:{port}")], status["alerts"]
        told = [a for a in status["alerts"] if a["kind"] == "topup_done"]
        assert told and told[0]["action"] == done["action"], status["alerts"]
        # Its size as a trader reads it: base units, notional and unrealised PnL at the mark, the exchange's.
        position = sim.engine.find_position(sim.account.api_key, SYMBOL, Side.LONG)
        assert position is not None and leg["mark_price"] == sim.engine.marks[SYMBOL]
        market = sim.engine.markets[SYMBOL]
        assert math.isclose(leg["quantity"], position.contracts * market.contract_size, rel_tol=1e-9), leg
        assert math.isclose(leg["notional"], sim.engine.notional(position), rel_tol=1e-9), leg
        pnl_rounding = leg["quantity"] * market.price_tick  # some venues state the entry at the price tick
        assert math.isclose(
            leg["unrealized_pnl"], sim.engine.unrealized_pnl(position), abs_tol=pnl_rounding
        ), leg

        # SIGTERM: a prompt, clean exit with the outbox flushed.
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(10) == 0, daemon.tail()
        with Journal(tmp_path / "journal.sqlite") as journal:
            assert journal.pending_deliveries() == 0

        # The daemon told what it did, and none of it was a secret.
        output = daemon.output
        assert "marginguard running" in output and "top-up" in output
        for secret in SECRETS:
            assert secret not in output, f"{secret!r} leaked into the daemon's output"
