"""The policy's shortcut for a track at rest is exactly the full step.

Most legs at most marks are far from every threshold: the policy then only moves the track's figures
(`Track.rested`) instead of stepping its crossings and asking whether a message is due. For any track and any
step, when the track is `at_rest` and the figures stay clear, the shortcut must give the very track a step gives,
and that step must leave nothing to send.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.alerts import AlertIdentity, AlertKind
from daemon.core.policy_memory import Crossing, Figures, Level, Track

crossings = st.builds(Crossing, since=st.none() | st.floats(0.0, 1000.0, allow_nan=False), held=st.booleans())
maybe_float = st.none() | st.floats(allow_nan=False, allow_infinity=False)
figures = st.builds(
    Figures,
    contracts=maybe_float,
    mark_price=maybe_float,
    liquidation_price=maybe_float,
    distance=maybe_float,
    margin_ratio=maybe_float,
    quantity=maybe_float,
    notional=maybe_float,
)
tracks = st.builds(
    Track,
    identity=st.just(AlertIdentity("acct", "BTC/USDT:USDT", "long", "liquidation_risk")),
    kind=st.just(AlertKind.LIQUIDATION_RISK),
    warning=crossings,
    critical=crossings,
    notified=st.sampled_from(Level),
    last_sent=st.none() | st.floats(0.0, 1000.0),
    episode=st.integers(0, 5),
    figures=figures,
)


@settings(max_examples=400, deadline=None)
@given(
    track=tracks,
    warning=st.booleans(),
    critical=st.booleans(),
    now=st.floats(0.0, 2000.0),
    min_duration=st.sampled_from([0.0, 1.0, 30.0]),
    new_figures=figures,
)
def test_a_track_at_rest_that_stays_clear_only_moves_its_figures(
    track: Track, warning: bool, critical: bool, now: float, min_duration: float, new_figures: Figures
) -> None:
    stepped = track.step(warning, critical, now, min_duration, new_figures)
    if track.at_rest and not (warning or critical):
        assert track.rested(new_figures) == stepped
        assert stepped.level is Level.OK and stepped.notified is Level.OK  # nothing due, nothing repeated
    elif track.at_rest:
        assert stepped.warning.since == now  # a crossing starts: the full step is needed


def test_a_track_told_of_an_alert_is_never_at_rest() -> None:
    # Receivers still hear the alert: its all-clear must come from the full step.
    track = Track(AlertIdentity("acct", None, None, "account_margin"), AlertKind.ACCOUNT_MARGIN)
    assert track.at_rest
    for notified in (Level.WARNING, Level.CRITICAL):
        assert not Track(track.identity, track.kind, notified=notified).at_rest
    assert not Track(track.identity, track.kind, warning=Crossing(since=5.0)).at_rest
    assert not Track(track.identity, track.kind, critical=Crossing(held=True)).at_rest
