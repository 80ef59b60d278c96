"""Whole-account evaluation: every leg's liquidation and bankruptcy price, margin ratio and distance.

Cross legs share the wallet. A symbol's liquidation price holds every OTHER cross symbol at its mark, so the
account's totals (PnL and requirement at the marks) are summed once and each symbol subtracts its own share:
one pass over the account, linear in its size, instead of re-summing the others for every symbol. Hedge legs
of one cross symbol move with one price and so share one liquidation price. Isolated legs stand alone on
their own margin.

Totals over legs are correctly rounded sums (`math.fsum`): they do not depend on the order of the legs, which
lets `incremental.py` keep them as running sums across mark updates and still give these figures bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from daemon.core.margin.families import MarginFamily, family_for
from daemon.core.margin.solver import Boundary, affine_boundary, find_boundary
from daemon.core.margin.terms import (
    ZERO,
    Affine,
    LegBrackets,
    bracket_breakpoints,
    closing_fee_terms,
    from_u,
    initial_margin,
    leg_tiers,
    pnl_terms,
    requirement_terms,
    tier_requirement_terms,
    to_u,
)
from daemon.core.types import Account, AccountRisk, MarginMode, Position, PositionRisk
from daemon.core.values import value


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
    return affine_boundary(Affine(equity_collateral) + pnl - fees, to_u(legs[0], legs[0].mark_price))


class GroupTerms:
    """g(u) = collateral + PnL − requirement for one group's legs, for any collateral and any mark.

    Built from the legs' fixed facts only (side, size, entry, tiers, fees; never their marks), so a model that
    keeps one per symbol reuses it across mark updates. The requirement is summed once per combination of
    the legs' brackets, which is all that u changes in it.
    """

    __slots__ = (
        "_at_u",
        "_brackets",
        "_by_brackets",
        "_tables",
        "breakpoints",
        "family",
        "fee_u",
        "fees",
        "legs",
        "pnl",
    )

    def __init__(self, family: MarginFamily, legs: Sequence[Position], fee_u: float | None) -> None:
        self.family, self.legs, self.fee_u = family, tuple(legs), fee_u
        self.pnl = _sum([pnl_terms(leg) for leg in legs])
        self.fees = _sum([closing_fee_terms(family, leg) for leg in legs])
        self.breakpoints = sorted(b for leg in legs for b in bracket_breakpoints(family, leg))
        self._tables = [leg_tiers(family, leg) for leg in legs]
        self._brackets = [
            LegBrackets(family, leg, table) for leg, table in zip(legs, self._tables, strict=True)
        ]
        self._by_brackets: dict[tuple[int, ...], Affine] = {}
        self._at_u: dict[float, Affine] = {}  # the last few probes: a kept group is read at the same ones

    def requirement(self, u_ref: float) -> Affine:
        """The legs' summed requirement in the brackets that contain `u_ref` (as `requirement_terms`)."""
        known = self._at_u.get(u_ref)
        if known is not None:
            return known
        if len(self._at_u) >= 64:
            self._at_u.clear()
        brackets = self._brackets
        key = (brackets[0].index(u_ref),) if len(brackets) == 1 else tuple(b.index(u_ref) for b in brackets)
        summed = self._by_brackets.get(key)
        if summed is None:
            summed = _sum(
                [
                    tier_requirement_terms(self.family, leg, table[index], self.fee_u)
                    for leg, table, index in zip(self.legs, self._tables, key, strict=True)
                ]
            )
            self._by_brackets[key] = summed
        self._at_u[u_ref] = summed
        return summed

    def gap(self, collateral: float) -> Callable[[float], Affine]:
        """g's terms in the bracket of each u, for this collateral: (collateral + PnL) − requirement."""
        balance, requirement = Affine(collateral) + self.pnl, self.requirement
        return lambda u_ref: balance - requirement(u_ref)

    def bankruptcy(self, equity_collateral: float, u_mark: float) -> Boundary:
        """As `bankruptcy_of` these legs."""
        return affine_boundary(Affine(equity_collateral) + self.pnl - self.fees, u_mark)


def solve_group(family: MarginFamily, group: Group) -> Boundary:
    """The group's liquidation price: the first root of margin balance − requirement away from the mark."""
    terms = GroupTerms(family, group.legs, group.fee_u)
    first = group.legs[0]
    return find_boundary(
        terms.gap(group.collateral),
        terms.breakpoints,
        to_u(first, first.mark_price),
        lambda u: from_u(first, u),
    )


def group_gap_at(family: MarginFamily, group: Group, price: float) -> float:
    """Margin balance minus requirement for the group if its symbol traded at `price` (the planner's probe)."""
    u = to_u(group.legs[0], price)
    return GroupTerms(family, group.legs, group.fee_u).gap(group.collateral)(u).at(u)


def leg_requirement_at_mark(family: MarginFamily, leg: Position, fee_u: float | None) -> float:
    """Maintenance requirement at the mark, with Bybit's closing fee priced at `fee_u` (None: no fee)."""
    u = to_u(leg, leg.mark_price)
    return requirement_terms(family, leg, u, fee_u).at(u)


def leg_pnl_at_mark(leg: Position) -> float:
    return pnl_terms(leg).at(to_u(leg, leg.mark_price))


def cross_fee_u(family: MarginFamily, legs: Sequence[Position], wallet: float) -> float | None:
    """Where Bybit prices a cross symbol's fee to close: its bankruptcy price against the wallet alone."""
    return bankruptcy_of(family, legs, wallet).u if family.fee_at_bankruptcy else None


