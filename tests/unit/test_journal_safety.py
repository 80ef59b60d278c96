"""The journal's promises when things go wrong, on a real SQLite file: a message number is never silently
reused, the memory that numbered a message is saved with it, and a full journal (SQLite's own "database or disk
is full", from a size cap) holds alerts and outcomes in memory and writes them back once it can."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.core.policy_memory import PolicyMemory
from daemon.store import IntentRecord, JournalUnavailable
from daemon.store.memory_codec import memory_from_json, memory_to_json
from tests.journal_backends import SyncJournal


def _alert(
    sequence: int, summary: str = "BTC long is 3.4% from liquidation", rule: str = "liquidation_risk"
) -> Alert:
    return Alert(
        identity=AlertIdentity("acct", "BTC/USDT:USDT", "long", rule),
        kind=AlertKind.LIQUIDATION_RISK,
        severity=Severity.CRITICAL,
        resolved=False,
        ts=1_000.0 + sequence,
        account="acct",
        exchange="binanceusdm",
        symbol="BTC/USDT:USDT",
        side="long",
        contracts=0.5,
        mark_price=59_000.0,
        liquidation_price=57_000.0,
        distance=0.0339,
        margin_ratio=None,
        action=None,
        summary=summary,
        sequence=sequence,
    )


def _intent(key: str) -> IntentRecord:
    return IntentRecord(
        key, "acct", "BTC/USDT:USDT", "long", "add_margin", "USDT", 5.0, "pending", 10.0, "", 1.0, 1.0
    )


def _fill(journal: SyncJournal) -> int:
    """Cap the journal at its current size and write until it is full; how many alerts still fit."""
    journal.limit_size(journal.path.stat().st_size)
    written = 0
    while journal.write_failure is None:
        journal.record_alert(_alert(1000 + written, summary="x" * 2000, rule=f"filler{written}"), [], now=0.0)
        written += 1
    return written


def test_a_different_message_under_a_taken_number_is_renumbered_never_dropped(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with journal_at(tmp_path / "j.sqlite") as journal:
        journal.record_alert(_alert(1, "first message"), ["slack"], now=0.0)
        # A memory saved before its last message (a kill at the wrong moment) numbers the next one 1 again.
        stored = journal.record_alert(_alert(1, "second message"), ["slack"], now=1.0)
        assert stored is not None and stored.sequence == 2
        due = journal.due_deliveries(now=2.0)
        assert [(d.alert.summary, d.alert.sequence) for d in due] == [
            ("first message", 1),
            ("second message", 2),
        ]
        # The very same message again is no new message.
        assert journal.record_alert(_alert(1, "first message"), ["slack"], now=3.0) is None


def test_the_memory_that_numbered_an_alert_is_saved_with_it_and_counters_never_go_back(
    journal_at: Callable[..., SyncJournal],
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite"
    key = _alert(1).identity.key
    numbered = PolicyMemory(sequences={key: 7})
    with journal_at(path) as journal:
        journal.record_alert(_alert(7), ["slack"], now=0.0, memory=("acct", memory_to_json(numbered)))
    with journal_at(path) as reopened:
        assert memory_from_json(reopened.load_memory("acct") or "").sequences == {key: 7}
        # A memory older than the journal (or none at all) is raised to what the journal holds.
        assert PolicyMemory().numbered_at_least(reopened.max_sequences("acct")).sequences == {key: 7}


def test_a_new_journal_stamps_its_own_origin_on_every_message(
    journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with journal_at(tmp_path / "a.sqlite") as one, journal_at(tmp_path / "b.sqlite") as lost_and_new:
        first, second = one.record_alert(_alert(1), [], 0.0), lost_and_new.record_alert(_alert(1), [], 0.0)
        assert first is not None and second is not None
        assert (first.identity.key, first.sequence) == (second.identity.key, second.sequence)
        assert first.origin and second.origin and first.origin != second.origin


def test_a_full_journal_holds_alerts_and_outcomes_in_memory_and_writes_them_back(
    sqlite_journal_at: Callable[..., SyncJournal], tmp_path: Path
) -> None:
    with sqlite_journal_at(tmp_path / "j.sqlite") as journal:
        journal.begin_intent(_intent("earlier"))
        journal.record_alert(_alert(1), ["slack"], now=0.0)
        (journaled,) = journal.due_deliveries(now=0.0)
        _fill(journal)
        assert journal.write_failure is not None and "full" in journal.write_failure

        # An alert is never lost to a full disk: it is held and handed to the outbox like any other.
        held = journal.record_alert(_alert(2, "while full"), ["slack", "audit"], now=1.0)
        assert held is not None
        due = journal.due_deliveries(now=1.0)
        assert [(d.sink, d.alert.summary) for d in due] == [
            ("slack", "BTC long is 3.4% from liquidation"),
            ("slack", "while full"),
            ("audit", "while full"),
        ]
        journal.mark_sent(journaled.id, now=2.0)
        for delivery in journal.due_deliveries(now=2.0):
            journal.mark_sent(delivery.id, now=2.0)
        assert journal.pending_deliveries() == 0
        # No top-up starts without its record; an outcome that cannot be written is read back from memory.
        with pytest.raises(JournalUnavailable):
            journal.begin_intent(_intent("while full"))
        journal.settle_intent("earlier", "done", "landed", now=3.0)
        assert journal.unsettled_intents("acct") == []
        assert not journal.probe()

        journal.limit_size(None)  # space again
        assert journal.probe() and journal.write_failure is None
        history = {
            (e["summary"], e["sequence"]): [d["status"] for d in e["deliveries"]]
            for e in journal.history(1000)
        }
        assert history[("while full", 2)] == ["sent", "sent"]
        assert history[("BTC long is 3.4% from liquidation", 1)] == ["sent"]
        assert [(i.intent_key, i.status) for i in journal.intents("acct")] == [("earlier", "done")]
        assert journal.pending_deliveries() == 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from(["a", "b", "c"]), st.booleans()), min_size=1, max_size=12
    )
)
def test_every_message_is_kept_once_under_its_own_number_whatever_the_disk_does(
    sqlite_journal_at: Callable[..., SyncJournal],
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[int, str, bool]],
) -> None:
    """Messages numbered from a memory that may lag (any sequence), recorded while the disk may be full (any
    moment): each distinct message ends up journaled exactly once, and no two share a (key, sequence)."""
    path = tmp_path_factory.mktemp("journal") / "j.sqlite"
    with sqlite_journal_at(path) as journal:
        sent: list[str] = []
        for i, (sequence, text, full) in enumerate(steps):
            if full and journal.write_failure is None:
                _fill(journal)
            elif not full:
                journal.limit_size(None)
            summary = f"{text}-{i}"
            if journal.record_alert(_alert(sequence, summary), ["slack"], now=float(i)) is not None:
                sent.append(summary)
        journal.limit_size(None)
        assert journal.probe()
        mine = [e for e in journal.history(10_000) if not e["identity"]["rule"].startswith("filler")]
        assert (
            sorted(e["summary"] for e in mine)
            == sorted(sent)
            == sorted(f"{t}-{i}" for i, (_s, t, _f) in enumerate(steps))
        )
        numbers = [(e["key"], e["sequence"]) for e in mine]
        assert len(numbers) == len(set(numbers))
