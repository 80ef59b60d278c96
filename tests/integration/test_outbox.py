"""The outbox over a real SQLite journal and real loopback receivers: in order, once, through rate limits,
outages and restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.core.backoff import Backoff
from daemon.notify import DiscordSink, Outcome, SlackSink, TelegramSink, Transient, WebhookSink
from daemon.notify.outbox import Outbox
from daemon.notify.receiver import Received, Receiver
from daemon.notify.sink import HttpSink, Picture, Sink
from daemon.store import SqliteJournal

TOKEN = "987654:BBtoken"
QUICK = Backoff(initial=0.05, factor=2.0, cap=0.2, floor=0.01)  # retries within a fraction of a second
WAIT = 10.0  # seconds: the most any test waits for its receiver


def alert(sequence: int, symbol: str = "BTC/USDT:USDT") -> Alert:
    return Alert(
        identity=AlertIdentity("main", symbol, "long", "liquidation_risk"),
        kind=AlertKind.LIQUIDATION_RISK,
        severity=Severity.WARNING,
        resolved=False,
        ts=1_795_000_000.0 + sequence,
        account="main",
        exchange="okx",
        symbol=symbol,
        side="long",
        contracts=1.0,
        mark_price=60_000.0,
        liquidation_price=55_000.0,
        distance=0.083,
        margin_ratio=None,
        action=None,
        summary=f"message {sequence}",
        sequence=sequence,
    )


def sequences(records: list[Received]) -> list[int]:
    return [int(r.json["sequence"]) for r in records]


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[SqliteJournal]:
    async with await SqliteJournal.open(tmp_path / "journal.sqlite") as opened:
        yield opened


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as server:
        yield server


@asynccontextmanager
async def running(outbox: Outbox) -> AsyncIterator[Outbox]:
    """The worker for the duration of a block, stopped the way the daemon stops it: told to stop, it ends after
    the pass in flight (so what a receiver accepted is journaled as sent), then the flush sends what is left."""
    task = asyncio.create_task(outbox.run())
    try:
        yield outbox
        outbox.stop()
        async with asyncio.timeout(WAIT):
            await task
        await outbox.flush(timeout=WAIT)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for sink in outbox.sinks.values():
            await sink.close()


def webhook(receiver: Receiver, name: str = "audit") -> WebhookSink:
    return WebhookSink(name, url=f"{receiver.url}/hook/{name}")


async def test_alerts_reach_every_sink_in_order_once_and_a_new_alert_wakes_the_worker(
    journal: SqliteJournal, receiver: Receiver
) -> None:
    sinks: dict[str, Sink] = {
        "slack": SlackSink("slack", url=f"{receiver.url}/services/T/B/X"),
        "discord": DiscordSink("discord", url=f"{receiver.url}/api/webhooks/1/t"),
        "telegram": TelegramSink("telegram", bot_token=TOKEN, chat_id="1", base_url=receiver.url),
        "audit": webhook(receiver),
    }
    async with running(Outbox(journal, sinks, backoff=QUICK)) as outbox:
        for sequence in (1, 2, 3):
            await journal.record_alert(alert(sequence), list(sinks), now=outbox.clock())
            outbox.notify()
        async with asyncio.timeout(WAIT):
            await receiver.wait_for(12)
    for platform in ("slack", "discord", "telegram"):
        texts = [r.describe() for r in receiver.received(platform)]
        assert len(texts) == 3
        assert all(f"message {n}" in text for n, text in zip((1, 2, 3), texts, strict=True)), texts
    assert sequences(receiver.received("webhook")) == [1, 2, 3]
    assert len(receiver.requests) == 12  # nothing sent twice
    assert await journal.pending_deliveries() == 0


async def test_rate_limits_are_honoured_and_alerts_arrive_later_in_order_once(
    journal: SqliteJournal, receiver: Receiver
) -> None:
    sinks: dict[str, Sink] = {
        "slack": SlackSink("slack", url=f"{receiver.url}/services/T/B/X"),
        "discord": DiscordSink("discord", url=f"{receiver.url}/api/webhooks/1/t"),
        "telegram": TelegramSink("telegram", bot_token=TOKEN, chat_id="1", base_url=receiver.url),
    }
    for platform, retry_after in (("slack", 1), ("discord", 0.3), ("telegram", 1)):
        receiver.fail(429, times=2, retry_after=retry_after, platform=platform)
    for sequence in (1, 2, 3):
        await journal.record_alert(alert(sequence), list(sinks), now=0.0)
    async with running(Outbox(journal, sinks, backoff=QUICK)):
        async with asyncio.timeout(WAIT):
            await receiver.wait_for(9)

    for platform, retry_after in (("slack", 1.0), ("discord", 0.3), ("telegram", 1.0)):
        attempts = [r for r in receiver.requests if r.platform == platform]
        assert [r.status for r in attempts] == [429, 429, 200, 200, 200]
        # Each retry came no sooner than the receiver asked (a little slack for clock granularity).
        assert attempts[1].at - attempts[0].at >= retry_after - 0.05
        assert attempts[2].at - attempts[1].at >= retry_after - 0.05
        # Message 1 was the one held back; 2 and 3 waited behind it.
        summaries = [json.dumps(r.json) for r in attempts]
        assert ["message 1" in s for s in summaries] == [True, True, True, False, False]
        assert "message 2" in summaries[3] and "message 3" in summaries[4]


async def test_an_outage_is_retried_with_backoff_until_the_receiver_recovers(
    journal: SqliteJournal, receiver: Receiver
) -> None:
    receiver.fail(500, times=4)
    for sequence in (1, 2):
        await journal.record_alert(alert(sequence), ["audit"], now=0.0)
    async with running(Outbox(journal, {"audit": webhook(receiver)}, backoff=QUICK)):
        async with asyncio.timeout(WAIT):
            await receiver.wait_for(2)
    assert [r.status for r in receiver.requests] == [500, 500, 500, 500, 200, 200]
    assert sequences(receiver.accepted) == [1, 2]
    (_second, first) = await journal.history()
    assert first["deliveries"][0]["status"] == "sent" and first["deliveries"][0]["attempts"] == 5


async def test_a_refused_alert_is_given_up_and_the_next_one_goes_on(
    journal: SqliteJournal, receiver: Receiver
) -> None:
    receiver.fail(400, times=1)
    for sequence in (1, 2):
        await journal.record_alert(alert(sequence), ["audit"], now=0.0)
    async with running(Outbox(journal, {"audit": webhook(receiver)}, backoff=QUICK)):
        async with asyncio.timeout(WAIT):
            await receiver.wait_for(1)
    assert sequences(receiver.accepted) == [2]
    second, first = await journal.history()
    assert first["deliveries"][0]["status"] == "failed" and "HTTP 400" in first["deliveries"][0]["last_error"]
    assert second["deliveries"][0]["status"] == "sent"


async def test_a_sink_that_waits_does_not_hold_up_the_others(
    journal: SqliteJournal, receiver: Receiver
) -> None:
    receiver.fail(429, times=1, retry_after=30, platform="slack")
    await journal.record_alert(alert(1), ["slack", "audit"], now=0.0)
    await journal.record_alert(alert(2), ["slack", "audit"], now=0.0)
    sinks: dict[str, Sink] = {
        "slack": SlackSink("slack", url=f"{receiver.url}/services/T/B/X"),
        "audit": webhook(receiver),
    }
    async with running(Outbox(journal, sinks, backoff=QUICK)):
        async with asyncio.timeout(WAIT):
            await receiver.wait_for(2, platform="webhook")
    assert receiver.received("slack") == []
    assert await journal.pending_deliveries() == 2  # both Slack messages wait, in order, for the next attempt


async def test_a_restart_delivers_what_was_pending_without_duplicates(
    tmp_path: Path, receiver: Receiver
) -> None:
    path = tmp_path / "journal.sqlite"
    receiver.fail(429, times=1, retry_after=1)
    async with await SqliteJournal.open(path) as journal:
        for sequence in (1, 2, 3):
            await journal.record_alert(alert(sequence), ["audit"], now=0.0)
        first_life = Outbox(journal, {"audit": webhook(receiver)}, backoff=QUICK)
        # Shutdown: the flush sends what is due; the rate-limited message and those behind it stay pending.
        assert await first_life.flush(timeout=2.0) == 3
        await first_life.sinks["audit"].close()

    async with await SqliteJournal.open(path) as reopened:
        assert await reopened.pending_deliveries() == 3
        async with running(Outbox(reopened, {"audit": webhook(receiver)}, backoff=QUICK)):
            async with asyncio.timeout(WAIT):
                await receiver.wait_for(3)
        assert await reopened.pending_deliveries() == 0
    assert sequences(receiver.accepted) == [1, 2, 3]
    assert [r.status for r in receiver.requests] == [429, 200, 200, 200]


class LostAnswer:
    """A sink whose first answer is lost after the receiver got the message (a crash or a cut connection)."""

    def __init__(self, inner: HttpSink) -> None:
        self.name = inner.name
        self.inner = inner
        self.lost = False
        self.shows_charts = inner.shows_charts

    async def send(self, alert: Alert, picture: Picture | None = None) -> Outcome:
        outcome = await self.inner.send(alert, picture)
        if not self.lost:
            self.lost = True
            return Transient("connection reset before the answer")
        return outcome

    async def close(self) -> None:
        await self.inner.close()


async def test_a_repeat_after_a_lost_answer_carries_the_same_idempotency_key(
    journal: SqliteJournal, receiver: Receiver
) -> None:
    await journal.record_alert(alert(1), ["audit"], now=0.0)
    sink = LostAnswer(WebhookSink("audit", url=f"{receiver.url}/hook", hmac_secret="s"))
    async with running(Outbox(journal, {"audit": sink}, backoff=QUICK)):
        async with asyncio.timeout(WAIT):
            first, repeat = await receiver.wait_for(2)
    assert first.headers["Idempotency-Key"] == repeat.headers["Idempotency-Key"]
    assert first.body == repeat.body  # a receiver deduplicating by key or by body sees one message
    assert await journal.pending_deliveries() == 0


async def test_flush_sends_everything_due_within_its_budget(
    journal: SqliteJournal, receiver: Receiver
) -> None:
    for sequence in range(1, 6):
        await journal.record_alert(alert(sequence), ["audit"], now=0.0)
    outbox = Outbox(journal, {"audit": webhook(receiver)}, backoff=QUICK)
    try:
        assert await outbox.flush(timeout=5.0) == 0
    finally:
        await outbox.sinks["audit"].close()
    assert sequences(receiver.accepted) == [1, 2, 3, 4, 5]


async def test_deliveries_for_a_sink_no_longer_configured_are_dropped_not_retried_forever(
    journal: SqliteJournal, receiver: Receiver
) -> None:
    await journal.record_alert(alert(1), ["removed", "audit"], now=0.0)
    outbox = Outbox(journal, {"audit": webhook(receiver)}, backoff=QUICK)
    try:
        assert await outbox.flush(timeout=5.0) == 0
    finally:
        await outbox.sinks["audit"].close()
    deliveries = {d["sink"]: d for d in (await journal.history())[0]["deliveries"]}
    assert deliveries["removed"]["status"] == "failed" and deliveries["audit"]["status"] == "sent"


async def test_logs_name_sinks_but_never_their_urls_or_tokens(
    journal: SqliteJournal, receiver: Receiver
) -> None:
    receiver.fail(429, times=1, retry_after=0.1, platform="telegram")
    receiver.fail(403, times=1, platform="slack")
    slack_url = f"{receiver.url}/services/T/B/SLACKSECRET"
    sinks: dict[str, Sink] = {
        "pager": TelegramSink("pager", bot_token=TOKEN, chat_id="1", base_url=receiver.url),
        "ops": SlackSink("ops", url=slack_url),
    }
    await journal.record_alert(alert(1), list(sinks), now=0.0)
    outbox = Outbox(journal, sinks, backoff=QUICK)
    with capture_logs() as logs:
        assert await outbox.send_due() == 2  # Telegram rate limited, Slack refused: both journaled
    for sink in sinks.values():
        await sink.close()
    text = repr(logs) + json.dumps(await journal.history())
    assert {entry["sink"] for entry in logs} == {"pager", "ops"}
    assert "Too Many Requests" in text and "HTTP 403" in text
    assert TOKEN not in text and "SLACKSECRET" not in text


async def test_a_full_journal_still_delivers_says_so_once_and_gives_the_all_clear_when_it_can_write(
    journal: SqliteJournal, receiver: Receiver
) -> None:
    """SQLite's own "database or disk is full" (the journal capped at its size): alerts go out from memory, every
    sink hears of the failure once, and of its end once the journal can be written again."""
    sinks: dict[str, Sink] = {"audit": webhook(receiver), "other": webhook(receiver, "other")}
    await journal.limit_size(journal.path.stat().st_size)
    filler = 0
    while journal.write_failure is None:
        filler += 1
        await journal.record_alert(alert(filler, symbol=f"FILL{filler}/USDT:USDT"), [], now=0.0)
    async with running(Outbox(journal, sinks, backoff=QUICK)) as outbox:
        await journal.record_alert(alert(1), ["audit"], now=outbox.clock())
        outbox.notify()
        async with asyncio.timeout(WAIT):
            await receiver.wait_for(3)  # the alert, and the failure told to both sinks
        await journal.limit_size(None)
        outbox.notify()
        async with asyncio.timeout(WAIT):
            await receiver.wait_for(5)  # the all-clear, to both sinks
    docs = [r.json for r in receiver.received("webhook")]
    kinds = [(d["kind"], d["resolved"]) for d in docs]
    assert kinds.count(("journal_failure", False)) == 2 and kinds.count(("journal_failure", True)) == 2
    assert ("liquidation_risk", False) in kinds
    failure = next(d for d in docs if d["kind"] == "journal_failure" and not d["resolved"])
    assert failure["severity"] == "critical" and "disk is full" in failure["summary"]
    per_sink = [(r.path, r.json["idempotency_key"]) for r in receiver.received("webhook")]
    assert len(per_sink) == len(set(per_sink)) == 5, "a message reached a sink twice"
    assert journal.write_failure is None and await journal.pending_deliveries() == 0
