"""Each leg's distance to liquidation over the last hour, for the status page's sparklines (pure: the caller
gives the time).

A point is kept at most every `spacing_s` (30 s: 120 points an hour, a few KB per leg whatever the mark rate);
the newest figure always replaces the last point within that spacing, so the line ends at the present. A leg's
history goes when it closes. The bounding is `daemon.core.trail.Trail`'s, shared with the incident charts.
"""

from __future__ import annotations

from daemon.core.trail import SampledTrail, Trail
from daemon.core.view import AccountView, leg_keys

LegId = tuple[str, str]  # (symbol, side)


class DistanceHistory:
    def __init__(self, window_s: float = 3600.0, spacing_s: float = 30.0) -> None:
        self.window_s = window_s
        self.spacing_s = spacing_s
        # Offered every step's view; the figures are read from it at most every spacing (and when read).
        self._trail: SampledTrail[LegId, float | None, AccountView] = SampledTrail(
            Trail(window_s, spacing_s), _distances, leg_keys
        )

    def record(self, now: float, view: AccountView) -> None:
        self._trail.offer(now, view)

    def due(self, now: float) -> bool:
        """Whether a view offered at `now` would make a point (see `SampledTrail.due`)."""
        return self._trail.due(now)

    def series(self, symbol: str, side: str) -> list[tuple[float, float | None]]:
        return self._trail.series((symbol, side))


def _distances(view: AccountView) -> dict[LegId, float | None]:
    return {
        (leg.key[0], leg.key[1].value): (leg.risk.distance_to_liquidation if leg.risk is not None else None)
        for leg in view.legs
    }
