"""What a person sees in each chat: the same facts on every platform, firing and resolved told apart, unknown
figures spelled "unknown", and markup in names escaped so it can't break or hijack a message."""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.notify.receiver import telegram_entities_problem
from daemon.notify.render import (
    card,
    encode,
    render_discord,
    render_slack,
    render_telegram,
    render_webhook,
)

TS = 1_795_000_000.25  # 2026-11-18T11:06:40.250Z


def alert(**changes: Any) -> Alert:
    base = Alert(
        identity=AlertIdentity("main", "BTC/USDT:USDT", "long", "liquidation_risk"),
        kind=AlertKind.LIQUIDATION_RISK,
        severity=Severity.CRITICAL,
        resolved=False,
        ts=TS,
        account="main",
        exchange="binance",
        symbol="BTC/USDT:USDT",
        side="long",
        contracts=0.5,
        mark_price=59_000.0,
        liquidation_price=57_000.0,
        distance=0.0339,
        margin_ratio=None,
        action="added 120.5 USDT margin",
        summary="main BTC/USDT:USDT long critical: 3.39% from liquidation at 57000",
        sequence=3,
    )
    return dataclasses.replace(base, **changes)


def slack_fields(a: Alert) -> dict[str, str]:
    section = render_slack(a)["blocks"][1]
    pairs = (f["text"].split("\n", 1) for f in section["fields"])
    return {label.strip("*"): html.unescape(value) for label, value in pairs}


def discord_fields(a: Alert) -> dict[str, str]:
    fields = render_discord(a)["embeds"][0]["fields"]
    return {f["name"]: re.sub(r"\\(.)", r"\1", f["value"]) for f in fields}


def telegram_fields(a: Alert) -> dict[str, str]:
    text = render_telegram(a, "-100123")["text"]
    return {
        label: html.unescape(value) for label, value in re.findall(r"^([^<\n]+): <b>(.*)</b>$", text, re.M)
    }


EXTRACTORS: dict[str, Callable[[Alert], dict[str, str]]] = {
    "slack": slack_fields,
    "discord": discord_fields,
    "telegram": telegram_fields,
}


@pytest.mark.parametrize("platform", EXTRACTORS)
def test_every_platform_shows_the_position_at_a_glance(platform: str) -> None:
    assert EXTRACTORS[platform](alert()) == {
        "Account": "main (binance)",
        "Symbol": "BTC/USDT:USDT",
        "Side": "long",
        "Size": "0.5 contracts",
        "Mark": "59,000",
        "Liquidation": "57,000",
        "Distance": "3.39%",
        "Margin ratio": "unknown",
        "Action": "added 120.5 USDT margin",
    }


@pytest.mark.parametrize("platform", EXTRACTORS)
def test_figures_nobody_gave_read_unknown_never_zero(platform: str) -> None:
    blind = alert(contracts=None, mark_price=None, liquidation_price=math.nan, distance=None, action=None)
    fields = EXTRACTORS[platform](blind)
    for label in ("Size", "Mark", "Liquidation", "Distance", "Margin ratio"):
        assert fields[label] == "unknown"
    assert fields["Action"] == "alert only"
    # A zero the exchange did give is shown as zero.
    assert EXTRACTORS[platform](alert(distance=0.0))["Distance"] == "0.00%"


@pytest.mark.parametrize("platform", EXTRACTORS)
def test_an_account_wide_alert_has_no_position_fields(platform: str) -> None:
    account_wide = alert(
        identity=AlertIdentity("main", None, None, "account_margin"),
        kind=AlertKind.ACCOUNT_MARGIN,
        symbol=None,
        side=None,
        contracts=None,
        margin_ratio=0.85,
    )
    fields = EXTRACTORS[platform](account_wide)
    assert fields["Symbol"] == "account-wide"
    assert "Side" not in fields and "Size" not in fields
    assert fields["Margin ratio"] == "85.00%"


