"""Top-up intents as the journal keeps them, and how the exchange's own records settle one whose outcome is unknown.

A journaled intent becomes a ledger entry for the pure top-up policy. An intent whose outcome is unknown (its
answer was lost, or the process died while it was in flight) is judged from the exchange's authoritative records:
its margin-change history where the venue keeps one, else a fresh REST read of the leg's margin. "Not there" is
final only once the request can no longer land: every venue refuses a signed request older than its receive
window, and marginguard waits out the longest of them before calling a top-up failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from daemon.core.state import AccountState
from daemon.core.topup import EntryStatus, LedgerEntry, TopUp, TopUpLimits, TopUpMethod
from daemon.core.types import Side
from daemon.exchanges.records import MarginChange
from daemon.store import IntentRecord
from daemon.store.journal_records import SEEDED_PREFIX

_LEDGER_STATUS = {
    "pending": EntryStatus.PENDING,
    "unknown": EntryStatus.PENDING,
    "done": EntryStatus.EXECUTED,
    "dry_run": EntryStatus.EXECUTED,
    "unconfirmed": EntryStatus.EXECUTED,  # never confirmed either way: counted against the limits, told unknown
    "failed": EntryStatus.FAILED,
}
# An applied top-up shows as at least this share of its amount in the position's margin (fees and rounding).
APPLIED_SHARE = 0.99
# How long after it was signed a request may still land: Binance accepts a recvWindow of up to 60 s, OKX a
# timestamp 30 s old, Bybit its recv_window (5 s by default). Past this, "not on the books" means "never will be".
LANDING_WINDOW_S = 65.0
# A margin change this much older than the decision cannot be the decision's (clocks differ by a little).
_CLOCK_SLACK_MS = 5_000

Verdict = Literal["done", "failed", "open", "gone"]


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the records say about an intent: landed (`done`), never will (`failed`), not yet (`open`: ask again
    until the landing window closes), or its leg is gone so it never can be confirmed (`gone`)."""

    verdict: Verdict
    detail: str


def ledger_entry(record: IntentRecord) -> LedgerEntry:
    """The ledger's view of a journaled intent. An executed one counts from when it was settled (it landed by
    then) and waits for nothing: the picture a (re)started daemon works on was read after it landed."""
    status = _LEDGER_STATUS.get(record.status, EntryStatus.PENDING)
    return LedgerEntry(
        record.intent_key,
        record.account,
        record.symbol,
        record.side,
        record.amount,
        record.updated if status is EntryStatus.EXECUTED else record.created,
        status,
        record.episode,
        TopUpMethod(record.action),
        seeded=record.intent_key.startswith(SEEDED_PREFIX),
    )


def expected_after(record: IntentRecord, sent: float) -> float | None:
    """The margin (or wallet) at or above which the account's picture shows the top-up."""
    if record.margin_before is None:
        return None
    return record.margin_before + sent * APPLIED_SHARE


def judge_by_changes(record: IntentRecord, changes: Sequence[MarginChange], now: float) -> Judgement:
    """From the venue's margin-change history: an addition of the intent's amount (rounded down by at most 1 %)
    to its leg, made no earlier than the decision, is the intent landing."""
    since_ms = int(record.created * 1000) - _CLOCK_SLACK_MS
    kinds = ("transfer_in",) if record.action == TopUpMethod.TRANSFER.value else ("add",)
    for change in changes:
        if change.kind not in kinds or change.ts_ms < since_ms:
            continue
        if record.action != TopUpMethod.TRANSFER.value and (
            change.symbol != record.symbol or (change.side is not None and change.side.value != record.side)
        ):
            continue
        if record.amount * APPLIED_SHARE <= change.amount <= record.amount * (1 + 1e-9):
            return Judgement("done", f"on the exchange's books: {change.amount:g} {change.asset}")
    return _not_there(record, now, "not in the exchange's margin history")


