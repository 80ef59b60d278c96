"""marginguard's model reports the liquidation price NEAREST the mark, on whichever side it lies.

Found by the simulator's independent oracle: a hedged cross account (Binance hedge mode, a long and a slightly
smaller short of one symbol) whose long leg sits just under a bracket floor. Falling, it is liquidated 3.2 %
below the mark; rising, the long's notional enters the next bracket (MMR 1 % -> 2 %), the combined maintenance
overtakes the small net gain, and it is liquidated only 2.4 % above. The model used to walk from the mark in
the one direction in which the margin balance falls there, and reported the far price: a trader was told he
had 3.2 % of room where he had 2.4 %.

Source of the rule: Binance FAQ "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts"
(https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93), hedge mode:
WB − TMM1 + UPNL1 + cumL + cumS − Position1LONG·EP1LONG + Position1SHORT·EP1SHORT
    = LP·(Position1LONG·MMR_L + Position1SHORT·MMR_S − Position1LONG + Position1SHORT),
each leg's MMR and cum those of its notional AT the liquidation price. Both prices below satisfy it.
"""

from __future__ import annotations

import pytest

from daemon.core.margin import evaluate_account
from daemon.core.types import Account, ContractType, MarginMode, Position, Side, Tier

# Binance USD-M BTCUSDT brackets (floor, mmr, cum), the simulator's table (daemon/sim/data/markets.json).
BTC_BRACKETS = (
    Tier(0.0, 0.004, 0.0),
    Tier(50_000.0, 0.005, 50.0),
    Tier(600_000.0, 0.0065, 950.0),
    Tier(3_000_000.0, 0.01, 11_450.0),
    Tier(12_000_000.0, 0.02, 131_450.0),
    Tier(70_000_000.0, 0.025, 481_450.0),
)
MARK = ENTRY = 66_000.0
LONG, SHORT, WALLET = 180.0, 176.0, 213_000.0


def leg(side: Side, quantity: float) -> Position:
    return Position(
        "BTCUSDT", side, quantity, 1.0, ENTRY, MARK, MarginMode.CROSS, ContractType.LINEAR, tiers=BTC_BRACKETS
    )


def binance_hedge_gap(price: float) -> float:
    """Margin balance minus maintenance at `price`, each leg in the bracket of its notional there."""

    def maintenance(quantity: float) -> float:
        tier = [t for t in BTC_BRACKETS if t.min_notional <= quantity * price][-1]
        return quantity * price * tier.mmr - tier.maintenance_amount

    balance = WALLET + LONG * (price - ENTRY) - SHORT * (price - ENTRY)
    return balance - maintenance(LONG) - maintenance(SHORT)


def test_a_hedged_account_is_told_the_nearer_liquidation_price_even_when_it_lies_upwards() -> None:
    risk = evaluate_account(Account("binance", (leg(Side.LONG, LONG), leg(Side.SHORT, SHORT)), WALLET))

    long_floor = 12_000_000.0 / LONG  # 66,666.67: the long's notional reaches the 2 % bracket
    assert binance_hedge_gap(long_floor) > binance_hedge_gap(MARK) > 0  # rising is safer... at first
    for position in risk.positions:
        assert position.liquidation_price == pytest.approx(67_573.529411764706, rel=1e-12)
        assert position.distance_to_liquidation == pytest.approx(1_573.529411764706 / MARK, rel=1e-9)
    assert binance_hedge_gap(67_573.529411764706) == pytest.approx(0.0, abs=1e-6)
    assert binance_hedge_gap(63_863.636363636364) == pytest.approx(0.0, abs=1e-6)  # the farther one
