"""Whole-account evaluation: every leg's liquidation and bankruptcy price, margin ratio and distance.

Cross legs share the wallet. A symbol's liquidation price holds every OTHER cross symbol at its mark, so the
account's totals (PnL and requirement at the marks) are summed once and each symbol subtracts its own share:
one pass over the account, linear in its size, instead of re-summing the others for every symbol. Hedge legs
of one cross symbol move with one price and so share one liquidation price. Isolated legs stand alone on
their own margin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from daemon.core.margin.families import MarginFamily, family_for
from daemon.core.margin.solver import Boundary, find_boundary
from daemon.core.margin.terms import (
    ZERO,
    Affine,
    bracket_breakpoints,
    closing_fee_terms,
    from_u,
    initial_margin,
    pnl_terms,
    requirement_terms,
    to_u,
)
from daemon.core.types import Account, AccountRisk, MarginMode, Position, PositionRisk


@dataclass(frozen=True, slots=True)
class Group:
    """Legs that liquidate together at one price, and the collateral standing behind them.

    collateral: what backs the legs besides their own PnL and requirement — the isolated margin, or the cross
    wallet plus the other symbols' PnL minus their requirement (at their marks).
    bankruptcy: where the legs' equity (collateral without the others' requirement, plus PnL, less any
    closing fee) reaches zero.
    fee_u: where Bybit prices the fee to close (None for families without one). For an isolated leg that is
    its bankruptcy price; for a cross symbol, its bankruptcy price against the wallet alone, as Bybit's cross
    pages define it per position. Priced that way it does not move when OTHER symbols' marks move, which keeps
    "margin balance = requirement at the liquidation price" exact for every symbol at once.
    """

    legs: tuple[Position, ...]
    collateral: float
    bankruptcy: Boundary
    fee_u: float | None


def _sum(parts: Sequence[Affine]) -> Affine:
    total = ZERO
    for part in parts:
        total = total + part
    return total


def bankruptcy_of(family: MarginFamily, legs: Sequence[Position], equity_collateral: float) -> Boundary:
    """Where collateral + PnL − the fee to close (where the family counts one) reaches zero."""
    pnl = _sum([pnl_terms(leg) for leg in legs])
    fees = _sum([closing_fee_terms(family, leg) for leg in legs])
    equity_less_fee = Affine(equity_collateral) + pnl - fees
    return find_boundary(lambda _u: equity_less_fee, (), to_u(legs[0], legs[0].mark_price))


def _gap_terms(family: MarginFamily, group: Group) -> Callable[[float], Affine]:
    pnl = _sum([pnl_terms(leg) for leg in group.legs])

    def gap(u_ref: float) -> Affine:
        requirement = _sum([requirement_terms(family, leg, u_ref, group.fee_u) for leg in group.legs])
        return Affine(group.collateral) + pnl - requirement

    return gap


def solve_group(family: MarginFamily, group: Group) -> Boundary:
    """The group's liquidation price: the first root of margin balance − requirement away from the mark."""
    legs = group.legs
    breakpoints = [b for leg in legs for b in bracket_breakpoints(family, leg)]
    first = legs[0]
    return find_boundary(
        _gap_terms(family, group), breakpoints, to_u(first, first.mark_price), lambda u: from_u(first, u)
    )


def group_gap_at(family: MarginFamily, group: Group, price: float) -> float:
    """Margin balance minus requirement for the group if its symbol traded at `price` (the planner's probe)."""
    u = to_u(group.legs[0], price)
    return _gap_terms(family, group)(u).at(u)


def leg_requirement_at_mark(family: MarginFamily, leg: Position, fee_u: float | None) -> float:
    """Maintenance requirement at the mark, with Bybit's closing fee priced at `fee_u` (None: no fee)."""
    u = to_u(leg, leg.mark_price)
    return requirement_terms(family, leg, u, fee_u).at(u)


def _leg_pnl_at_mark(leg: Position) -> float:
    return pnl_terms(leg).at(to_u(leg, leg.mark_price))


