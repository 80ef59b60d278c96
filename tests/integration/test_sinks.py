"""Each transport against the local receiver over real loopback HTTP: what it posts, and how it reads answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

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
from daemon.notify.receiver import Receiver
from daemon.notify.sink import HttpSink
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
