"""The model's view of an account state: what can be computed, and why the rest cannot.

Never guess: a leg whose entry, size, mark or maintenance table is unknown gets no figures, with a reason. Cross
legs move each other's liquidation prices, so one unknown cross leg makes every cross figure unknown; isolated
legs stand alone.
"""

from __future__ import annotations

import operator

from daemon.core.events import PositionFacts
from daemon.core.margin import evaluate_account
from daemon.core.margin.terms import pnl_terms, to_u
from daemon.core.state import AccountState, LegKey
from daemon.core.types import Account, AccountRisk, ContractType, MarginMode, Position, PositionRisk
from daemon.core.values import value


@value
class LegView:
    key: LegKey
    facts: PositionFacts
    mark_price: float | None
    risk: PositionRisk | None  # None: unknown, see `unknown_because`
    unknown_because: str | None = None
    size: LegSize | None = None  # None while the leg cannot be modelled (no mark, entry or tiers yet)


@value
class LegSize:
    """How big a leg is, in the terms a trader reads: `quantity` in base units (linear; the quote value for
    inverse contracts), `notional` and `unrealized_pnl` in the settle currency, at the leg's mark."""

    quantity: float
    notional: float
    unrealized_pnl: float


def leg_size(position: Position) -> LegSize:
    u = to_u(position, position.mark_price)
    return LegSize(position.quantity, position.quantity * u, pnl_terms(position).at(u))


@value
class AccountView:
    account_id: str
    legs: tuple[LegView, ...]
    account: AccountRisk | None  # None when any leg is unknown: totals would be wrong
    unknown_because: str | None = None

    def leg(self, symbol: str, side: str) -> LegView | None:
        for leg in self.legs:
            if leg.key[0] == symbol and leg.key[1].value == side:
                return leg
        return None


_KEY_OF = operator.attrgetter("key")


def leg_keys(view: AccountView) -> tuple[LegKey, ...]:
    """Which legs a view shows, in its order (asked at every step: `map` over an attrgetter is the cheapest)."""
    return tuple(map(_KEY_OF, view.legs))


def model_position(
    state: AccountState, facts: PositionFacts
) -> tuple[Position | None, float | None, str | None]:
    """The model's position for one leg's facts, with the mark used; or None and the reason it can't be built."""
    rules = state.rules.get(facts.symbol)
    mark_event = state.marks.get(facts.symbol)
    mark = mark_event.price if mark_event is not None else facts.mark_price
    if mark is None or mark <= 0.0:
        return None, None, "no mark price yet"
    if facts.entry_price is None or facts.entry_price <= 0.0:
        return None, mark, "entry price unknown"
    if rules is None or not rules.tiers:
        return None, mark, "maintenance tiers unknown for this symbol"
    mode = facts.margin_mode
    if mode is None:
        return None, mark, "margin mode unknown"
    if mode is MarginMode.ISOLATED and facts.isolated_margin is None and not facts.leverage:
        return None, mark, "isolated margin unknown"
    contract_size = facts.contract_size if facts.contract_size is not None else rules.contract_size
    position = Position(
        symbol=facts.symbol,
        side=facts.side,
        contracts=abs(facts.contracts),
        contract_size=contract_size,
        entry_price=facts.entry_price,
        mark_price=mark,
        margin_mode=mode,
        contract_type=facts.contract_type or rules.contract_type or ContractType.LINEAR,
        leverage=facts.leverage,
        isolated_margin=facts.isolated_margin,
        tiers=rules.tiers,
        taker_fee_rate=rules.taker_fee_rate,
        max_leverage=rules.max_leverage,
    )
    return position, mark, None


BuiltLeg = tuple[LegKey, PositionFacts, Position | None, float | None, str | None]


def built_legs(state: AccountState) -> tuple[list[BuiltLeg], str | None]:
    """Each leg (in key order) with its model position, mark and the reason it cannot be modelled; and why the
    cross legs cannot be solved together (None: they can). Shared by `view` and the live view."""
    keys = sorted(state.legs, key=lambda key: (key[0], key[1].value))
    built: list[BuiltLeg] = []
    for key in keys:
        facts = state.legs[key]
        position, mark, reason = model_position(state, facts)
        built.append((key, facts, position, mark, reason))
    cross_blocker = next(
        (
            f"{key[0]} {key[1].value}: {reason}"
            for key, facts, _p, _m, reason in built
            if reason is not None and facts.margin_mode is not MarginMode.ISOLATED
        ),
        None,
    )
    has_cross = any(p is not None and p.margin_mode is MarginMode.CROSS for _k, _f, p, _m, _r in built)
    if cross_blocker is None and has_cross and state.wallet_balance is None:
        cross_blocker = "wallet balance unknown"
    return built, cross_blocker


def view(state: AccountState) -> AccountView:
    """Every leg's figures from the core model, or the reason they are unknown."""
    built, cross_blocker = built_legs(state)
    computable = [
        (index, p)
        for index, (_k, _f, p, _m, _r) in enumerate(built)
        if p is not None and (p.margin_mode is MarginMode.ISOLATED or cross_blocker is None)
    ]
    account_risk: AccountRisk | None = None
    risks: dict[int, PositionRisk] = {}
    if computable:
        account = Account(
            exchange=state.family,
            positions=tuple(p for _i, p in computable),
            wallet_balance=state.wallet_balance if cross_blocker is None else None,
            settle_currency=state.settle_currency,
        )
        account_risk = evaluate_account(account)
        risks = {index: risk for (index, _p), risk in zip(computable, account_risk.positions, strict=True)}

    legs = []
    for index, (key, facts, position_built, mark, reason) in enumerate(built):
        size = leg_size(position_built) if position_built is not None else None
        if index in risks:
            legs.append(LegView(key, facts, mark, risks[index], size=size))
        elif reason is not None:
            legs.append(LegView(key, facts, mark, None, reason, size=size))
        else:
            legs.append(LegView(key, facts, mark, None, f"cross figures unknown: {cross_blocker}", size=size))
    complete = len(risks) == len(built)
    blocker = (
        None
        if complete
        else (cross_blocker or next((leg.unknown_because for leg in legs if leg.risk is None), None))
    )
    return AccountView(state.account_id, tuple(legs), account_risk if complete else None, blocker)
