"""An account's picture, folded from feed events: `apply(state, event) -> (state, changes)`.

Thin pushes are merged onto what is known (a None never replaces a value); a complete snapshot replaces the set
of open legs, and a leg that disappears from it is reported. What the exchange's own records then say about such
a leg (`LegLiquidated`, `LegGone`) is folded into a change of its own, so the policy tells a liquidation from a
close by the exchange's word rather than by the leg's last distance. Nothing here reads a clock: timestamps come
in on the events.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace

from daemon.core.events import (
    BalanceUpdate,
    Event,
    GoneCause,
    LegGone,
    LegLiquidated,
    MarketRules,
    MarkPrice,
    PositionFacts,
    PositionSnapshot,
    PositionUpdate,
    StreamHealth,
    StreamLeft,
)
from daemon.core.types import MarginMode, Side
from daemon.core.values import value

LegKey = tuple[str, Side]


class ChangeKind(enum.Enum):
    OPENED = "opened"
    CLOSED = "closed"  # a push or snapshot said the leg is now zero
    VANISHED = "vanished"  # absent from a complete snapshot without a close being seen: maybe liquidated
    CORRECTED = "corrected"  # a snapshot disagreed with what the pushes had built
    # What the exchange's records said about a leg that closed or vanished:
    LIQUIDATED = "liquidated"  # the exchange liquidated it
    CLOSED_BY_OWNER = "closed_by_owner"  # no liquidation on record: its owner closed it
    GONE_UNEXPLAINED = "gone_unexplained"  # the records could not be read in time: the cause is unknown


@dataclass(frozen=True, slots=True)
class Change:
    """A change to the set of legs. `price` and `contracts`: a liquidation's, as the exchange recorded them."""

    kind: ChangeKind
    symbol: str
    side: Side
    detail: str = ""
    price: float | None = None
    contracts: float | None = None


@value
class AccountState:
    """Everything known about one account. Treat as immutable: `apply` returns a new one."""

    account_id: str
    family: str
    settle_currency: str = "USDT"
    legs: dict[LegKey, PositionFacts] = field(default_factory=dict)
    marks: dict[str, MarkPrice] = field(default_factory=dict)
    rules: dict[str, MarketRules] = field(default_factory=dict)
    wallet_balance: float | None = None
    health: dict[str, StreamHealth] = field(default_factory=dict)
    last_snapshot_ms: int | None = None
    last_event_ms: int | None = None


# What the exchange's liquidation price follows from: news that changes one of them without a new price makes
# the known price stale (Binance's ACCOUNT_UPDATE carries the new isolated wallet after a top-up, not the price).
_LIQUIDATION_INPUTS = ("contracts", "entry_price", "margin_mode", "leverage", "isolated_margin")


def merge_facts(known: PositionFacts, news: PositionFacts) -> PositionFacts:
    """`news` over `known`, field by field, except where `news` says None; the exchange's liquidation price
    becomes unknown when its inputs moved and `news` does not say the new one."""
    updates = {f.name: getattr(news, f.name) for f in fields(news) if getattr(news, f.name) is not None}
    moved = any(name in updates and updates[name] != getattr(known, name) for name in _LIQUIDATION_INPUTS)
    if moved and news.exchange_liquidation_price is None:
        updates["exchange_liquidation_price"] = None
    return replace(known, **updates)


# Fields whose disagreement between pushes and a snapshot is worth reporting (marks and PnL move on their own).
_RECONCILED_FIELDS = ("contracts", "entry_price", "margin_mode", "leverage", "isolated_margin")


def _differences(known: PositionFacts, truth: PositionFacts) -> list[str]:
    found = []
    for name in _RECONCILED_FIELDS:
        ours, theirs = getattr(known, name), getattr(truth, name)
        if theirs is not None and ours != theirs:
            found.append(f"{name}: {ours} -> {theirs}")
    return found


