"""Per-leg margin terms as affine functions of one price variable.

The solver works in `u`, which is the price for linear contracts and 1/price for inverse ones. In `u`, both a
leg's PnL and its maintenance requirement are affine within one bracket, so liquidation and bankruptcy prices
are roots of a piecewise-affine function and can be found exactly, bracket by bracket.
"""

from __future__ import annotations

import bisect
import itertools

from daemon.core.margin.families import MarginFamily, TierBasis
from daemon.core.tiers import tier_boundaries, tier_for, tier_index
from daemon.core.types import ContractType, Position, Tier
from daemon.core.values import value


@value
class Affine:
    """const + slope·u."""

    const: float
    slope: float = 0.0

    def at(self, u: float) -> float:
        return self.const + self.slope * u

    def __add__(self, other: Affine) -> Affine:
        return Affine(self.const + other.const, self.slope + other.slope)

    def __sub__(self, other: Affine) -> Affine:
        return Affine(self.const - other.const, self.slope - other.slope)


ZERO = Affine(0.0, 0.0)


def to_u(leg: Position, price: float) -> float:
    """The solver's variable for a price: the price itself (linear) or its reciprocal (inverse)."""
    return price if leg.contract_type is ContractType.LINEAR else 1.0 / price


def from_u(leg: Position, u: float) -> float:
    return u if leg.contract_type is ContractType.LINEAR else 1.0 / u


def leg_tiers(family: MarginFamily, leg: Position) -> tuple[Tier, ...]:
    """The leg's bracket table; Hyperliquid-style families derive one flat tier from the max leverage."""
    if leg.tiers:
        return leg.tiers
    if family.mmr_from_max_leverage and leg.max_leverage:
        return (Tier(0.0, 1.0 / (2.0 * leg.max_leverage), 0.0),)
    raise ValueError(f"{leg.symbol}: no maintenance rate (give tiers, or mmr, or max_leverage)")


def initial_margin(leg: Position) -> float:
    """The margin an isolated leg holds: as given, else the initial margin at its leverage."""
    if leg.isolated_margin is not None:
        return leg.isolated_margin
    if leg.leverage:
        return leg.quantity * to_u(leg, leg.entry_price) / leg.leverage
    raise ValueError(f"{leg.symbol}: an isolated position needs isolated_margin or leverage")


def pnl_terms(leg: Position) -> Affine:
    """Unrealised PnL in the settle currency: side·q·(u − EP) linear, side·q·(1/EP − u) inverse."""
    signed = leg.side.sign * leg.quantity
    if leg.contract_type is ContractType.LINEAR:
        return Affine(-signed * leg.entry_price, signed)
    return Affine(signed / leg.entry_price, -signed)


def bracket_size(family: MarginFamily, leg: Position, u: float) -> float:
    """What the family sizes its brackets by, for this leg at u (only NOTIONAL_AT_PRICE depends on u)."""
    if family.tier_basis is TierBasis.NOTIONAL_AT_PRICE:
        return leg.quantity * u  # q·P for linear, q/P (coin) for inverse
    if family.tier_basis is TierBasis.NOTIONAL_AT_ENTRY:
        return leg.quantity * to_u(leg, leg.entry_price)
    return leg.contracts


class LegBrackets:
    """`tier_index(table, bracket_size(family, leg, u))` for one leg at any u, answered as that gives it, faster:
    a model reads a leg's bracket at every mark and at every probe of every walk.

    A basis that does not follow the price has one bracket, found once. Otherwise the table's minimums, when
    they ascend (tables do), are bisected in C: the last minimum at or below the size is the bracket that
    `tier_index`'s scan stops at. A table out of order, or a size that is not a number, takes the scan itself.
    `tests/unit/test_leg_brackets.py` checks the two agree on generated tables and sizes.
    """

    __slots__ = ("_fixed", "_mins", "_quantity", "_table")

    def __init__(self, family: MarginFamily, leg: Position, table: tuple[Tier, ...]) -> None:
        self._table = table
        self._quantity = leg.quantity
        self._fixed: int | None = None
        if family.tier_basis is not TierBasis.NOTIONAL_AT_PRICE:
            self._fixed = tier_index(table, bracket_size(family, leg, 0.0))
        mins = [tier.min_notional for tier in table]
        ascending = all(low <= high for low, high in itertools.pairwise(mins))
        self._mins = mins if ascending and all(m == m for m in mins) else None

    def index(self, u: float) -> int:
        if self._fixed is not None:
            return self._fixed
        size = self._quantity * u  # as `bracket_size` for NOTIONAL_AT_PRICE
        mins = self._mins
        if mins is None or size != size:
            return tier_index(self._table, size)
        found = bisect.bisect_right(mins, size) - 1
        return found if found > 0 else 0


def requirement_terms(family: MarginFamily, leg: Position, u_ref: float, u_bankrupt: float | None) -> Affine:
    """The leg's maintenance requirement, valid in the bracket that contains `u_ref`.

    `u_bankrupt` prices Bybit's fee to close at the bankruptcy price; None (no bankruptcy price) charges none.
    """
    tier = tier_for(leg_tiers(family, leg), bracket_size(family, leg, u_ref))
    return tier_requirement_terms(family, leg, tier, u_bankrupt)


def tier_requirement_terms(
    family: MarginFamily, leg: Position, tier: Tier, u_bankrupt: float | None
) -> Affine:
    """The leg's maintenance requirement in bracket `tier`: u enters only through which bracket applies, so
    a model that keeps a leg can keep these terms per bracket."""
    q = leg.quantity
    if family.maintenance_at_entry:
        requirement = Affine(q * to_u(leg, leg.entry_price) * tier.mmr - tier.maintenance_amount)
    else:
        rate = tier.mmr + (leg.taker_fee_rate if family.fee_in_requirement else 0.0)
        requirement = Affine(-tier.maintenance_amount, q * rate)
    if family.fee_at_bankruptcy and leg.taker_fee_rate and u_bankrupt is not None:
        requirement = requirement + Affine(q * leg.taker_fee_rate * u_bankrupt)
    return requirement


def closing_fee_terms(family: MarginFamily, leg: Position) -> Affine:
    """Fee to close at the price, where the family counts it in the bankruptcy price (Bybit)."""
    if family.fee_at_bankruptcy and leg.taker_fee_rate:
        return Affine(0.0, leg.quantity * leg.taker_fee_rate)
    return ZERO


def bracket_breakpoints(family: MarginFamily, leg: Position) -> list[float]:
    """Values of u where the leg's bracket changes (only when brackets follow the price)."""
    if family.tier_basis is not TierBasis.NOTIONAL_AT_PRICE:
        return []
    return [boundary / leg.quantity for boundary in tier_boundaries(leg_tiers(family, leg))]
