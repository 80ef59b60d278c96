"""A bounded recent past per key: at most a point every `spacing_s` over the last `window_s` (pure: the caller
gives the time).

The status page's sparklines (each leg's distance, 30 s apart over an hour) and the incident charts (each leg's
mark and liquidation prices, a few seconds apart over 15 minutes) are both this. However fast figures arrive, a
key holds at most `window_s / spacing_s + 2` points, so memory per leg is fixed whatever the mark rate and
however many accounts run. The newest figure always replaces the last point while it is within `spacing_s` of
the point before, so a series ends at the present.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
S = TypeVar("S")


class Trail(Generic[K, V]):
    """`record(now, {key: value})` for every key present now; `series(key)` -> [(t, value)], oldest first.

    `keep_gone`: a key missing from a record keeps its points until they leave the window (an incident chart is
    drawn after its leg is gone: a liquidation is told once the exchange's records say so); otherwise it is
    forgotten at once (a closed leg leaves no sparkline).
    """

    def __init__(self, window_s: float, spacing_s: float, *, keep_gone: bool = False) -> None:
        if not (window_s > 0 and spacing_s > 0):
            raise ValueError("window_s and spacing_s must be positive")
        self.window_s = window_s
        self.spacing_s = spacing_s
        self.keep_gone = keep_gone
        # A hard ceiling as well as the window: memory stays bounded even if the clock jumps about.
        self.max_points = math.ceil(window_s / spacing_s) + 2
        self._series: dict[K, deque[tuple[float, V]]] = {}

    def record(self, now: float, values: Mapping[K, V]) -> None:
        for key, value in values.items():
            series = self._series.setdefault(key, deque(maxlen=self.max_points))
            if series and now < series[-1][0]:
                continue  # never out of order: a clock that stepped back waits until it passes the last point
            if len(series) >= 2 and series[-1][0] - series[-2][0] < self.spacing_s:
                series[-1] = (now, value)  # the live end moves on until it is a spacing past the point before
            else:
                series.append((now, value))  # the live end stays as a point; the new figure is the live end
        for key in list(self._series):
            series = self._series[key]
            if key not in values and not self.keep_gone:
                del self._series[key]
                continue
            while series and now - series[0][0] > self.window_s:
                series.popleft()
            if not series:
                del self._series[key]

    def series(self, key: K) -> list[tuple[float, V]]:
        return list(self._series.get(key, ()))

    def keys(self) -> list[K]:
        return list(self._series)


class SampledTrail(Generic[K, V, S]):
    """A `Trail` offered a source (an account's view) at every step and turning it into points only when they can
    show: at most once a spacing, when the source's keys change (the last figures of a leg that goes are kept, as
    are the first of one that comes), and before every read (a series still ends at the present). Offering is
    O(keys) comparisons; `points` (a dict of figures per leg) runs a few times a spacing, not at every mark.
    """

    def __init__(
        self, trail: Trail[K, V], points: Callable[[S], Mapping[K, V]], keys: Callable[[S], object]
    ) -> None:
        self.trail = trail
        self._points = points
        self._keys = keys
        self._pending: tuple[float, S, object] | None = None  # (time, source, its keys) not yet a point
        self._recorded_at = -math.inf

    def offer(self, now: float, source: S) -> None:
        keys = self._keys(source)
        if self._pending is not None and self._pending[2] != keys:
            self._record()  # the last figures before a leg went (or came)
        self._pending = (now, source, keys)
        if now - self._recorded_at >= self.trail.spacing_s:
            self._record()

    def series(self, key: K) -> list[tuple[float, V]]:
        self._record()
        return self.trail.series(key)

    def due(self, now: float) -> bool:
        """Whether an offer at `now` would make a point: a caller that skips offers between points (figures it
        did not compute) offers again by then."""
        return now - self._recorded_at >= self.trail.spacing_s

    def _record(self) -> None:
        if self._pending is None:
            return
        now, source, _keys = self._pending
        self._pending = None
        self.trail.record(now, self._points(source))
        self._recorded_at = now
