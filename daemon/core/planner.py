"""Top-up sizing: how much margin moves a position's liquidation price to a target distance, and back.

For an isolated leg the amount is added to its isolated margin; for a cross leg it is added to the account's
wallet (a transfer into the futures wallet). At a fixed target price the margin gap is piecewise affine in the
amount added (slope 1 for most families; another fixed slope where Bybit's closing fee depends on the
bankruptcy price), so secant steps land on the exact amount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from daemon.core.margin.account import evaluate_account as evaluate
from daemon.core.margin.account import group_gap_at, groups_of
from daemon.core.margin.families import family_for
from daemon.core.margin.terms import initial_margin
from daemon.core.types import Account, ContractType, MarginMode, PositionRisk

_SECANT_STEPS = 12
_RESOLUTION = 1e-13  # relative to the money involved: a few ulps of float64


@dataclass(frozen=True, slots=True)
class TopUpPlan:
    """The amount to add (settle currency; 0 when already far enough) and the position's figures after it.

    `amount` is None when no amount can reach the target (the note says why).
    """

    amount: float | None
    liquidation_price_after: float | None
    distance_after: float | None
    note: str | None = None


def with_added_margin(account: Account, index: int, amount: float) -> Account:
    """The account after adding `amount` to leg `index`'s isolated margin, or to the cross wallet."""
    leg = account.positions[index]
    if leg.margin_mode is MarginMode.ISOLATED:
        legs = list(account.positions)
        legs[index] = replace(leg, isolated_margin=initial_margin(leg) + amount)
        return replace(account, positions=tuple(legs))
    return replace(account, wallet_balance=(account.wallet_balance or 0.0) + amount)


def distance_after_adding(account: Account, index: int, amount: float) -> float | None:
    """The leg's distance to liquidation (fraction of mark) once `amount` has been added."""
    return evaluate(with_added_margin(account, index, amount)).positions[index].distance_to_liquidation


def plan_top_up(account: Account, index: int, target_distance: float) -> TopUpPlan:
    """The smallest amount that puts leg `index`'s liquidation price `target_distance` away from its mark."""
    if target_distance <= 0.0:
        raise ValueError("target_distance must be a positive fraction of the mark price")
    now = evaluate(account).positions[index]
    if now.liquidation_price is None:
        return _plan(0.0, now, "no liquidation price: nothing to add")
    if now.distance_to_liquidation is not None and now.distance_to_liquidation >= target_distance:
        return _plan(0.0, now, "already at or beyond the target distance")
    leg = account.positions[index]
    # The adverse direction is where the margin gap shrinks. Comparing the liquidation price with the mark would
    # point the wrong way once the market is already past it.
    below = _gap(account, index, leg.mark_price * 0.999, 0.0) < _gap(
        account, index, leg.mark_price * 1.001, 0.0
    )
    if below and target_distance >= 1.0:
        return TopUpPlan(
            None,
            now.liquidation_price,
            now.distance_to_liquidation,
            "a long cannot be made safe to a zero price",
        )
    target_price = leg.mark_price * (1.0 - target_distance if below else 1.0 + target_distance)
    scale = abs(account.wallet_balance or 0.0) + sum(
        p.quantity * (p.mark_price if p.contract_type is ContractType.LINEAR else 1.0 / p.mark_price)
        for p in account.positions
    )
    amount = _solve_amount(lambda x: _gap(account, index, target_price, x), max(scale, 1e-12))
    if amount is None:
        return TopUpPlan(
            None, now.liquidation_price, now.distance_to_liquidation, "added margin does not move this price"
        )
    after = evaluate(with_added_margin(account, index, amount)).positions[index]
    return _plan(amount, after, None)


def _solve_amount(gap: Callable[[float], float], scale: float) -> float | None:
    """The amount x >= 0 where gap(x) = 0, by secant steps.

    gap is piecewise affine in x (affine except where Bybit's closing fee stops applying because no bankruptcy
    price remains), so a secant step between two points of one piece lands exactly; a few steps suffice.
    `scale` is the size of the money involved: steps and the tolerance are floored relative to it, because the
    gap of a small leg in a large cross account is only known to within that account's rounding.
    """
    resolution = _RESOLUTION * scale
    x0, g0 = 0.0, gap(0.0)
    if g0 >= 0.0:
        return 0.0
    x1 = max(-g0, resolution)  # first guess: one unit of margin closes one unit of gap
    g1 = gap(x1)
    for _ in range(_SECANT_STEPS):
        if abs(g1) <= resolution:
            return max(0.0, x1)
        if g1 == g0:
            return None
        x0, g0, x1 = x1, g1, x1 - g1 * (x1 - x0) / (g1 - g0)
        g1 = gap(x1)
    return max(0.0, x1) if abs(g1) <= resolution * 1e3 else None


def _gap(account: Account, index: int, price: float, amount: float) -> float:
    family = family_for(account.exchange)
    topped = with_added_margin(account, index, amount)
    for ids, group in groups_of(family, topped):
        if index in ids:
            return group_gap_at(family, group, price)
    raise IndexError(index)


def _plan(amount: float, risk: PositionRisk, note: str | None) -> TopUpPlan:
    return TopUpPlan(amount, risk.liquidation_price, risk.distance_to_liquidation, note)
