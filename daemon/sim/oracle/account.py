"""A whole account through one venue's rules: every leg's liquidation and bankruptcy price, ratios, and the
price interval within which nothing can change the verdict.

Groups: an isolated leg stands alone on its own margin; the cross legs of one symbol (hedge mode: a long and
a short) move with one price and share one liquidation price. A cross group's collateral is the cross wallet
plus every OTHER cross symbol's PnL minus its requirement, at their marks.

The liquidation price reported is the root nearest the mark of collateral + PnL − requirement; the engine
does not rely on it to liquidate, it liquidates where that balance is at or below zero at the marks
(`GroupVerdict.margin_left`), which is the venues' own condition (margin ratio ≥ 100 %).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal, localcontext

from daemon.core.types import AccountRisk, MarginMode, PositionRisk
from daemon.sim.oracle.inputs import Holdings, Leg
from daemon.sim.oracle.numbers import CONTEXT, FLAT, ONE, ZERO, Line
from daemon.sim.oracle.rules import MarginRules, Pieces, constant, sum_pieces
from daemon.sim.oracle.solve import as_prices, bankruptcy_u, nearest, nearest_zeros


@dataclass(frozen=True, slots=True)
class GroupVerdict:
    """One group of legs that liquidate together (indexes into `Holdings.legs`).

    margin_left: collateral + PnL − requirement at the marks; at or below zero the venue liquidates.
    below / above: the nearest liquidation prices on each side of the mark (None: none that side).
    watch: (low, high) — while the mark stays strictly between them (None: unbounded on that side), the
        group can reach neither its liquidation nor the watched margin ratio; None when asked for no watch,
        or when the account is already at or beyond the watched ratio.
    """

    symbol: str
    legs: tuple[int, ...]
    cross: bool
    margin_left: Decimal
    liquidation: Decimal | None
    below: Decimal | None
    above: Decimal | None
    bankruptcy: Decimal | None
    watch: tuple[Decimal | None, Decimal | None] | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """`wallet_floor`: the cross groups' watch intervals stay sound for any cross wallet at or above it (half
    the account's slack is held back for wallet moves); None when there is no cross group, no watch, or the
    venue's requirement itself moves with the wallet (then any wallet change voids the intervals)."""

    risk: AccountRisk
    groups: tuple[GroupVerdict, ...]
    wallet_floor: Decimal | None = None
    wallet: Decimal = ZERO  # the cross wallet it was computed with
    balance: Decimal = ZERO  # the account's margin balance and maintenance requirement, exactly
    requirement: Decimal = ZERO


# Share of a cross account's slack kept back from the symbols' watch intervals, so that transfers and funding
# smaller than it leave them sound.
WALLET_RESERVE = Decimal("0.5")


NO_REQUIREMENT = constant(FLAT)


@dataclass(slots=True)
class _Group:
    symbol: str
    legs: list[int]
    cross: bool
    pnl: Line = FLAT
    fee: Line = FLAT
    pieces: Pieces = NO_REQUIREMENT
    leg_requirements: tuple[Decimal, ...] = ()
    u_mark: Decimal = ZERO
    pnl_mark: Decimal = ZERO
    requirement_mark: Decimal = ZERO


def _partition(holdings: Holdings) -> list[_Group]:
    groups: list[_Group] = []
    cross: dict[str, _Group] = {}
    for index, leg in enumerate(holdings.legs):
        if leg.mode is MarginMode.ISOLATED:
            groups.append(_Group(leg.symbol, [index], cross=False))
        elif leg.symbol in cross:
            cross[leg.symbol].legs.append(index)
        else:
            cross[leg.symbol] = _Group(leg.symbol, [index], cross=True)
            groups.append(cross[leg.symbol])
    return groups


def _isolated_margin(leg: Leg) -> Decimal:
    if leg.margin is None:
        raise ValueError(f"{leg.symbol}: an isolated leg needs its margin")
    return leg.margin


def _price_group(rules: MarginRules, holdings: Holdings, group: _Group) -> None:
    """PnL, fee and requirement of the group; the requirement's fee priced at the group's own bankruptcy."""
    legs = [holdings.legs[i] for i in group.legs]
    for leg in legs:
        group.pnl = group.pnl + rules.pnl(leg)
        group.fee = group.fee + rules.closing_fee(leg)
    own = holdings.wallet if group.cross else _isolated_margin(legs[0])
    group.u_mark = legs[0].u(legs[0].mark)
    # The fee to close is priced at the bankruptcy price against the group's own collateral alone (Bybit's
    # cross page: "Account Balance − Order Margin"); where that price would be at or below zero (the collateral
    # covers the whole position) the fee there is nil, and a group whose equity does not move with the price
    # at all (never in practice) is charged at the mark rather than nothing.
    bankrupt_root = (Line(own) + group.pnl - group.fee).root()
    fee_u = group.u_mark if bankrupt_root is None else max(bankrupt_root, ZERO)
    per_leg = [rules.requirement(leg, fee_u) for leg in legs]
    group.pieces = per_leg[0] if len(per_leg) == 1 else sum_pieces(per_leg)
    group.leg_requirements = tuple(p.at(group.u_mark).at(group.u_mark) for p in per_leg)
    group.pnl_mark = group.pnl.at(group.u_mark)
    group.requirement_mark = sum(group.leg_requirements, ZERO)


def _watch(
    group: _Group, share: Decimal, k: Decimal, first: Leg
) -> tuple[Decimal | None, Decimal | None] | None:
    """Prices between which the group's PnL − k·requirement stays above its value at the mark minus `share`."""
    if share <= 0:
        return None
    collateral = share - (group.pnl_mark - k * group.requirement_mark)
    below, above = nearest_zeros(collateral, group.pnl, group.pieces, k, group.u_mark)
    return as_prices(first, below, above)


