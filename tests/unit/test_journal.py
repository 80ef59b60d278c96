"""The SQLite journal on a real file: write-ahead alerts and deliveries, intents that can't repeat, silences."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.store import IntentRecord
from tests.journal_backends import SyncJournal


def _alert(sequence: int = 1, symbol: str = "BTC/USDT:USDT", resolved: bool = False) -> Alert:
    return Alert(
        identity=AlertIdentity("acct", symbol, "long", "liquidation_risk"),
        kind=AlertKind.LIQUIDATION_RISK,
        severity=Severity.CRITICAL,
        resolved=resolved,
        ts=1_000.0 + sequence,
        account="acct",
        exchange="binanceusdm",
        symbol=symbol,
        side="long",
        contracts=0.5,
        mark_price=59_000.0,
        liquidation_price=57_000.0,
        distance=0.0339,
        margin_ratio=None,
        action=None,
        summary="BTC long is 3.4% from liquidation",
        sequence=sequence,
    )


def _intent(key: str = "acct|BTC|long|episode-1", status: str = "pending") -> IntentRecord:
    return IntentRecord(
        key, "acct", "BTC/USDT:USDT", "long", "add_margin", "USDT", 120.5, status, 300.0, "", 1.0, 1.0
    )


def test_an_alert_and_its_deliveries_survive_a_restart(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    path = tmp_path / "journal.sqlite"
    with journal_at(path) as journal:
        assert journal.record_alert(_alert(), ["slack", "telegram"], now=10.0) is not None
        origin = journal.instance
    with journal_at(path) as reopened:
        due = reopened.due_deliveries(now=10.0)
        assert [(d.sink, d.alert.summary) for d in due] == [
            ("slack", "BTC long is 3.4% from liquidation"),
            ("telegram", "BTC long is 3.4% from liquidation"),
        ]
        # Sent after the restart as the journal that numbered it stamped it: the same idempotency key.
        assert due[0].alert == replace(_alert(), origin=origin) and reopened.instance != origin


def test_the_same_alert_message_is_journaled_once(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with journal_at(tmp_path / "j.sqlite") as journal:
        assert journal.record_alert(_alert(1), ["slack"], now=1.0) is not None
        assert journal.record_alert(_alert(1), ["slack"], now=2.0) is None
        assert journal.pending_deliveries() == 1


def test_a_sink_that_must_wait_holds_its_later_alerts_back_in_order(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with journal_at(tmp_path / "j.sqlite") as journal:
        journal.record_alert(_alert(1), ["slack", "discord"], now=0.0)
        journal.record_alert(_alert(2), ["slack", "discord"], now=0.0)
        first_slack = next(d for d in journal.due_deliveries(now=0.0) if d.sink == "slack")
        journal.mark_retry(first_slack.id, next_attempt_at=30.0, error="429 retry_after 30")
        due = journal.due_deliveries(now=5.0)
        # Discord gets both in order; Slack gets nothing until its first alert can go.
        assert [(d.sink, d.alert.sequence) for d in due] == [("discord", 1), ("discord", 2)]
        for delivery in due:
            journal.mark_sent(delivery.id, now=5.0)
        assert [(d.sink, d.alert.sequence) for d in journal.due_deliveries(now=31.0)] == [
            ("slack", 1),
            ("slack", 2),
        ]
        assert journal.next_delivery_time() == 30.0


def test_latest_alert_per_identity_seeds_memory_after_restart(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with journal_at(tmp_path / "j.sqlite") as journal:
        journal.record_alert(_alert(1), [], now=0.0)
        journal.record_alert(_alert(2), [], now=0.0)
        journal.record_alert(_alert(1, symbol="ETH/USDT:USDT"), [], now=0.0)
        latest = journal.latest_alerts("acct")
        assert [(a.symbol, a.sequence) for a in latest] == [("BTC/USDT:USDT", 2), ("ETH/USDT:USDT", 1)]


def test_a_top_up_intent_can_be_journaled_only_once_even_across_restarts(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    with journal_at(path) as journal:
        assert journal.begin_intent(_intent()) is True
    with journal_at(path) as reopened:  # a crash before the outcome was written
        assert reopened.begin_intent(_intent()) is False
        assert [i.intent_key for i in reopened.unsettled_intents("acct")] == ["acct|BTC|long|episode-1"]
        reopened.settle_intent("acct|BTC|long|episode-1", "done", "reconciled: margin 300 -> 420.5", now=2.0)
        assert reopened.unsettled_intents("acct") == []
        assert reopened.intents("acct")[0].detail == "reconciled: margin 300 -> 420.5"


def test_silences_expire(journal_at: Callable[..., SyncJournal], tmp_path: Path) -> None:
    with journal_at(tmp_path / "j.sqlite") as journal:
        journal.add_silence("acct", "BTC/USDT:USDT", until=100.0, reason="maintenance", now=0.0)
        journal.add_silence("acct", None, until=50.0, reason="", now=0.0)
        assert [s.symbol for s in journal.active_silences(now=60.0)] == ["BTC/USDT:USDT"]
        assert journal.active_silences(now=100.0) == []


def test_history_lists_latest_first_with_delivery_status(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with journal_at(tmp_path / "j.sqlite") as journal:
        journal.record_alert(_alert(1), ["slack"], now=0.0)
        journal.record_alert(_alert(2, resolved=True), ["slack"], now=0.0)
        delivery = journal.due_deliveries(now=0.0)[0]
        journal.mark_sent(delivery.id, now=1.0)
        history = journal.history()
        assert [(h["sequence"], h["resolved"]) for h in history] == [(2, True), (1, False)]
        assert history[1]["deliveries"][0]["status"] == "sent"


def test_the_policy_memory_survives_a_restart(journal_at: Callable[..., SyncJournal], tmp_path: Path) -> None:
    from daemon.core.alerts import AlertKind as Kind
    from daemon.core.policy_memory import Crossing, Figures, Level, Notice, PolicyMemory, Track
    from daemon.store.memory_codec import memory_from_json, memory_to_json

    identity = AlertIdentity("acct", "BTC/USDT:USDT", "long", "liquidation_risk")
    track = Track(
        identity,
        Kind.LIQUIDATION_RISK,
        warning=Crossing(10.0, True),
        critical=Crossing(12.0, False),
        notified=Level.WARNING,
        last_sent=11.0,
        episode=2,
        figures=Figures(0.5, 59_000.0, None, 0.08, None),
    )
    memory = PolicyMemory(
        tracks={identity.key: track},
        sequences={identity.key: 7},
        episodes={identity.key: 2},
        notices={"x": Notice("max_per_action", 5.0)},
    )
    path = tmp_path / "j.sqlite"
    with journal_at(path) as journal:
        journal.save_memory("acct", memory_to_json(memory), now=1.0)
    with journal_at(path) as reopened:
        text = reopened.load_memory("acct")
        assert text is not None
        assert memory_from_json(text) == memory
        assert reopened.load_memory("other") is None
