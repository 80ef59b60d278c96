"""Table-driven checks of the margin model; each comment spells out the arithmetic behind the expected value."""

from __future__ import annotations

import pytest

from daemon.core.margin import evaluate_account
from daemon.core.tiers import derive_maintenance_amounts, tier_for
from daemon.core.types import Tier
from tests.unit.model_builders import account, leg

# (family, leg kwargs, expected liquidation price, expected bankruptcy price)
ISOLATED_CASES = [
    # Binance long, 10x: margin 10, q 1, EP 100, mmr 1 %, cum 0.
    #   10 + (P − 100) = 0.01·P  →  P = 90 / 0.99 = 90.9090…;  bankrupt where 10 + (P − 100) = 0 → 90
    ("binance", dict(side="long", margin=10.0), 90.0 / 0.99, 90.0),
    # Binance short, 10x: 10 − (P − 100) = 0.01·P  →  P = 110 / 1.01 = 108.9108…;  bankrupt at 110
    ("binance", dict(side="short", margin=10.0), 110.0 / 1.01, 110.0),
    # Binance with cum 0.5: 10 + (P − 100) = 0.01·P − 0.5  →  P = 89.5 / 0.99
    ("binance", dict(side="long", margin=10.0, cum=0.5), 89.5 / 0.99, 90.0),
    # Bybit long, MM at entry = 100·1 % = 1: P = 100 − (10 − 1) = 91
    ("bybit", dict(side="long", margin=10.0), 91.0, 90.0),
    # Bybit long with 0.1 % fee to close at bankruptcy: BP solves 10 + (P − 100) = 0.001·P → 90/0.999;
    #   LP = 100 − (10 − 1 − 0.001·BP)/1 = 91 + 0.09009… = 91.09009…
    ("bybit", dict(side="long", margin=10.0, fee=0.001), 91.0 + 0.001 * 90.0 / 0.999, 90.0 / 0.999),
    # OKX / Gate: 10 + (P − 100) = P·(1 % + 0.05 %)  →  P = 90 / (1 − 0.0105)
    ("okx", dict(side="long", margin=10.0, fee=0.0005), 90.0 / 0.9895, 90.0),
    ("gate", dict(side="short", margin=10.0, fee=0.0005), 110.0 / 1.0105, 110.0),
    # Hyperliquid, max leverage 20 → mmr 2.5 %: 10 + (P − 100) = 0.025·P → P = 90 / 0.975
    ("hyperliquid", dict(side="long", margin=10.0, max_leverage=20.0, tiers=()), 90.0 / 0.975, 90.0),
    # Margin from leverage: 5x on q 2 at EP 50 → margin 20; Binance long:
    #   20 + 2·(P − 50) = 0.01·2·P  →  P = 80 / 1.98
    ("binance", dict(side="long", qty=2.0, entry=50.0, leverage=5.0), 80.0 / 1.98, 40.0),
    # Inverse (COIN-M), 100 contracts of 10 USD at EP 1,000, margin 0.1 coin, mmr 1 %:
    #   0.1 + 1000·(1/1000 − 1/P) = 1000·0.01/P  →  1.1 = 1010/P  →  P = 918.18…; bankrupt 1000/1.1
    (
        "binance",
        dict(side="long", qty=100.0, contract_size=10.0, entry=1000.0, margin=0.1, inverse=True),
        1010.0 / 1.1,
        1000.0 / 1.1,
    ),
]


@pytest.mark.parametrize(("family", "kwargs", "liquidation", "bankruptcy"), ISOLATED_CASES)
def test_isolated_liquidation_and_bankruptcy_prices(family, kwargs, liquidation, bankruptcy):
    risk = evaluate_account(account(family, leg(**kwargs))).positions[0]
    assert risk.liquidation_price == pytest.approx(liquidation, rel=1e-12)
    assert risk.bankruptcy_price == pytest.approx(bankruptcy, rel=1e-12)


def test_binance_bracket_is_chosen_at_the_liquidation_price():
    # Tiers: 0 → 1 %, notional 95 → 5 % (cum derived: 95·(5 % − 1 %) = 3.8). q 1, EP 100, margin 10, long.
    # In the 5 % bracket: 10 + P − 100 = 0.05·P − 3.8 → P = 86.2/0.95 = 90.74 → notional 90.74 < 95: rejected.
    # In the 1 % bracket: P = 90/0.99 = 90.909 (notional < 95): the answer. With the mark's bracket (5 %,
    # notional 100) a naive model would have said 90.74.
    tiers = derive_maintenance_amounts([Tier(0.0, 0.01), Tier(95.0, 0.05)])
    risk = evaluate_account(account("binance", leg(margin=10.0, tiers=tiers))).positions[0]
    assert risk.liquidation_price == pytest.approx(90.0 / 0.99, rel=1e-12)


