"""ccxt's unified structures -> core events, on recorded data: ccxt's own recordings of real exchange answers
(tests/data/ccxt_static_recorded.json) and ccxt's parse of the simulator's answers
(tests/data/ccxt_sim_captured.json, made by tests/data/ccxt_capture.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.events import PositionFacts, PositionSnapshot, PositionUpdate
from daemon.core.state import AccountState, ChangeKind, apply
from daemon.core.types import ContractType, MarginMode, Side
from daemon.exchanges.parse import (
    facts_from_positions,
    margin_mode_of,
    mark_from_ticker,
    market_rules,
    position_facts,
    positive,
    tiers_from_ccxt,
    wallet_balance,
)

DATA = Path(__file__).parents[1] / "data"
RECORDED = json.loads((DATA / "ccxt_static_recorded.json").read_text())
SIM = json.loads((DATA / "ccxt_sim_captured.json").read_text())
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def recorded(exchange: str, method: str, index: int = 0) -> Any:
    return RECORDED[exchange][method][index]["parsedResponse"]


def leg(rows: list[dict[str, Any]], symbol: str, side: str) -> dict[str, Any]:
    return next(r for r in rows if r["symbol"] == symbol and r["side"] == side)


def facts(row: dict[str, Any]) -> PositionFacts:
    parsed = position_facts(row)
    assert parsed is not None
    return parsed


# ---- liquidation price: unknown is None, never 0 ----


@pytest.mark.parametrize("unknown", [0, 0.0, "0", None, float("nan"), "NaN", "", "not a number"])
def test_a_liquidation_price_the_exchange_does_not_give_is_unknown(unknown: Any) -> None:
    row = {**recorded("binance", "fetchPositions")[0], "liquidationPrice": unknown}
    assert facts(row).exchange_liquidation_price is None


def test_bybit_empty_liq_price_arrives_as_none_and_stays_unknown() -> None:
    row = recorded("bybit", "fetchPositions")[0]
    assert row["info"]["liqPrice"] == ""
    parsed = facts(row)
    assert parsed.exchange_liquidation_price is None
    assert (parsed.contracts, parsed.entry_price, parsed.leverage) == (1.2, 64.59947917, 6.0)


def test_a_real_binance_position_keeps_its_liquidation_price_and_mode() -> None:
    parsed = facts(recorded("binance", "fetchPositions")[0])
    assert parsed == PositionFacts(
        symbol=BTC,
        side=Side.LONG,
        contracts=0.009,
        entry_price=67445.9,
        mark_price=67502.68519858,
        contract_size=1.0,
        contract_type=ContractType.LINEAR,
        margin_mode=MarginMode.CROSS,
        leverage=None,  # positionRisk v3 has no leverage: unknown, not 0
        isolated_margin=None,
        exchange_liquidation_price=64846.9875379,
    )


# ---- thin Binance pushes ----


def test_thin_binance_push_leaves_what_it_does_not_carry_unknown() -> None:
    row = SIM["binance"]["watch_positions"]["after_margin_added"][0]
    parsed = facts(row)
    assert (parsed.mark_price, parsed.exchange_liquidation_price, parsed.leverage) == (None, None, None)
    assert (parsed.side, parsed.contracts, parsed.entry_price) == (Side.LONG, 1.0, 67000.0)
    assert parsed.margin_mode is MarginMode.ISOLATED
    # The isolated wallet (`iw`) is in the push even though ccxt's collateral is None: 6,700 + 25 added.
    assert parsed.isolated_margin == 6725.0


def test_thin_push_merged_after_a_snapshot_never_erases_known_figures() -> None:
    snapshot_rows = SIM["binance"]["positions_one_way"]
    state = AccountState("acct", "binance")
    state, _ = apply(state, PositionSnapshot(facts_from_positions(snapshot_rows), ts_ms=1))
    push = SIM["binance"]["watch_positions"]["after_margin_added"]
    state, changes = apply(state, PositionUpdate(facts_from_positions(push), ts_ms=2))
    btc = state.legs[(BTC, Side.LONG)]
    assert changes == ()
    # The snapshot's liquidation price is stale once the margin moved: unknown until the exchange says it again.
    assert btc.exchange_liquidation_price is None
    assert btc.mark_price == 67000.0 and btc.contract_size == 1.0
    assert btc.isolated_margin == 6725.0  # the push's news


def test_a_one_way_close_without_side_closes_the_leg_whichever_it_was() -> None:
    row = SIM["binance"]["watch_positions"]["after_close"][0]
    assert (row["side"], row["contracts"]) == ("both", 0.0)
    assert position_facts(row) is None  # names no leg by itself
    closes = facts_from_positions([row])
    assert {(f.side, f.contracts) for f in closes} == {(Side.LONG, 0.0), (Side.SHORT, 0.0)}
    state = AccountState("acct", "binance")
    state, _ = apply(
        state, PositionSnapshot(facts_from_positions(SIM["binance"]["positions_one_way"]), ts_ms=1)
    )
    state, changes = apply(state, PositionUpdate(closes, ts_ms=2))
    assert [(c.kind, c.symbol, c.side) for c in changes] == [(ChangeKind.CLOSED, BTC, Side.LONG)]
    assert (BTC, Side.LONG) not in state.legs and (ETH, Side.SHORT) in state.legs


def test_a_closed_row_with_no_side_and_no_size_is_not_a_leg() -> None:
    row = recorded("bybit", "fetchPosition")
    assert position_facts(row) is None
    assert {f.contracts for f in facts_from_positions([row])} == {0.0}


# ---- sides and sizes: one-way, hedge, signed ----


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
def test_hedge_legs_of_one_symbol_are_two_facts_with_positive_sizes(exchange: str) -> None:
    rows = SIM[exchange]["positions_hedge"]
    parsed = {(f.symbol, f.side): f for f in facts_from_positions(rows)}
    long_, short = parsed[(BTC, Side.LONG)], parsed[(BTC, Side.SHORT)]
    assert short.contracts * 2 == long_.contracts > 0
    assert long_.isolated_margin == pytest.approx(6700.0) and short.isolated_margin == pytest.approx(3350.0)


def test_a_signed_size_without_side_gives_the_direction() -> None:
    base = recorded("binance", "fetchPositions")[0]
    short = facts({**base, "side": None, "contracts": -0.5})
    long_ = facts({**base, "side": None, "contracts": 0.5})
    assert (short.side, short.contracts) == (Side.SHORT, 0.5)
    assert (long_.side, long_.contracts) == (Side.LONG, 0.5)


def test_okx_sizes_are_contracts_with_their_contract_size() -> None:
    btc = facts(leg(SIM["okx"]["positions_one_way"], BTC, "long"))
    assert (btc.contracts, btc.contract_size) == (100.0, 0.01)  # 100 contracts of 0.01 BTC = 1 BTC
    ltc = facts(recorded("okx", "fetchPositions")[0])
    assert (ltc.contracts, ltc.contract_size, ltc.side) == (1.0, 0.001, Side.LONG)


def test_inverse_contracts_are_recognised_from_the_symbol() -> None:
    okx_isolated = facts(recorded("okx", "fetchPosition", 1))
    assert okx_isolated.contract_type is ContractType.INVERSE
    assert okx_isolated.contract_size == 100.0
    assert okx_isolated.margin_mode is MarginMode.ISOLATED
    assert okx_isolated.isolated_margin == pytest.approx(0.0003611412062116)  # coin-margined
    binance_short = facts(recorded("binance", "fetchPositions", 1)[0])
    assert (binance_short.contract_type, binance_short.side) == (ContractType.INVERSE, Side.SHORT)


# ---- isolated margin: without unrealised PnL ----


def test_binance_isolated_margin_is_the_wallet_not_the_margin_with_pnl() -> None:
    row = leg(SIM["binance"]["positions_one_way"], BTC, "long")
    moved = {**row, "collateral": 6800.0, "info": {**row["info"], "isolatedMargin": "6800.0"}}  # PnL +100
    assert facts(moved).isolated_margin == 6700.0


@pytest.mark.parametrize("exchange", ["bybit", "okx"])
def test_isolated_margin_is_the_position_margin_not_the_collateral_with_pnl(exchange: str) -> None:
    row = leg(SIM[exchange]["positions_one_way"], BTC, "long")
    losing = {**row, "collateral": row["positionMargin"] - 100.0}  # unrealised PnL -100
    assert facts(losing).isolated_margin == row["positionMargin"]


def test_cross_legs_carry_no_isolated_margin() -> None:
    eth = facts(leg(SIM["binance"]["positions_one_way"], ETH, "short"))
    assert eth.margin_mode is MarginMode.CROSS and eth.isolated_margin is None


def test_bybit_positions_do_not_say_the_mode_so_it_comes_from_the_account() -> None:
    btc = facts(leg(SIM["bybit"]["positions_one_way"], BTC, "long"))
    assert btc.margin_mode is None  # unified accounts: tradeMode is always 0, whatever the mode
    assert btc.isolated_margin == 6700.0  # positionBalance, used once the mode is known to be isolated
    assert margin_mode_of({"marginMode": "isolated"}) is MarginMode.ISOLATED
    assert margin_mode_of({"marginMode": "portfolio"}) is MarginMode.CROSS
    assert margin_mode_of({"marginMode": None}) is None


# ---- tiers and market rules ----


def test_binance_tiers_keep_the_published_cum() -> None:
    rules = market_rules(SIM["binance"]["market"][BTC], SIM["binance"]["leverage_tiers"][BTC], "binance")
    assert [(t.min_notional, t.mmr, t.maintenance_amount) for t in rules.tiers[:3]] == [
        (0.0, 0.004, 0.0),
        (50000.0, 0.005, 50.0),
        (600000.0, 0.0065, 950.0),
    ]
    assert rules.tiers[0].max_leverage == 125.0
    assert (rules.contract_size, rules.contract_type, rules.taker_fee_rate) == (
        1.0,
        ContractType.LINEAR,
        0.0005,
    )


def test_bybit_tiers_read_mm_deduction_and_an_empty_one_is_zero() -> None:
    tiers = tiers_from_ccxt(SIM["bybit"]["leverage_tiers"][BTC], "bybit")
    assert [(t.min_notional, t.maintenance_amount) for t in tiers[:3]] == [
        (0.0, 0.0),
        (50000.0, 50.0),
        (600000.0, 950.0),
    ]


def test_okx_tiers_are_in_contracts_and_carry_no_deduction() -> None:
    rules = market_rules(SIM["okx"]["market"][BTC], SIM["okx"]["leverage_tiers"][BTC], "okx")
    assert [(t.min_notional, t.maintenance_amount) for t in rules.tiers[:2]] == [(0.0, 0.0), (75.0, 0.0)]
    assert rules.contract_size == 0.01


def test_tiers_without_published_amounts_get_them_derived_by_continuity() -> None:
    bare = [
        {"minNotional": 0, "maintenanceMarginRate": 0.004, "maxLeverage": 125, "info": {}},
        {"minNotional": 50_000, "maintenanceMarginRate": 0.005, "maxLeverage": 100, "info": {}},
        {"minNotional": 250_000, "maintenanceMarginRate": 0.01, "maxLeverage": 50, "info": {}},
    ]
    assert [t.maintenance_amount for t in tiers_from_ccxt(bare, "binance")] == pytest.approx([0, 50, 1300])
    assert [t.maintenance_amount for t in tiers_from_ccxt(bare, "okx")] == [0, 0, 0]


def test_a_market_without_tiers_has_an_empty_table_not_a_made_up_one() -> None:
    rules = market_rules(SIM["bybit"]["market"][BTC], None, "bybit")
    assert rules.tiers == ()
    assert rules.max_leverage == 125.0  # from the market's leverage limits


# ---- balances and marks ----


def test_wallet_balance_is_the_cross_wallet_without_isolated_margins() -> None:
    assert wallet_balance(recorded("binance", "fetchBalance"), "USDT") == 31.022612
    # 99,949 in the wallet of which 6,700 is the isolated BTC leg's margin.
    assert SIM["binance"]["balance"]["USDT"]["total"] == 99949.0
    assert wallet_balance(SIM["binance"]["balance"], "USDT") == 93249.0
    assert SIM["okx"]["balance"]["USDT"]["total"] == 99791.5
    assert wallet_balance(SIM["okx"]["balance"], "USDT") == 93091.5
    assert wallet_balance(SIM["bybit"]["balance"], "USDT") == 99949.0  # coin[].walletBalance


def test_binance_balance_push_reads_the_cross_wallet() -> None:
    push = {
        "info": {
            "e": "ACCOUNT_UPDATE",
            "a": {"m": "ORDER", "B": [{"a": "USDT", "wb": "122.6", "cw": "100.1", "bc": "0"}]},
        },
        "USDT": {"free": None, "used": None, "total": 122.6},
    }
    assert wallet_balance(push, "USDT") == 100.1
    bnb_only = {
        "info": {"e": "ACCOUNT_UPDATE", "a": {"B": [{"a": "BNB", "wb": "1", "cw": "1"}]}},
        "USDT": {"total": 122.6},
    }
    assert wallet_balance(bnb_only, "USDT") is None  # says nothing about USDT: not ccxt's stale total


def test_a_balance_that_does_not_mention_the_currency_is_unknown() -> None:
    assert wallet_balance(recorded("binance", "fetchBalance"), "USDC") is None
    assert wallet_balance({"USDT": {"total": None}, "total": {}}, "USDT") is None


def test_mark_price_from_mark_price_tickers_and_from_a_bybit_ticker() -> None:
    assert mark_from_ticker(SIM["binance"]["mark_price"]) == 67000.0
    assert mark_from_ticker(SIM["okx"]["mark_price"]) == 67000.0
    assert mark_from_ticker(SIM["bybit"]["ticker"]) == 67000.0


def test_mark_price_falls_back_to_the_exchange_field_and_never_reports_zero() -> None:
    assert mark_from_ticker({"markPrice": None, "info": {"markPx": "101.5"}}) == 101.5
    assert mark_from_ticker({"markPrice": 0, "info": {"p": "0"}}) is None
    assert mark_from_ticker({"markPrice": None, "info": None}) is None


@settings(max_examples=300)
@given(
    st.one_of(
        st.none(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-10, 10**6),
        st.text(max_size=8),
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
    )
)
def test_a_tickers_mark_is_a_positive_finite_number_or_unknown_whatever_ccxt_put_there(value: object) -> None:
    """ccxt's usual float is taken at once (every mark goes through here); whatever the field holds, the mark
    read is `positive` of it: NaN, infinities, zero, negatives, booleans and text that is not a number are
    unknown, never a price."""
    assert mark_from_ticker({"markPrice": value}) == positive(value)
    assert mark_from_ticker({"markPrice": None, "info": {"markPx": value}}) == positive(value)
