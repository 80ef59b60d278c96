"""Properties every family's model must hold, over generated positions (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from daemon.core.margin import evaluate_account
from daemon.core.planner import distance_after_adding, plan_top_up
from daemon.core.tiers import derive_maintenance_amounts
from daemon.core.types import Account, MarginMode, Tier
from tests.unit.model_builders import account, leg

FAMILIES = ["binance", "bybit", "okx", "gate", "hyperliquid"]

prices = st.floats(min_value=1.0, max_value=100_000.0)
quantities = st.floats(min_value=0.01, max_value=1_000.0)
leverages = st.floats(min_value=1.5, max_value=100.0)
fees = st.sampled_from([0.0, 0.0005, 0.00075])


@st.composite
def tier_tables(draw: st.DrawFn, family: str = "binance") -> tuple[Tier, ...]:
    """1–4 brackets with rising rates, starting at 0; cum derived by continuity.

    OKX sizes its brackets in contracts and publishes no maintenance amount, so its tables carry none.
    """
    count = draw(st.integers(min_value=1, max_value=4))
    rates = sorted(draw(st.lists(st.floats(0.002, 0.1), min_size=count, max_size=count)))
    floors = sorted(draw(st.lists(st.floats(1.0, 5_000_000.0), min_size=count - 1, max_size=count - 1)))
    tiers = [Tier(0.0, rates[0])] + [Tier(f, r) for f, r in zip(floors, rates[1:], strict=True)]
    return tuple(tiers) if family == "okx" else derive_maintenance_amounts(tiers)


@st.composite
def isolated_accounts(draw: st.DrawFn) -> Account:
    family = draw(st.sampled_from(FAMILIES))
    inverse = draw(st.booleans()) and family in ("binance", "bybit")
    entry = draw(prices)
    position = leg(
        draw(st.sampled_from(["long", "short"])),
        qty=draw(quantities),
        entry=entry,
        mark=entry * draw(st.floats(0.9, 1.1)),
        leverage=draw(leverages),
        tiers=draw(tier_tables(family)),
        fee=draw(fees),
        contract_size=draw(st.sampled_from([1.0, 0.01, 10.0, 100.0])),
        inverse=inverse,
    )
    return account(family, position)


@st.composite
def cross_accounts(draw: st.DrawFn) -> Account:
    """1–4 cross legs of 100 to 1,000,000 USDT notional each: real accounts' spread, which keeps the
    float arithmetic well conditioned (a 0.01 USDT leg beside a 100 M one is known only to rounding)."""
    family = draw(st.sampled_from(FAMILIES))
    legs = []
    for index in range(draw(st.integers(1, 4))):
        entry = draw(prices)
        legs.append(
            leg(
                draw(st.sampled_from(["long", "short"])),
                qty=draw(st.floats(100.0, 1_000_000.0)) / entry,
                entry=entry,
                mark=entry * draw(st.floats(0.95, 1.05)),
                symbol=f"S{index}",
                mode="cross",
                tiers=draw(tier_tables(family)),
                fee=draw(fees),
            )
        )
    notional = sum(p.quantity * p.mark_price for p in legs)
    wallet = notional * draw(st.floats(0.02, 0.5))
    return account(family, *legs, wallet=wallet)


def _at_price(acct: Account, symbol: str, price: float) -> Account:
    moved = tuple(replace(p, mark_price=price) if p.symbol == symbol else p for p in acct.positions)
    return replace(acct, positions=moved)


@settings(max_examples=300, deadline=None)
@given(isolated_accounts())
def test_isolated_margin_balance_equals_maintenance_at_the_liquidation_price(acct: Account) -> None:
    risk = evaluate_account(acct).positions[0]
    assume(risk.liquidation_price is not None)
    at_lp = evaluate_account(_at_price(acct, "BTCUSDT", risk.liquidation_price)).positions[0]
    assert at_lp.margin_ratio == pytest.approx(1.0, rel=1e-7)


@settings(max_examples=300, deadline=None)
@given(cross_accounts())
def test_cross_margin_balance_equals_maintenance_at_each_symbols_liquidation_price(acct: Account) -> None:
    risk = evaluate_account(acct)
    for position, result in zip(acct.positions, risk.positions, strict=True):
        if result.liquidation_price is None:
            continue
        moved = evaluate_account(_at_price(acct, position.symbol, result.liquidation_price))
        assert moved.cross_margin_ratio == pytest.approx(1.0, rel=1e-7)


@settings(max_examples=300, deadline=None)
@given(isolated_accounts())
def test_long_liquidates_below_entry_and_short_above_while_margin_is_positive(acct: Account) -> None:
    # "Margin is positive" in the model's sense: at entry the margin still exceeds the requirement (a leverage
    # at or above 1/mmr would be liquidated on opening, which no exchange accepts).
    position = replace(acct.positions[0], mark_price=acct.positions[0].entry_price)
    risk = evaluate_account(replace(acct, positions=(position,))).positions[0]
    assume(risk.liquidation_price is not None and risk.note is None)
    if position.side.sign > 0:
        assert risk.liquidation_price < position.entry_price
    else:
        assert risk.liquidation_price > position.entry_price


@settings(max_examples=200, deadline=None)
@given(isolated_accounts(), st.lists(st.floats(0.0, 1.0), min_size=2, max_size=5))
def test_more_margin_moves_liquidation_away_monotonically(acct: Account, fractions: list[float]) -> None:
    risk = evaluate_account(acct).positions[0]
    assume(risk.liquidation_price is not None and risk.note is None)
    position = acct.positions[0]
    notional = position.quantity * (
        position.mark_price if position.contract_type.value == "linear" else 1.0 / position.mark_price
    )
    distances = []
    for amount in sorted(f * notional * 0.2 for f in fractions):
        distance = distance_after_adding(acct, 0, amount)
        if distance is None:  # enough margin that no price liquidates: the farthest possible
            distance = float("inf")
        distances.append(distance)
    assert distances == sorted(distances)


@settings(max_examples=300, deadline=None)
@given(st.one_of(isolated_accounts(), cross_accounts()), st.floats(0.01, 0.5))
def test_planned_top_up_reaches_its_target_distance(acct: Account, target: float) -> None:
    before = evaluate_account(acct).positions[0]
    assume(before.liquidation_price is not None and before.distance_to_liquidation is not None)
    assume(before.distance_to_liquidation < target * (1.0 - 1e-9))  # clearly short of it, not by rounding
    plan = plan_top_up(acct, 0, target)
    assert plan.amount is not None and plan.amount > 0.0
    assert plan.distance_after == pytest.approx(target, rel=1e-6, abs=1e-9)
    # The round trip: the distance after adding the planned amount is the target.
    assert distance_after_adding(acct, 0, plan.amount) == pytest.approx(target, rel=1e-6, abs=1e-9)


def test_planner_returns_zero_when_already_far_enough() -> None:
    acct = account("binance", leg(margin=10.0))  # distance 9.09 %
    plan = plan_top_up(acct, 0, 0.05)
    assert plan.amount == 0.0
    assert plan.note == "already at or beyond the target distance"


def test_planner_worked_example() -> None:
    # Long q 1 @100, mark 100, margin 10, mmr 1 %: target 20 % → LP must be 80.
    # M + (80 − 100) = 0.01·80 → M = 20.8 → add 10.8.
    plan = plan_top_up(account("binance", leg(margin=10.0)), 0, 0.20)
    assert plan.amount == pytest.approx(10.8)
    assert plan.liquidation_price_after == pytest.approx(80.0)


def test_cross_top_up_goes_to_the_wallet() -> None:
    # Cross long q 1 @100, wallet 10: same arithmetic, the 10.8 lands in the wallet.
    acct = account("binance", leg(mode="cross"), wallet=10.0)
    plan = plan_top_up(acct, 0, 0.20)
    assert plan.amount == pytest.approx(10.8)
    assert acct.positions[0].margin_mode is MarginMode.CROSS
