"""Each transport against the local receiver over real loopback HTTP: what it posts, and how it reads answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from pydantic import SecretStr

from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.notify import (
    DiscordSink,
    Failed,
    RetryAfter,
    Sent,
    SlackSink,
    TelegramSink,
    Transient,
    WebhookSink,
    build_sink,
)
from daemon.notify.forms import png_size
from daemon.notify.receiver import Receiver
from daemon.notify.render import encode, render_slack, render_telegram, render_webhook, telegram_shown_length
from daemon.notify.sink import HttpSink, Picture
from daemon.notify.webhook import verify_signature

TOKEN = "123456:AAsecret-token"
SECRET = "shared-hmac-secret"


def alert(sequence: int = 1) -> Alert:
    return Alert(
        identity=AlertIdentity("main", "BTC/USDT:USDT", "long", "liquidation_risk"),
        kind=AlertKind.LIQUIDATION_RISK,
        severity=Severity.CRITICAL,
        resolved=False,
        ts=1_795_000_000.0,
        account="main",
        exchange="binance",
        symbol="BTC/USDT:USDT",
        side="long",
        contracts=0.5,
        mark_price=59_000.0,
        liquidation_price=57_000.0,
        distance=0.0339,
        margin_ratio=0.61,
        action=None,
        summary=f"BTC long critical, message {sequence}",
        sequence=sequence,
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as server:
        yield server


def sinks_for(receiver: Receiver) -> dict[str, HttpSink]:
    return {
        "slack": SlackSink("ops-slack", url=f"{receiver.url}/services/T000/B000/XXXX"),
        "discord": DiscordSink("ops-discord", url=f"{receiver.url}/api/webhooks/42/tok?thread_id=7"),
        "telegram": TelegramSink("pager", bot_token=TOKEN, chat_id="-100123", base_url=receiver.url),
        "webhook": WebhookSink("audit", url=f"{receiver.url}/hook", hmac_secret=SECRET),
    }


@pytest.fixture
async def sinks(receiver: Receiver) -> AsyncIterator[dict[str, HttpSink]]:
    made = sinks_for(receiver)
    yield made
    for sink in made.values():
        await sink.close()


async def test_each_sink_delivers_its_platforms_payload(
    receiver: Receiver, sinks: dict[str, HttpSink]
) -> None:
    for sink in sinks.values():
        assert await sink.send(alert()) == Sent()
    by_platform = {r.platform: r for r in receiver.accepted}
    assert set(by_platform) == {"slack", "discord", "telegram", "webhook"}

    assert by_platform["slack"].json["blocks"][0]["type"] == "header"
    assert by_platform["discord"].query == {"thread_id": "7", "wait": "true"}
    assert by_platform["discord"].json["embeds"][0]["title"].startswith("🔴 CRITICAL")
    assert by_platform["telegram"].path == f"/bot{TOKEN}/sendMessage"
    assert by_platform["telegram"].json["chat_id"] == "-100123"
    assert by_platform["webhook"].json["idempotency_key"] == "main|BTC/USDT:USDT|long|liquidation_risk#1"
    for record in receiver.accepted:
        assert record.headers["Content-Type"] == "application/json"
        assert record.describe().startswith(f"[{record.platform}]")


async def test_webhook_signature_verifies_over_the_raw_body(
    receiver: Receiver, sinks: dict[str, HttpSink]
) -> None:
    assert await sinks["webhook"].send(alert(7)) == Sent()
    (record,) = receiver.accepted
    assert verify_signature(SECRET, record.body, record.headers["X-Marginguard-Signature"])
    assert not verify_signature("another secret", record.body, record.headers["X-Marginguard-Signature"])
    assert not verify_signature(SECRET, record.body + b" ", record.headers["X-Marginguard-Signature"])
    assert record.headers["X-Marginguard-Timestamp"].isdigit()
    assert record.headers["Idempotency-Key"] == json.loads(record.body)["idempotency_key"]


async def test_unsigned_webhook_has_no_signature_headers(receiver: Receiver) -> None:
    sink = WebhookSink("plain", url=f"{receiver.url}/hook")
    try:
        assert await sink.send(alert()) == Sent()
    finally:
        await sink.close()
    assert "X-Marginguard-Signature" not in receiver.accepted[0].headers


@pytest.mark.parametrize(
    ("platform", "retry_after", "expected"),
    [
        ("slack", 2, 2.0),  # Retry-After header, whole seconds
        ("discord", 0.25, 0.25),  # JSON retry_after, a float, more precise than its header
        ("telegram", 3, 3.0),  # parameters.retry_after in the JSON body
        ("webhook", 1, 1.0),
    ],
)
async def test_rate_limits_are_read_in_each_platforms_own_shape(
    receiver: Receiver, sinks: dict[str, HttpSink], platform: str, retry_after: float, expected: float
) -> None:
    receiver.fail(429, times=1, retry_after=retry_after)
    outcome = await sinks[platform].send(alert())
    assert isinstance(outcome, RetryAfter)
    assert outcome.seconds == pytest.approx(expected)
    assert await sinks[platform].send(alert()) == Sent()


@pytest.mark.parametrize("platform", ["slack", "discord", "telegram", "webhook"])
async def test_server_errors_are_transient_and_refusals_permanent(
    receiver: Receiver, sinks: dict[str, HttpSink], platform: str
) -> None:
    receiver.fail(500, times=1)
    receiver.fail(404, times=1)
    transient, permanent = await sinks[platform].send(alert()), await sinks[platform].send(alert())
    assert isinstance(transient, Transient) and "HTTP 500" in transient.reason
    assert isinstance(permanent, Failed) and "HTTP 404" in permanent.reason
    assert receiver.accepted == []


async def test_telegram_refusal_keeps_its_description_without_the_token(receiver: Receiver) -> None:
    sink = TelegramSink("pager", bot_token=TOKEN, chat_id="", base_url=receiver.url)
    try:
        outcome = await sink.send(alert())
    finally:
        await sink.close()
    assert isinstance(outcome, Failed)
    assert "chat_id is empty" in outcome.reason
    assert TOKEN not in outcome.reason and TOKEN not in repr(sink)


async def test_an_unreachable_receiver_is_transient_and_the_url_stays_secret() -> None:
    async with Receiver() as gone:
        url = f"{gone.url}/services/T000/B000/SECRETPATH"
    sink = SlackSink("ops-slack", url=url)
    try:
        outcome = await sink.send(alert())
    finally:
        await sink.close()
    assert isinstance(outcome, Transient)
    assert "SECRETPATH" not in outcome.reason and "SECRETPATH" not in repr(sink)


async def test_build_sink_takes_settings_fields_as_they_are(receiver: Receiver) -> None:
    slack = build_sink(
        "slack",
        name="ops",
        url=SecretStr(f"{receiver.url}/services/T/B/X"),
        base_url="https://api.telegram.org",  # the settings default for every sink type; Slack ignores it
        bot_token=None,
        chat_id=None,
        hmac_secret=None,
    )
    telegram = build_sink(
        "telegram", name="pager", bot_token=SecretStr(TOKEN), chat_id="5", base_url=receiver.url
    )
    try:
        assert await slack.send(alert()) == Sent()
        assert await telegram.send(alert()) == Sent()
    finally:
        await slack.close()
        await telegram.close()
    assert [r.platform for r in receiver.accepted] == ["slack", "telegram"]
    with pytest.raises(ValueError, match="unknown sink type"):
        build_sink("pagerduty", name="x")
    with pytest.raises(TypeError):
        build_sink("slack", name="x", url="http://127.0.0.1:1/", colour="red")


async def test_the_receiver_can_be_driven_from_another_process(
    receiver: Receiver, sinks: dict[str, HttpSink]
) -> None:
    async with aiohttp.ClientSession() as http:
        fail = {"status": 429, "times": 1, "retry_after": 1, "platform": "webhook"}
        async with http.post(f"{receiver.url}/_receiver/fail", json=fail) as response:
            assert response.status == 200
        assert isinstance(await sinks["webhook"].send(alert()), RetryAfter)
        assert await sinks["webhook"].send(alert(2)) == Sent()
        async with http.get(f"{receiver.url}/_receiver/received") as response:
            received = await response.json()
    assert [json.loads(r["body"])["sequence"] for r in received] == [2]
    assert receiver.accepted[0].describe() == "[webhook] firing critical: BTC long critical, message 2"


# ---- messages with an incident chart ----


def _chart_png() -> bytes:
    from daemon.app.chart_render import render_png
    from daemon.core.incident import IncidentChart, Marker, MarkerKind, PricePoint

    t0 = 1_795_000_000.0
    points = tuple((t0 + 5 * i, PricePoint(59_500.0 - 10 * i, 57_000.0, 57_010.0)) for i in range(30))
    markers = (
        Marker(t0 + 40, MarkerKind.WARNING, "warning 3.90%"),
        Marker(t0 + 140, MarkerKind.CRITICAL, "critical"),
    )
    return render_png(IncidentChart("main BTC/USDT:USDT long: critical", t0, t0 + 150, points, markers))


@pytest.fixture(scope="module")
def chart_png() -> bytes:
    return _chart_png()


def _picture(png: bytes) -> Picture:
    return Picture(png, 42)


async def test_telegram_sends_the_chart_as_a_photo_with_the_message_as_its_caption(
    receiver: Receiver, sinks: dict[str, HttpSink], chart_png: bytes
) -> None:
    assert await sinks["telegram"].send(alert(), _picture(chart_png)) == Sent()
    (record,) = receiver.accepted
    assert record.path == f"/bot{TOKEN}/sendPhoto"
    assert record.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert record.json["chat_id"] == "-100123" and record.json["parse_mode"] == "HTML"
    assert record.json["caption"] == render_telegram(alert(), "-100123")["text"]  # the whole message fits
    assert record.images == [chart_png] and png_size(chart_png) == (800, 450)
    assert record.form is not None and record.form.files["photo"].filename == "incident-42.png"


async def test_a_text_too_long_for_a_caption_goes_in_its_short_form_in_the_same_request(
    receiver: Receiver, sinks: dict[str, HttpSink], chart_png: bytes
) -> None:
    long = replace(
        alert(), summary="funding and fees moved the margin; " * 60, action="added 120.5 USDT margin"
    )
    assert await sinks["telegram"].send(long, _picture(chart_png)) == Sent()
    (record,) = receiver.requests  # one request: nothing a retry could half-repeat
    caption = record.json["caption"]
    assert telegram_shown_length(caption) <= 1024
    assert "CRITICAL" in caption and "Mark: <b>59,000</b>" in caption and "added 120.5 USDT margin" in caption
    assert record.images == [chart_png]


async def test_discord_attaches_the_chart_and_shows_it_in_the_embed(
    receiver: Receiver, sinks: dict[str, HttpSink], chart_png: bytes
) -> None:
    assert await sinks["discord"].send(alert(), _picture(chart_png)) == Sent()
    (record,) = receiver.accepted
    assert record.query == {"thread_id": "7", "wait": "true"}
    assert record.form is not None and set(record.form.fields) == {"payload_json"}
    assert record.form.files["files[0]"].filename == "incident-42.png"
    (embed,) = record.json["embeds"]
    assert embed["image"] == {"url": "attachment://incident-42.png"} and embed["title"].startswith(
        "🔴 CRITICAL"
    )
    assert record.json["allowed_mentions"] == {"parse": []}
    assert record.images == [chart_png]


@pytest.mark.parametrize("platform", ["telegram", "discord"])
async def test_a_picture_the_platform_refuses_costs_the_picture_not_the_message(
    receiver: Receiver, sinks: dict[str, HttpSink], platform: str
) -> None:
    assert await sinks[platform].send(alert(), Picture(b"GIF89a not a png", 7)) == Sent()
    refused, accepted = receiver.requests
    assert refused.status == 400 and accepted.status == 200
    assert accepted.images == [] and "BTC long critical" in accepted.describe()


@pytest.mark.parametrize("platform", ["telegram", "discord"])
async def test_a_failed_photo_request_keeps_the_token_out_of_its_reason(
    receiver: Receiver, sinks: dict[str, HttpSink], platform: str, chart_png: bytes
) -> None:
    receiver.fail(500, times=1)
    outcome = await sinks[platform].send(alert(), _picture(chart_png))
    assert isinstance(outcome, Transient) and TOKEN not in outcome.reason and "tok" not in outcome.reason


async def test_slack_and_the_webhook_link_the_chart_only_where_the_page_is_reachable(
    receiver: Receiver, chart_png: bytes
) -> None:
    page = "https://marginguard.example.com/desk/"
    made = [
        SlackSink("s", url=f"{receiver.url}/services/T/B/X"),
        SlackSink("s-page", url=f"{receiver.url}/services/T/B/Y", page_url=page),
        WebhookSink("w", url=f"{receiver.url}/hook"),
        WebhookSink("w-page", url=f"{receiver.url}/hook", page_url=page),
    ]
    try:
        assert [sink.shows_charts for sink in made] == [False, True, False, True]
        for sink in made:
            assert await sink.send(alert(), _picture(chart_png)) == Sent()
        assert await made[1].send(alert(2)) == Sent()  # no chart for this message: no link
    finally:
        for sink in made:
            await sink.close()
    slack, slack_page, hook, hook_page, slack_no_chart = receiver.accepted
    url = "https://marginguard.example.com/desk/incident/42.png"
    assert slack.body == encode(render_slack(alert()))  # text only, as before charts
    assert hook.json == render_webhook(replace(alert(), origin=""))
    assert "chart_url" not in hook.json
    assert hook_page.json["chart_url"] == url
    links = [
        b["text"]["text"]
        for b in slack_page.json["blocks"]
        if b["type"] == "section" and url in b["text"]["text"]
    ]
    assert links == [f"<{url}|📈 Incident chart: mark vs liquidation price, last 15 minutes>"]
    assert url not in slack_no_chart.body.decode()
    assert slack_page.images == [] and hook_page.images == []  # a link, never the file
