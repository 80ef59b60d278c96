"""Exact roots of "collateral + PnL − k × requirement" over a piecewise-affine requirement.

Within one piece everything is affine in u, so its root is one division; a root counts only if it lies in its
own piece (the bracket it was computed with is the bracket that applies there). Where a venue's requirement
jumps between brackets (no deduction, bracket by notional at the price), the function can change sign at the
boundary itself without a root on either side: the boundary is then the root.

Only the roots nearest the mark matter (the liquidation price, and the edges of the interval the engine may
leave unchecked), so the walk goes outwards from the mark's piece and stops at the first root on each side.
When the requirement is convex (continuous, only steepening: Binance's brackets with their "cum", and every
single-piece venue), the function is concave, and one look at the outermost piece tells that a side holds
no root at all.
"""

from __future__ import annotations

from bisect import bisect_right
from decimal import Decimal

from daemon.sim.oracle.inputs import Leg
from daemon.sim.oracle.numbers import Line
from daemon.sim.oracle.rules import Pieces


def _sign_changes(left: Decimal, right: Decimal) -> bool:
    return left == 0 or right == 0 or (left > 0) != (right > 0)


def nearest_zeros(
    collateral: Decimal, pnl: Line, pieces: Pieces, k: Decimal, u_mark: Decimal
) -> tuple[Decimal | None, Decimal | None]:
    """The roots of collateral + pnl(u) − k·requirement(u) nearest u_mark: (largest ≤ u_mark, smallest ≥ it)."""
    rows, starts = pieces.rows, pieces.starts
    count = len(rows)
    here = max(0, bisect_right(starts, u_mark) - 1)
    base_c, base_s = collateral + pnl.const, pnl.slope

    def line(i: int) -> tuple[Decimal, Decimal]:
        piece = rows[i][1]
        return base_c - k * piece.const, base_s - k * piece.slope

    c, s = line(here)
    safe = c + s * u_mark > 0
    concave = pieces.convex and k > 0
    below: Decimal | None = None
    above: Decimal | None = None

    if not (safe and concave and line(count - 1)[1] >= 0):  # else g only rises beyond the mark
        previous = c, s
        for i in range(here, count):
            c, s = line(i) if i != here else (c, s)
            low = u_mark if i == here else starts[i]
            high = starts[i + 1] if i + 1 < count else None
            if i != here and _sign_changes(previous[0] + previous[1] * low, c + s * low):
                above = low
                break
            if s != 0:
                root = -c / s
                if root >= low and (high is None or root < high):
                    above = root
                    break
            previous = c, s

    c, s = line(here)
    if not (safe and concave and line(0)[1] <= 0):  # else g only rises towards u = 0
        following = c, s
        for i in range(here, -1, -1):
            c, s = line(i) if i != here else (c, s)
            low = starts[i]
            high = u_mark if i == here else starts[i + 1]
            if i != here and _sign_changes(c + s * high, following[0] + following[1] * high):
                below = high
                break
            if s != 0:
                root = -c / s
                if root > 0 and root >= low and (root <= high if i == here else root < high):
                    below = root
                    break
            following = c, s
    return below, above


def bankruptcy_u(collateral: Decimal, pnl: Line, fee: Line) -> Decimal | None:
    """Where collateral + PnL − the fee to close reaches zero (u > 0), or None where no price does."""
    root = (Line(collateral) + pnl - fee).root()
    return root if root is not None and root > 0 else None


def as_prices(
    leg: Leg, below_u: Decimal | None, above_u: Decimal | None
) -> tuple[Decimal | None, Decimal | None]:
    """(below, above) in u as (below, above) in price: u is the price itself, or 1/price for inverse legs."""
    if not leg.inverse:
        return below_u, above_u
    return (None if above_u is None else leg.price(above_u)), (
        None if below_u is None else leg.price(below_u)
    )


def nearest(below: Decimal | None, above: Decimal | None, mark: Decimal) -> Decimal | None:
    if below is None or above is None:
        return below if above is None else above
    return below if mark - below <= above - mark else above