def test_a_bracket_boundary_between_mark_and_liquidation_is_crossed():
    # Short, q 1, EP 100, margin 50; tiers 0 → 1 %, 120 → 10 % (cum 120·9 % = 10.8).
    # 1 % bracket: 50 − (P − 100) = 0.01·P → P = 150/1.01 = 148.5 (notional ≥ 120: wrong bracket).
    # 10 % bracket: 150 − P = 0.1·P − 10.8 → P = 160.8/1.1 = 146.18 (≥ 120: consistent).
    tiers = derive_maintenance_amounts([Tier(0.0, 0.01), Tier(120.0, 0.10)])
    risk = evaluate_account(account("binance", leg("short", margin=50.0, tiers=tiers))).positions[0]
    assert risk.liquidation_price == pytest.approx(160.8 / 1.1, rel=1e-12)


def test_cross_liquidation_holds_other_symbols_at_their_marks():
    # Wallet 100. BTC long q 1 @100 mark 100, ETH short q 2 @50 mark 55 (PnL −10, MM 2·55·1 % = 1.1).
    # BTC LP: 100 − 10 − 1.1 + (P − 100) = 0.01·P → P = 11.1/0.99 = 11.2121…
    wallet = 100.0
    btc = leg(mode="cross")
    eth = leg("short", qty=2.0, entry=50.0, mark=55.0, symbol="ETHUSDT", mode="cross")
    risk = evaluate_account(account("binance", btc, eth, wallet=wallet))
    assert risk.positions[0].liquidation_price == pytest.approx(11.1 / 0.99, rel=1e-12)
    # ETH LP (short): 100 + 0 − 1 + 2·(50 − P) = 0.02·P → P = 199 / 2.02
    assert risk.positions[1].liquidation_price == pytest.approx(199.0 / 2.02, rel=1e-12)
    # Account: balance 100 − 10 = 90, MM 1 + 1.1 = 2.1, ratio 2.1/90
    assert risk.margin_balance == pytest.approx(90.0)
    assert risk.maintenance_margin == pytest.approx(2.1)
    assert risk.positions[0].margin_ratio == pytest.approx(2.1 / 90.0)


def test_hedge_legs_of_one_cross_symbol_share_one_liquidation_price():
    # Wallet 20, long q 3 @100, short q 1 @100, mark 100: net long 2.
    # 20 + 3(P − 100) − (P − 100) = 0.01·3P + 0.01·P → 20 + 2P − 200 = 0.04P → P = 180/1.96
    long_leg = leg("long", qty=3.0, mode="cross")
    short_leg = leg("short", qty=1.0, mode="cross")
    risk = evaluate_account(account("binance", long_leg, short_leg, wallet=20.0))
    assert risk.positions[0].liquidation_price == pytest.approx(180.0 / 1.96, rel=1e-12)
    assert risk.positions[1].liquidation_price == risk.positions[0].liquidation_price


@pytest.mark.parametrize(
    ("description", "position", "wallet"),
    [
        # 1x long: margin 100 = q·EP, so even a price of 0 leaves 100 − 100 = 0 ≥ cum − 0: no liquidation.
        ("1x long", leg(margin=100.0), None),
        # Cross collateral larger than anything the long can lose.
        ("cross over-collateralised", leg(mode="cross"), 1_000.0),
    ],
)
def test_a_liquidation_price_that_does_not_exist_is_null_with_a_reason(description, position, wallet):
    risk = evaluate_account(account("binance", position, wallet=wallet)).positions[0]
    assert risk.liquidation_price is None, description
    assert risk.distance_to_liquidation is None
    assert risk.note is not None and risk.note.startswith("no liquidation price")


def test_distance_is_negative_once_past_the_liquidation_price():
    # Long 10x, LP 90.909…; mark 85 is beyond it: distance = −(90.909 − 85)/85.
    risk = evaluate_account(account("binance", leg(margin=10.0, mark=85.0))).positions[0]
    assert risk.distance_to_liquidation == pytest.approx(-(90.0 / 0.99 - 85.0) / 85.0)
    assert risk.note == "at or past the liquidation price"


def test_distance_is_the_fraction_of_mark_to_the_liquidation_price():
    # Long LP 90.909…, mark 100 → distance 0.0909…
    risk = evaluate_account(account("binance", leg(margin=10.0))).positions[0]
    assert risk.distance_to_liquidation == pytest.approx((100.0 - 90.0 / 0.99) / 100.0)
    # Isolated margin ratio: MM 1 / (margin 10 + PnL 0) = 0.1
    assert risk.margin_ratio == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("size", "mmr", "cum"),
    [(0.0, 0.004, 0.0), (49_999.0, 0.004, 0.0), (50_000.0, 0.005, 50.0), (500_000.0, 0.01, 1_300.0)],
)
def test_tier_lookup_and_derived_maintenance_amounts(size, mmr, cum):
    # Binance FAQ table: cum_2 = 50,000·(0.5 % − 0.4 %) = 50; cum_3 = 50 + 250,000·(1 % − 0.5 %) = 1,300.
    tiers = derive_maintenance_amounts([Tier(0.0, 0.004), Tier(50_000.0, 0.005), Tier(250_000.0, 0.01)])
    tier = tier_for(tiers, size)
    assert (tier.mmr, tier.maintenance_amount) == (mmr, pytest.approx(cum))
