"""Periodic reconciliations are spread: accounts started together do not reconcile together for ever, and
none waits longer than `reconcile_every_s`."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from daemon.exchanges.feed_settings import (
    FIRST_RECONCILE_SPREAD,
    RECONCILE_SPREAD,
    reconcile_after_s,
)

draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
intervals = st.floats(min_value=0.1, max_value=3_600.0)


@given(every_s=intervals, draw=draws, first=st.booleans())
def test_never_later_than_the_interval_and_never_sooner_than_its_spread(
    every_s: float, draw: float, first: bool
) -> None:
    spread = FIRST_RECONCILE_SPREAD if first else RECONCILE_SPREAD
    after = reconcile_after_s(every_s, first, draw)
    assert every_s * (1.0 - spread) <= after + 1e-9
    assert after <= every_s


def test_accounts_started_together_reconcile_apart() -> None:
    """1,000 accounts whose snapshots were taken in the same instant (the worst case): from their first periodic
    reconciliation on, no tenth of the interval holds more than a sixth of them (without the spread: all of
    them, every time), and they span most of it."""
    rng = random.Random(7)
    every_s = 60.0
    due = [reconcile_after_s(every_s, True, rng.random()) for _ in range(1_000)]
    for _period in range(3):
        tenths = [0] * 10
        for t in due:
            tenths[int((t % every_s) / every_s * 10)] += 1
        assert max(tenths) <= 1_000 / 6, tenths
        assert sum(1 for n in tenths if n) >= 7, tenths
        due = [t + reconcile_after_s(every_s, False, rng.random()) for t in due]