def test_firing_and_resolved_look_different_and_severity_is_visible() -> None:
    firing, warning, resolved = alert(), alert(severity=Severity.WARNING), alert(resolved=True)
    assert card(firing).title == "🔴 CRITICAL · Liquidation risk · main BTC/USDT:USDT long"
    assert card(warning).title.startswith("🟠 WARNING")
    assert card(resolved).title.startswith("✅ RESOLVED")

    assert render_slack(firing)["text"].startswith("🔴 CRITICAL Liquidation risk: main BTC")
    assert render_slack(resolved)["blocks"][0]["text"]["text"].startswith("✅ RESOLVED")

    colours = {a: render_discord(a)["embeds"][0]["color"] for a in (firing, warning, resolved)}
    assert len(set(colours.values())) == 3
    assert colours[firing] == 0xD7263D and colours[resolved] == 0x2EB67D

    assert render_telegram(resolved, "1")["text"].startswith("<b>✅ RESOLVED · Liquidation risk</b>")


def test_slack_payload_is_an_incoming_webhook_with_blocks_and_a_text_fallback() -> None:
    payload = render_slack(alert())
    assert [block["type"] for block in payload["blocks"]] == ["header", "section", "context"]
    assert payload["blocks"][0]["text"]["type"] == "plain_text"
    assert len(payload["blocks"][1]["fields"]) <= 10
    assert "message #3" in payload["blocks"][2]["elements"][0]["text"]
    assert "2026-11-18T11:06:40.250Z" in payload["blocks"][2]["elements"][0]["text"]


def test_discord_payload_has_a_short_content_and_an_embed_with_an_iso_timestamp() -> None:
    payload = render_discord(alert())
    embed = payload["embeds"][0]
    assert embed["timestamp"] == "2026-11-18T11:06:40.250Z"
    assert embed["description"] == alert().summary
    assert payload["content"].startswith("🔴 CRITICAL")
    assert payload["allowed_mentions"] == {"parse": []}


def test_markup_in_names_is_escaped_per_platform() -> None:
    hostile = alert(account="<!channel> & co", summary="<b>boom</b> @everyone *bold*")
    slack = render_slack(hostile)
    assert "&lt;!channel&gt; &amp; co" in json.dumps(slack)
    assert "<!channel>" not in slack["text"]

    telegram = render_telegram(hostile, "42")
    assert telegram["parse_mode"] == "HTML" and telegram["chat_id"] == "42"
    assert telegram["disable_web_page_preview"] is True
    assert "&lt;b&gt;boom&lt;/b&gt;" in telegram["text"]
    assert telegram_entities_problem(telegram["text"]) is None  # Telegram would accept it

    discord = render_discord(hostile)
    assert r"\*bold\*" in discord["embeds"][0]["description"]


def test_long_texts_are_clipped_to_platform_limits() -> None:
    verbose = alert(summary="x" * 10_000, account="a" * 300)
    assert len(render_slack(verbose)["blocks"][0]["text"]["text"]) <= 150
    embed = render_discord(verbose)["embeds"][0]
    assert len(embed["title"]) <= 256 and len(embed["description"]) <= 4096
    text = render_telegram(verbose, "1")["text"]
    assert len(text) <= 4096 and telegram_entities_problem(text) is None


def test_webhook_document_carries_every_alert_field_and_an_idempotency_key() -> None:
    doc = render_webhook(alert())
    assert doc["schema_version"] == 1
    assert doc["idempotency_key"] == "main|BTC/USDT:USDT|long|liquidation_risk#3"
    assert doc["time"] == "2026-11-18T11:06:40.250Z"
    assert doc["status"] == "firing" and doc["severity"] == "critical" and doc["kind"] == "liquidation_risk"
    for name in (f.name for f in dataclasses.fields(Alert) if f.name != "identity"):
        assert name in doc
    assert doc["identity"] == {
        "account": "main",
        "symbol": "BTC/USDT:USDT",
        "side": "long",
        "rule": "liquidation_risk",
    }
    assert doc["margin_ratio"] is None  # unknown stays null, never 0
    assert render_webhook(alert(mark_price=math.inf))["mark_price"] is None
    assert render_webhook(alert(resolved=True))["status"] == "resolved"


def test_the_encoded_body_is_stable_for_the_same_message() -> None:
    assert encode(render_webhook(alert())) == encode(render_webhook(alert()))
    assert json.loads(encode(render_webhook(alert()))) == render_webhook(alert())
