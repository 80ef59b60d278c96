"""Capped, jittered retry delays as a pure schedule: the caller supplies the randomness and does the sleeping.

"Full jitter" (a uniform draw between 0 and the exponential cap) spreads reconnecting clients apart so that a
restarted exchange gateway is not hit by every client at the same instant; the cap keeps a long outage from
growing the delay without bound, and a floor keeps a failing loop from spinning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.5  # seconds: the cap of the first retry
    factor: float = 2.0
    cap: float = 30.0  # seconds: no retry waits longer than this
    floor: float = 0.05  # seconds: no retry comes sooner than this (no tight loops)

    def delay(self, attempt: int, draw: float) -> float:
        """The delay before retry number `attempt` (0-based), given a uniform draw in [0, 1)."""
        ceiling = min(self.cap, self.initial * self.factor**attempt)
        return max(self.floor, ceiling * draw)

    def delays(self, draws: Callable[[], float]) -> Iterator[float]:
        """An endless schedule, one delay per retry, drawing from `draws` (e.g. `random.random`)."""
        attempt = 0
        while True:
            yield self.delay(attempt, draws())
            attempt += 1