def evaluate(rules: MarginRules, holdings: Holdings, watch_ratio: float | None = None) -> Verdict:
    """The venue's verdict on the account; with `watch_ratio`, each group's watch interval for that ratio."""
    with localcontext(CONTEXT):
        return _evaluate(rules, holdings, watch_ratio)


def _evaluate(rules: MarginRules, holdings: Holdings, watch_ratio: float | None) -> Verdict:
    groups = _partition(holdings)
    for group in groups:
        _price_group(rules, holdings, group)
    cross_groups = [g for g in groups if g.cross]
    cross_pnl = sum((g.pnl_mark for g in cross_groups), ZERO)
    cross_requirement = sum((g.requirement_mark for g in cross_groups), ZERO)
    cross_left = holdings.wallet + cross_pnl - cross_requirement
    k = ONE / Decimal(repr(watch_ratio)) if watch_ratio is not None and 0 < watch_ratio < 1 else ONE
    cross_slack = holdings.wallet + cross_pnl - k * cross_requirement
    reserve = cross_slack * WALLET_RESERVE if cross_slack > 0 else ZERO
    cross_share = (cross_slack - reserve) / len(cross_groups) if cross_groups else ZERO
    wallet_floor = (
        holdings.wallet - reserve
        if cross_groups
        and cross_slack > 0
        and watch_ratio is not None
        and not rules.requirement_follows_wallet
        else None
    )

    verdicts: list[GroupVerdict] = []
    legs_risk: dict[int, PositionRisk] = {}
    cross_ratio = rules.margin_ratio(cross_requirement, holdings.wallet + cross_pnl) if cross_groups else None
    balance_total = holdings.wallet + cross_pnl
    for group in groups:
        first = holdings.legs[group.legs[0]]
        if group.cross:  # the wallet plus every other cross symbol's PnL less its requirement, at the marks
            collateral = cross_left - (group.pnl_mark - group.requirement_mark)
            bankrupt = bankruptcy_u(holdings.wallet + cross_pnl - group.pnl_mark, group.pnl, group.fee)
            share = cross_share
            ratio = cross_ratio
        else:
            collateral = _isolated_margin(first)
            bankrupt = bankruptcy_u(collateral, group.pnl, group.fee)
            share = collateral + group.pnl_mark - k * group.requirement_mark
            ratio = rules.margin_ratio(group.requirement_mark, collateral + group.pnl_mark)
            balance_total += collateral + group.pnl_mark
        margin_left = collateral + group.pnl_mark - group.requirement_mark
        roots = nearest_zeros(collateral, group.pnl, group.pieces, ONE, group.u_mark)
        below, above = as_prices(first, *roots)
        liquidation = nearest(below, above, first.mark)
        watch = _watch(group, share, k, first) if watch_ratio is not None else None
        verdicts.append(
            GroupVerdict(
                symbol=group.symbol,
                legs=tuple(group.legs),
                cross=group.cross,
                margin_left=margin_left,
                liquidation=liquidation,
                below=below,
                above=above,
                bankruptcy=None if bankrupt is None else first.price(bankrupt),
                watch=watch,
            )
        )
        for index, requirement in zip(group.legs, group.leg_requirements, strict=True):
            legs_risk[index] = _leg_risk(holdings.legs[index], verdicts[-1], requirement, ratio)

    requirement_total = sum((g.requirement_mark for g in groups), ZERO)
    return Verdict(
        risk=AccountRisk(
            positions=tuple(legs_risk[i] for i in range(len(holdings.legs))),
            margin_balance=float(balance_total),
            maintenance_margin=float(requirement_total),
            margin_ratio=_float(rules.margin_ratio(requirement_total, balance_total)),
            cross_margin_ratio=_float(cross_ratio),
        ),
        groups=tuple(verdicts),
        wallet_floor=wallet_floor,
        wallet=holdings.wallet,
        balance=balance_total,
        requirement=requirement_total,
    )


def with_wallet(rules: MarginRules, verdict: Verdict, wallet: Decimal) -> Verdict | None:
    """The same verdict for another cross wallet, where no leg depends on it (every leg isolated): only the
    account's margin balance and ratio move. None when a cross leg would need the whole account solved again."""
    if any(group.cross for group in verdict.groups):
        return None
    with localcontext(CONTEXT):
        balance = verdict.balance - verdict.wallet + wallet
        risk = replace(
            verdict.risk,
            margin_balance=float(balance),
            margin_ratio=_float(rules.margin_ratio(verdict.requirement, balance)),
        )
        return replace(verdict, risk=risk, wallet=wallet, balance=balance)


def _leg_risk(leg: Leg, verdict: GroupVerdict, requirement: Decimal, ratio: Decimal | None) -> PositionRisk:
    liquidation = verdict.liquidation
    distance: float | None = None
    note: str | None = None
    if liquidation is None:
        note = "no liquidation price: the margin covers any move of this price"
    else:
        away = abs(leg.mark - liquidation) / leg.mark
        distance = float(away if verdict.margin_left > 0 else -away)
        if verdict.margin_left <= 0:
            note = "at or past the liquidation price"
    return PositionRisk(
        symbol=leg.symbol,
        side=leg.side,
        liquidation_price=_float(liquidation),
        bankruptcy_price=_float(verdict.bankruptcy),
        maintenance_margin=float(requirement),
        margin_ratio=_float(ratio),
        distance_to_liquidation=distance,
        note=note,
    )


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