def judge_by_margin(record: IntentRecord, margin_now: float | None, now: float) -> Judgement:
    """From a fresh REST read of the leg's isolated margin, against the margin read just before sending."""
    if margin_now is None:
        return Judgement("gone", "the position is no longer open: whether the top-up landed cannot be told")
    if record.margin_before is None:
        return Judgement("open", "the margin before the top-up is unknown")
    moved = f"isolated margin {record.margin_before:g} -> {margin_now:g}"
    if _reached(margin_now, record.margin_before + record.amount * APPLIED_SHARE):
        return Judgement("done", f"on the exchange's books: {moved}")
    return _not_there(record, now, f"not on the exchange's books ({moved})")


def judge_by_both(
    record: IntentRecord, by_history: Judgement | None, by_margin: Judgement, now: float
) -> Judgement:
    """An add-margin judged by the venue's margin history (None: it keeps none) and the leg's fresh margin.

    Where a history is kept it decides: a leg's margin also grows when its owner adds to the position, so a
    margin grown by the amount is no proof. While the history may still lag, wait; once the landing window has
    closed with the margin grown but the history silent, the records disagree: unconfirmed (counted as landed,
    told as unknown), never "done"."""
    if by_history is None:
        return by_margin
    if by_history.verdict == "done":
        return by_history
    if by_margin.verdict == "done":
        if now < record.created + LANDING_WINDOW_S:
            return Judgement("open", f"{by_margin.detail}, but not in the exchange's margin history yet")
        return Judgement(
            "gone",
            f"{by_margin.detail}, but the exchange's margin history does not show the top-up: "
            "whether it landed cannot be told",
        )
    if by_margin.verdict in ("gone", "open"):
        return by_history
    return by_margin


def judge_by_snapshot(record: IntentRecord, state: AccountState, now: float) -> Judgement:
    """A transfer on a venue without history, from the picture's wallet: only a REST snapshot taken once the
    landing window has closed can say "never"; a wallet that grew by the amount says "landed" at once."""
    wallet, before = state.wallet_balance, record.margin_before
    if wallet is not None and before is not None and _reached(wallet, before + record.amount * APPLIED_SHARE):
        return Judgement("done", f"wallet {before:g} -> {wallet:g}")
    closed_ms = (record.created + LANDING_WINDOW_S) * 1000
    snapshot = state.last_snapshot_ms
    if wallet is not None and before is not None and snapshot is not None and snapshot >= closed_ms:
        return Judgement("failed", f"not applied: wallet {before:g} -> {wallet:g}")
    return Judgement("open", "waiting for a snapshot of the wallet taken after the request could land")


def _reached(value: float, wanted: float) -> bool:
    """`value >= wanted`, but for the last bits a float sum loses (a margin of 131072 plus 0.99)."""
    return value >= wanted - 1e-9 * max(1.0, abs(wanted))


def _not_there(record: IntentRecord, now: float, what: str) -> Judgement:
    if now >= record.created + LANDING_WINDOW_S:
        return Judgement("failed", f"not applied: {what}")
    return Judgement(
        "open", f"{what} yet; it may still land until {LANDING_WINDOW_S:.0f} s after it was sent"
    )


def with_status(record: IntentRecord, status: str) -> IntentRecord:
    return replace(record, status=status)


def topup_of(record: IntentRecord, limits: TopUpLimits | None) -> TopUp:
    """The journaled decision as a top-up, to tell its settled outcome (the target comes from the limits)."""
    return TopUp(
        amount=record.amount,
        symbol=record.symbol,
        side=record.side,
        target=limits.target_distance if limits is not None else 0.0,
        intent_key=record.intent_key,
        method=TopUpMethod(record.action),
        source=limits.cross_transfer_from if limits is not None else None,
        needed=record.amount,
        capped_by=None,
        distance_after=None,
        episode=record.episode,
        attempt=0,
    )


def leg_side(record: IntentRecord) -> Side:
    return Side(record.side)
