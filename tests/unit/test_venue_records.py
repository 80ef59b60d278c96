"""The row mappers of `VenueRecords` on real exchange payloads (tests/data/liquidation_records.json names the
source of each): which rows are liquidations, of which leg, of what size, at what price and when."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.core.types import Side
from daemon.exchanges.quirks import QUIRKS_BY_EXCHANGE
from daemon.exchanges.records import LiquidationRecord, MarginChange
from daemon.exchanges.venue_records import (
    LIQUIDATION_ROWS,
    MARGIN_ROWS,
    binance_force_order,
    binance_margin_change,
    bybit_bust_trade,
    okx_margin_bill,
    okx_position_history,
)

DATA = json.loads((Path(__file__).parents[1] / "data" / "liquidation_records.json").read_text())


def _rows(name: str, symbol: str) -> list[dict[str, Any]]:
    """The payload's rows as ccxt hands them over: the raw row as `info`, beside ccxt's unified symbol."""
    return [{"symbol": symbol, "info": row} for row in DATA[name]["rows"]]


def test_a_binance_autoclose_order_is_the_liquidation_of_the_leg_it_sold() -> None:
    [row] = _rows("binance_force_orders", "BTC/USDT:USDT")
    key, record = binance_force_order(row) or ("", None)
    assert key == "order:6071832819"
    assert record == LiquidationRecord(
        "BTC/USDT:USDT", Side.LONG, 0.001, 10913.21, 1596107620087, "forced (autoclose) order"
    )


def test_a_binance_hedge_leg_names_itself_and_an_empty_fill_is_no_liquidation() -> None:
    [row] = _rows("binance_force_orders", "BTC/USDT:USDT")
    hedge = {**row, "info": {**row["info"], "side": "BUY", "positionSide": "SHORT"}}
    mapped = binance_force_order(hedge)
    assert mapped is not None and mapped[1].side is Side.SHORT
    empty = {**row, "info": {**row["info"], "executedQty": "0"}}
    assert binance_force_order(empty) is None


def test_a_bybit_bust_execution_closes_the_leg_opposite_its_side_and_other_executions_are_not_liquidations() -> (
    None
):
    [row] = _rows("bybit_execution_list", "ETH/USDC:USDC")
    # The published example is a plain trade: ccxt asks with execType=BustTrade, so a Trade row is none.
    assert bybit_bust_trade(row) is None
    bust = {**row, "info": {**row["info"], "execType": "BustTrade"}}
    key, record = bybit_bust_trade(bust) or ("", None)
    assert key == "exec:e0cbe81d-0f18-5866-9415-cf319b5dab3b"
    assert record == LiquidationRecord(
        "ETH/USDC:USDC", Side.SHORT, 0.1, 1190.15, 1672282722429, "BustTrade execution"
    )
    assert bybit_bust_trade({**bust, "info": {**bust["info"], "execQty": "0"}}) is None


def test_okx_positions_history_tells_a_liquidation_from_a_close_by_its_type() -> None:
    [row] = _rows("okx_positions_history", "SUSHI/USDT:USDT")
    assert row["info"]["type"] == "2"  # closed in full by its owner
    assert okx_position_history(row) is None
    for code, how in (("3", "liquidation"), ("4", "partial liquidation")):
        liquidated = {**row, "info": {**row["info"], "type": code}}
        key, record = okx_position_history(liquidated) or ("", None)
        assert key == "pos:666159086676836352:1708354805699"
        assert record == LiquidationRecord(
            "SUSHI/USDT:USDT", Side.SHORT, 40.0, 1.2567, 1708354805699, f"positions history ({how})"
        )
    adl = {**row, "info": {**row["info"], "type": "5"}}
    assert okx_position_history(adl) is None


def test_binance_margin_history_lists_adjustments_and_leaves_out_what_trades_moved() -> None:
    trade, adjust = _rows("binance_margin_history", "XRP/USDT:USDT")
    assert trade["info"]["deltaType"] == "TRADE"
    assert binance_margin_change(trade) is None
    assert binance_margin_change(adjust) == MarginChange(
        "XRP/USDT:USDT", None, 10.0, "USDT", 1711046323584, "add"
    )
    reduced = {**adjust, "info": {**adjust["info"], "type": "2", "positionSide": "LONG"}}
    assert binance_margin_change(reduced) == MarginChange(
        "XRP/USDT:USDT", Side.LONG, -10.0, "USDT", 1711046323584, "reduce"
    )


def test_okx_margin_bills_list_margin_added_and_removed_by_their_subtype() -> None:
    [added] = _rows("okx_margin_bills", "XRP/USDT:USDT")
    assert okx_margin_bill(added) == MarginChange("XRP/USDT:USDT", None, 10.0, "USDT", 1711089244699, "add")
    removed = {**added, "info": {**added["info"], "subType": "161", "posBalChg": "-4.5"}}
    assert okx_margin_bill(removed) == MarginChange(
        "XRP/USDT:USDT", None, -4.5, "USDT", 1711089244699, "reduce"
    )
    other = {**added, "info": {**added["info"], "subType": "1"}}  # a trade's bill: no margin adjustment
    assert okx_margin_bill(other) is None


def test_every_venue_names_a_mapper_that_exists() -> None:
    for quirks in QUIRKS_BY_EXCHANGE.values():
        if quirks.liquidations is not None:
            assert quirks.liquidations.rows in LIQUIDATION_ROWS
        if quirks.margin_history is not None:
            assert quirks.margin_history.rows in MARGIN_ROWS
    watched = {q.exchange_id for q in QUIRKS_BY_EXCHANGE.values() if q.liquidations is not None}
    assert watched == {"binanceusdm", "bybit", "okx"}
