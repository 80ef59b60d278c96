"""Top-up intents as the journal keeps them, and what a restart makes of them.

A journaled intent becomes a ledger entry for the pure top-up policy; an intent left unsettled by a crash is
settled from the exchange's own snapshot before anything new is decided.
"""

from __future__ import annotations

from dataclasses import replace

from daemon.core.state import AccountState
from daemon.core.topup import EntryStatus, LedgerEntry, TopUp, TopUpLimits, TopUpMethod
from daemon.core.types import Side
from daemon.store import IntentRecord

_LEDGER_STATUS = {
    "pending": EntryStatus.PENDING,
    "unknown": EntryStatus.PENDING,
    "done": EntryStatus.EXECUTED,
    "dry_run": EntryStatus.EXECUTED,
    "failed": EntryStatus.FAILED,
}
# An applied top-up shows as at least this share of its amount in the position's margin (fees and rounding).
_APPLIED_SHARE = 0.99


def ledger_entry(record: IntentRecord) -> LedgerEntry:
    return LedgerEntry(
        record.intent_key,
        record.account,
        record.symbol,
        record.side,
        record.amount,
        record.created,
        _LEDGER_STATUS.get(record.status, EntryStatus.PENDING),
        record.episode,
        TopUpMethod(record.action),
    )


def outcome_from_snapshot(record: IntentRecord, state: AccountState) -> tuple[str, str]:
    """Did a journaled top-up land? Read from the exchange's own snapshot: the isolated margin (or, for a
    transfer, the wallet) grew by the amount, or it did not; unknown when the snapshot does not say."""
    if record.action == TopUpMethod.TRANSFER.value:
        now_value, what = state.wallet_balance, "wallet"
    else:
        facts = state.legs.get((record.symbol, Side(record.side)))
        if facts is None:
            return "failed", "position gone: nothing to reconcile"
        now_value, what = facts.isolated_margin, "isolated margin"
    if now_value is None or record.margin_before is None:
        return "unknown", f"{what} unknown: kept as in flight"
    grew = now_value - record.margin_before
    if grew >= record.amount * _APPLIED_SHARE:
        return "done", f"reconciled: {what} {record.margin_before:g} -> {now_value:g}"
    return "failed", f"reconciled: not applied ({what} {record.margin_before:g} -> {now_value:g})"


def with_status(record: IntentRecord, status: str) -> IntentRecord:
    return replace(record, status=status)


def topup_of(record: IntentRecord, limits: TopUpLimits | None) -> TopUp:
    """The journaled decision as a top-up, to tell its reconciled outcome (the target comes from the limits)."""
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
