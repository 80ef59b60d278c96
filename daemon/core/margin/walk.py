"""`walk_boundary` for a kept group whose mark stands still while its collateral moves, without rebuilding terms.

In the incremental model a cross symbol's liquidation price is read again whenever ANY cross mark moves (the
account's totals, so its collateral, moved), while its own mark, its stops and so the requirement terms of
every segment the walk visits stay the same. `SegmentWalk` keeps those terms for one placement of the stops
(one mark) and, for each collateral asked, does the walk's arithmetic on plain floats in the walk's own order:
balance = (collateral + P.const, 0.0 + P.slope), then g = balance − R per segment, its root −const/slope kept
when it lies within the segment at a positive, finite u. The figures are `walk_boundary(terms.gap(collateral),
stops, price_of, rootless)`'s bit for bit (`tests/unit/test_margin_incremental.py` compares the model's
figures with the full solve's).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from daemon.core.margin.account import GroupTerms
from daemon.core.margin.solver import Boundary, Stops, no_root_reason, probe
from daemon.core.margin.terms import Affine


class SegmentWalk:
    """The walk from one mark (`stops`) over `terms`, for any collateral."""

    __slots__ = ("_pnl", "_requirement", "_sides", "here", "stops")

    def __init__(self, terms: GroupTerms, stops: Stops) -> None:
        self.stops = stops
        self._pnl = terms.pnl
        self._requirement = terms.requirement
        self.here = terms.requirement(stops.u_mark)  # the requirement's terms at the mark
        # Per side: the (start, end, requirement terms) of each segment visited so far (filled as walks go on).
        self._sides: tuple[list[tuple[float, float, Affine]], list[tuple[float, float, Affine]]] = ([], [])

    def _segment(self, side: int, index: int) -> tuple[float, float, Affine]:
        known = self._sides[side]
        while len(known) <= index:
            stops = self.stops.below if side == 0 else self.stops.above
            count = len(known)
            start = self.stops.u_mark if count == 0 else stops[count - 1]
            end = stops[count]
            # As the walk: a zero-length segment is judged by the terms at the mark.
            requirement = self._requirement(probe(start, end)) if end != start else self.here
            known.append((start, end, requirement))
        return known[index]

    def boundary(
        self,
        collateral: float,
        price_of: Callable[[float], float],
        rootless_past_first: tuple[bool, bool],
    ) -> Boundary:
        pnl = self._pnl
        balance_const, balance_slope = collateral + pnl.const, 0.0 + pnl.slope  # Affine(collateral) + P
        u_mark = self.stops.u_mark
        here = self.here
        here_const, here_slope = balance_const - here.const, balance_slope - here.slope
        past = here_const + here_slope * u_mark <= 0.0
        roots = []
        for side in (0, 1):
            count = len(self.stops.below if side == 0 else self.stops.above)
            skip = rootless_past_first[side]
            for index in range(count):
                if index == 1 and skip:
                    break
                start, end, requirement = self._segment(side, index)
                const, slope = balance_const - requirement.const, balance_slope - requirement.slope
                if slope != 0.0:
                    root = -const / slope
                    low, high = (start, end) if start <= end else (end, start)
                    if low <= root <= high and root > 0.0 and math.isfinite(root):
                        roots.append(root)
                        break
        if not roots:
            return Boundary(None, past=past, reason=no_root_reason(here_slope == 0.0 and self.stops.flat))
        mark = price_of(u_mark)
        return Boundary(min(roots, key=lambda root: abs(price_of(root) - mark)), past=past)