def cross_collateral(
    wallet: float, total_pnl: float, symbol_pnl: float, total_requirement: float, symbol_requirement: float
) -> tuple[float, float]:
    """A cross symbol's (equity collateral, collateral): the wallet plus the other symbols' PnL, and less
    their requirement. The first backs its bankruptcy price, the second its liquidation price."""
    others = (total_pnl - symbol_pnl) - (total_requirement - symbol_requirement)
    return wallet + total_pnl - symbol_pnl, wallet + others


def isolated_group(family: MarginFamily, leg: Position) -> Group:
    margin = initial_margin(leg)
    alone = bankruptcy_of(family, (leg,), margin)
    return Group((leg,), margin, alone, alone.u)


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

    pnl = {i: leg_pnl_at_mark(account.positions[i]) for ids in cross_by_symbol.values() for i in ids}
    total_pnl = math.fsum(pnl.values())
    symbol_pnl = {symbol: math.fsum(pnl[i] for i in ids) for symbol, ids in cross_by_symbol.items()}
    fee_u = {symbol: cross_fee_u(family, legs, wallet) for symbol, legs in legs_of.items()}
    symbol_requirement = {
        symbol: math.fsum(leg_requirement_at_mark(family, leg, fee_u[symbol]) for leg in legs)
        for symbol, legs in legs_of.items()
    }
    total_requirement = math.fsum(symbol_requirement.values())

    groups: list[tuple[list[int], Group]] = []
    for is_cross, index in order:
        if not is_cross:
            groups.append(([index], isolated_group(family, account.positions[index])))
            continue
        symbol = account.positions[index].symbol
        legs = legs_of[symbol]
        equity, collateral = cross_collateral(
            wallet, total_pnl, symbol_pnl[symbol], total_requirement, symbol_requirement[symbol]
        )
        groups.append(
            (
                cross_by_symbol[symbol],
                Group(legs, collateral, bankruptcy_of(family, legs, equity), fee_u[symbol]),
            )
        )
    return groups


def margin_ratio(requirement: float, balance: float) -> float | None:
    """Requirement over balance; None when the balance is not positive."""
    return requirement / balance if balance > 0.0 else None


def _distance(leg: Position, boundary: Boundary) -> float | None:
    if boundary.u is None:
        return None
    away = abs(leg.mark_price - from_u(leg, boundary.u)) / leg.mark_price
    return -away if boundary.past else away


def evaluate_account(account: Account) -> AccountRisk:
    """Every leg's risk figures, in input order, and the account totals."""
    family = family_for(account.exchange)
    groups = groups_of(family, account)
    at_mark: dict[int, tuple[float, float]] = {}  # index -> (PnL, requirement) at the mark
    cross_pnl: list[float] = []
    cross_requirement: list[float] = []
    isolated_balance: list[float] = []
    isolated_requirement: list[float] = []
    for ids, group in groups:
        for index in ids:
            leg = account.positions[index]
            pnl, requirement = leg_pnl_at_mark(leg), leg_requirement_at_mark(family, leg, group.fee_u)
            at_mark[index] = (pnl, requirement)
            if leg.margin_mode is MarginMode.CROSS:
                cross_pnl.append(pnl)
                cross_requirement.append(requirement)
            else:
                isolated_balance.append(group.collateral + pnl)
                isolated_requirement.append(requirement)
    totals = AccountTotals(
        math.fsum([account.wallet_balance or 0.0, *cross_pnl]),
        math.fsum(cross_requirement),
        math.fsum(isolated_balance),
        math.fsum(isolated_requirement),
        has_cross=bool(cross_pnl),
    )
    results: dict[int, PositionRisk] = {}
    for ids, group in groups:
        liquidation = solve_group(family, group)
        for index in ids:
            leg = account.positions[index]
            pnl, requirement = at_mark[index]
            ratio = (
                totals.cross_ratio
                if leg.margin_mode is MarginMode.CROSS
                else margin_ratio(requirement, group.collateral + pnl)
            )
            results[index] = position_risk(leg, liquidation, group.bankruptcy.u, requirement, ratio)
    return totals.risk(tuple(results[i] for i in range(len(account.positions))))


@value
class AccountTotals:
    """The account's sums: the cross wallet plus cross PnL, cross requirement, isolated margin plus PnL,
    isolated requirement (each correctly rounded)."""

    cross_balance: float
    cross_requirement: float
    isolated_balance: float
    isolated_requirement: float
    has_cross: bool

    @property
    def cross_ratio(self) -> float | None:
        return margin_ratio(self.cross_requirement, self.cross_balance) if self.has_cross else None

    def risk(self, positions: tuple[PositionRisk, ...]) -> AccountRisk:
        balance = self.cross_balance + self.isolated_balance
        requirement = self.cross_requirement + self.isolated_requirement
        return AccountRisk(
            positions=positions,
            margin_balance=balance,
            maintenance_margin=requirement,
            margin_ratio=margin_ratio(requirement, balance),
            cross_margin_ratio=self.cross_ratio,
        )


def position_risk(
    leg: Position, liquidation: Boundary, bankruptcy_u: float | None, requirement: float, ratio: float | None
) -> PositionRisk:
    """One leg's figures from its group's boundaries, its requirement at the mark and its margin ratio."""
    return PositionRisk(
        symbol=leg.symbol,
        side=leg.side,
        liquidation_price=None if liquidation.u is None else from_u(leg, liquidation.u),
        bankruptcy_price=None if bankruptcy_u is None else from_u(leg, bankruptcy_u),
        maintenance_margin=requirement,
        margin_ratio=ratio,
        distance_to_liquidation=_distance(leg, liquidation),
        note=_note(liquidation),
    )


def _note(boundary: Boundary) -> str | None:
    if boundary.u is None:
        return f"no liquidation price: {boundary.reason}"
    if boundary.past:
        return "at or past the liquidation price"
    return None
