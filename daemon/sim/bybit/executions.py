"""Bybit v5 GET /v5/execution/list: the account's executions, as ccxt's `fetch_my_liquidations` reads them
(`execType=BustTrade`, `category`, optional `symbol`, `startTime`, `endTime`, `limit`).

The simulator keeps no fills of the owner's own orders, so this lists the engine's forced closes only: one
`BustTrade` row per liquidation record, newest first (as Bybit orders them), with ids derived from the record so
that asking twice gives the same rows. A client that missed the websocket execution push can tell a
liquidation from a close by asking here.
"""

from __future__ import annotations

import uuid
from typing import Any

from daemon.core.types import Side
from daemon.sim.bybit import errors
from daemon.sim.bybit.wire import category_of, money, price, qty, trimmed, wire_symbol
from daemon.sim.engine import Engine
from daemon.sim.markets import Market

MAX_LIMIT = 100
_IDS = uuid.UUID("6f0b7a52-5d8e-4a43-9d1c-0b0c5e7a1b11")  # namespace of the derived order/execution ids


def bust_trade_row(engine: Engine, market: Market, record: dict[str, Any], index: int) -> dict[str, Any]:
    """One liquidation record as Bybit lists the bust execution that closed the leg."""
    side = Side(record["side"])
    value = record["contracts"] * market.contract_size * record["price"]
    return {
        "symbol": wire_symbol(market),
        "orderType": "Limit",
        "underlyingPrice": "",
        "orderLinkId": "",
        "side": "Sell" if side is Side.LONG else "Buy",
        "indexPrice": "",
        "orderId": str(uuid.uuid5(_IDS, f"order-{index}")),
        "stopOrderType": "UNKNOWN",
        "leavesQty": "0",
        "execTime": str(record["ts_ms"]),
        "feeCurrency": "",
        "isMaker": False,
        "execFee": money(value * market.taker_fee),
        "feeRate": trimmed(market.taker_fee),
        "execId": str(uuid.uuid5(_IDS, f"exec-{index}")),
        "tradeIv": "",
        "blockTradeId": "",
        "markPrice": price(record["mark"], market),
        "execPrice": price(record["price"], market),
        "markIv": "",
        "orderQty": qty(record["contracts"], market),
        "orderPrice": price(record["price"], market),
        "execValue": money(value),
        "execType": "BustTrade",
        "execQty": qty(record["contracts"], market),
        "closedSize": qty(record["contracts"], market),
        "execPnl": money(-record["loss"]),
        "seq": index + 1,
    }


def execution_list(engine: Engine, by_wire: dict[str, Market], api_key: str, params: dict[str, Any]) -> Any:
    category = str(params.get("category", ""))
    if category not in ("linear", "inverse"):
        raise errors.params_error("Illegal category")
    exec_type = params.get("execType")
    if exec_type not in (None, "", "BustTrade"):
        return {"list": [], "nextPageCursor": "", "category": category}
    wanted = str(params.get("symbol") or "")
    if wanted and wanted not in by_wire:
        raise errors.invalid_symbol()
    try:
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", 2**62))
        limit = max(1, min(int(params.get("limit", 50)), MAX_LIMIT))
    except (TypeError, ValueError):
        raise errors.params_error("startTime, endTime and limit must be integers") from None
    rows = []
    for index, record in enumerate(engine.liquidations):
        market = engine.markets.get(str(record["symbol"]))
        if (
            market is None
            or record["api_key"] != api_key
            or category_of(market) != category
            or (wanted and wire_symbol(market) != wanted)
            or not start <= int(record["ts_ms"]) <= end
        ):
            continue
        rows.append(bust_trade_row(engine, market, record, index))
    rows.reverse()  # newest first
    return {"list": rows[:limit], "nextPageCursor": "", "category": category}
