"""The top-up policy on accounts built from feed events through the real state and view (pure).

The reference leg (see account_feed): isolated long, 1 @ 100, 10 USDT margin, maintenance 1 %, liquidation at
90 / 0.99 = 90.909. With the mark 4 % from liquidation, M = 90.909 / 0.96 = 94.697; restoring a 10 % distance puts
liquidation at 0.9 M = 85.227, which needs margin m with (100 - m) / 0.99 = 85.227, i.e. m = 15.625: 5.625 USDT
more.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.core.alerts import Alert, AlertKind, Severity
from daemon.core.policy import risk_identity
from daemon.core.policy_memory import PolicyMemory
from daemon.core.policy_rules import RuleSet, Silence, Thresholds
from daemon.core.policy_topup import TopUpExecuted, TopUpFailed, TopUpOutcome, announce_topup
from daemon.core.topup import (
    DAY_S,
    EntryStatus,
    LedgerEntry,
    NotNeeded,
    Refused,
    TopUp,
    TopUpDecision,
    TopUpLedger,
    TopUpLimits,
    TopUpMethod,
    decide_topup,
)
from daemon.core.types import Side
from daemon.core.view import LegView
from tests.unit.account_feed import (
    ACCOUNT,
    BTC,
    ETH,
    Feed,
    balance,
    cross_long,
    isolated_long,
    mark,
    mark_at,
    snapshot,
)

NEEDED = 5.625
NOW = 10_000.0
EMPTY = TopUpLedger()
LIMITS = TopUpLimits(
    trigger_distance=0.05,
    target_distance=0.10,
    max_per_action=100.0,
    max_per_position_per_day=100.0,
    max_per_account_per_day=100.0,
    cooldown_s=300.0,
    max_attempts=3,
)


def entry(
    amount: float,
    ago: float,
    status: EntryStatus = EntryStatus.EXECUTED,
    symbol: str = BTC,
    episode: int = 0,
    key: str | None = None,
) -> LedgerEntry:
    return LedgerEntry(
        key or f"k{amount}{ago}{symbol}", ACCOUNT, symbol, "long", amount, NOW - ago, status, episode
    )


def decide(
    distance: float = 0.04,
    limits: TopUpLimits = LIMITS,
    ledger: TopUpLedger = EMPTY,
    available: float | None = 1000.0,
    now: float = NOW,
    episode: int = 1,
) -> TopUpDecision:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(distance)))
    account_view = feed.view()
    (leg,) = account_view.legs
    return decide_topup(
        leg, account_view, limits, ledger, now, state=feed.state, available_balance=available, episode=episode
    )


def test_a_leg_inside_its_trigger_gets_the_amount_that_restores_the_target() -> None:
    decision = decide()
    assert isinstance(decision, TopUp)
    assert decision.amount == pytest.approx(NEEDED)
    assert decision.needed == pytest.approx(NEEDED)
    assert decision.capped_by is None
    assert decision.distance_after == pytest.approx(0.10)
    assert (decision.symbol, decision.side, decision.target) == (BTC, "long", 0.10)
    assert (decision.method, decision.source) == (TopUpMethod.ADD_MARGIN, None)
    assert decision.intent_key == f"topup|{ACCOUNT}|{BTC}|long|e1|a1"


@pytest.mark.parametrize(
    ("limits", "ledger", "available", "amount", "binding"),
    [
        # 2 USDT per action, 5.625 needed.
        (replace(LIMITS, max_per_action=2.0), (), 1000.0, 2.0, "max_per_action"),
        # This leg already got 8 of its 10 USDT a day 1000 s ago (past the cooldown): 2 left.
        (
            replace(LIMITS, max_per_position_per_day=10.0),
            (entry(8.0, 1000),),
            1000.0,
            2.0,
            "max_per_position_per_day",
        ),
        # A pending 8 counts too (it may have landed), but a failed one does not.
        (
            replace(LIMITS, max_per_position_per_day=10.0),
            (entry(8.0, 1000, EntryStatus.FAILED), entry(7.0, 2000)),
            1000.0,
            3.0,
            "max_per_position_per_day",
        ),
        # The account spent 9 of its 10 USDT a day on ETH: 1 left for BTC.
        (
            replace(LIMITS, max_per_account_per_day=10.0),
            (entry(9.0, 1000, symbol=ETH),),
            1000.0,
            1.0,
            "max_per_account_per_day",
        ),
        # Without a per-position ceiling, the account's daily 10 bounds the leg: 8 spent, 2 left.
        (
            replace(LIMITS, max_per_position_per_day=None, max_per_account_per_day=10.0),
            (entry(8.0, 1000),),
            1000.0,
            2.0,
            "max_per_account_per_day",
        ),
        # 50 available, 47 must stay free: 3 left.
        (replace(LIMITS, min_free_balance=47.0), (), 50.0, 3.0, "min_free_balance"),
    ],
)
def test_each_limit_caps_the_amount_and_says_so(
    limits: TopUpLimits, ledger: tuple[LedgerEntry, ...], available: float, amount: float, binding: str
) -> None:
    decision = decide(limits=limits, ledger=TopUpLedger(ledger), available=available)
    assert isinstance(decision, TopUp)
    assert decision.amount == pytest.approx(amount)
    assert decision.capped_by is not None and binding in decision.capped_by
    assert decision.needed == pytest.approx(NEEDED)
    assert decision.distance_after is not None and 0.04 < decision.distance_after < 0.10  # partly restored


def test_spending_older_than_a_day_no_longer_counts() -> None:
    old = TopUpLedger((entry(10.0, DAY_S + 1),))
    decision = decide(limits=replace(LIMITS, max_per_position_per_day=10.0), ledger=old)
    assert isinstance(decision, TopUp) and decision.amount == pytest.approx(NEEDED)


@pytest.mark.parametrize(
    ("limits", "ledger", "available", "code", "reason"),
    [
        # The leg's daily 10 is spent.
        (
            replace(LIMITS, max_per_position_per_day=10.0),
            (entry(10.0, 1000),),
            1000.0,
            "max_per_position_per_day",
            "max_per_position_per_day reached",
        ),
        # The account's daily 10 is overspent (12) on ETH.
        (
            replace(LIMITS, max_per_account_per_day=10.0),
            (entry(12.0, 1000, symbol=ETH),),
            1000.0,
            "max_per_account_per_day",
            "max_per_account_per_day reached",
        ),
        # 80 available, 100 must stay free.
        (replace(LIMITS, min_free_balance=100.0), (), 80.0, "min_free_balance", "min_free_balance reached"),
        # Capped to 2 by the per-action limit, but the exchange takes no less than 5.
        (
            replace(LIMITS, max_per_action=2.0, min_amount=5.0),
            (),
            1000.0,
            "min_amount",
            "2 USDT is below the smallest accepted amount 5",
        ),
        (LIMITS, (), None, "balance_unknown", "available balance unknown"),
    ],
)
def test_a_limit_with_no_room_left_refuses(
    limits: TopUpLimits, ledger: tuple[LedgerEntry, ...], available: float | None, code: str, reason: str
) -> None:
    decision = decide(limits=limits, ledger=TopUpLedger(ledger), available=available)
    assert isinstance(decision, Refused)
    assert decision.code == code  # stable, for deduplicating the refusal alert
    assert reason in decision.reason


def test_cooldown_refuses_until_it_has_passed() -> None:
    ledger = TopUpLedger((entry(2.0, 100, episode=1),))  # 100 s ago, cooldown 300 s
    waiting = decide(ledger=ledger)
    assert isinstance(waiting, Refused)
    assert waiting.retry_at == NOW + 200.0
    later = decide(ledger=ledger, now=NOW + 200.0)
    assert isinstance(later, TopUp)
    assert later.attempt == 2  # the second attempt of episode 1
    assert later.intent_key.endswith("|e1|a2")


def test_attempts_are_counted_per_episode() -> None:
    failures = TopUpLedger(tuple(entry(1.0, 1000 * (i + 1), EntryStatus.FAILED, episode=1) for i in range(3)))
    exhausted = decide(ledger=failures, episode=1)
    assert isinstance(exhausted, Refused) and "3 of 3 attempts" in exhausted.reason
    next_episode = decide(ledger=failures, episode=2)
    assert isinstance(next_episode, TopUp) and next_episode.attempt == 1


def test_a_pending_intent_is_never_decided_twice() -> None:
    first = decide()
    assert isinstance(first, TopUp)
    # The shell journals the intent as pending, then restarts before the outcome is known: the reloaded ledger
    # holds it, and the same decision is not taken again, even once the cooldown has passed.
    ledger = TopUpLedger().record(first.pending(ACCOUNT, NOW))
    again = decide(ledger=ledger, now=NOW + 10 * LIMITS.cooldown_s)
    assert isinstance(again, NotNeeded) and first.intent_key in again.reason


def test_the_intent_key_is_the_same_for_the_same_decision() -> None:
    # Same leg, episode and attempt: same key, whatever the moment or the figures.
    one, two = decide(now=NOW), decide(distance=0.03, now=NOW + 5000.0)
    assert isinstance(one, TopUp) and isinstance(two, TopUp)
    assert one.intent_key == two.intent_key
    other_episode = decide(episode=2)
    assert isinstance(other_episode, TopUp) and other_episode.intent_key != one.intent_key


def test_the_ledger_records_an_outcome_over_its_pending_entry() -> None:
    first = decide()
    assert isinstance(first, TopUp)
    ledger = TopUpLedger().record(first.pending(ACCOUNT, NOW))
    done = ledger.record(replace(first.pending(ACCOUNT, NOW), status=EntryStatus.EXECUTED))
    assert [e.status for e in done.entries] == [EntryStatus.EXECUTED]


@pytest.mark.parametrize("distance", [0.06, 0.20])
def test_a_leg_outside_its_trigger_needs_nothing(distance: float) -> None:
    assert isinstance(decide(distance=distance), NotNeeded)


def test_unknown_figures_never_trigger_a_top_up() -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long("XRP/USDT:USDT", mark_price=1.0)))  # no maintenance tiers for XRP
    account_view = feed.view()
    (leg,) = account_view.legs
    decision = decide_topup(
        leg, account_view, LIMITS, TopUpLedger(), NOW, state=feed.state, available_balance=1000.0, episode=1
    )
    assert isinstance(decision, NotNeeded)
    assert "maintenance tiers unknown" in decision.reason


def cross_decision(limits: TopUpLimits) -> TopUpDecision:
    # Cross long 1 @ 100, wallet 4, mark 100: liquidation at (100 - 4) / 0.99 = 96.97, 3.03 % away.
    feed = Feed()
    feed.step(0, balance(0, 4.0), snapshot(0, cross_long()), mark(0, 100.0))
    account_view = feed.view()
    (leg,) = account_view.legs
    return decide_topup(
        leg, account_view, limits, TopUpLedger(), NOW, state=feed.state, available_balance=1000.0, episode=1
    )


def test_a_cross_leg_without_a_source_wallet_is_alert_only() -> None:
    decision = cross_decision(LIMITS)
    assert isinstance(decision, Refused)
    assert decision.reason.startswith("alert only")


def test_a_cross_leg_is_topped_up_by_a_transfer_from_the_source_wallet() -> None:
    # A 10 % distance puts liquidation at 90: the wallet must be 100 - 0.99 x 90 = 10.9, i.e. 6.9 more.
    decision = cross_decision(replace(LIMITS, cross_transfer_from="spot"))
    assert isinstance(decision, TopUp)
    assert (decision.method, decision.source) == (TopUpMethod.TRANSFER, "spot")
    assert decision.amount == pytest.approx(6.9)
    assert decision.distance_after == pytest.approx(0.10)


def test_the_episode_comes_from_the_alert_policy_and_changes_the_key() -> None:
    # The leg goes critical (episode 1), recovers, then goes critical again (episode 2): two decisions, two keys.
    feed = Feed()
    identity = risk_identity(ACCOUNT, BTC, Side.LONG)
    keys = []
    for t, distance in [(0, 0.04), (10, 0.30), (20, 0.04)]:
        feed.step(t, snapshot(t, isolated_long()), mark(t, mark_at(distance)))
        account_view = feed.view()
        (leg,) = account_view.legs
        decision = decide_topup(
            leg,
            account_view,
            LIMITS,
            TopUpLedger(),
            NOW,
            state=feed.state,
            available_balance=1000.0,
            episode=feed.memory.episode(identity),
        )
        keys.append(decision.intent_key if isinstance(decision, TopUp) else None)
    assert keys == [f"topup|{ACCOUNT}|{BTC}|long|e1|a1", None, f"topup|{ACCOUNT}|{BTC}|long|e2|a1"]


def test_inconsistent_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="trigger_distance < target_distance"):
        replace(LIMITS, trigger_distance=0.2)
    with pytest.raises(ValueError, match="max_attempts"):
        replace(LIMITS, max_attempts=0)


def announce(
    memory: PolicyMemory, outcome: TopUpOutcome, now: float, silences: tuple[Silence, ...] = ()
) -> tuple[PolicyMemory, Alert | None]:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.04)))
    (leg,) = feed.view().legs
    rules = RuleSet(Thresholds(repeat_interval_s=600.0))
    return announce_topup(
        memory, leg, outcome, rules, silences, now, account=ACCOUNT, exchange="binance", currency="USDT"
    )


def test_top_up_outcomes_become_alerts_saying_what_marginguard_did() -> None:
    topup = decide()
    assert isinstance(topup, TopUp)
    memory, done = announce(PolicyMemory(), TopUpExecuted(topup), NOW)
    assert done is not None
    assert (done.kind, done.severity, done.action) == (
        AlertKind.TOPUP_DONE,
        Severity.INFO,
        "added 5.625 USDT margin",
    )
    assert done.distance == pytest.approx(0.04)  # the figures that called for it
    memory, dry = announce(memory, TopUpExecuted(topup, dry_run=True), NOW + 1)
    assert dry is not None and dry.action == "dry run: would add 5.625 USDT margin"
    assert dry.kind is AlertKind.TOPUP_DRY_RUN and "DRY RUN, nothing sent" in dry.summary  # never "done"
    memory, failed = announce(memory, TopUpFailed(topup, "InsufficientFunds: balance 3"), NOW + 2)
    assert failed is not None
    assert (failed.kind, failed.severity) == (AlertKind.TOPUP_FAILED, Severity.CRITICAL)
    assert failed.action == "failed to add 5.625 USDT margin: InsufficientFunds: balance 3"
    assert [done.sequence, dry.sequence, failed.sequence] == [1, 1, 1]  # numbered per identity


def test_an_unchanged_refusal_is_told_once_per_repeat_interval() -> None:
    # The cooldown text counts seconds and changes every tick; the refusal's code does not.
    first = Refused("cooldown", "cooling down after the last top-up 10 s ago", retry_at=NOW + 290)
    memory, told = announce(alerted(), first, NOW)
    assert told is not None and (told.kind, told.severity) == (AlertKind.TOPUP_REFUSED, Severity.WARNING)
    assert told.action == "refused: cooling down after the last top-up 10 s ago"
    later = Refused("cooldown", "cooling down after the last top-up 20 s ago", retry_at=NOW + 290)
    feed = Feed()  # the alert policy runs in between and keeps what the refusal left in the memory
    feed.memory = memory
    feed.step(NOW + 5, snapshot(NOW + 5, isolated_long()), mark(NOW + 5, mark_at(0.04)))
    memory, again = announce(feed.memory, later, NOW + 10)
    assert again is None
    memory, other = announce(memory, Refused("max_per_action", "max_per_action reached"), NOW + 20)
    assert other is not None and other.sequence == 2  # a different rule refused: told at once
    memory, repeated = announce(memory, Refused("max_per_action", "max_per_action reached"), NOW + 620)
    assert repeated is not None and repeated.sequence == 3  # 600 s later: told again


def alerted() -> PolicyMemory:
    """The memory once the leg's risk alert has gone out (at 4 % from liquidation: critical)."""
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.04)))
    return feed.memory


