"""Which accounts need the margin model re-run after a mark move: a cache of liquidation prices per account.

Running the model for every holder of every symbol on every tick costs ~100 µs an account. A leg's
liquidation price does not depend on its own mark (the model solves for the price), only on the account's
positions and wallet and, for cross accounts, on the marks of its OTHER cross symbols. So after each run the
engine keeps a `Band` per account; a later mark move needs the model again only if
- a cross account with several cross symbols saw any of their marks move, or
- some leg's mark has come within its watch distance of the cached liquidation price.
The engine drops the band on every position or balance event of the account.

The watch distance is twice the move that, to first order, takes the margin ratio from the margin-call
threshold to 1 (liquidation): margin balance − maintenance falls by about `quantity` per unit of price, so
the ratio reaches `threshold` where that gap equals maintenance·(1/threshold − 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from daemon.core.types import AccountRisk, MarginMode, Side
from daemon.sim.model import SimPosition


@dataclass(frozen=True, slots=True)
class Band:
    cross_marks: tuple[float, ...]  # marks of the cross symbols, when there are several
    watch: tuple[tuple[str, Side, float, float], ...]  # (symbol, side, liquidation price, watch distance)


def cross_marks(positions: Sequence[SimPosition], marks: Mapping[str, float]) -> tuple[float, ...]:
    symbols = sorted({p.symbol for p in positions if p.margin_mode is MarginMode.CROSS})
    return tuple(marks[s] for s in symbols) if len(symbols) > 1 else ()


def band_from(
    positions: Sequence[SimPosition],
    risk: AccountRisk,
    marks: Mapping[str, float],
    contract_sizes: Mapping[str, float],
    threshold: float,
) -> Band:
    factor = 2.0 * (1.0 / threshold - 1.0) if 0 < threshold < 1 else float("inf")
    watch = []
    for pos, leg in zip(positions, risk.positions, strict=True):
        if leg.liquidation_price is None:
            continue
        quantity = pos.contracts * contract_sizes[pos.symbol]
        distance = factor * risk.maintenance_margin / quantity if quantity > 0 else float("inf")
        watch.append((pos.symbol, pos.side, leg.liquidation_price, distance))
    return Band(cross_marks(positions, marks), tuple(watch))


def needs_model(band: Band, positions: Sequence[SimPosition], marks: Mapping[str, float]) -> bool:
    if band.cross_marks != cross_marks(positions, marks):
        return True
    return any(
        side.sign * (marks[symbol] - price) <= distance for symbol, side, price, distance in band.watch
    )