def apply(state: AccountState, event: Event) -> tuple[AccountState, tuple[Change, ...]]:
    """Fold one event into the state. Returns the new state and what changed about the set of legs."""
    if isinstance(event, MarkPrice):
        return marked(state, event), ()
    ts = (
        max(state.last_event_ms or 0, event.ts_ms)
        if not isinstance(event, MarketRules | StreamLeft)
        else state.last_event_ms
    )
    if isinstance(event, BalanceUpdate):
        legs = state.legs
        if event.wallet_balance != state.wallet_balance:
            legs = _cross_prices_unknown(legs, keep=frozenset())
        return replace(state, wallet_balance=event.wallet_balance, legs=legs, last_event_ms=ts), ()
    if isinstance(event, StreamHealth):
        return replace(state, health={**state.health, event.stream: event}, last_event_ms=ts), ()
    if isinstance(event, StreamLeft):
        health = {stream: said for stream, said in state.health.items() if stream != event.stream}
        return replace(state, health=health), ()
    if isinstance(event, MarketRules):
        return replace(state, rules={**state.rules, event.symbol: event}), ()
    if isinstance(event, LegLiquidated):
        # The leg has already left the picture (that is why the records were asked), or has been opened again
        # since: either way the legs stand as they are; the liquidation is news about the past.
        liquidated = Change(
            ChangeKind.LIQUIDATED, event.symbol, event.side, event.source, event.price, event.contracts
        )
        return state, (liquidated,)
    if isinstance(event, LegGone):
        kind = ChangeKind.CLOSED_BY_OWNER if event.cause is GoneCause.OWNER else ChangeKind.GONE_UNEXPLAINED
        return state, (Change(kind, event.symbol, event.side, event.detail),)
    if isinstance(event, PositionUpdate):
        legs, changes = _merge_updates(state.legs, event.positions)
        return replace(state, legs=legs, marks=_marks_kept(state, legs), last_event_ms=ts), tuple(changes)
    legs, changes = _replace_with_snapshot(state.legs, event)
    marks = _marks_kept(state, legs)
    return replace(state, legs=legs, marks=marks, last_snapshot_ms=event.ts_ms, last_event_ms=ts), tuple(
        changes
    )


def _marks_kept(state: AccountState, legs: dict[LegKey, PositionFacts]) -> dict[str, MarkPrice]:
    """The marks still worth judging on: a symbol that stops or starts being held loses its mark.

    Mark streams follow the held symbols, so a symbol no longer held gets no more marks, and the last one it
    had would judge a leg opened on it later (seen: a top-up decided on the mark from before a liquidation, 3 %
    off the market). A newly held symbol waits for its stream's first mark (or uses the push's own mark)."""
    moved = {symbol for symbol, _ in state.legs} ^ {symbol for symbol, _ in legs}
    if not moved & state.marks.keys():
        return state.marks
    return {symbol: mark for symbol, mark in state.marks.items() if symbol not in moved}


def _merge_updates(
    legs: dict[LegKey, PositionFacts], updates: tuple[PositionFacts, ...]
) -> tuple[dict[LegKey, PositionFacts], list[Change]]:
    merged = dict(legs)
    changes: list[Change] = []
    cross_moved = False
    for facts in updates:
        known = merged.get((facts.symbol, facts.side))
        cross_moved = cross_moved or _moves_cross_totals(known, facts)
        key = (facts.symbol, facts.side)
        if facts.contracts == 0.0:
            if merged.pop(key, None) is not None:
                changes.append(Change(ChangeKind.CLOSED, facts.symbol, facts.side))
            continue
        if key in merged:
            merged[key] = merge_facts(merged[key], facts)
        else:
            merged[key] = facts
            changes.append(Change(ChangeKind.OPENED, facts.symbol, facts.side))
    if cross_moved:
        told = frozenset((f.symbol, f.side) for f in updates if f.exchange_liquidation_price is not None)
        merged = _cross_prices_unknown(merged, keep=told)
    return merged, changes


def marked(state: AccountState, mark: MarkPrice) -> AccountState:
    """`apply` for a mark, which changes no set of legs: the state after `mark`, built directly rather than by
    `dataclasses.replace` (this runs at every mark, and a connector calls it without `apply`'s dispatch)."""
    return AccountState(
        state.account_id,
        state.family,
        state.settle_currency,
        _after_mark(state.legs, mark),
        {**state.marks, mark.symbol: mark},
        state.rules,
        state.wallet_balance,
        state.health,
        state.last_snapshot_ms,
        max(state.last_event_ms or 0, mark.ts_ms),
    )


