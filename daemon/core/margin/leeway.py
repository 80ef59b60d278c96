"""How fast a modelled leg's margin gap can move with the marks: what a quiet band (`core/quiet_band.py`) needs of
the model to prove that a mark cannot bring any figure to a threshold.

A group's gap g(u) = collateral + PnL(u) − requirement(u) is what every figure the policy judges comes from: the
liquidation price is its root; a distance threshold is crossed exactly when g, read at the price that threshold
names, changes sign; a margin ratio threshold r is crossed when r·balance − requirement does. In the solver's
variable u (the price, or its reciprocal for inverse contracts) PnL is affine with slope ±q and the requirement
is affine within each bracket with slope q·rate, so |d(PnL − requirement)/du| ≤ q·(1 + the table's highest rate)
(`weight`), except where a bracket table is not continuous: its jumps are summed apart (`jumps`). A cross symbol's
collateral is the wallet plus every other symbol's PnL less its requirement, so it moves by at most the other
symbols' weights times how far their u moved.

Only single-leg groups whose every rate is below 1 are described: then g is strictly monotone (rising with u for
linear longs and inverse shorts, falling for the others), so it has at most one root and "g > 0 at the
threshold's price" means "the liquidation price is on the far side of it". A hedged symbol (two legs sharing one
price) or a table with a rate of 1 or more gets no leeway, and its account no quiet band: every mark is judged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from daemon.core.margin.families import MarginFamily, TierBasis
from daemon.core.margin.terms import leg_tiers, tier_requirement_terms
from daemon.core.types import ContractType, Position


@dataclass(frozen=True, slots=True)
class LegLeeway:
    """One modelled leg's gap, readable at any u for the marks the model holds now.

    `gap(u)` is (g(u), the magnitude of the terms summed into it): rounding in the model's own figures is a few
    1e-16 of that magnitude, which a band keeps well clear of. `balance` and `requirement` are the isolated
    leg's margin balance and requirement at its mark (its own margin ratio); a cross leg's ratio is the
    account's."""

    symbol: str
    cross: bool
    inverse: bool
    rising: bool  # g rises with u (its liquidation lies towards lower u)
    weight: float  # bound on |d(PnL − requirement)/du|
    jumps: float  # the requirement's jumps summed over the table's bracket edges (0 for a continuous table)
    u_mark: float
    gap: Callable[[float], tuple[float, float]]
    balance: float
    requirement: float


def weight_and_jumps(family: MarginFamily, leg: Position, fee_u: float | None) -> tuple[float, float] | None:
    """(weight, jumps) of a leg's PnL less requirement in u; None when some rate reaches 1 (g not monotone)."""
    table = leg_tiers(family, leg)
    q = leg.quantity
    if not q > 0.0:
        return None
    fee = leg.taker_fee_rate or 0.0
    rates = [tier.mmr + (fee if family.fee_in_requirement else 0.0) for tier in table]
    if not all(0.0 <= rate < 1.0 for rate in rates):
        return None
    if family.maintenance_at_entry:
        return q, 0.0  # the requirement does not move with u
    jumps = 0.0
    if family.tier_basis is TierBasis.NOTIONAL_AT_PRICE:
        mins = [tier.min_notional for tier in table]
        if not all(low <= high for low, high in itertools.pairwise(mins)):
            return None
        for below, above in itertools.pairwise(table):
            edge = above.min_notional / q  # the u where the bracket changes
            left = tier_requirement_terms(family, leg, below, fee_u).at(edge)
            right = tier_requirement_terms(family, leg, above, fee_u).at(edge)
            jumps += abs(right - left)
    return q * (1.0 + max(rates)), jumps


def is_inverse(leg: Position) -> bool:
    return leg.contract_type is ContractType.INVERSE
