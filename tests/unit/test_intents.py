"""Settling a top-up intent left unsettled by a crash, from the exchange's own snapshot."""

from __future__ import annotations

import pytest

from daemon.app.intents import ledger_entry, outcome_from_snapshot
from daemon.core.events import BalanceUpdate, PositionFacts, PositionSnapshot
from daemon.core.state import AccountState, apply
from daemon.core.topup import EntryStatus, TopUpMethod
from daemon.core.types import MarginMode, Side
from daemon.store import IntentRecord

BTC = "BTC/USDT:USDT"


def _record(
    action: str = "add_margin", amount: float = 100.0, before: float | None = 300.0, status: str = "pending"
) -> IntentRecord:
    return IntentRecord("k", "acct", BTC, "long", action, "USDT", amount, status, before, "", 1.0, 1.0, 2)


def _state(isolated_margin: float | None, wallet: float = 1_000.0) -> AccountState:
    facts = PositionFacts(
        BTC, Side.LONG, 1.0, 60_000.0, margin_mode=MarginMode.ISOLATED, isolated_margin=isolated_margin
    )
    state, _ = apply(AccountState("acct", "binance"), PositionSnapshot((facts,), 1))
    state, _ = apply(state, BalanceUpdate(wallet, 2))
    return state


@pytest.mark.parametrize(
    ("margin_now", "expected"),
    [
        (400.0, "done"),  # 300 + 100: it landed
        (399.5, "done"),  # within the 1 % allowed for rounding down and fees
        (300.0, "failed"),  # unchanged: it never landed, a new decision may follow
        (None, "unknown"),  # the snapshot does not say: stays in flight, no new top-up for this leg
    ],
)
def test_an_add_margin_intent_is_settled_by_whether_the_margin_grew(
    margin_now: float | None, expected: str
) -> None:
    status, detail = outcome_from_snapshot(_record(), _state(margin_now))
    assert status == expected, detail


def test_an_intent_for_a_position_that_is_gone_failed() -> None:
    state, _ = apply(AccountState("acct", "binance"), PositionSnapshot((), 1))
    assert outcome_from_snapshot(_record(), state)[0] == "failed"


def test_a_transfer_intent_is_settled_from_the_wallet() -> None:
    record = _record("transfer", amount=50.0, before=1_000.0)
    assert outcome_from_snapshot(record, _state(300.0, wallet=1_050.0))[0] == "done"
    assert outcome_from_snapshot(record, _state(300.0, wallet=1_000.0))[0] == "failed"


@pytest.mark.parametrize(
    ("status", "entry"),
    [
        ("pending", EntryStatus.PENDING),
        ("unknown", EntryStatus.PENDING),
        ("done", EntryStatus.EXECUTED),
        ("dry_run", EntryStatus.EXECUTED),
        ("failed", EntryStatus.FAILED),
    ],
)
def test_journal_statuses_become_ledger_statuses(status: str, entry: EntryStatus) -> None:
    ledger = ledger_entry(_record(status=status))
    assert (ledger.status, ledger.episode, ledger.method) == (entry, 2, TopUpMethod.ADD_MARGIN)