def test_a_refusal_waits_for_the_risk_alert_it_refers_to() -> None:
    """Seen in a soak: "top-up refused: alert only" reached the receiver a second before the critical alert it
    was about (the top-up trigger sits above the warning, or the warning is still proving its minimum
    duration). The refusal is held until the position's risk alert has been sent, then told."""
    refusal = Refused("alert_only", "alert only: no source wallet")
    memory, early = announce(PolicyMemory(), refusal, NOW)
    assert early is None and memory == PolicyMemory()  # nothing remembered: it is asked again next tick
    memory, told = announce(alerted(), refusal, NOW + 1)
    assert told is not None and told.kind is AlertKind.TOPUP_REFUSED


def test_alert_only_and_silences() -> None:
    memory, told = announce(alerted(), Refused("alert_only", "alert only: no source wallet"), NOW)
    assert told is not None and told.action == "alert only"
    muted = (Silence(ACCOUNT, BTC, until=NOW + 100),)
    topup = decide()
    assert isinstance(topup, TopUp)
    assert announce(memory, TopUpExecuted(topup), NOW, muted) == (memory, None)


def test_one_cross_transfer_at_a_time_for_the_whole_account() -> None:
    # Cross longs BTC and ETH, 1 @ 100 each, mark 100, wallet 5: BTC's liquidation price holds ETH at its mark,
    # 5 + (P - 100) = 0.01 P + 1 (ETH's maintenance), P = 96 / 0.99 = 96.97, 3.03 % away; ETH likewise.
    limits = replace(LIMITS, cross_transfer_from="spot")
    feed = Feed()
    feed.step(
        0, balance(0, 5.0), snapshot(0, cross_long(), cross_long(ETH)), mark(0, 100.0), mark(0, 100.0, ETH)
    )
    account_view = feed.view()
    btc, eth = account_view.legs

    def decide_leg(leg: LegView, ledger: TopUpLedger, now: float) -> TopUpDecision:
        return decide_topup(
            leg, account_view, limits, ledger, now, state=feed.state, available_balance=1000.0, episode=1
        )

    first = decide_leg(btc, TopUpLedger(), NOW)
    assert isinstance(first, TopUp) and first.method is TopUpMethod.TRANSFER
    pending = TopUpLedger().record(first.pending(ACCOUNT, NOW))
    assert isinstance(decide_leg(eth, pending, NOW), NotNeeded)  # BTC's transfer also feeds ETH: in flight
    executed = pending.record(replace(first.pending(ACCOUNT, NOW), status=EntryStatus.EXECUTED))
    waiting = decide_leg(eth, executed, NOW + 1)
    assert isinstance(waiting, Refused) and waiting.code == "cooldown"  # until the wallet update is seen


