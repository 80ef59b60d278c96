"""The answer `marginguard calc` gives for an account: the model's figures, except where they cannot be known.

Two things make a figure unknown, and an unknown figure is null with a note, never a reassurance:
- no maintenance rate given: the bankruptcy price needs none and is answered; the liquidation price, the
  maintenance margin and what follows from them are not (for cross positions: nobody's in that wallet is);
- figures too large for floating point: a notional that overflows to infinity would otherwise come back as
  "the margin covers any move", the most dangerous answer there is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from daemon.app.calc_input import CalcDocument
from daemon.core.margin import evaluate_account
from daemon.core.types import ContractType, MarginMode, Position, PositionRisk, Side

RATE_UNKNOWN = (
    "no maintenance rate given (mmr, tiers or max_leverage): liquidation price and maintenance margin unknown; "
    "the bankruptcy price needs none"
)
CROSS_RATE_UNKNOWN = (
    "another cross position has no maintenance rate: the shared wallet's liquidation is unknown"
)
OVERFLOW = "figures beyond what can be computed (they overflow): unknown, which is not safe"
CROSS_OVERFLOW = "another cross position's figures overflow: the shared wallet's figures are unknown"


@dataclass(frozen=True, slots=True)
class LegAnswer:
    symbol: str
    side: Side
    liquidation_price: float | None
    bankruptcy_price: float | None
    maintenance_margin: float | None
    margin_ratio: float | None
    distance_to_liquidation: float | None
    note: str | None


@dataclass(frozen=True, slots=True)
class AccountAnswer:
    positions: tuple[LegAnswer, ...]
    margin_balance: float | None
    maintenance_margin: float | None
    margin_ratio: float | None


def overflows(position: Position, own_margin: float | None) -> bool:
    """Whether the position's sizes, valued at its prices, are beyond what floating point can hold: too large
    (infinite) or, from positive inputs, so small that they vanish to 0."""
    quantity = position.contracts * position.contract_size
    if position.contract_type is ContractType.LINEAR:
        values = [quantity * position.entry_price, quantity * position.mark_price]
    else:
        values = [quantity / position.entry_price, quantity / position.mark_price]
    values.append(quantity)
    margins = [own_margin or 0.0, position.isolated_margin or 0.0]
    return not all(math.isfinite(v) for v in values + margins) or any(v == 0.0 for v in values)


def non_finite(risk: PositionRisk) -> bool:
    figures = (
        risk.liquidation_price,
        risk.bankruptcy_price,
        risk.maintenance_margin,
        risk.margin_ratio,
        risk.distance_to_liquidation,
    )
    return any(value is not None and not math.isfinite(value) for value in figures)


def unbounded_loss_without_liquidation(position: Position, risk: PositionRisk) -> bool:
    """A linear short (or an inverse long) can lose without bound, so it always has a liquidation price; when
    the model finds none, the price lies beyond floating point (a tiny position on a huge margin)."""
    unbounded = (position.side is Side.SHORT) == (position.contract_type is ContractType.LINEAR)
    return unbounded and risk.liquidation_price is None


def unknown_legs(
    document: CalcDocument, risks: tuple[PositionRisk, ...], balance: float
) -> tuple[set[int], set[int]]:
    """(positions whose figures overflow, cross positions sharing a wallet with an unknown). `balance`: the
    account's margin balance, whose overflow leaves every cross position's figures unknown."""
    positions = document.account.positions
    cross = {index for index, position in enumerate(positions) if position.margin_mode is MarginMode.CROSS}
    overflowed = {
        index
        for index, position in enumerate(positions)
        if overflows(position, document.own_margins[index])
        or non_finite(risks[index])
        or unbounded_loss_without_liquidation(position, risks[index])
    }
    if not math.isfinite(balance):
        overflowed |= cross
    shared = cross if cross & (overflowed | document.rate_unknown) else set()
    return overflowed, shared


def answer_account(document: CalcDocument) -> AccountAnswer:
    risk = evaluate_account(document.account)
    overflowed, shared = unknown_legs(document, risk.positions, risk.margin_balance)
    cross_note = CROSS_OVERFLOW if overflowed & shared else CROSS_RATE_UNKNOWN
    legs: list[LegAnswer] = []
    for index, leg in enumerate(risk.positions):
        known = LegAnswer(
            leg.symbol,
            leg.side,
            leg.liquidation_price,
            leg.bankruptcy_price,
            leg.maintenance_margin,
            leg.margin_ratio,
            leg.distance_to_liquidation,
            leg.note,
        )
        if index in overflowed or (index in shared and overflowed & shared):
            note = OVERFLOW if index in overflowed else CROSS_OVERFLOW
            known = LegAnswer(leg.symbol, leg.side, None, None, None, None, None, note)
        elif index in document.rate_unknown:
            known = LegAnswer(
                leg.symbol, leg.side, None, leg.bankruptcy_price, None, None, None, RATE_UNKNOWN
            )
        elif index in shared:
            known = LegAnswer(
                leg.symbol,
                leg.side,
                None,
                leg.bankruptcy_price,
                leg.maintenance_margin,
                None,
                None,
                cross_note,
            )
        legs.append(known)
    rate_known = not document.rate_unknown and not overflowed
    return AccountAnswer(
        positions=tuple(legs),
        margin_balance=risk.margin_balance if not overflowed and math.isfinite(risk.margin_balance) else None,
        maintenance_margin=risk.maintenance_margin if rate_known else None,
        margin_ratio=risk.margin_ratio if rate_known else None,
    )
