"""Exact roots of a piecewise-affine margin function, walked bracket by bracket from the mark.

g(u) = margin balance − requirement. The position is safe while g > 0. From the mark we walk both ways; in
each bracket g is affine, so its root is exact. The first root met on each side is a candidate; the
liquidation price is the one nearer the mark.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence

from daemon.core.margin.terms import Affine
from daemon.core.values import value


@value
class Boundary:
    """Where g reaches zero. `u` is None when no such price exists; `reason` then says why.

    `past` is True when g is already at or below zero at the mark: the boundary lies behind the market.
    """

    u: float | None
    past: bool = False
    reason: str | None = None


def probe(start: float, end: float) -> float:
    """A point strictly inside (start, end) whose bracket is the segment's bracket."""
    if math.isinf(end):
        return start * 2.0 + 1.0
    return (start + end) / 2.0


@value
class Stops:
    """Where g may change bracket, walking from the mark: `below` descending then 0, `above` ascending then
    infinity. `flat`: no breakpoints at all, so g is one affine piece."""

    u_mark: float
    below: tuple[float, ...]
    above: tuple[float, ...]
    flat: bool


def stops_from(breakpoints: Iterable[float], u_mark: float) -> Stops:
    return stops_around(sorted(breakpoints), u_mark)


def stops_around(ordered: Sequence[float], u_mark: float) -> Stops:
    """`stops_from` for breakpoints already in ascending order (a kept group sorts its own once)."""
    first_positive = bisect.bisect_right(ordered, 0.0)
    below, above = bisect.bisect_left(ordered, u_mark), bisect.bisect_right(ordered, u_mark)
    return Stops(
        u_mark,
        (*reversed(ordered[first_positive:below]), 0.0),
        (*ordered[above:], math.inf),
        not ordered,
    )


def segment_root(segment: Affine, start: float, end: float) -> float | None:
    """The root of one affine segment of g, if it lies within [start, end] (either order) at a positive u."""
    if segment.slope != 0.0:
        root = -segment.const / segment.slope
        low, high = min(start, end), max(start, end)
        if low <= root <= high and root > 0.0 and math.isfinite(root):
            return root
    return None


def _first_root(
    terms_at: Callable[[float], Affine],
    stops: tuple[float, ...],
    u_mark: float,
    here: Affine,
    rootless_past_first: bool,
) -> float | None:
    """The first root of g met walking from the mark through `stops`.

    `rootless_past_first`: the caller has shown (see `margin/reach.py`) that no segment past the first stop
    holds a root, so the walk ends there; the answer is the one the whole walk would give.
    """
    start = u_mark
    for index, end in enumerate(stops):
        if index == 1 and rootless_past_first:
            return None
        segment = terms_at(probe(start, end)) if end != start else here
        root = segment_root(segment, start, end)
        if root is not None:
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
    return walk_boundary(terms_at, stops_from(breakpoints, u_mark), price_of)


def walk_boundary(
    terms_at: Callable[[float], Affine],
    stops: Stops,
    price_of: Callable[[float], float],
    rootless_past_first: tuple[bool, bool] = (False, False),
) -> Boundary:
    """`find_boundary` over stops already placed around the mark; `rootless_past_first` (below, above) lets
    a caller that holds bounds on g skip segments it has shown to hold no root."""
    u_mark = stops.u_mark
    here = terms_at(u_mark)
    past = here.at(u_mark) <= 0.0
    roots = [
        root
        for side, skip in ((stops.below, rootless_past_first[0]), (stops.above, rootless_past_first[1]))
        if (root := _first_root(terms_at, side, u_mark, here, skip)) is not None
    ]
    if not roots:
        return Boundary(None, past=past, reason=no_root_reason(here.slope == 0.0 and stops.flat))
    mark = price_of(u_mark)
    return Boundary(min(roots, key=lambda root: abs(price_of(root) - mark)), past=past)


def affine_boundary(terms: Affine, u_mark: float) -> Boundary:
    """`find_boundary` for a g that is one affine piece everywhere (no breakpoints), in closed form.

    The walk would test the piece's one root against [0, mark] and then [mark, ∞); either way the root it keeps
    is that number, so it is the answer wherever it lies at a positive, finite u.
    """
    root = segment_root(terms, u_mark, 0.0)
    if root is None:
        root = segment_root(terms, u_mark, math.inf)
    past = terms.at(u_mark) <= 0.0
    if root is None:
        return Boundary(None, past=past, reason=no_root_reason(terms.slope == 0.0))
    return Boundary(root, past=past)


def no_root_reason(flat: bool) -> str:
    if flat:
        return "the margin balance does not move with this price"
    return "the margin covers any move of this price"
