"""Exact roots of a piecewise-affine margin function, walked bracket by bracket from the mark.

g(u) = margin balance − requirement. The position is safe while g > 0. From the mark we walk in the direction in
which g falls; in each bracket g is affine, so its root is exact. The first root found is the liquidation price.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from daemon.core.margin.terms import Affine


@dataclass(frozen=True, slots=True)
class Boundary:
    """Where g reaches zero. `u` is None when no such price exists; `reason` then says why.

    `past` is True when g is already at or below zero at the mark: the boundary lies behind the market.
    """

    u: float | None
    past: bool = False
    reason: str | None = None


def _probe(start: float, end: float) -> float:
    """A point strictly inside (start, end) whose bracket is the segment's bracket."""
    if math.isinf(end):
        return start * 2.0 + 1.0
    return (start + end) / 2.0


def find_boundary(
    terms_at: Callable[[float], Affine], breakpoints: Iterable[float], u_mark: float
) -> Boundary:
    """The root of g nearest the mark on the side where g falls (or, once past it, where g rises)."""
    here = terms_at(u_mark)
    if here.slope == 0.0:
        return Boundary(None, reason="the margin balance does not move with this price")
    g_mark = here.at(u_mark)
    past = g_mark <= 0.0
    falling = -1.0 if here.slope > 0.0 else 1.0
    direction = -falling if past else falling
    if direction < 0:
        stops = [*sorted((b for b in breakpoints if 0.0 < b < u_mark), reverse=True), 0.0]
    else:
        stops = [*sorted(b for b in breakpoints if b > u_mark), math.inf]
    start = u_mark
    for end in stops:
        segment = terms_at(_probe(start, end)) if end != start else here
        if segment.slope != 0.0:
            root = -segment.const / segment.slope
            low, high = min(start, end), max(start, end)
            if low <= root <= high and root > 0.0 and math.isfinite(root):
                return Boundary(root, past=past)
        start = end
    return Boundary(None, past=past, reason="the margin covers any move of this price")
