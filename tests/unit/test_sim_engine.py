"""The simulator's engine as an exchange would behave to its users: fills, margin moves, refusals, liquidations."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.types import MarginMode, Side
from daemon.sim.engine import (
    BalanceChanged,
    Engine,
    EngineError,
    Event,
    Liquidated,
    MarginCall,
    PositionChanged,
)
from daemon.sim.markets import load_markets, synthetic_markets
from daemon.sim.scenario import ScenarioRunner, load_scenario, scenario_names

KEY = "key-1"


def make_engine(wallet: float = 1000.0, family: str = "binance") -> tuple[Engine, list[Event]]:
    engine = Engine(load_markets(family), clock=lambda: 1_700_000_000.0, family=family)
    engine.add_account(KEY, "secret", wallet={"USDT": wallet})
    events: list[Event] = []
    engine.subscribe(events.append)
    return engine, events


def open_isolated(engine: Engine, symbol: str, side: Side, contracts: float, leverage: float = 20) -> None:
    engine.set_leverage(KEY, symbol, leverage)
    engine.set_margin_mode(KEY, symbol, MarginMode.ISOLATED)
    engine.open_position(KEY, symbol, side, contracts)


def test_isolated_open_moves_margin_out_of_the_wallet_and_charges_the_taker_fee() -> None:
    engine, _ = make_engine(wallet=1000.0)
    open_isolated(engine, "BTCUSDT", Side.LONG, 0.1, leverage=20)  # 6,700 notional at 67,000

    position = engine.account(KEY).positions[0]
    assert position.isolated_margin == pytest.approx(335.0)  # 6,700 / 20
    assert engine.account(KEY).wallet["USDT"] == pytest.approx(1000.0 - 335.0 - 6700 * 0.0005)
    assert engine.summary(KEY).wallet_balance == pytest.approx(1000.0 - 6700 * 0.0005)


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_liquidation_engine_closes_an_isolated_leg_once_the_mark_crosses_its_model_price(side: Side) -> None:
    engine, events = make_engine()
    open_isolated(engine, "BTCUSDT", side, 0.1)
    wallet_before = engine.account(KEY).wallet["USDT"]
    liquidation = engine.liquidation_price(KEY, "BTCUSDT", side)
    assert liquidation is not None

    safe_side_of_it = liquidation * (1.0005 if side is Side.LONG else 0.9995)
    engine.set_mark("BTCUSDT", safe_side_of_it)
    assert len(engine.account(KEY).positions) == 1
    assert engine.liquidations == []

    engine.set_mark("BTCUSDT", liquidation * (0.9995 if side is Side.LONG else 1.0005))
    assert engine.account(KEY).positions == []
    [record] = engine.liquidations
    assert record["symbol"] == "BTCUSDT" and record["side"] == side.value
    assert record["loss"] == pytest.approx(335.0)  # the isolated margin, and nothing more
    assert engine.account(KEY).wallet["USDT"] == pytest.approx(wallet_before)
    liquidated = [e for e in events if isinstance(e, Liquidated)]
    assert [(e.symbol, e.side, e.contracts) for e in liquidated] == [("BTCUSDT", side, 0.1)]
    closed = [e for e in events if isinstance(e, PositionChanged) and e.reason == "liquidation"]
    assert len(closed) == 1 and closed[0].position is None and closed[0].side is side


def test_a_margin_call_is_sent_once_per_excursion_towards_liquidation() -> None:
    engine, events = make_engine()
    open_isolated(engine, "BTCUSDT", Side.LONG, 0.1)
    liquidation = engine.liquidation_price(KEY, "BTCUSDT", Side.LONG)
    assert liquidation is not None

    for price in (liquidation * 1.0008, liquidation * 1.0006, 67_000.0, liquidation * 1.0008):
        engine.set_mark("BTCUSDT", price)

    calls = [e for e in events if isinstance(e, MarginCall)]
    assert len(calls) == 2  # one on the way down, none while it stays there, one after a recovery
    assert calls[0].symbols == ("BTCUSDT",) and calls[0].margin_ratio >= 0.8


def test_cross_liquidation_never_leaves_the_wallet_negative() -> None:
    engine, events = make_engine(wallet=500.0)
    engine.set_leverage(KEY, "ETHUSDT", 20)
    engine.open_position(KEY, "ETHUSDT", Side.LONG, 2.0)  # 7,000 notional on a 500 wallet
    liquidation = engine.liquidation_price(KEY, "ETHUSDT", Side.LONG)
    assert liquidation is not None and liquidation < 3500

    engine.set_mark("ETHUSDT", liquidation * 0.9)  # gapped far through the liquidation price
    assert engine.account(KEY).positions == []
    assert engine.account(KEY).wallet["USDT"] >= 0.0
    assert any(isinstance(e, BalanceChanged) and e.reason == "liquidation" for e in events)


def test_adding_isolated_margin_moves_the_long_liquidation_price_down_and_reducing_moves_it_up() -> None:
    engine, _ = make_engine()
    open_isolated(engine, "BTCUSDT", Side.LONG, 0.1)
    start = engine.liquidation_price(KEY, "BTCUSDT", Side.LONG)
    wallet = engine.account(KEY).wallet["USDT"]

    assert engine.adjust_isolated_margin(KEY, "BTCUSDT", Side.LONG, 100.0) == pytest.approx(435.0)
    after_add = engine.liquidation_price(KEY, "BTCUSDT", Side.LONG)
    assert engine.account(KEY).wallet["USDT"] == pytest.approx(wallet - 100.0)

    engine.adjust_isolated_margin(KEY, "BTCUSDT", Side.LONG, -50.0)
    after_reduce = engine.liquidation_price(KEY, "BTCUSDT", Side.LONG)
    assert start is not None and after_add is not None and after_reduce is not None
    assert after_add < after_reduce < start
    assert engine.account(KEY).wallet["USDT"] == pytest.approx(wallet - 50.0)


def test_margin_below_the_initial_requirement_cannot_be_removed() -> None:
    engine, _ = make_engine()
    open_isolated(engine, "BTCUSDT", Side.LONG, 0.1)
    with pytest.raises(EngineError) as refused:
        engine.adjust_isolated_margin(KEY, "BTCUSDT", Side.LONG, -1.0)
    assert refused.value.kind == "insufficient_balance"


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        (lambda e: e.adjust_isolated_margin(KEY, "ETHUSDT", Side.LONG, 10), "no_position"),
        (lambda e: e.adjust_isolated_margin(KEY, "SOLUSDT", Side.SHORT, 10), "not_isolated"),
        (lambda e: e.adjust_isolated_margin(KEY, "BTCUSDT", Side.LONG, 10_000), "insufficient_balance"),
        (lambda e: e.open_position(KEY, "NOPEUSDT", Side.LONG, 1), "not_found"),
        (lambda e: e.open_position("who", "BTCUSDT", Side.LONG, 1), "not_found"),
        (lambda e: e.open_position(KEY, "BTCUSDT", Side.LONG, 0), "invalid"),
        (lambda e: e.open_position(KEY, "ETHUSDT", Side.LONG, 100), "insufficient_balance"),
        (lambda e: e.set_leverage(KEY, "BTCUSDT", 126), "leverage_too_high"),
        (lambda e: e.set_margin_mode(KEY, "ETHUSDT", MarginMode.CROSS), "margin_mode_already_set"),
        (lambda e: e.set_margin_mode(KEY, "BTCUSDT", MarginMode.CROSS), "position_open"),
        (lambda e: e.set_hedge_mode(KEY, True), "position_open"),
        (lambda e: e.close_position(KEY, "ETHUSDT"), "no_position"),
        (lambda e: e.transfer(KEY, "USDT", -100_000), "insufficient_balance"),
        # NaN and infinities are refused before they touch the books (the oracle computes exactly)
        (lambda e: e.transfer(KEY, "USDT", math.nan), "invalid"),
        (lambda e: e.transfer(KEY, "USDT", math.inf), "invalid"),
        (lambda e: e.set_wallet(KEY, "USDT", math.nan), "invalid"),
        (lambda e: e.adjust_isolated_margin(KEY, "BTCUSDT", Side.LONG, math.nan), "invalid"),
        (lambda e: e.set_position(KEY, "ETHUSDT", Side.LONG, math.nan), "invalid"),
        (lambda e: e.set_position(KEY, "ETHUSDT", Side.LONG, 1.0, entry_price=math.inf), "invalid"),
        (lambda e: e.open_position(KEY, "ETHUSDT", Side.LONG, 0.1, price=math.nan), "invalid"),
        (lambda e: e.pay_funding("BTCUSDT", math.nan), "invalid"),
    ],
)
def test_refusals_carry_the_kind_dialects_translate(action: Callable[[Engine], object], kind: str) -> None:
    engine, _ = make_engine()
    open_isolated(engine, "BTCUSDT", Side.LONG, 0.1)
    engine.set_leverage(KEY, "SOLUSDT", 5)
    engine.open_position(KEY, "SOLUSDT", Side.SHORT, 1)  # cross
    before = (dict(engine.account(KEY).wallet), [replace(p) for p in engine.account(KEY).positions])
    with pytest.raises(EngineError) as refused:
        action(engine)
    assert refused.value.kind == kind
    assert (engine.account(KEY).wallet, engine.account(KEY).positions) == before  # nothing half-done


def test_one_way_mode_flips_a_position_on_a_larger_opposite_fill() -> None:
    engine, _ = make_engine(wallet=10_000.0)
    engine.open_position(KEY, "ETHUSDT", Side.LONG, 1.0)
    engine.set_mark("ETHUSDT", 3600.0)
    engine.open_position(KEY, "ETHUSDT", Side.SHORT, 3.0)

    [position] = engine.account(KEY).positions
    assert (position.side, position.contracts, position.entry_price) == (Side.SHORT, 2.0, 3600.0)
    assert engine.account(KEY).realized_pnl == pytest.approx(100.0)


def test_hedge_mode_keeps_a_long_and_a_short_leg_of_one_symbol() -> None:
    engine, _ = make_engine(wallet=10_000.0)
    engine.set_hedge_mode(KEY, True)
    engine.open_position(KEY, "ETHUSDT", Side.LONG, 1.0)
    engine.open_position(KEY, "ETHUSDT", Side.SHORT, 0.5)

    legs = {(p.position_side, p.side, p.contracts) for p in engine.account(KEY).positions}
    assert legs == {("LONG", Side.LONG, 1.0), ("SHORT", Side.SHORT, 0.5)}
    engine.close_position(KEY, "ETHUSDT", Side.SHORT)
    assert [p.position_side for p in engine.account(KEY).positions] == ["LONG"]


def test_okx_counts_contracts_of_its_contract_value() -> None:
    engine, _ = make_engine(wallet=10_000.0, family="okx")
    engine.set_leverage(KEY, "BTCUSDT", 10)
    engine.open_position(KEY, "BTCUSDT", Side.LONG, 10)  # 10 contracts of 0.01 BTC
    position = engine.account(KEY).positions[0]
    assert engine.notional(position) == pytest.approx(0.1 * 67_000)


def test_markets_cover_the_majors_with_binance_brackets_and_synthetic_ones_on_demand() -> None:
    markets = load_markets("binance")
    assert len(markets) >= 22
    btc = markets["BTCUSDT"]
    assert (btc.max_leverage, btc.tiers[1].min_notional, btc.tiers[1].maintenance_amount) == (125, 50_000, 50)
    assert btc.tier_for_notional(700_000).mmr == 0.0065
    assert len(synthetic_markets(500)) == 500


class RecordingSleep:
    def __init__(self) -> None:
        self.total = 0.0

    async def __call__(self, seconds: float) -> None:
        self.total += seconds


@pytest.mark.parametrize(
    "name", ["slow_bleed", "flash_crash", "cross_winner_loser", "short_squeeze", "replay"]
)
def test_every_scenario_ends_in_the_liquidation_it_describes(name: str) -> None:
    engine, events = make_engine()
    sleep = RecordingSleep()
    scenario = load_scenario(name)
    runner = ScenarioRunner(scenario, engine, speed=10.0, sleep=sleep)
    runner.setup(KEY)
    assert engine.account(KEY).positions

    asyncio.run(runner.play())

    assert sleep.total == pytest.approx(scenario.duration_s / 10.0)
    assert any(isinstance(e, Liquidated) for e in events)
    assert name in scenario_names()


def test_slow_bleed_leaves_more_than_half_a_minute_before_the_liquidation() -> None:
    clock = [0.0]
    engine = Engine(load_markets("binance"), clock=lambda: clock[0])
    engine.add_account(KEY, "secret")

    async def advancing_sleep(seconds: float) -> None:
        clock[0] += seconds

    runner = ScenarioRunner(load_scenario("slow_bleed"), engine, sleep=advancing_sleep)
    runner.setup(KEY)
    asyncio.run(runner.play())
    [record] = engine.liquidations
    assert 30_000 <= record["ts_ms"] <= 40_000


def test_a_mark_gapping_far_through_a_cached_liquidation_price_still_liquidates() -> None:
    engine, _ = make_engine()
    open_isolated(engine, "BTCUSDT", Side.LONG, 0.1)
    for price in (67_100.0, 66_900.0, 67_050.0):  # quiet ticks far from liquidation: the model is skipped
        engine.set_mark("BTCUSDT", price)

    engine.set_mark("BTCUSDT", 50_000.0)
    assert engine.account(KEY).positions == []
    assert engine.liquidations[0]["price"] > 50_000.0  # closed at its bankruptcy price, not at the gap


def test_a_cross_leg_is_liquidated_when_another_symbol_of_the_account_moves() -> None:
    engine, _ = make_engine(wallet=1_000.0)
    engine.set_leverage(KEY, "BTCUSDT", 20)
    engine.set_leverage(KEY, "ETHUSDT", 20)
    engine.open_position(KEY, "BTCUSDT", Side.LONG, 0.1)
    engine.open_position(KEY, "ETHUSDT", Side.LONG, 2.0)
    btc_liquidation = engine.liquidation_price(KEY, "BTCUSDT", Side.LONG)
    engine.set_mark("BTCUSDT", 66_500.0)  # caches the account's band

    for price in (3_300.0, 3_100.0, 3_000.0):  # only ETH falls; BTC's mark stays put
        engine.set_mark("ETHUSDT", price)

    assert engine.account(KEY).positions == []
    assert btc_liquidation is not None and btc_liquidation < 66_500.0
    assert {record["symbol"] for record in engine.liquidations} == {"BTCUSDT", "ETHUSDT"}
    assert sum(record["price"] == record["mark"] for record in engine.liquidations) == 1  # one trigger leg
    assert engine.account(KEY).wallet["USDT"] == 0.0  # the whole cross wallet is lost, nothing more
    assert sum(record["loss"] for record in engine.liquidations) == pytest.approx(
        1_000.0 - 6_700 * 0.0005 - 7_000 * 0.0005
    )


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("open"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.booleans(), st.integers(1, 30)
        ),
        st.tuples(
            st.just("mark"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.floats(-0.08, 0.08), st.just(0)
        ),
        st.tuples(
            st.just("margin"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.floats(-200, 200), st.just(0)
        ),
        st.tuples(st.just("close"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.just(0), st.just(0)),
        st.tuples(
            st.just("funding"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.floats(-0.01, 0.01), st.just(0)
        ),
        st.tuples(st.just("transfer"), st.just("USDT"), st.floats(-300, 300), st.just(0)),
    ),
    min_size=15,
    max_size=40,
)


@given(isolated_btc=st.booleans(), operations=OPERATIONS)
@settings(max_examples=300, deadline=None)
def test_no_leg_outlives_its_liquidation_price_and_no_money_appears_or_vanishes(
    isolated_btc: bool, operations: list[tuple[str, str, Any, int]]
) -> None:
    engine, _ = make_engine(wallet=600.0)
    engine.set_leverage(KEY, "BTCUSDT", 25)
    engine.set_leverage(KEY, "ETHUSDT", 25)
    if isolated_btc:
        engine.set_margin_mode(KEY, "BTCUSDT", MarginMode.ISOLATED)
    lots = {"BTCUSDT": 0.01, "ETHUSDT": 0.1}
    deposited = 0.0
    for kind, symbol, value, lots_count in operations:
        side = Side.LONG if value is True else Side.SHORT
        with contextlib.suppress(EngineError):  # refusals are fine; what matters is the state after
            if kind == "open":
                engine.open_position(KEY, symbol, side, lots_count * lots[symbol])
            elif kind == "mark":
                engine.set_mark(symbol, engine.marks[symbol] * (1 + value))
            elif kind == "margin":
                engine.adjust_isolated_margin(KEY, symbol, None, value)
            elif kind == "funding":
                engine.pay_funding(symbol, value)
            elif kind == "transfer":
                engine.transfer(KEY, symbol, value)
                deposited += value
            else:
                engine.close_position(KEY, symbol)

        account = engine.account(KEY)
        # The cross equity never goes negative (the wallet alone may: a losing leg closed while a winner
        # stays open realises its loss against the winner's unrealised profit, as on the venues).
        cross_pnl = sum(
            engine.unrealized_pnl(p) for p in account.positions if p.margin_mode is MarginMode.CROSS
        )
        assert account.wallet["USDT"] + cross_pnl >= -1e-9
        if account.positions:
            for pos, leg in zip(account.positions, engine.risk(KEY).positions, strict=True):
                mark, liquidation = engine.marks[pos.symbol], leg.liquidation_price
                assert liquidation is None or (
                    mark > liquidation if pos.side is Side.LONG else mark < liquidation
                )
        held = account.wallet["USDT"] + sum(p.isolated_margin for p in account.positions)
        expected = (
            600.0
            + deposited
            + account.realized_pnl
            - account.fees_paid
            - account.funding_paid
            + account.insurance_covered
        )
        assert held == pytest.approx(expected, abs=1e-6)
