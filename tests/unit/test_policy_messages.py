"""Messages that explain themselves: a risk alert says which threshold it crossed and its value, and how big
the position is (base units and notional), so a reader needs nothing else to judge it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.core.alerts import AlertKind
from tests.unit.account_feed import BTC, Feed, isolated_long, mark, mark_at, prompt, snapshot


def _risk_alerts(feed: Feed, now: float, distance: float) -> list[str]:
    return [a.summary for a in feed.at_distance(now, distance) if a.kind is AlertKind.LIQUIDATION_RISK]


def test_a_warning_names_the_threshold_it_crossed_and_the_position_s_size() -> None:
    feed = Feed(
        thresholds=prompt(
            warning_distance=0.10,
            critical_distance=0.05,
            warning_margin_ratio=None,
            critical_margin_ratio=None,
        )
    )
    feed.step(0.0, snapshot(0.0, isolated_long(BTC)), mark(0.0, 150.0))
    [warning] = _risk_alerts(feed, 1.0, 0.08)
    assert "warning (distance 8.00% <= warning 10.00%)" in warning, warning
    assert f"size 1 ({mark_at(0.08):.8g} notional)" in warning, warning  # 1 BTC at the mark
    [critical] = _risk_alerts(feed, 2.0, 0.03)
    assert "critical (distance 3.00% <= critical 5.00%)" in critical, critical


@given(ratio_threshold=st.floats(0.05, 0.9), excess=st.floats(0.001, 0.09))
def test_a_margin_ratio_crossing_is_named_as_such(ratio_threshold: float, excess: float) -> None:
    """Whatever the threshold, an isolated leg whose margin ratio passes it (and whose distance does not) is told
    by its margin ratio, with the threshold's value."""
    feed = Feed(
        thresholds=prompt(
            warning_distance=None,
            critical_distance=None,
            warning_margin_ratio=ratio_threshold,
            critical_margin_ratio=None,
        )
    )
    feed.step(0.0, snapshot(0.0, isolated_long(BTC)), mark(0.0, 1_000.0))
    # Reference leg: margin balance 10 + (P - 100), requirement 0.01 P: the ratio at mark P.
    ratio = min(0.99, ratio_threshold + excess)
    price = (90.0 * ratio) / (ratio - 0.01) if ratio > 0.01 else 1_000.0
    alerts = [a.summary for a in feed.step(1.0, mark(1.0, price)) if a.kind is AlertKind.LIQUIDATION_RISK]
    assert alerts, (ratio_threshold, ratio, price)
    assert f">= warning {ratio_threshold * 100:.2f}%" in alerts[0], alerts[0]
    assert alerts[0].split("(", 1)[1].startswith("margin ratio "), alerts[0]
