"""What an incident chart shows: a leg's recent mark and liquidation prices, bounded in memory, in time order, within
its window, ending at the alert; the alerts and top-ups on the same leg as markers; a chart only for the messages
worth one."""

from __future__ import annotations

import itertools
import subprocess
import sys
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.core.incident import (
    CHART_SPACING_S,
    CHART_WINDOW_S,
    MAX_MARKERS_PER_LEG,
    MarkerKind,
    MarkerLog,
    PricePoint,
    incident_chart,
    marker_for,
    price_points,
    price_trail,
    wants_chart,
)
from daemon.core.trail import Trail
from tests.unit.account_feed import BTC, ETH, LIQUIDATION, Feed, closed, isolated_long, mark, snapshot

LEG = (BTC, "long")


def alert(
    ts: float,
    kind: AlertKind = AlertKind.LIQUIDATION_RISK,
    severity: Severity = Severity.CRITICAL,
    *,
    resolved: bool = False,
    symbol: str | None = BTC,
    action: str | None = None,
) -> Alert:
    side = "long" if symbol else None
    return Alert(
        identity=AlertIdentity("main", symbol, side, kind.value),
        kind=kind,
        severity=severity,
        resolved=resolved,
        ts=ts,
        account="main",
        exchange="binanceusdm",
        symbol=symbol,
        side=side,
        contracts=1.0,
        mark_price=95.0,
        liquidation_price=LIQUIDATION,
        distance=0.0431,
        margin_ratio=0.5,
        action=action,
        summary="s",
        sequence=1,
    )


# ---- the trail: bounded, ordered, within its window, ending at the present ----


@given(
    st.lists(st.floats(0.01, 60.0), min_size=1, max_size=600),
    st.floats(1.0, 30.0),
    st.floats(60.0, 1800.0),
)
def test_a_trail_is_bounded_ordered_within_its_window_and_ends_at_the_present(
    gaps: list[float], spacing: float, window: float
) -> None:
    trail: Trail[str, int] = Trail(window, spacing)
    now = 0.0
    for i, gap in enumerate(gaps):
        now += gap
        trail.record(now, {"leg": i})
    series = trail.series("leg")
    times = [t for t, _v in series]
    assert series[-1] == (now, len(gaps) - 1)  # the newest figure, at the present
    assert all(a < b for a, b in itertools.pairwise(times))
    assert all(b - a >= spacing for a, b in itertools.pairwise(times[:-1]))  # the live end aside
    assert now - times[0] <= window
    assert len(series) <= window / spacing + 2


def test_a_trail_ignores_a_clock_that_steps_back() -> None:
    trail: Trail[str, int] = Trail(900.0, 5.0)
    trail.record(100.0, {"leg": 1})
    trail.record(90.0, {"leg": 2})
    assert trail.series("leg") == [(100.0, 1)]


def test_a_gone_leg_is_kept_until_it_leaves_the_window_only_when_asked() -> None:
    forgetful: Trail[str, int] = Trail(900.0, 5.0)
    keeping: Trail[str, int] = Trail(900.0, 5.0, keep_gone=True)
    for trail in (forgetful, keeping):
        trail.record(0.0, {"btc": 1, "eth": 1})
        trail.record(10.0, {"btc": 2})
    assert forgetful.series("eth") == [] and keeping.series("eth") == [(0.0, 1)]
    keeping.record(901.0, {"btc": 3})
    assert keeping.series("eth") == [] and keeping.keys() == ["btc"]


# ---- the chart's data ----


def test_price_points_are_the_models_figures_and_the_exchanges_stated_price() -> None:
    feed = Feed()
    feed.step(0.0, snapshot(0.0, isolated_long(BTC, exchange_liquidation_price=91.5)), mark(0.0, 95.0))
    (point,) = price_points(feed.view()).values()
    assert point.mark == 95.0 and point.exchange_liquidation == 91.5
    assert point.liquidation is not None and abs(point.liquidation - LIQUIDATION) < 1e-9


def test_a_liquidated_legs_last_minutes_are_still_there_to_draw() -> None:
    feed, trail = Feed(), price_trail()
    feed.step(
        0.0, snapshot(0.0, isolated_long(BTC), isolated_long(ETH)), mark(0.0, 95.0), mark(0.0, 99.0, ETH)
    )
    trail.record(0.0, price_points(feed.view()))
    feed.step(20.0, closed(20.0, BTC))
    trail.record(20.0, price_points(feed.view()))
    chart = incident_chart(alert(25.0, AlertKind.LIQUIDATED), trail.series(LEG), [], now=25.0)
    assert chart is not None and [p.mark for _t, p in chart.points] == [95.0]
    assert chart.title == "main BTC/USDT:USDT long: liquidated"


