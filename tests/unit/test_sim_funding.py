"""Funding payments on the simulated exchange, as a holder sees them in balances, positions and pushes."""

from __future__ import annotations

import pytest

from daemon.core.types import MarginMode, Side
from daemon.sim.engine import BalanceChanged, Engine, Event, Liquidated, PositionChanged
from daemon.sim.markets import load_markets

KEY = "key-1"


def make_engine(wallet: float = 10_000.0, family: str = "binance") -> tuple[Engine, list[Event]]:
    engine = Engine(load_markets(family), clock=lambda: 1_700_000_000.0, family=family)
    engine.add_account(KEY, "secret", wallet={"USDT": wallet})
    events: list[Event] = []
    engine.subscribe(events.append)
    return engine, events


@pytest.mark.parametrize("family", ["binance", "bybit", "okx"])
def test_a_long_pays_a_positive_rate_from_the_cross_wallet_and_a_short_receives_it(family: str) -> None:
    engine, events = make_engine(family=family)
    engine.set_hedge_mode(KEY, True)
    contracts = 1.0 / engine.markets["ETHUSDT"].contract_size  # 1 ETH whatever the venue's contract value
    engine.set_position(KEY, "ETHUSDT", Side.LONG, contracts, entry_price=3_500.0)
    engine.set_position(KEY, "ETHUSDT", Side.SHORT, contracts / 2, entry_price=3_500.0)
    long_notional = engine.notional(engine.account(KEY).positions[0])
    wallet = engine.account(KEY).wallet["USDT"]
    events.clear()

    paid = engine.pay_funding("ETHUSDT", 0.0001)

    assert paid[KEY] == pytest.approx(
        long_notional * 0.0001 / 2
    )  # the long pays, the half-size short receives
    assert engine.account(KEY).wallet["USDT"] == pytest.approx(wallet - long_notional * 0.0001 / 2)
    assert engine.account(KEY).funding_paid == pytest.approx(paid[KEY])
    [balance] = [e for e in events if isinstance(e, BalanceChanged)]
    assert balance.reason == "funding" and balance.wallet == engine.account(KEY).wallet["USDT"]
    assert not [e for e in events if isinstance(e, PositionChanged)]  # cross legs keep no margin of their own
    assert engine.funding_rate("ETHUSDT") == 0.0001
    assert [(f["side"], f["amount"] > 0) for f in engine.fundings] == [("long", True), ("short", False)]


def test_an_isolated_leg_settles_funding_in_its_own_margin_and_its_liquidation_price_moves() -> None:
    engine, events = make_engine()
    engine.set_position(
        KEY, "BTCUSDT", Side.SHORT, 0.1, entry_price=67_000.0, margin_mode=MarginMode.ISOLATED, leverage=20
    )
    wallet = engine.account(KEY).wallet["USDT"]
    before = engine.liquidation_price(KEY, "BTCUSDT", Side.SHORT)
    events.clear()

    engine.pay_funding("BTCUSDT", -0.001)  # a negative rate: shorts pay

    [pos] = engine.account(KEY).positions
    assert pos.isolated_margin == pytest.approx(335.0 - 6.7)
    assert engine.account(KEY).wallet["USDT"] == wallet
    after = engine.liquidation_price(KEY, "BTCUSDT", Side.SHORT)
    assert before is not None and after is not None and after == pytest.approx(before - 6.7 / 0.1, rel=1e-3)
    assert [
        (type(e).__name__, e.reason) for e in events if isinstance(e, BalanceChanged | PositionChanged)
    ] == [
        ("BalanceChanged", "funding"),
        ("PositionChanged", "funding"),
    ]


def test_funding_that_eats_an_isolated_margin_past_maintenance_liquidates_the_leg() -> None:
    engine, events = make_engine()
    engine.set_position(
        KEY, "BTCUSDT", Side.LONG, 0.1, entry_price=67_000.0, margin_mode=MarginMode.ISOLATED, leverage=100
    )
    liquidation = engine.liquidation_price(KEY, "BTCUSDT", Side.LONG)
    assert liquidation is not None
    engine.set_mark("BTCUSDT", liquidation * 1.001)  # close to it, still open
    assert engine.account(KEY).positions

    engine.pay_funding("BTCUSDT", 0.003)  # 20 USDT out of a 67 USDT margin

    assert engine.account(KEY).positions == []
    [record] = engine.liquidations
    assert record["symbol"] == "BTCUSDT"
    assert any(isinstance(e, Liquidated) for e in events)
