"""Which collaterals can put a group's liquidation root past its first bracket: bounds that let a kept model
skip the rest of the walk.

The solver walks g(u) = collateral + PnL − requirement bracket by bracket away from the mark on both sides.
On the side where the price moves in the position's favour there is usually no root at all, and the walk
visits every bracket to the end of the table before it says so. In an incremental model, where a cross
symbol's collateral moves with every other symbol's mark, that would make every read cost the size of the
tier table.

Past the first stop the segments do not depend on the mark: they run between fixed breakpoints, and each is
evaluated at the fixed midpoint `probe` gives it. In segment k the computed root, −(c + P − R_k)/s_k, is
monotone in the collateral c, so the collaterals for which that segment holds a root form one interval.
Each interval is computed once, widened far past what rounding can move it (1e-9 of the magnitudes
involved, against a few 1e-16), and the intervals are joined into hulls over the segments from either end
of the table. A collateral outside the hull of the segments a walk would visit past its first stop proves
that those segments hold no root, so the walk may stop there with the answer it would have reached anyway.
A zero-length segment (two legs sharing a breakpoint) is judged by the mark's own terms, so it cannot be
bounded here: its hull is everything, and walks that reach it are done in full.
"""

from __future__ import annotations

import math

from daemon.core.margin.account import GroupTerms
from daemon.core.margin.solver import Stops, probe

_WIDEN = 1e-9  # relative to |P| + |R| + |s·u|: rounding moves an endpoint by a few 1e-16 of that
_EMPTY = (math.inf, -math.inf)
_EVERYTHING = (-math.inf, math.inf)


def _collaterals_with_root(terms: GroupTerms, start: float, end: float) -> tuple[float, float]:
    """The collaterals c (widened) for which segment [start, end] of g can hold its root.

    Over the reals the segment's root is −(c + P − R)/s, inside [low, high] for c between R − P − s·low and
    R − P − s·high (an infinite `high` leaves that side open). The widening is taken on |P| and |R| apart,
    not on their difference: the walk rounds c + P before it subtracts R.
    """
    if end == start:
        return _EVERYTHING
    at = probe(start, end)
    shape = terms.gap(0.0)(at)  # R − P and the slope, as the walk computes them
    slope = shape.slope
    if slope == 0.0:
        return _EMPTY  # the walk never takes a root from a flat segment
    scale = abs(terms.pnl.const) + abs(terms.requirement(at).const)
    ends = []
    for u in (min(start, end), max(start, end)):
        if math.isinf(u):
            ends.append(-math.copysign(math.inf, slope))
            continue
        edge = -shape.const - slope * u
        widen = _WIDEN * (scale + abs(slope * u)) + 1e-300
        ends.extend((edge - widen, edge + widen))
    return min(ends), max(ends)


def _hull(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return min(a[0], b[0]), max(a[1], b[1])


class Reach:
    """For one group's terms: hulls of the collaterals that give any segment past the first stop a root."""

    __slots__ = ("_above", "_below", "_count")

    def __init__(self, terms: GroupTerms) -> None:
        breaks = sorted(b for b in terms.breakpoints if b > 0.0)
        self._count = count = len(breaks)
        # Segment t runs from breaks[t-1] (or 0) to breaks[t] (or infinity), oriented as the walk meets it.
        intervals = [
            _collaterals_with_root(terms, breaks[0], 0.0) if count else _EMPTY,
            *(_collaterals_with_root(terms, breaks[t - 1], breaks[t]) for t in range(1, count)),
            _collaterals_with_root(terms, breaks[-1], math.inf) if count else _EMPTY,
        ]
        # below[k]: segments 0..k-1 (what a walk down from above breaks[k-1] meets past its first stop);
        # above[k]: segments k..count (what a walk up meets past its first stop).
        self._below = [_EMPTY]
        for interval in intervals[:count]:
            self._below.append(_hull(self._below[-1], interval))
        self._above = [_EMPTY] * (count + 2)  # index count + 1 covers no segment
        for index in range(count, -1, -1):
            self._above[index] = _hull(self._above[index + 1], intervals[index])

    def rootless_past_first(self, collateral: float, stops: Stops) -> tuple[bool, bool]:
        """(below, above): whether the segments past the first stop on that side certainly hold no root."""
        below_count = len(stops.below) - 1  # breakpoints under the mark; the last stop is 0
        first_above = self._count - (len(stops.above) - 1)  # index of the first breakpoint over the mark
        low, high = self._below[below_count]
        low_up, high_up = self._above[first_above + 1]
        return (not low <= collateral <= high, not low_up <= collateral <= high_up)