@given(
    st.lists(
        st.tuples(st.floats(0.0, 5000.0), st.one_of(st.none(), st.floats(1.0, 1e6))), min_size=0, max_size=80
    ),
    st.lists(st.floats(0.0, 5000.0), max_size=60),
    st.floats(0.0, 5000.0),
)
def test_a_chart_shows_only_its_window_in_time_order(
    points: list[tuple[float, float | None]], marker_times: list[float], now: float
) -> None:
    trail = [(t, PricePoint(m, 90.0, None)) for t, m in points]
    log = MarkerLog(window_s=10_000.0)
    for t in sorted(marker_times):
        log.note(alert(t, severity=Severity.WARNING))
    chart = incident_chart(alert(now), trail, log.markers(LEG), now)
    if not any(m is not None and now - CHART_WINDOW_S <= t <= now for t, m in points):
        assert chart is None  # nothing to draw: the message goes without a picture
        return
    assert chart is not None
    times = [t for t, _p in chart.points] + [m.t for m in chart.markers]
    assert all(now - CHART_WINDOW_S <= t <= now for t in times)
    assert chart.start == min(times) and chart.end == now
    assert [t for t, _p in chart.points] == sorted(t for t, _p in chart.points)
    assert [m.t for m in chart.markers] == sorted(m.t for m in chart.markers)
    assert len(chart.markers) <= MAX_MARKERS_PER_LEG


def test_markers_say_what_happened_to_the_leg() -> None:
    warning = marker_for(alert(1.0, severity=Severity.WARNING))
    topup = marker_for(alert(2.0, AlertKind.TOPUP_DONE, Severity.INFO, action="added 291.143 USDT margin"))
    refused = marker_for(alert(3.0, AlertKind.TOPUP_REFUSED, Severity.WARNING, action="refused: cap reached"))
    clear = marker_for(alert(4.0, severity=Severity.INFO, resolved=True))
    assert warning is not None and (warning.kind, warning.label) == (MarkerKind.WARNING, "warning 4.31%")
    assert topup is not None and (topup.kind, topup.label) == (MarkerKind.TOPUP, "added 291.143 USDT margin")
    assert refused is not None and refused.kind is MarkerKind.TOPUP_TROUBLE
    assert clear is not None and clear.kind is MarkerKind.CLEAR
    assert marker_for(alert(5.0, AlertKind.STALE_DATA, symbol=None)) is None
    long_action = marker_for(alert(6.0, AlertKind.TOPUP_DONE, Severity.INFO, action="x" * 100))
    assert long_action is not None and len(long_action.label) <= 32


@given(st.lists(st.tuples(st.sampled_from([BTC, ETH, "SOL/USDT:USDT"]), st.floats(0.0, 100.0)), max_size=300))
def test_the_marker_log_stays_bounded_per_leg(notes: list[tuple[str, float]]) -> None:
    log = MarkerLog()
    now = 0.0
    for symbol, gap in notes:
        now += gap
        log.note(alert(now, severity=Severity.WARNING, symbol=symbol))
    assert len(log) <= 3 * MAX_MARKERS_PER_LEG
    for symbol in (BTC, ETH, "SOL/USDT:USDT"):
        assert all(now - m.t <= CHART_WINDOW_S for m in log.markers((symbol, "long")))


def test_charts_are_for_critical_position_alerts_and_liquidations() -> None:
    assert wants_chart(alert(0.0))
    assert wants_chart(alert(0.0, AlertKind.LIQUIDATED, Severity.WARNING))  # liquidated, cause unknown
    assert not wants_chart(alert(0.0, severity=Severity.WARNING))
    assert not wants_chart(alert(0.0, severity=Severity.INFO, resolved=True))
    assert not wants_chart(alert(0.0, AlertKind.STALE_DATA, symbol=None))
    assert not wants_chart(replace(alert(0.0), kind=AlertKind.JOURNAL_FAILURE, symbol=None, side=None))


def test_the_trail_spacing_bounds_a_legs_memory() -> None:
    trail = price_trail()
    for second in range(3600):
        trail.record(float(second), {LEG: PricePoint(100.0, 90.0, 90.5)})
    assert len(trail.series(LEG)) <= CHART_WINDOW_S / CHART_SPACING_S + 2


def test_matplotlib_is_imported_only_to_draw_a_chart() -> None:
    """`marginguard calc`, the other commands and the daemon's start-up never pay matplotlib's import."""
    code = (
        "import sys, daemon.app.cli, daemon.app.supervisor, daemon.app.calc_command, daemon.app.incident_charts;"
        "assert 'matplotlib' not in sys.modules, 'imported at start-up'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
