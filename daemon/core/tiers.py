"""Maintenance-margin tier tables: look-up by size and the continuity rule for maintenance amounts."""

from __future__ import annotations

from collections.abc import Sequence

from daemon.core.types import Tier


def tier_index(tiers: Sequence[Tier], size: float) -> int:
    """Where in `tiers` the bracket for `size` is: the last tier whose minimum is at or below it.

    A size below the first tier's minimum (tables normally start at 0) falls into the first tier, so a table
    never leaves a position without a maintenance rate.
    """
    if not tiers:
        raise ValueError("a position needs at least one maintenance tier")
    chosen = 0
    for index, tier in enumerate(tiers):
        if tier.min_notional <= size:
            chosen = index
        else:
            break
    return chosen


def tier_for(tiers: Sequence[Tier], size: float) -> Tier:
    """The bracket that applies to `size` (see `tier_index`)."""
    return tiers[tier_index(tiers, size)]


def tier_boundaries(tiers: Sequence[Tier]) -> list[float]:
    """Sizes at which the bracket changes (every minimum but the first)."""
    return [tier.min_notional for tier in tiers[1:]]


def derive_maintenance_amounts(tiers: Sequence[Tier]) -> tuple[Tier, ...]:
    """Fill each tier's maintenance amount so that maintenance margin is continuous across brackets.

    Binance publishes "cum" and Bybit "deduction" with exactly this rule: at a boundary b between tiers n-1
    and n, b·mmr_{n-1} − cum_{n-1} = b·mmr_n − cum_n, so cum_n = cum_{n-1} + b·(mmr_n − mmr_{n-1}).
    Example (Binance FAQ): tiers 0/0.4 %, 50,000/0.5 %, 250,000/1 % give cum 0, 50, 1,300.
    """
    ordered = sorted(tiers, key=lambda t: t.min_notional)
    result: list[Tier] = []
    cum = 0.0
    previous_mmr = ordered[0].mmr if ordered else 0.0
    for index, tier in enumerate(ordered):
        if index > 0:
            cum += tier.min_notional * (tier.mmr - previous_mmr)
        result.append(Tier(tier.min_notional, tier.mmr, cum, tier.max_leverage))
        previous_mmr = tier.mmr
    return tuple(result)
