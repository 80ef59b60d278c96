"""What an operator's Prometheus sees of one account: per-leg figures that exist only while known and held,
and a stream's outages counted once each, however long they last."""

from __future__ import annotations

from prometheus_client import generate_latest

from daemon.app.account_metrics import AccountMetrics
from daemon.app.http import Metrics
from daemon.core.events import Freshness
from tests.unit.account_feed import (
    ACCOUNT,
    BTC,
    ETH,
    LIQUIDATION,
    Feed,
    closed,
    isolated_long,
    mark,
    snapshot,
    stream,
)


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    value = metrics.registry.get_sample_value(name, {"account": ACCOUNT, **labels})
    return value


def _publish(feed: Feed, gauges: AccountMetrics) -> None:
    gauges.publish(feed.state, feed.view(), {"positions": 1.5}, lambda _symbol: 0.25)


def test_each_held_leg_has_its_figures_and_a_closed_one_leaves_no_series_behind() -> None:
    metrics = Metrics()
    gauges = AccountMetrics(metrics, ACCOUNT)
    feed = Feed()
    feed.step(
        1.0, snapshot(1.0, isolated_long(BTC), isolated_long(ETH)), mark(1.0, 100.0), mark(1.0, 100.0, ETH)
    )
    _publish(feed, gauges)
    btc = {"symbol": BTC, "side": "long"}
    assert _sample(metrics, "marginguard_leg_liquidation_price", **btc) == LIQUIDATION
    distance = _sample(metrics, "marginguard_leg_distance_to_liquidation", **btc)
    assert distance is not None and abs(distance - (100.0 - LIQUIDATION) / 100.0) < 1e-12
    assert _sample(metrics, "marginguard_leg_margin_ratio", symbol=ETH, side="long") is not None

    feed.step(2.0, closed(2.0, ETH))
    _publish(feed, gauges)
    assert _sample(metrics, "marginguard_leg_margin_ratio", symbol=ETH, side="long") is None
    assert _sample(metrics, "marginguard_leg_liquidation_price", **btc) == LIQUIDATION
    assert b"ETH" not in generate_latest(metrics.registry).split(b"marginguard_leg_")[-1]


def test_a_leg_whose_figures_are_unknown_has_no_series_rather_than_a_reassuring_number() -> None:
    metrics = Metrics()
    gauges = AccountMetrics(metrics, ACCOUNT)
    feed = Feed()
    sol = "SOL/USDT:USDT"  # no maintenance tiers known for it
    feed.step(1.0, snapshot(1.0, isolated_long(sol)), mark(1.0, 100.0, sol))
    _publish(feed, gauges)
    assert feed.view().legs[0].risk is None
    for name in ("distance_to_liquidation", "margin_ratio", "liquidation_price"):
        assert _sample(metrics, f"marginguard_leg_{name}", symbol=sol, side="long") is None
    assert _sample(metrics, "marginguard_legs_unknown") == 1.0


def test_an_outage_is_counted_once_however_many_steps_it_lasts() -> None:
    metrics = Metrics()
    gauges = AccountMetrics(metrics, ACCOUNT)
    feed = Feed()
    feed.step(
        1.0, snapshot(1.0, isolated_long(BTC)), mark(1.0, 100.0), stream(1.0, "positions", Freshness.FRESH)
    )
    _publish(feed, gauges)
    for now in (2.0, 3.0, 4.0):  # down for three steps: one outage
        feed.step(now, stream(now, "positions", Freshness.DOWN, "closed"))
        _publish(feed, gauges)
    feed.step(5.0, stream(5.0, "positions", Freshness.FRESH))
    _publish(feed, gauges)
    feed.step(6.0, stream(6.0, "positions", Freshness.STALE, "silent"))
    _publish(feed, gauges)
    assert _sample(metrics, "marginguard_stream_outages_total", stream="positions") == 2.0
    assert _sample(metrics, "marginguard_stream_stale", stream="positions") == 1.0


def test_a_leg_closed_and_opened_again_has_its_series_written_again() -> None:
    # Gauges are written only where a value changed, through labelled series kept between writes: a series
    # removed with its leg must come back (not stay behind a kept, detached one) when the leg returns.
    metrics = Metrics()
    gauges = AccountMetrics(metrics, ACCOUNT)
    feed = Feed()
    feed.step(1.0, snapshot(1.0, isolated_long(BTC)), mark(1.0, 100.0))
    _publish(feed, gauges)
    btc = {"symbol": BTC, "side": "long"}
    feed.step(2.0, closed(2.0, BTC))
    _publish(feed, gauges)
    assert _sample(metrics, "marginguard_leg_liquidation_price", **btc) is None
    assert _sample(metrics, "marginguard_positions") == 0.0
    assert _sample(metrics, "marginguard_min_distance_to_liquidation") is None
    feed.step(3.0, snapshot(3.0, isolated_long(BTC)), mark(3.0, 100.0))
    _publish(feed, gauges)
    assert _sample(metrics, "marginguard_leg_liquidation_price", **btc) == LIQUIDATION
    assert _sample(metrics, "marginguard_positions") == 1.0
    assert _sample(metrics, "marginguard_min_distance_to_liquidation") is not None
