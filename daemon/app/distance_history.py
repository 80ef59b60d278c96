"""Each leg's distance to liquidation over the last hour, for the status page's sparklines (pure: the caller
gives the time).

A point is kept at most every `spacing_s` (30 s: 120 points an hour, a few KB per leg whatever the mark rate);
the newest figure always replaces the last point within that spacing, so the line ends at the present. A leg's
history goes when it closes.
"""

from __future__ import annotations

from collections import deque

from daemon.core.view import AccountView

LegId = tuple[str, str]  # (symbol, side)


class DistanceHistory:
    def __init__(self, window_s: float = 3600.0, spacing_s: float = 30.0) -> None:
        self.window_s = window_s
        self.spacing_s = spacing_s
        self._series: dict[LegId, deque[tuple[float, float | None]]] = {}

    def record(self, now: float, view: AccountView) -> None:
        held = set()
        for leg in view.legs:
            key = (leg.key[0], leg.key[1].value)
            held.add(key)
            distance = leg.risk.distance_to_liquidation if leg.risk is not None else None
            series = self._series.setdefault(key, deque())
            if len(series) >= 2 and series[-1][0] - series[-2][0] < self.spacing_s:
                series[-1] = (
                    now,
                    distance,
                )  # the live end moves on until it is a spacing past the point before
            else:
                series.append(
                    (now, distance)
                )  # the live end stays as a point; the new figure is the live end
            while series and now - series[0][0] > self.window_s:
                series.popleft()
        for gone in set(self._series) - held:
            del self._series[gone]

    def series(self, symbol: str, side: str) -> list[tuple[float, float | None]]:
        return list(self._series.get((symbol, side), ()))
