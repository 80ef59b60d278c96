"""Exact roots of "collateral + PnL − k × requirement" over a piecewise-affine requirement.

Within one piece everything is affine in u, so its root is one division; a root counts only if it lies in its
own piece (the bracket it was computed with is the bracket that applies there). Where a venue's requirement
jumps between brackets (no deduction, bracket by notional at the price), the function can change sign at the
boundary itself without a root on either side: the boundary is then the root.
"""

from __future__ import annotations

from decimal import Decimal

from daemon.sim.oracle.inputs import Leg
from daemon.sim.oracle.numbers import Line
from daemon.sim.oracle.rules import Pieces


def zeros(collateral: Decimal, pnl: Line, requirement: Pieces, k: Decimal) -> list[Decimal]:
    """Every u > 0 where collateral + pnl(u) − k·requirement(u) reaches zero, in increasing order."""
    found: list[Decimal] = []
    previous: Line | None = None
    base = Line(collateral) + pnl
    for index, (start, piece) in enumerate(requirement):
        line = base - piece.times(k)
        end = requirement[index + 1][0] if index + 1 < len(requirement) else None
        if previous is not None:
            left, right = previous.at(start), line.at(start)
            if left == 0 or right == 0 or (left > 0) != (right > 0):
                found.append(start)
        root = line.root()
        if root is not None and root > start and (end is None or root < end):
            found.append(root)
        previous = line
    return found


def bankruptcy_u(collateral: Decimal, pnl: Line, fee: Line) -> Decimal | None:
    """Where collateral + PnL − the fee to close reaches zero (u > 0), or None where no price does."""
    root = (Line(collateral) + pnl - fee).root()
    return root if root is not None and root > 0 else None


def around(roots: list[Decimal], leg: Leg) -> tuple[Decimal | None, Decimal | None]:
    """The roots nearest the leg's mark on each side, as prices: (highest at or below, lowest at or above)."""
    below: Decimal | None = None
    above: Decimal | None = None
    for u in roots:
        price = leg.price(u)
        if price <= leg.mark and (below is None or price > below):
            below = price
        if price >= leg.mark and (above is None or price < above):
            above = price
    return below, above


def nearest(below: Decimal | None, above: Decimal | None, mark: Decimal) -> Decimal | None:
    if below is None or above is None:
        return below if above is None else above
    return below if mark - below <= above - mark else above