def groups_of(family: MarginFamily, account: Account) -> list[tuple[list[int], Group]]:
    """Partition the legs into groups (position indexes with their Group), in first-appearance order.

    Cross totals are summed once; each symbol's collateral is the wallet plus everyone else's share, so the
    whole partition costs one pass over the account.
    """
    cross_by_symbol: dict[str, list[int]] = {}
    order: list[tuple[bool, int]] = []
    for index, leg in enumerate(account.positions):
        if leg.margin_mode is not MarginMode.CROSS:
            order.append((False, index))
        elif leg.symbol not in cross_by_symbol:
            cross_by_symbol[leg.symbol] = [index]
            order.append((True, index))
        else:
            cross_by_symbol[leg.symbol].append(index)
    if cross_by_symbol and account.wallet_balance is None:
        raise ValueError("cross positions need the account's wallet_balance")
    wallet = account.wallet_balance or 0.0
    legs_of = {symbol: tuple(account.positions[i] for i in ids) for symbol, ids in cross_by_symbol.items()}

    pnl = {i: _leg_pnl_at_mark(account.positions[i]) for ids in cross_by_symbol.values() for i in ids}
    total_pnl = sum(pnl.values())
    symbol_pnl = {symbol: sum(pnl[i] for i in ids) for symbol, ids in cross_by_symbol.items()}
    bankruptcy = {
        symbol: bankruptcy_of(family, legs, wallet + total_pnl - symbol_pnl[symbol])
        for symbol, legs in legs_of.items()
    }
    fee_u = {
        symbol: bankruptcy_of(family, legs, wallet).u if family.fee_at_bankruptcy else None
        for symbol, legs in legs_of.items()
    }
    symbol_requirement = {
        symbol: sum(leg_requirement_at_mark(family, leg, fee_u[symbol]) for leg in legs)
        for symbol, legs in legs_of.items()
    }
    total_requirement = sum(symbol_requirement.values())

    groups: list[tuple[list[int], Group]] = []
    for is_cross, index in order:
        if not is_cross:
            leg = account.positions[index]
            margin = initial_margin(leg)
            alone = bankruptcy_of(family, (leg,), margin)
            groups.append(([index], Group((leg,), margin, alone, alone.u)))
            continue
        symbol = account.positions[index].symbol
        others = (total_pnl - symbol_pnl[symbol]) - (total_requirement - symbol_requirement[symbol])
        groups.append(
            (
                cross_by_symbol[symbol],
                Group(legs_of[symbol], wallet + others, bankruptcy[symbol], fee_u[symbol]),
            )
        )
    return groups


def _ratio(requirement: float, balance: float) -> float | None:
    return requirement / balance if balance > 0.0 else None


def _distance(leg: Position, boundary: Boundary) -> float | None:
    if boundary.u is None:
        return None
    away = abs(leg.mark_price - from_u(leg, boundary.u)) / leg.mark_price
    return -away if boundary.past else away


def evaluate_account(account: Account) -> AccountRisk:
    """Every leg's risk figures, in input order, and the account totals."""
    family = family_for(account.exchange)
    results: dict[int, PositionRisk] = {}
    cross_balance = account.wallet_balance or 0.0
    cross_requirement = 0.0
    isolated_balance = 0.0
    isolated_requirement = 0.0
    has_cross = False
    for ids, group in groups_of(family, account):
        liquidation, bankruptcy = solve_group(family, group), group.bankruptcy
        for index in ids:
            leg = account.positions[index]
            requirement = leg_requirement_at_mark(family, leg, group.fee_u)
            pnl = _leg_pnl_at_mark(leg)
            if leg.margin_mode is MarginMode.CROSS:
                has_cross = True
                cross_balance += pnl
                cross_requirement += requirement
                ratio = None  # filled below with the account's cross ratio
            else:
                balance = group.collateral + pnl
                isolated_balance += balance
                isolated_requirement += requirement
                ratio = _ratio(requirement, balance)
            results[index] = PositionRisk(
                symbol=leg.symbol,
                side=leg.side,
                liquidation_price=None if liquidation.u is None else from_u(leg, liquidation.u),
                bankruptcy_price=None if bankruptcy.u is None else from_u(leg, bankruptcy.u),
                maintenance_margin=requirement,
                margin_ratio=ratio,
                distance_to_liquidation=_distance(leg, liquidation),
                note=_note(liquidation),
            )
    cross_ratio = _ratio(cross_requirement, cross_balance) if has_cross else None
    positions = tuple(
        _with_ratio(results[i], cross_ratio)
        if account.positions[i].margin_mode is MarginMode.CROSS
        else results[i]
        for i in range(len(account.positions))
    )
    balance = cross_balance + isolated_balance
    requirement_total = cross_requirement + isolated_requirement
    return AccountRisk(
        positions=positions,
        margin_balance=balance,
        maintenance_margin=requirement_total,
        margin_ratio=_ratio(requirement_total, balance),
        cross_margin_ratio=cross_ratio,
    )


def _note(boundary: Boundary) -> str | None:
    if boundary.u is None:
        return f"no liquidation price: {boundary.reason}"
    if boundary.past:
        return "at or past the liquidation price"
    return None


def _with_ratio(risk: PositionRisk, ratio: float | None) -> PositionRisk:
    return PositionRisk(
        risk.symbol,
        risk.side,
        risk.liquidation_price,
        risk.bankruptcy_price,
        risk.maintenance_margin,
        ratio,
        risk.distance_to_liquidation,
        risk.note,
    )
