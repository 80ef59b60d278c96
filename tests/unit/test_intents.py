"""Settling a top-up intent whose outcome is unknown, from the exchange's own records (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.app.intents import (
    APPLIED_SHARE,
    LANDING_WINDOW_S,
    judge_by_both,
    judge_by_changes,
    judge_by_margin,
    judge_by_snapshot,
    ledger_entry,
)
from daemon.core.events import BalanceUpdate, PositionFacts, PositionSnapshot
from daemon.core.state import AccountState, apply
from daemon.core.topup import EntryStatus, TopUpMethod
from daemon.core.types import MarginMode, Side
from daemon.exchanges.records import MarginChange
from daemon.store import IntentRecord

BTC = "BTC/USDT:USDT"
SENT = 1_000.0  # when the request was signed and sent
SOON = SENT + 1.0  # inside the landing window
LATE = SENT + LANDING_WINDOW_S  # the request can no longer land


def _record(
    action: str = "add_margin", amount: float = 100.0, before: float | None = 300.0, status: str = "unknown"
) -> IntentRecord:
    return IntentRecord("k", "acct", BTC, "long", action, "USDT", amount, status, before, "", SENT, SENT, 2)


def _change(amount: float, ts: float = SENT + 0.2, symbol: str = BTC, kind: str = "add") -> MarginChange:
    return MarginChange(symbol, Side.LONG, amount, "USDT", int(ts * 1000), kind)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("margin_now", "now", "verdict"),
    [
        (400.0, SOON, "done"),  # 300 + 100: it landed
        (399.5, SOON, "done"),  # within the 1 % allowed for rounding down and fees
        (300.0, SOON, "open"),  # not yet: the request may still land, ask again
        (300.0, LATE, "failed"),  # not there once it can no longer land: a new decision may follow
        (None, SOON, "gone"),  # the position is closed: whether it landed can never be told
    ],
)
def test_an_add_margin_is_judged_by_the_fresh_margin_and_the_landing_window(
    margin_now: float | None, now: float, verdict: str
) -> None:
    assert judge_by_margin(_record(), margin_now, now).verdict == verdict


@given(
    amount=st.floats(1.0, 1e6),
    before=st.floats(0.0, 1e6),
    landed=st.floats(APPLIED_SHARE, 1.0),
    elsewhere=st.floats(-1e3, 1e3),
    now=st.floats(SENT, SENT + 3 * LANDING_WINDOW_S),
)
def test_a_top_up_that_landed_is_never_judged_failed(
    amount: float, before: float, landed: float, elsewhere: float, now: float
) -> None:
    """Whatever else moved the margin by less than the top-up's own rounding, a landed top-up is done."""
    record = _record(amount=amount, before=before)
    margin_now = before + amount * landed + abs(elsewhere) * 1e-9
    assert judge_by_margin(record, margin_now, now).verdict == "done"
    history = [_change(amount * landed, ts=SENT + 0.1)]
    assert judge_by_changes(record, history, now).verdict == "done"


def test_the_margin_history_settles_by_an_addition_of_the_amount_to_the_leg_after_the_decision() -> None:
    record = _record()
    assert judge_by_changes(record, [_change(100.0)], SOON).verdict == "done"
    assert judge_by_changes(record, [_change(99.5)], SOON).verdict == "done"  # rounded down
    # Someone else's change: another amount, another leg, another direction, or long before the decision.
    others = [
        _change(40.0),
        _change(100.0, symbol="ETH/USDT:USDT"),
        _change(100.0, kind="reduce"),
        _change(100.0, ts=SENT - 3_600),
    ]
    assert judge_by_changes(record, others, SOON).verdict == "open"
    assert judge_by_changes(record, others, LATE).verdict == "failed"


def test_a_transfer_without_history_waits_for_a_snapshot_taken_after_it_could_land() -> None:
    record = _record("transfer", amount=50.0, before=1_000.0)
    assert judge_by_snapshot(record, _state(None, wallet=1_050.0, at=SOON), SOON).verdict == "done"
    assert judge_by_snapshot(record, _state(None, wallet=1_000.0, at=SOON), SOON).verdict == "open"
    assert judge_by_snapshot(record, _state(None, wallet=1_000.0, at=LATE), LATE).verdict == "failed"


def _state(isolated_margin: float | None, wallet: float = 1_000.0, at: float = SOON) -> AccountState:
    facts = PositionFacts(
        BTC, Side.LONG, 1.0, 60_000.0, margin_mode=MarginMode.ISOLATED, isolated_margin=isolated_margin
    )
    state, _ = apply(AccountState("acct", "binance"), PositionSnapshot((facts,), int(at * 1000)))
    state, _ = apply(state, BalanceUpdate(wallet, int(at * 1000)))
    return state


@pytest.mark.parametrize(
    ("status", "entry"),
    [
        ("pending", EntryStatus.PENDING),
        ("unknown", EntryStatus.PENDING),
        ("done", EntryStatus.EXECUTED),
        ("dry_run", EntryStatus.EXECUTED),
        ("unconfirmed", EntryStatus.EXECUTED),
        ("failed", EntryStatus.FAILED),
    ],
)
def test_journal_statuses_become_ledger_statuses(status: str, entry: EntryStatus) -> None:
    ledger = ledger_entry(_record(status=status))
    assert (ledger.status, ledger.episode, ledger.method) == (entry, 2, TopUpMethod.ADD_MARGIN)


@given(grown=st.floats(100.0, 1e5), now=st.floats(SENT, SENT + 3 * LANDING_WINDOW_S))
def test_where_a_margin_history_is_kept_a_grown_margin_alone_never_settles_a_top_up_done(
    grown: float, now: float
) -> None:
    # The owner added to the position while the add-margin's answer was lost: the leg's margin grew by more than
    # the top-up, the history shows no top-up. Told "done", it was a top-up announced that never happened
    # (market-path soak, binance seed 6000: 158 USDT told added, nothing moved).
    record = _record()
    by_margin = judge_by_margin(record, 300.0 + grown, now)
    by_history = judge_by_changes(record, [_change(40.0)], now)
    verdict = judge_by_both(record, by_history, by_margin, now).verdict
    assert verdict == ("open" if now < SENT + LANDING_WINDOW_S else "gone")  # gone: unconfirmed, never done
    assert (
        judge_by_both(record, judge_by_changes(record, [_change(100.0)], now), by_margin, now).verdict
        == "done"
    )
    assert (
        judge_by_both(record, None, by_margin, now).verdict == "done"
    )  # no history: the margin is all there is