def _on_picture(margin: float, snapshot_at: float = 0.0, distance: float = 0.04) -> tuple[LegView, Feed]:
    """The reference leg with `margin` as the picture's isolated margin (the snapshot taken at `snapshot_at`)."""
    feed = Feed()
    feed.step(snapshot_at, snapshot(snapshot_at, isolated_long(isolated_margin=margin)))
    feed.step(snapshot_at, mark(snapshot_at, mark_at(distance)))
    (leg,) = feed.view().legs
    return leg, feed


def _landed(amount: float, at: float, expected: float | None) -> LedgerEntry:
    return LedgerEntry(
        "topup|landed",
        ACCOUNT,
        BTC,
        "long",
        amount,
        at,
        EntryStatus.EXECUTED,
        1,
        expected=expected,
        landed_ms=int(at * 1000),
    )


@given(lag=st.floats(0.0, 29.0), cooldown=st.floats(0.0, 10.0))
def test_nothing_more_is_decided_for_a_leg_until_its_picture_shows_the_top_up_that_landed(
    lag: float, cooldown: float
) -> None:
    """However short the cooldown, a picture that still shows the margin from before the top-up (pushes lagging
    behind the exchange's answer) never gets a second top-up; once it shows the new margin it is judged again."""
    landed = NOW
    ledger = TopUpLedger((_landed(5.0, landed, expected=10.0 + 5.0 * 0.99),))
    limits = replace(LIMITS, cooldown_s=cooldown)
    stale, feed = _on_picture(10.0, snapshot_at=landed - 60.0)
    waiting = decide_topup(
        stale,
        feed.view(),
        limits,
        ledger,
        landed + lag + cooldown + 1.0,
        state=feed.state,
        available_balance=1000.0,
        episode=1,
    )
    assert isinstance(waiting, NotNeeded) and "waiting for the exchange's picture" in waiting.reason
    shown, feed = _on_picture(15.0, snapshot_at=landed - 60.0, distance=0.03)
    judged = decide_topup(
        shown,
        feed.view(),
        limits,
        ledger,
        landed + lag + cooldown + 1.0,
        state=feed.state,
        available_balance=1000.0,
        episode=1,
    )
    assert not (isinstance(judged, NotNeeded) and "waiting" in judged.reason)


def test_a_rest_snapshot_taken_well_after_the_landing_shows_it_whatever_its_figures() -> None:
    """The margin may have moved since for other reasons (funding, a manual change): a snapshot that was asked
    after the top-up landed is the exchange's word, and the leg is judged on it."""
    ledger = TopUpLedger((_landed(5.0, NOW, expected=14.95),))
    leg, feed = _on_picture(12.0, snapshot_at=NOW + 31.0, distance=0.02)
    decision = decide_topup(
        leg, feed.view(), LIMITS, ledger, NOW + 400.0, state=feed.state, available_balance=1000.0, episode=1
    )
    assert isinstance(decision, TopUp)


def test_the_cooldown_counts_from_when_the_top_up_landed_not_when_it_was_sent() -> None:
    ledger = TopUpLedger((_landed(2.0, NOW - 100.0, expected=None),))  # sent long before, landed 100 s ago
    waiting = decide(ledger=ledger)
    assert isinstance(waiting, Refused) and waiting.code == "cooldown"
    assert waiting.retry_at == NOW + 200.0
