"""The status page's sparklines: each leg's last hour at most a point every 30 s, ending at the present figure,
and nothing kept of a leg once it closed."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from daemon.app.distance_history import DistanceHistory
from tests.unit.account_feed import BTC, ETH, Feed, closed, isolated_long, mark, mark_at, snapshot


@given(st.lists(st.floats(0.1, 20.0), min_size=1, max_size=400))
def test_points_are_a_spacing_apart_within_the_window_and_end_at_the_present(gaps: list[float]) -> None:
    feed = Feed()
    feed.step(0.0, snapshot(0.0, isolated_long(BTC)), mark(0.0, 100.0))
    history = DistanceHistory(window_s=3600.0, spacing_s=30.0)
    now = 0.0
    for i, gap in enumerate(gaps):
        now += gap
        feed.step(now, mark(now, mark_at(0.02 + (i % 7) / 100)))
        history.record(now, feed.view())
    series = history.series(BTC, "long")
    times = [t for t, _d in series]
    assert times[-1] == now and series[-1][1] == feed.view().legs[0].risk.distance_to_liquidation  # type: ignore[union-attr]
    assert all(b - a >= 30.0 for a, b in itertools.pairwise(times[:-1]))  # the live end aside
    assert now - times[0] <= 3600.0
    assert len(series) <= 3600.0 / 30.0 + 2


def test_a_closed_leg_leaves_no_history() -> None:
    feed = Feed()
    history = DistanceHistory()
    feed.step(
        0.0, snapshot(0.0, isolated_long(BTC), isolated_long(ETH)), mark(0.0, 100.0), mark(0.0, 100.0, ETH)
    )
    history.record(0.0, feed.view())
    feed.step(60.0, closed(60.0, ETH))
    history.record(60.0, feed.view())
    assert history.series(ETH, "long") == [] and len(history.series(BTC, "long")) == 2