# `marked` names every field of `AccountState` in order: one added there must be added here too.
assert [f.name for f in fields(AccountState)] == [
    "account_id",
    "family",
    "settle_currency",
    "legs",
    "marks",
    "rules",
    "wallet_balance",
    "health",
    "last_snapshot_ms",
    "last_event_ms",
], "AccountState's fields changed: update marked"


# A cross leg's liquidation price follows from the unrealised PnL of every other cross leg, so the exchange's
# figure holds only at the marks its rows were computed at: a move of more than this (relative) makes it stale.
_MARK_MOVED = 1e-4


def _after_mark(legs: dict[LegKey, PositionFacts], mark: MarkPrice) -> dict[LegKey, PositionFacts]:
    """The legs after `mark`: the other cross legs' exchange prices unknown once a cross leg's mark has moved
    away from the one the exchange priced them at (its row's mark)."""
    # One plain loop (this runs at every mark): the cross legs of the mark's symbol that it moved, the cross
    # legs whose exchange price is still known, and how many cross legs there are.
    symbol, price = mark.symbol, mark.price
    moved: list[LegKey] = []
    priced: list[LegKey] = []
    crosses = 0
    for key, facts in legs.items():
        if facts.margin_mode is not MarginMode.CROSS:
            continue
        crosses += 1
        if facts.exchange_liquidation_price is not None:
            priced.append(key)
        priced_at = facts.mark_price
        if key[0] == symbol and priced_at is not None and abs(price - priced_at) > _MARK_MOVED * priced_at:
            moved.append(key)
    if not moved or crosses < 2 or not priced:
        return legs
    keep = frozenset(moved) if len(moved) == 1 else frozenset()
    if keep.issuperset(priced):
        return legs  # already unknown: keep the same mapping (this runs on every mark)
    return _cross_prices_unknown(legs, keep=keep)


def _is_cross(facts: PositionFacts | None) -> bool:
    return facts is not None and facts.margin_mode is MarginMode.CROSS


def _moves_cross_totals(known: PositionFacts | None, news: PositionFacts) -> bool:
    """Whether `news` changes what every cross leg's liquidation price follows from: a cross leg opened,
    closed, resized or re-priced (one cross price depends on the wallet and on every other cross leg)."""
    if not (_is_cross(known) or _is_cross(news)):
        return False
    if known is None or news.contracts == 0.0:
        return True
    return any(
        getattr(news, name) is not None and getattr(news, name) != getattr(known, name)
        for name in _LIQUIDATION_INPUTS
    )


def _cross_prices_unknown(
    legs: dict[LegKey, PositionFacts], keep: frozenset[LegKey]
) -> dict[LegKey, PositionFacts]:
    """The exchange's cross liquidation prices, except those just told (`keep`), made unknown: they were
    computed over a wallet or a set of legs that is no more, and comparing the model with them would report a
    divergence that is only the exchange's figure being out of date."""
    return {
        key: replace(facts, exchange_liquidation_price=None)
        if _is_cross(facts) and key not in keep and facts.exchange_liquidation_price is not None
        else facts
        for key, facts in legs.items()
    }


def _replace_with_snapshot(
    legs: dict[LegKey, PositionFacts], snapshot: PositionSnapshot
) -> tuple[dict[LegKey, PositionFacts], list[Change]]:
    fresh: dict[LegKey, PositionFacts] = {}
    changes: list[Change] = []
    for facts in snapshot.positions:
        if facts.contracts == 0.0:
            continue
        key = (facts.symbol, facts.side)
        known = legs.get(key)
        if known is None:
            fresh[key] = facts
            changes.append(Change(ChangeKind.OPENED, facts.symbol, facts.side))
            continue
        differences = _differences(known, facts)
        if differences:
            changes.append(Change(ChangeKind.CORRECTED, facts.symbol, facts.side, "; ".join(differences)))
        fresh[key] = merge_facts(known, facts)
    for key in legs.keys() - fresh.keys():
        changes.append(Change(ChangeKind.VANISHED, key[0], key[1], "absent from the exchange's snapshot"))
    return fresh, changes
