"""The alert policy, driven by feed events through the real state and view (pure, no event loop).

Unless a test says otherwise the thresholds are the defaults (`prompt`: without a minimum duration): warning at 10 %
from liquidation, critical at 5 %, hysteresis 1 percentage point, repeat every 900 s. The reference leg (see account_feed)
is an isolated long whose liquidation price is 90.909; `at_distance(t, d)` moves its mark to d away from it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.alerts import AlertIdentity, AlertKind, Severity
from daemon.core.events import Freshness, StreamHealth
from daemon.core.policy import risk_identity
from daemon.core.policy_rules import RuleOverride, RuleSet, Silence, Thresholds
from daemon.core.types import Side
from tests.unit.account_feed import (
    ACCOUNT,
    BTC,
    ETH,
    LIQUIDATION,
    Feed,
    balance,
    brief,
    closed,
    cross_long,
    isolated_long,
    mark,
    mark_at,
    prompt,
    snapshot,
    stream,
)

RISK = "liquidation_risk"


def opened(feed: Feed, distance: float, now: float = 0.0) -> list[tuple[str, str, bool]]:
    """Open the reference leg with its mark `distance` from liquidation; what the first decision sends."""
    return brief(feed.step(now, snapshot(now, isolated_long()), mark(now, mark_at(distance))))


@pytest.mark.parametrize(
    ("distance", "expected"),
    [
        (0.20, []),  # 20 % away: beyond both thresholds, nothing to say
        (0.11, []),  # 11 %: still outside the 10 % warning threshold
        (0.09, [(RISK, "warning", False)]),  # 9 % <= 10 %
        (0.04, [(RISK, "critical", False)]),  # 4 % <= 5 %: critical supersedes warning, one message
        (-0.01, [(RISK, "critical", False)]),  # past liquidation
    ],
)
def test_distance_thresholds_pick_one_severity(
    distance: float, expected: list[tuple[str, str, bool]]
) -> None:
    assert opened(Feed(), distance) == expected


def test_the_message_carries_the_figures_a_person_needs() -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()))
    (alert,) = feed.at_distance(1, 0.04)
    assert (alert.kind, alert.account, alert.exchange, alert.symbol, alert.side) == (
        AlertKind.LIQUIDATION_RISK,
        ACCOUNT,
        "binance",
        BTC,
        "long",
    )
    assert alert.contracts == 1.0
    assert alert.liquidation_price == pytest.approx(LIQUIDATION)
    assert alert.mark_price == pytest.approx(mark_at(0.04))  # 90.909 / 0.96 = 94.697
    assert alert.distance == pytest.approx(0.04)
    assert alert.margin_ratio is not None and 0.0 < alert.margin_ratio < 1.0
    assert "4.00% from liquidation" in alert.summary
    assert alert.ts == 1
    assert alert.identity == risk_identity(ACCOUNT, BTC, Side.LONG)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # Warning enters at 10 % and is left only beyond 10 % + 1 point = 11 %.
        ([0.09, 0.105, 0.108, 0.115], [["warning"], [], [], ["resolved"]]),
        # Critical enters at 5 % and is left beyond 6 %: 5.5 % stays critical, 6.5 % is a warning again.
        ([0.04, 0.055, 0.065, 0.105, 0.12], [["critical"], [], ["warning"], [], ["resolved"]]),
        # Hovering just outside the warning threshold never fires.
        ([0.101, 0.1005, 0.1009], [[], [], []]),
    ],
)
def test_hysteresis_keeps_a_level_until_the_figure_is_clear_of_it(
    path: list[float], expected: list[list[str]]
) -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()))
    seen = []
    for t, distance in enumerate(path, start=1):
        seen.append(["resolved" if a.resolved else a.severity.value for a in feed.at_distance(t, distance)])
    assert seen == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # With a 30 s minimum duration, a warning that starts at t=0 fires at t=30, not before.
        ([(0, 0.09), (10, 0.09), (29, 0.09), (30, 0.09), (31, 0.09)], [[], [], [], ["warning"], []]),
        # A dip back to safety at t=20 restarts the clock: it fires 30 s after t=40, at t=70.
        ([(0, 0.09), (20, 0.2), (40, 0.09), (60, 0.09), (70, 0.09)], [[], [], [], [], ["warning"]]),
        # Critical must hold 30 s too, but the warning that began at t=0 fires at t=30 meanwhile, then the
        # critical that began at t=20 fires at t=50.
        ([(0, 0.09), (20, 0.04), (30, 0.04), (50, 0.04)], [[], [], ["warning"], ["critical"]]),
        # Clearing is reported at once (no minimum duration on the way out).
        ([(0, 0.09), (30, 0.09), (31, 0.2)], [[], ["warning"], ["resolved"]]),
    ],
)
def test_minimum_duration_delays_firing(path: list[tuple[float, float]], expected: list[list[str]]) -> None:
    feed = Feed(prompt(min_duration_s=30.0))
    feed.step(0, snapshot(0, isolated_long()))
    seen = []
    for now, distance in path:
        seen.append(["resolved" if a.resolved else a.severity.value for a in feed.at_distance(now, distance)])
    assert seen == expected


def test_a_firing_alert_repeats_every_interval_and_counts_its_messages() -> None:
    feed = Feed(prompt(repeat_interval_s=300.0))
    assert [a.sequence for a in feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.09)))] == [1]
    assert feed.at_distance(100, 0.09) == []  # 100 s < 300 s
    assert feed.decide(299) == []
    repeated = feed.decide(300)  # a tick with no new event: 300 s since the last message
    assert [(a.severity, a.resolved, a.sequence) for a in repeated] == [(Severity.WARNING, False, 2)]
    assert feed.decide(599) == []  # the interval counts from the repeat, not from the first message
    assert [a.sequence for a in feed.decide(600)] == [3]
    assert [(a.resolved, a.sequence) for a in feed.at_distance(601, 0.2)] == [(True, 4)]
    assert feed.decide(2000) == []  # nothing repeats once resolved


def test_no_repeats_when_the_interval_is_switched_off() -> None:
    feed = Feed(prompt(repeat_interval_s=None))
    assert opened(feed, 0.04) == [(RISK, "critical", False)]
    assert feed.decide(100_000) == []


def test_escalation_refires_and_de_escalation_warns_instead_of_resolving() -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()))
    steps = [(1, 0.09), (2, 0.04), (3, 0.07), (4, 0.2)]  # warning, critical, back to warning, safe
    seen = [[(a.severity.value, a.resolved, a.sequence) for a in feed.at_distance(t, d)] for t, d in steps]
    assert seen == [
        [("warning", False, 1)],
        [("critical", False, 2)],  # same identity, re-fired at the new severity
        [("warning", False, 3)],  # 7 % is past 5 % + 1 point: down to warning, not a resolve
        [("info", True, 4)],
    ]


def test_margin_ratio_thresholds_fire_on_their_own() -> None:
    # Distances switched off; the isolated leg's own ratio decides. At mark 91.5 (just above liquidation at
    # 90.909) the ratio is maintenance 0.915 over balance 10 + (91.5 - 100) = 1.5, i.e. 61 %.
    feed = Feed(
        prompt(
            warning_distance=None, critical_distance=None, warning_margin_ratio=0.5, critical_margin_ratio=0.7
        )
    )
    assert brief(feed.step(0, snapshot(0, isolated_long()), mark(0, 91.5))) == [(RISK, "warning", False)]
    # At 91.2 the balance is 1.2 and the ratio 0.912 / 1.2 = 76 %: critical.
    assert brief(feed.step(1, mark(1, 91.2))) == [(RISK, "critical", False)]


def test_overrides_apply_from_the_widest_scope_to_the_narrowest() -> None:
    rules = RuleSet(
        Thresholds(warning_distance=0.10),
        (
            RuleOverride(account=ACCOUNT, symbol=BTC, warning_distance=0.30),  # narrowest wins for BTC here
            RuleOverride(symbol=BTC, warning_distance=0.20, repeat_interval_s=None),
            RuleOverride(account=ACCOUNT, warning_distance=0.15, min_duration_s=5.0),
        ),
    )
    btc_here = rules.for_symbol(ACCOUNT, BTC)
    assert (btc_here.warning_distance, btc_here.repeat_interval_s, btc_here.min_duration_s) == (
        0.30,
        None,
        5.0,
    )
    assert rules.for_symbol("other", BTC).warning_distance == 0.20
    assert rules.for_symbol(ACCOUNT, ETH).warning_distance == 0.15
    assert rules.for_symbol("other", ETH).warning_distance == 0.10
    assert rules.for_account(ACCOUNT).min_duration_s == 5.0


def test_a_per_symbol_override_changes_what_fires() -> None:
    # 25 % from liquidation is safe by default, but a warning for BTC when its threshold is 30 %.
    rules = RuleSet(prompt(), (RuleOverride(symbol=BTC, warning_distance=0.30),))
    assert opened(Feed(rule_set=rules), 0.25) == [(RISK, "warning", False)]
    assert opened(Feed(), 0.25) == []


def test_inconsistent_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="critical_distance"):
        Thresholds(warning_distance=0.05, critical_distance=0.10)
    with pytest.raises(ValueError, match="account, a symbol"):
        RuleOverride(warning_distance=0.2)


def test_a_silenced_symbol_sends_nothing_until_the_silence_expires() -> None:
    feed = Feed(silences=[Silence(ACCOUNT, BTC, until=100.0)])
    assert opened(feed, 0.04) == []  # critical, but muted
    assert feed.at_distance(50, 0.04) == []
    # Expired at t=100: the receivers have not heard of the critical yet, so they hear it now.
    assert [(a.severity.value, a.sequence) for a in feed.decide(100)] == [("critical", 1)]


def test_an_episode_that_fires_and_clears_under_a_silence_stays_quiet() -> None:
    feed = Feed(silences=[Silence(ACCOUNT, None, until=100.0)])  # the whole account
    assert opened(feed, 0.04) == []
    assert feed.at_distance(50, 0.2) == []
    assert feed.decide(150) == []  # nothing was told, nothing to resolve
    assert brief(feed.at_distance(160, 0.09)) == [(RISK, "warning", False)]  # a new episode, not muted


def test_a_silence_on_another_symbol_does_not_mute() -> None:
    feed = Feed(silences=[Silence(ACCOUNT, ETH, until=1e12), Silence("other", None, until=1e12)])
    assert opened(feed, 0.04) == [(RISK, "critical", False)]


def test_a_stale_stream_is_critical_until_it_is_fresh_again() -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.3)))
    stale = feed.step(1, stream(1, "positions", Freshness.STALE, "no data for 45 s"))
    assert [(a.kind, a.severity, a.resolved, a.identity.rule) for a in stale] == [
        (AlertKind.STALE_DATA, Severity.CRITICAL, False, "stale_data:positions")
    ]
    assert "no data for 45 s" in stale[0].summary
    recovered = feed.step(3, stream(3, "positions", Freshness.FRESH))
    assert [(a.identity.rule, a.resolved, a.sequence) for a in recovered] == [
        ("stale_data:positions", True, 2)
    ]


def test_a_refused_key_is_an_authentication_failure_until_a_stream_is_fresh_again() -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.3)))
    refused = StreamHealth(
        "account", Freshness.DOWN, 1_000, "stopped: AuthenticationFailed: -2015", refused=True
    )
    alerts = feed.step(1, refused)
    assert [(a.kind, a.severity, a.resolved, a.identity.rule) for a in alerts] == [
        (AlertKind.AUTH_FAILURE, Severity.CRITICAL, False, "auth_failure")
    ]
    assert "NOT being watched" in alerts[0].summary and "-2015" in alerts[0].summary
    # Other streams still reported fresh from before do not clear it while the refusal stands.
    assert feed.step(2, stream(2, "positions", Freshness.FRESH)) == []
    # Replaced key, restarted feed: the account stream is fine again, and the refusal clears.
    cleared = feed.step(3, stream(3, "account", Freshness.FRESH))
    assert [(a.kind, a.resolved) for a in cleared] == [(AlertKind.AUTH_FAILURE, True)]


@pytest.mark.parametrize(
    ("exchange_price", "expected"),
    [
        (LIQUIDATION * 1.003, []),  # 0.3 % apart: within the 0.5 % tolerance
        (LIQUIDATION * 1.05, [("divergence", "warning", False)]),  # 5 % apart
        (LIQUIDATION * 0.95, [("divergence", "warning", False)]),  # 5 % apart the other way
        (0.0, []),  # Binance sends 0 when it has no figure: unknown, not a divergence
        (None, []),  # not given at all
    ],
)
def test_divergence_between_model_and_exchange(exchange_price: float | None, expected: list[object]) -> None:
    feed = Feed()
    leg = isolated_long(exchange_liquidation_price=exchange_price)
    assert brief(feed.step(0, snapshot(0, leg), mark(0, mark_at(0.3)))) == expected


def test_divergence_clears_when_the_exchange_agrees_again() -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long(exchange_liquidation_price=95.0)), mark(0, mark_at(0.3)))
    cleared = feed.step(1, snapshot(1, isolated_long(exchange_liquidation_price=91.0)))  # 0.1 % apart
    assert [(a.kind, a.resolved) for a in cleared] == [(AlertKind.DIVERGENCE, True)]


def test_a_leg_vanishing_near_liquidation_is_reported_liquidated_once_with_its_last_figures() -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.03)))  # critical fired
    alerts = feed.step(1, snapshot(1))  # the exchange's snapshot no longer lists the leg
    assert [(a.kind, a.severity, a.resolved) for a in alerts] == [
        (AlertKind.LIQUIDATED, Severity.CRITICAL, False)
    ]
    assert alerts[0].distance == pytest.approx(0.03)
    assert alerts[0].liquidation_price == pytest.approx(LIQUIDATION)
    assert "vanished" in alerts[0].summary
    assert feed.decide(10_000) == []  # the risk alert ended silently: no resolve, no repeat


def test_a_close_pushed_while_past_liquidation_is_liquidated_even_before_min_duration() -> None:
    feed = Feed(prompt(min_duration_s=60.0))
    assert feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(-0.01))) == []  # not held 60 s yet
    assert [a.kind for a in feed.step(5, closed(5))] == [AlertKind.LIQUIDATED]


def test_a_leg_closed_while_merely_in_warning_resolves_its_alert() -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.09)))  # warning fired
    alerts = feed.step(1, closed(1))
    assert [(a.kind, a.resolved, a.sequence) for a in alerts] == [(AlertKind.LIQUIDATION_RISK, True, 2)]
    assert "closed" in alerts[0].summary


def test_sequences_keep_growing_when_a_leg_closes_and_reopens() -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.09)))  # sequence 1
    feed.step(1, closed(1))  # resolve, sequence 2
    # The reopened leg is judged on a mark of its own (the one from before the close is forgotten).
    reopened = feed.step(2, snapshot(2, isolated_long()), mark(2, mark_at(0.09)))
    assert [(a.severity.value, a.sequence) for a in reopened] == [("warning", 3)]
    identity = risk_identity(ACCOUNT, BTC, Side.LONG)
    assert feed.memory.episode(identity) == 2  # the second firing episode of this identity


def test_unknown_figures_neither_fire_nor_resolve() -> None:
    # A cross long with wallet 1.2: maintenance 0.01 x 100 = 1, cross ratio 1 / 1.2 = 83 %, and its liquidation
    # price (100 - 1.2) / 0.99 = 99.8 is 0.2 % below the mark: critical.
    feed = Feed()
    first = feed.step(0, balance(0, 1.2), snapshot(0, cross_long()), mark(0, 100.0))
    assert (RISK, "critical", False) in brief(first)
    # A second cross leg without a mark makes every cross figure unknown: the critical holds, nothing is sent.
    unknown = cross_long(ETH)
    assert feed.step(1, snapshot(1, cross_long(), unknown)) == []
    assert feed.view().legs[0].risk is None
    # Even a mark far from liquidation does not resolve it while the figures are unknown.
    assert feed.step(2, mark(2, 150.0)) == []
    # Once known, the figures speak again: the BTC long at mark 150 is far from liquidation.
    known = feed.step(3, mark(3, 100.0, ETH))
    assert (RISK, "info", True) in brief([a for a in known if a.symbol == BTC])


def test_figures_unknown_while_streams_are_fresh_warn_after_the_grace_period_saying_why() -> None:
    feed = Feed(prompt(unknown_grace_s=60.0))
    no_tiers = isolated_long("XRP/USDT:USDT", mark_price=1.0)  # no market rules were loaded for XRP
    fresh = stream(0, "positions", Freshness.FRESH)
    assert feed.step(0, fresh, snapshot(0, no_tiers)) == []
    assert feed.decide(59) == []
    (alert,) = feed.decide(60)
    assert (alert.identity.rule, alert.severity, alert.resolved) == (
        "figures_unknown",
        Severity.WARNING,
        False,
    )
    assert "maintenance tiers unknown" in alert.summary


def test_figures_unknown_is_left_to_the_stale_alert_while_a_stream_is_not_fresh() -> None:
    feed = Feed(prompt(unknown_grace_s=60.0))
    no_tiers = isolated_long("XRP/USDT:USDT", mark_price=1.0)
    alerts = feed.step(0, stream(0, "positions", Freshness.STALE), snapshot(0, no_tiers))
    assert [a.identity.rule for a in alerts] == ["stale_data:positions"]
    assert [a.identity.rule for a in feed.decide(120)] == []  # blind: no separate unknown-figures warning


@pytest.mark.parametrize(
    ("wallet", "expected"),
    [
        # Cross long 1 @ 100, mark 100, maintenance 1 USDT: cross ratio = 1 / wallet.
        (2.0, []),  # 50 %
        (1.2, [("account_margin", "warning", False)]),  # 83 % >= 70 %
        (1.05, [("account_margin", "critical", False)]),  # 95 % >= 85 %
    ],
)
def test_cross_account_margin_ratio(wallet: float, expected: list[object]) -> None:
    # Distance rules off, so only the account's ratio speaks.
    feed = Feed(prompt(warning_distance=None, critical_distance=None))
    alerts = feed.step(0, balance(0, wallet), snapshot(0, cross_long()), mark(0, 100.0))
    assert brief(alerts) == expected
    if expected:
        assert alerts[0].identity == AlertIdentity(ACCOUNT, None, None, "account_margin")
        assert alerts[0].margin_ratio == pytest.approx(1.0 / wallet)


def test_a_cross_balance_that_is_not_positive_is_critical() -> None:
    # Wallet 5, mark 90: unrealised PnL -10 leaves a balance of -5: the model has no ratio, marginguard alarms.
    feed = Feed(prompt(warning_distance=None, critical_distance=None))
    alerts = feed.step(0, balance(0, 5.0), snapshot(0, cross_long()), mark(0, 90.0))
    assert brief(alerts) == [("account_margin", "critical", False)]
    assert alerts[0].margin_ratio is None
    assert "not positive" in alerts[0].summary


def test_after_a_restart_legs_are_judged_gone_only_once_a_snapshot_has_arrived() -> None:
    before = Feed()
    before.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.03)))  # critical, then marginguard stops
    after = Feed(memory=before.memory)  # restarted with the kept memory and an empty account picture
    assert after.step(100, mark(100, 95.0)) == []  # no snapshot yet: nothing is known to be gone
    alerts = after.step(
        101, snapshot(101)
    )  # the first snapshot lacks the leg: it went while marginguard was down
    assert [(a.kind, a.sequence) for a in alerts] == [(AlertKind.LIQUIDATED, 1)]
    assert "not among the exchange's positions" in alerts[0].summary


def test_a_leg_the_policy_has_seen_survives_a_restart_without_spam() -> None:
    before = Feed()
    before.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.09)))  # warning told, sequence 1
    after = Feed(memory=before.memory)
    assert after.step(100, snapshot(100, isolated_long()), mark(100, mark_at(0.09))) == []  # still told
    assert [a.sequence for a in after.step(101, mark(101, mark_at(0.2)))] == [2]  # its resolve continues on


def test_an_episode_begins_when_the_warning_threshold_is_crossed_even_before_the_alert_fires() -> None:
    # With a 60 s minimum duration nothing is sent at t=0, yet the episode has begun (a top-up may be due now).
    feed = Feed(prompt(min_duration_s=60.0))
    identity = risk_identity(ACCOUNT, BTC, Side.LONG)
    assert feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.04))) == []
    assert feed.memory.episode(identity) == 1
    feed.at_distance(10, 0.07)  # still beyond the warning threshold: the same episode
    feed.at_distance(20, 0.105)  # within the hysteresis band (10 % + 1 point): the same episode
    assert feed.memory.episode(identity) == 1
    feed.at_distance(30, 0.2)  # clear
    feed.at_distance(40, 0.09)
    assert feed.memory.episode(identity) == 2


@settings(max_examples=150, deadline=None)
@given(
    path=st.lists(
        st.tuples(st.floats(0.0, 400.0), st.floats(-0.05, 0.3)),
        min_size=1,
        max_size=25,
    ),
    min_duration=st.sampled_from([0.0, 30.0]),
)
def test_any_price_path_gives_a_coherent_conversation(
    path: list[tuple[float, float]], min_duration: float
) -> None:
    # Whatever the path: sequences count 1, 2, 3...; a resolve only follows a firing; a firing at an unchanged
    # severity is a repeat, at least the repeat interval (300 s) after the previous message.
    feed = Feed(prompt(min_duration_s=min_duration, repeat_interval_s=300.0))
    feed.step(0, snapshot(0, isolated_long()))
    now, messages = 0.0, []
    for gap, distance in path:
        now += gap
        messages += feed.at_distance(now, distance)
    assert [m.sequence for m in messages] == list(range(1, len(messages) + 1))
    told = None
    for previous, message in zip([None, *messages], messages, strict=False):
        if message.resolved:
            assert told is not None
            told = None
            continue
        if told == message.severity:
            assert previous is not None and message.ts - previous.ts >= 300.0
        told = message.severity
