"""What a journal new for an account counts as the last day's top-ups, read from what the exchange shows.

A lost journal must not reset the daily limits: before its first top-up the executor counts the account's
top-ups of the last 24 h, from the exchange's margin history where it keeps one, else from what the open
isolated legs hold beyond their opening margin. Each is journaled as a seeded, settled intent.
"""

from __future__ import annotations

from collections.abc import Sequence

from daemon.core.state import AccountState
from daemon.core.topup import TopUpMethod
from daemon.exchanges.records import MarginChange
from daemon.store import IntentRecord
from daemon.store.journal_records import SEEDED_PREFIX

# How a new journal counted the account's last day of top-ups (kept in the journal).
SEED_HISTORY = "the exchange's margin history"
SEED_OPEN_LEGS = "the open legs' margin above their opening margin (no margin history)"


def seeded_from_history(
    account_id: str, changes: Sequence[MarginChange], state: AccountState, now: float
) -> list[IntentRecord]:
    """The margin the history shows added (to a leg or by transfer in), one seeded intent each."""
    spent = []
    for i, change in enumerate(changes):
        if change.amount <= 0.0 or change.kind not in ("add", "transfer_in"):
            continue
        if change.kind == "transfer_in":
            symbol, side, method = "*", "-", TopUpMethod.TRANSFER
        else:
            symbol, method = change.symbol or "*", TopUpMethod.ADD_MARGIN
            sides = [s for (sym, s) in state.legs if sym == change.symbol]
            # A one-way venue does not say the side: the leg open on the symbol is the one it fed.
            side = change.side.value if change.side else (sides[0].value if len(sides) == 1 else "-")
        ts = min(change.ts_ms / 1000.0, now)
        spent.append(seeded_record(account_id, symbol, side, method, change.amount, change.asset, ts, i))
    return spent


def seeded_record(
    account_id: str,
    symbol: str,
    side: str,
    method: TopUpMethod,
    amount: float,
    asset: str,
    ts: float,
    index: int,
) -> IntentRecord:
    """A top-up the exchange shows, journaled as settled ("done") under a key no decision of ours can take."""
    key = f"{SEEDED_PREFIX}{account_id}|{symbol}|{side}|{int(ts * 1000)}|{index}"
    return IntentRecord(
        key, account_id, symbol, side, method.value, asset, amount, "done", None, "", ts, ts, -1
    )
