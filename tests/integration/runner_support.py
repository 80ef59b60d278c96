"""What a runner reads of its surroundings, for tests that drive `AccountRunner` without a real connector: a clock
the test moves, a feed with no private streams, an exchange's settle currency."""

from __future__ import annotations

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Feed:
    def stream_ages(self, now: float) -> dict[str, float]:
        return {}


class Quirks:
    settle = "USDT"
