"""Incident charts in the SQLite journal: a critical message waits a few seconds for its chart and no longer; the
chart it was sent with is the one every retry and restart sends; a late chart is shown on the page but never
attached; an old journal opens; charts are pruned."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from daemon.store.journal_charts import CHART_KEEP_S
from tests.journal_backends import SyncJournal
from tests.unit.test_journal import _alert
from tests.unit.test_journal_safety import _fill

PNG = b"\x89PNG\r\n\x1a\nfake chart"
KEY = _alert().identity.key


def test_a_held_delivery_waits_for_its_chart_and_goes_with_it_once_stored(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with journal_at(tmp_path / "j.sqlite") as journal:
        journal.record_alert(_alert(), ["telegram", "slack"], now=10.0, hold={"telegram": 15.0})
        assert [d.sink for d in journal.due_deliveries(now=10.0)] == ["slack"]  # text-only sinks don't wait
        number = journal.store_chart(KEY, 1, PNG, now=10.4)
        (telegram,) = [d for d in journal.due_deliveries(now=10.4) if d.sink == "telegram"]
        assert telegram.chart == PNG and number == telegram.alert_id
        assert journal.chart(telegram.alert_id) == PNG
        # A retry sends the same picture.
        journal.mark_retry(telegram.id, 12.0, "HTTP 500")
        (again,) = [d for d in journal.due_deliveries(now=12.0) if d.sink == "telegram"]
        assert again.chart == PNG
        (entry,) = journal.history()
        assert entry["chart"] is True and entry["id"] == number


def test_without_a_chart_the_hold_runs_out_and_the_message_goes_as_text(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with journal_at(tmp_path / "j.sqlite") as journal:
        journal.record_alert(_alert(), ["telegram"], now=10.0, hold={"telegram": 15.0})
        assert journal.due_deliveries(now=14.9) == [] and journal.next_delivery_time() == 15.0
        (late,) = journal.due_deliveries(now=15.0)
        assert late.chart is None
        # A chart that comes after the hold ran out is for the page only: the message's body never changes.
        assert journal.store_chart(KEY, 1, PNG, now=16.0) is not None
        assert journal.due_deliveries(now=16.0)[0].chart is None
        assert journal.chart(late.alert_id) == PNG


def test_a_failed_render_releases_the_hold_at_once(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with journal_at(tmp_path / "j.sqlite") as journal:
        journal.record_alert(_alert(), ["discord"], now=10.0, hold={"discord": 15.0})
        journal.release_hold(KEY, 1, now=10.2)
        (delivery,) = journal.due_deliveries(now=10.2)
        assert delivery.chart is None


def test_a_delivery_after_a_restart_finds_its_chart(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    with journal_at(path) as journal:
        journal.record_alert(_alert(), ["telegram"], now=10.0, hold={"telegram": 15.0})
        journal.store_chart(KEY, 1, PNG, now=10.5)
    with journal_at(path) as reopened:
        (delivery,) = reopened.due_deliveries(now=100.0)
        assert delivery.chart == PNG


def test_a_journal_from_before_charts_opens_and_keeps_charts(
    sqlite_journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite_journal_at(path) as journal:
        journal.record_alert(_alert(), ["slack"], now=10.0)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE charts")  # as a journal written before charts existed
    with sqlite_journal_at(path) as reopened:
        assert [d.sink for d in reopened.due_deliveries(now=10.0)] == ["slack"]
        assert reopened.history()[0]["chart"] is False
        assert reopened.store_chart(KEY, 1, PNG, now=11.0) is not None


def test_old_charts_are_pruned_unless_their_message_is_still_pending(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with journal_at(tmp_path / "j.sqlite") as journal:
        for sequence in (1, 2, 3):
            journal.record_alert(_alert(sequence), ["telegram"], now=float(sequence))
        sent, pending = journal.due_deliveries(now=3.0)[:2]
        journal.mark_sent(sent.id, 3.0)
        journal.store_chart(KEY, 1, PNG, now=3.0)
        journal.store_chart(KEY, 2, PNG, now=3.0)
        journal.store_chart(KEY, 3, PNG, now=3.0 + CHART_KEEP_S + 1)
        assert journal.chart(sent.alert_id) is None  # a week old and delivered: gone
        assert journal.chart(pending.alert_id) == PNG  # a week old but still to be sent: kept


def test_a_message_held_in_memory_gets_no_chart_and_no_wait(
    sqlite_journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with sqlite_journal_at(tmp_path / "j.sqlite") as journal:
        _fill(journal)
        journal.record_alert(_alert(), ["telegram"], now=10.0, hold={"telegram": 15.0})
        assert journal.write_failure is not None
        assert journal.store_chart(KEY, 1, PNG, now=10.5) is None
        (delivery,) = journal.due_deliveries(now=10.0)
        assert delivery.chart is None
