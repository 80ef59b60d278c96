"""Exact roots of a piecewise-affine margin function, walked bracket by bracket from the mark.

g(u) = margin balance − requirement. The position is safe while g > 0. From the mark we walk both ways; in
each bracket g is affine, so its root is exact. The first root met on each side is a candidate; the
liquidation price is the one nearer the mark.
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


def _first_root(
    terms_at: Callable[[float], Affine],
    breakpoints: list[float],
    u_mark: float,
    here: Affine,
    direction: float,
) -> float | None:
    """The first root of g met walking from the mark in `direction` (-1: towards u = 0, +1: towards infinity)."""
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
                return root
        start = end
    return None


def find_boundary(
    terms_at: Callable[[float], Affine],
    breakpoints: Iterable[float],
    u_mark: float,
    price_of: Callable[[float], float] = lambda u: u,
) -> Boundary:
    """The root of g nearest the mark (in price, `price_of(u)`), whichever side of the mark it lies on.

    Both sides are walked: where brackets change g's slope (hedge legs of one symbol, whose net exposure is
    small against their combined maintenance), g can rise away from the mark on one side and still turn
    back to zero further on, and that root may be the nearer one (Binance's hedge-mode formula holds at both).
    """
    here = terms_at(u_mark)
    past = here.at(u_mark) <= 0.0
    breaks = list(breakpoints)
    roots = [
        root
        for direction in (-1.0, 1.0)
        if (root := _first_root(terms_at, breaks, u_mark, here, direction)) is not None
    ]
    if not roots:
        if here.slope == 0.0 and not breaks:
            return Boundary(None, past=past, reason="the margin balance does not move with this price")
        return Boundary(None, past=past, reason="the margin covers any move of this price")
    mark = price_of(u_mark)
    return Boundary(min(roots, key=lambda root: abs(price_of(root) - mark)), past=past)
